// SPDX-License-Identifier: GPL-2.0

//! A test thread's user memory: mappings made with `kunit_vm_mmap()` (as
//! guards that unmap when dropped), accesses, vma and PTE lookups, and the
//! page-table copy `dup_mmap()` makes at fork, done by hand.

use super::{
    super::{pfnmap::lookup_pfn, CoreDevice, VmFault, Vmas},
    current_test, step,
};
use kernel::{
    bindings,
    fs::File,
    mm::virt::VmaRef,
    page::PAGE_SIZE,
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

// uAPI values (asm-generic/mman-common.h), not in the bindings.
const PROT_RW: c_ulong = 0x1 | 0x2;
const MAP_SHARED: c_ulong = 0x01;
const MAP_PRIVATE: c_ulong = 0x02;
const MAP_ANONYMOUS: c_ulong = 0x20;

fn check_addr(addr: c_ulong) -> Result<usize> {
    if addr >= (-4095isize) as c_ulong {
        return Err(Error::from_errno(addr as isize as i32));
    }
    Ok(addr)
}

/// A mapping in the test's mm, unmapped when dropped. Scenarios hold their
/// mappings in these, created after the device was opened, so every way
/// out of a scenario (early returns through `?` included) unmaps them
/// before the device closes: a device is never closed with a vma of it
/// still mapped.
pub(crate) struct Mapping {
    addr: usize,
    len: usize,
}

impl Mapping {
    /// Start address.
    pub(crate) fn addr(&self) -> usize {
        self.addr
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping our own test mapping (the mm is the test
        // thread's, whose lifetime covers the scenario).
        unsafe { bindings::vm_munmap(self.addr, self.len) };
    }
}

/// Maps `len` bytes of `file` at `offset` shared read/write into the test's
/// mm (`kunit_vm_mmap`), until the returned guard drops.
pub(crate) fn map_file(file: &File, hint: usize, len: usize, offset: u64) -> Result<Mapping> {
    step()?;
    // SAFETY: the test pointer is the running test; the file is valid.
    let addr = check_addr(unsafe {
        bindings::kunit_vm_mmap(
            current_test(),
            file.as_ptr(),
            hint,
            len,
            PROT_RW,
            MAP_SHARED,
            offset as usize,
        )
    })?;
    Ok(Mapping { addr, len })
}

/// Maps `len` bytes of anonymous private memory into the test's mm, until
/// the returned guard drops.
pub(crate) fn map_anon(len: usize) -> Result<Mapping> {
    step()?;
    anon(len)
}

/// [`map_anon`] without the fault injection step.
pub(super) fn anon(len: usize) -> Result<Mapping> {
    // SAFETY: as `map_file`, without a file.
    let addr = check_addr(unsafe {
        bindings::kunit_vm_mmap(
            current_test(),
            core::ptr::null_mut(),
            0,
            len,
            PROT_RW,
            MAP_PRIVATE | MAP_ANONYMOUS,
            0,
        )
    })?;
    Ok(Mapping { addr, len })
}

/// Reads 4 bytes at each page of `[addr, addr + len)`; fails with EFAULT
/// when a fault is refused (SIGBUS in userspace).
pub(crate) fn touch(addr: usize, len: usize) -> Result {
    for a in (addr..addr + len).step_by(PAGE_SIZE) {
        let mut b = [0u8; 4];
        UserSlice::new(UserPtr::from_addr(a), 4)
            .reader()
            .read_slice(&mut b)?;
    }
    Ok(())
}

/// Calls `f` on the test mm's vma at `addr`, with the mmap lock held;
/// `None` if there is none.
pub(crate) fn with_vma<R>(addr: usize, f: impl FnOnce(&VmaRef) -> R) -> Option<R> {
    let task = kernel::current!();
    let mm = task.mm()?;
    let lock = mm.mmap_read_lock();
    lock.vma_lookup(addr).map(f)
}

/// Calls `f` on the test mm's anonymous vma at `addr` while its
/// `vm_private_data` holds `core`: a vma that is not the driver's, carrying
/// the very pointer one of the driver's would. The field is NULL again when
/// this returns. `None` if `addr` is not in an anonymous vma.
pub(crate) fn with_anon_vma_posing_as<R>(
    addr: usize,
    core: &CoreDevice,
    f: impl FnOnce(&VmaRef) -> R,
) -> Option<R> {
    with_vma(addr, |vma| {
        let raw = vma.as_ptr();
        // SAFETY: reading fields of a vma valid under the mmap lock.
        let anon = unsafe { (*raw).vm_ops.is_null() && (*raw).vm_private_data.is_null() };
        if !anon {
            return None;
        }
        // SAFETY: the test's mm belongs to this KUnit thread alone
        // (`kunit_attach_mm()`), so no one else looks at its vmas; nothing
        // reads an anonymous vma's `vm_private_data`; and the field is put
        // back below, before the mmap lock is released.
        unsafe { (*raw).vm_private_data = core.as_ptr().cast() };
        let r = f(vma);
        // SAFETY: as above.
        unsafe { (*raw).vm_private_data = core::ptr::null_mut() };
        Some(r)
    })
    .flatten()
}

/// How many vmas of the test's mm map the device whose core device is
/// `core` (`vm_private_data`, as `vfio_pci_core_mmap()` sets it), in either
/// mode. Compares pointers only.
pub(crate) fn vmas_of(core: &CoreDevice) -> usize {
    let task = kernel::current!();
    let Some(mm) = task.mm() else {
        return 0;
    };
    let vmas = Vmas::lock(mm);
    let mut n = 0;
    vmas.for_each(|vma| {
        if core.is_mapped_by(vma) {
            n += 1;
        }
    });
    drop(vmas);
    n
}

/// Page table state of `[addr, addr + len)` without faulting:
/// (pages mapped, PMD entries seen).
pub(crate) fn present(addr: usize, len: usize) -> (usize, usize) {
    let task = kernel::current!();
    let Some(mm) = task.mm() else {
        return (0, 0);
    };
    let lock = mm.mmap_read_lock();
    let Some(vma) = lock.vma_lookup(addr) else {
        return (0, 0);
    };
    let (mut pages, mut pmds) = (0, 0);
    let mut a = addr;
    while a < addr + len {
        match lookup_pfn(vma, a) {
            Some(p) if p.size > PAGE_SIZE => {
                pmds += 1;
                pages += p.size / PAGE_SIZE;
                a = (a & !(p.size - 1)) + p.size;
            }
            Some(_) => {
                pages += 1;
                a += PAGE_SIZE;
            }
            None => a += PAGE_SIZE,
        }
    }
    (pages, pmds)
}

/// What `dup_mmap()` does for a child vma, in 7.3's order, with `dst`
/// standing in for the child's vma: `vm_ops->open(dst)`, then copy every
/// PFN entry of `src` into `dst` (`copy_page_range`). The driver never sees
/// a fault for `dst`.
pub(crate) fn fork_copy(src: usize, dst: usize, len: usize) -> Result<usize> {
    let task = kernel::current!();
    let mm = task.mm().ok_or(EINVAL)?;
    let lock = mm.mmap_read_lock();
    let s = lock.vma_lookup(src).ok_or(EINVAL)?;
    let d = lock.vma_lookup(dst).ok_or(EINVAL)?;
    // SAFETY: `d` is a valid vma whose mm is locked; `vm_ops` is set by the
    // driver's mmap and `open` is what dup_mmap() calls on the new vma.
    unsafe {
        let ops = (*d.as_ptr()).vm_ops;
        if let Some(open) = (*ops).open {
            open(d.as_ptr());
        }
    }
    let mut copied = 0;
    for off in (0..len).step_by(PAGE_SIZE) {
        if let Some(p) = lookup_pfn(s, src + off) {
            let pfn = p.pfn;
            // SAFETY: `d` is VM_PFNMAP (set up by the driver's mmap), its
            // mm is read-locked and `dst + off` lies inside it.
            let ret = unsafe { bindings::vmf_insert_pfn(d.as_ptr(), dst + off, pfn) };
            if !VmFault(ret).is_error() {
                copied += 1;
            }
        }
    }
    Ok(copied)
}
