// SPDX-License-Identifier: GPL-2.0

//! KUnit support (built with `CONFIG_KUNIT` only): finding a bound device,
//! opening it as userspace does, a test thread's user mappings
//! (`kunit_vm_mmap`, as guards that unmap when dropped), PTE presence and
//! vma lookups, the fork page-table copy done by hand, and fault injection
//! into the fallible steps.
//!
//! A test opens the device through the kernel's own interfaces, the cdev
//! path of userspace: it opens `vfio/devices/<name>` and `iommu` in
//! devtmpfs and binds the two with `VFIO_DEVICE_BIND_IOMMUFD` through the
//! device file's `unlocked_ioctl` (the iommufd is installed in the test
//! thread's file table, which kernel threads share, and closed with the
//! device); config writes go through the file's `write`, mappings through
//! `kunit_vm_mmap()` of the file. While the test
//! has the device bound, userspace cannot open it (the cdev path refuses a
//! second bind, the group path is blocked). Closing releases the file and
//! waits for the release ([`Opened`]'s drop).
//!
//! A vma left mapped after the test closed the device would keep the
//! device file, and so the device, open. Hence the `Mapping` guards
//! (`user.rs`).

mod bound;
mod open;
mod user;

pub(crate) use bound::{module_refs, with_bound_device};
pub(crate) use open::{device_file, set_vconfig_memory, Opened};
pub(crate) use user::{
    fork_copy, map_anon, map_file, present, touch, vmas_of, with_anon_vma_posing_as, with_vma,
};

use kernel::{
    bindings,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

/// The running KUnit test, or null outside a test.
fn current_test() -> *mut bindings::kunit {
    // SAFETY: always safe to call.
    unsafe { bindings::kunit_get_current_test() }
}

/// Marks the running test skipped with `reason` (what `kunit_mark_skipped`
/// does); the test should return right after.
pub(crate) fn skip(reason: &CStr) {
    let t = current_test();
    if t.is_null() {
        return;
    }
    let bytes = reason.to_bytes();
    // SAFETY: `t` is the running test; we write its status and comment as
    // the C macro does, NUL terminated within the 256-byte buffer.
    unsafe {
        (*t).status = bindings::kunit_status_KUNIT_SKIPPED;
        let n = bytes.len().min((*t).status_comment.len() - 1);
        for (i, b) in bytes[..n].iter().enumerate() {
            (*t).status_comment[i] = *b as c_char;
        }
        (*t).status_comment[n] = 0;
    }
}

/// Fault injection: the fallible step that fails next (1: the next one,
/// 0: none). Only the KUnit suites set it; they run one at a time.
static FAIL_AT: Atomic<u32> = Atomic::new(0);

/// Makes the `n`-th fallible step from now fail with `EIO` (0: none).
/// The steps are opening a device file, mapping and config writes: each
/// `?` of a scenario after the device is open.
pub(crate) fn fail_at(n: u32) {
    FAIL_AT.store(n, Relaxed);
}

/// One fallible step: fails if the countdown of [`fail_at`] reaches it.
fn step() -> Result {
    match FAIL_AT.load(Relaxed) {
        0 => Ok(()),
        1 => {
            FAIL_AT.store(0, Relaxed);
            Err(EIO)
        }
        n => {
            FAIL_AT.store(n - 1, Relaxed);
            Ok(())
        }
    }
}
