// SPDX-License-Identifier: GPL-2.0

//! Userspace kselftest for revocable VFIO BAR mappings across fork.
//!
//! Since the 2024 vfio-pci fix every mapping of a VFIO device lives in the
//! device inode's address_space, so revoking device memory (COMMAND memory
//! enable cleared, reset, unplug) zaps every process's mapping, forked
//! children included, and their next access faults into the driver again.
//! On 7.3 a child inherits the parent's PTEs at fork (`VM_PFNMAP` is in
//! `VM_COPY_ON_FORK`), so the property checked here is that a *later*
//! revoke reaches the child. The pre-2024 design (a per-driver list of
//! faulted vmas) misses the child, which keeps access: the tests catch that.
//!
//! Layout:
//! * [`uapi`]: the VFIO ioctl numbers and structs; [`vfio`]: opening a
//!   device through the group or cdev path, regions, config, reset;
//! * [`sysfs`]: device lookup, binding, vfio_variant debugfs, unplug;
//! * [`mapping`]: BAR mmaps and vma surgery; [`probe`]: SIGBUS-safe reads
//!   and fault counting; [`family`]: forked children and grandchildren;
//! * [`scenarios`]: the tests; [`bad_input`]: bad uAPI input and VFIO's
//!   answers; [`ktap`]: KTAP output and parsing;
//!   [`expect`]: what each `make selftest` configuration must show;
//!   [`bench`]: `make bench` records and report; [`poll`]: bounded waits;
//! * [`sys`]: the C library calls, constants and structs used, written
//!   out for x86_64 (no crate dependencies: the crate builds offline).

#![warn(missing_docs)]

/// Declares modules that exist on x86_64 only (each gets
/// `#[cfg(target_arch = "x86_64")]`): the parts that use the x86_64 ABI or
/// the SIGBUS probe.
#[macro_export]
macro_rules! x86_64_only {
    ($($vis:vis mod $name:ident;)*) => {
        $(#[cfg(target_arch = "x86_64")] $vis mod $name;)*
    };
}

pub mod bench;
pub mod error;
pub mod expect;
pub mod ktap;
pub mod poll;
pub mod sysfs;
pub mod uapi;

// The test itself: x86_64 only. [`sys`] is the x86_64 glibc ABI and
// [`probe`] recovers from SIGBUS with x86_64 assembly. Built for another
// architecture the crate keeps only the portable modules above, and
// `vfio_fork_revoke` reports a KTAP skip (the kselftest Makefile does not
// even build it there).
x86_64_only! {
    pub mod bad_input;
    pub mod family;
    pub mod mapping;
    pub mod probe;
    pub mod scenarios;
    pub mod sys;
    pub mod vfio;
}
