// SPDX-License-Identifier: GPL-2.0

//! Legacy mode: the pre-2024 vfio-pci mmap design, reproduced faithfully so
//! that the tests can prove they catch its bug. NOT a supported mode.
//!
//! * The vma is moved off the device inode's address_space to a file of its
//!   own (an anon-inode file, like device files were before the fix), so
//!   the core's `unmap_mapping_range()` does not reach it.
//! * `vm_ops->open` zaps the new vma; `close` drops it from the list.
//! * A fault adds the vma to a per-device list and inserts one page.
//! * A revocation walks only that list with `zap_vma_range()`.
//!
//! With 7.3's fork order (`open()` on the child's vma, then
//! `copy_page_range()`), `open()` zaps an empty table, the child inherits
//! the parent's PTEs, and the child is never on the list: a later revoke
//! misses it and the child keeps access. That is the bug this mode shows.

use crate::{
    counters::Counters,
    fixed::span_of,
    mm::{self, Fault, NewVma, VmFault, VmOps},
};
use core::ptr::NonNull;
use kernel::{
    bindings,
    fs::File,
    mm::{virt::VmaRef, Mm},
    new_mutex,
    prelude::*,
    sync::{aref::ARef, lock::mutex::MutexBackend, lock::Guard, Mutex},
};

/// A faulted legacy vma.
pub(crate) struct Tracked {
    vma: *mut bindings::vm_area_struct,
    mm: *mut bindings::mm_struct,
}

// SAFETY: plain pointers, only dereferenced under the list lock (which keeps
// the vma alive, see `close`) and the vma's mmap lock.
unsafe impl Send for Tracked {}

/// The per-device list of faulted legacy vmas (the old `vma_list` under
/// `vma_lock`).
#[pin_data]
pub(crate) struct VmaList {
    #[pin]
    inner: Mutex<KVec<Tracked>>,
}

/// The list lock held with the list empty: revocation then takes
/// `memory_lock` for write, as the old `vfio_pci_zap_and_vma_lock()` did.
pub(crate) type EmptyList<'a> = Guard<'a, KVec<Tracked>, MutexBackend>;

impl VmaList {
    /// An empty list.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self { inner <- new_mutex!(KVec::new()) })
    }

    /// Zaps every listed vma and returns with the list lock held and the
    /// list empty. Lock order is mmap_lock -> list lock -> memory_lock, so
    /// the list lock is dropped to take each mm's mmap lock, as the pre-6.10
    /// `vfio_pci_zap_and_vma_lock()` did.
    pub(crate) fn zap_and_lock(&self) -> EmptyList<'_> {
        loop {
            let mut list = self.inner.lock();
            let mut found = None;
            while let Some(t) = list.first() {
                // SAFETY: the vma is alive while listed (close removes it
                // under this lock), so its mm is allocated.
                let m = unsafe { Mm::from_raw(t.mm) };
                if let Some(user) = m.mmget_not_zero() {
                    found = Some(user);
                    break;
                }
                let _ = list.remove(0);
            }
            let Some(user) = found else {
                return list;
            };
            drop(list);
            let lock = user.mmap_read_lock();
            let mut list = self.inner.lock();
            list.retain(|t| {
                if t.mm != user.as_raw() {
                    return true;
                }
                // SAFETY: still listed, hence alive; its mmap lock is held.
                let vma = unsafe { VmaRef::from_raw(t.vma) };
                vma.zap_vma_range(vma.start(), vma.end() - vma.start());
                false
            });
            drop(list);
            drop(lock);
        }
    }
}

/// vm_ops of legacy-mode BAR mappings.
pub(crate) static VM_OPS: VmOps = VmOps(bindings::vm_operations_struct {
    open: Some(open),
    close: Some(close),
    fault: Some(fault),
    // SAFETY: all-zero is a valid `vm_operations_struct` (no callbacks).
    ..unsafe { core::mem::zeroed() }
});

