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
//! * [`scenarios`]: the tests; [`ktap`]: KTAP output and parsing;
//!   [`expect`]: what each `make selftest` configuration must show;
//!   [`bench`]: `make bench` records and report.

#![warn(missing_docs)]

pub mod bench;
pub mod error;
pub mod expect;
pub mod family;
pub mod ktap;
pub mod mapping;
pub mod probe;
pub mod scenarios;
pub mod sysfs;
pub mod uapi;
pub mod vfio;