/// A `file_operations` table in a static.
struct Fops(bindings::file_operations);

// SAFETY: a table of function pointers, never written.
unsafe impl Sync for Fops {}

/// The legacy mapping file: holds a reference to the device file in
/// `private_data` so the vma still pins the device.
static FOPS: Fops = Fops(bindings::file_operations {
    release: Some(release),
    // SAFETY: all-zero is a valid `file_operations`.
    ..unsafe { core::mem::zeroed() }
});

/// # Safety
///
/// Only called by the kernel through the ops table it is registered in,
/// with the arguments that callback's C contract guarantees.
unsafe extern "C" fn release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    // SAFETY: `private_data` is the device file reference taken in
    // `attach()`, released exactly once here.
    drop(unsafe { ARef::from_raw(NonNull::new_unchecked((*file).private_data.cast::<File>())) });
    0
}

/// Legacy `->mmap` tail: move the vma off the device inode's address_space.
pub(crate) fn attach(vma: &NewVma) -> Result {
    let dev_file = ARef::into_raw(ARef::<File>::from(vma.file()));
    // SAFETY: FOPS is static and its release consumes `dev_file`.
    let anon =
        unsafe { mm::anon_file(c"[vfio-variant-legacy]", &FOPS.0, dev_file.as_ptr().cast()) };
    match anon {
        Ok(anon) => {
            vma.set_file(&anon);
            vma.set_ops(&VM_OPS);
            Ok(())
        }
        Err(e) => {
            // SAFETY: not handed to a file: drop our reference.
            drop(unsafe { ARef::from_raw(dev_file) });
            Err(e)
        }
    }
}

/// # Safety
///
/// Only called by the kernel through the ops table it is registered in,
/// with the arguments that callback's C contract guarantees.
unsafe extern "C" fn open(vma: *mut bindings::vm_area_struct) {
    // SAFETY: `->open` runs with the vma's mm write-locked.
    let vma = unsafe { VmaRef::from_raw(vma) };
    // The pre-fix "zap the new vma": under 7.3's fork order the child's table
    // is still empty here and copy_page_range() fills it right after.
    vma.zap_vma_range(vma.start(), vma.end() - vma.start());
}

/// # Safety
///
/// Only called by the kernel through the ops table it is registered in,
/// with the arguments that callback's C contract guarantees.
unsafe extern "C" fn close(vma: *mut bindings::vm_area_struct) {
    // SAFETY: `->close` runs with the vma valid and its mm locked.
    let v = unsafe { VmaRef::from_raw(vma) };
    let Some((dev, _)) = span_of(v) else {
        return;
    };
    dev.legacy().inner.lock().retain(|t| t.vma != vma);
}

/// # Safety
///
/// Only called by the kernel through the ops table it is registered in,
/// with the arguments that callback's C contract guarantees.
unsafe extern "C" fn fault(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
    // SAFETY: called by the mm with a valid `vm_fault` for a locked vma.
    let f = unsafe { Fault::from_raw(vmf) };
    let Some((dev, span)) = span_of(f.vma()) else {
        // Not reachable: only this driver's vmas have these vm_ops.
        return VmFault::SIGBUS.0;
    };
    let c = dev.counters();
    Counters::bump(&c.faults);
    let mut list = dev.legacy().inner.lock();
    let mem = dev.core().memory_read();
    if !mem.enabled() || dev.unplugged() {
        Counters::bump(&c.sigbus);
        return VmFault::SIGBUS.0;
    }
    let vma = f.vma().as_ptr();
    if !list.iter().any(|t| t.vma == vma) {
        let t = Tracked {
            vma,
            mm: f.vma().mm().as_raw(),
        };
        if list.push(t, GFP_KERNEL).is_err() {
            return VmFault::OOM.0;
        }
    }
    // One page, as before the fix.
    let ret = mem.insert(&f, span.pfn_at(f.address()), 0);
    if !ret.is_error() {
        Counters::bump(&c.ptes);
    }
    ret.0
}
