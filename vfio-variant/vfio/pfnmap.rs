// SPDX-License-Identifier: GPL-2.0

//! Looking at vmas and their PFN entries without faulting: [`Vmas`] (the
//! vmas of an mm under its mmap lock), [`lookup_pfn`] for one address,
//! [`CoreDevice::present_pages`] for every mapping of a device in the
//! calling process.

use super::CoreDevice;
use kernel::{
    bindings,
    mm::{virt, virt::VmaRef, MmWithUser, MmapReadGuard},
    page::PAGE_SIZE,
};

/// What maps an address (`follow_pfnmap_start`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Present {
    /// Page frame mapped at the address.
    pub(crate) pfn: usize,
    /// Bytes covered by the entry: `PAGE_SIZE` for a PTE, `PMD_SIZE` for a PMD.
    pub(crate) size: usize,
}

/// Looks up the PFN entry mapping `addr` in a VM_PFNMAP vma, without
/// faulting. The caller holds the mmap read lock (shown by `vma`).
pub(crate) fn lookup_pfn(vma: &VmaRef, addr: usize) -> Option<Present> {
    let mut args = bindings::follow_pfnmap_args {
        vma: vma.as_ptr(),
        address: addr,
        ..Default::default()
    };
    // SAFETY: `vma` is valid and its mmap lock is held (`VmaRef` invariant).
    if unsafe { bindings::follow_pfnmap_start(&mut args) } != 0 {
        return None;
    }
    let found = Present {
        pfn: args.pfn,
        size: (!args.addr_mask).wrapping_add(1),
    };
    // SAFETY: paired with the successful `follow_pfnmap_start` above.
    unsafe { bindings::follow_pfnmap_end(&mut args) };
    Some(found)
}

/// Identity of a vma (its address), to find it again later under the
/// mmap lock. Never dereferenced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VmaId(usize);

impl VmaId {
    /// The identity of `vma`.
    pub(crate) fn of(vma: &VmaRef) -> Self {
        Self(vma.as_ptr() as usize)
    }
}

/// The vmas of an mm, with its mmap lock held for read.
pub(crate) struct Vmas<'a> {
    mm: &'a MmWithUser,
    _guard: MmapReadGuard<'a>,
}

impl<'a> Vmas<'a> {
    /// Takes `mm`'s mmap lock for read until dropped.
    pub(crate) fn lock(mm: &'a MmWithUser) -> Self {
        Self {
            mm,
            _guard: mm.mmap_read_lock(),
        }
    }

    /// Calls `f` on each vma, in address order.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&VmaRef)) {
        let mut addr = 0;
        loop {
            // SAFETY: the mmap read lock of `mm` is held (`_guard`); any
            // address is a valid argument.
            let raw = unsafe { bindings::find_vma(self.mm.as_raw(), addr) };
            if raw.is_null() {
                break;
            }
            // SAFETY: a vma found under the mmap read lock stays valid while
            // the lock is held, which outlives this borrow.
            let vma = unsafe { VmaRef::from_raw(raw) };
            f(vma);
            addr = vma.end();
        }
    }

    /// The vma whose identity is `id`, if it is one of this mm's.
    pub(crate) fn find(&self, id: VmaId) -> Option<&VmaRef> {
        let mut found = None;
        self.for_each(|vma| {
            if VmaId::of(vma) == id {
                found = Some(vma.as_ptr());
            }
        });
        // SAFETY: found among the vmas of the mm whose lock we hold, for as
        // long as `self` borrows it.
        found.map(|raw| unsafe { VmaRef::from_raw(raw) })
    }
}

impl CoreDevice {
    /// Whether `vma` was set up by `vfio_pci_core_mmap()` for this device
    /// (its `vm_private_data`), whoever handles its faults. Compares
    /// pointers only.
    pub(crate) fn is_mapped_by(&self, vma: &VmaRef) -> bool {
        // SAFETY: reading a field of a valid vma.
        let private = unsafe { (*vma.as_ptr()).vm_private_data };
        core::ptr::eq(private, self.as_ptr().cast())
    }

    /// Pages with a present PFN entry in the calling process's vmas that map
    /// this device, looked up without faulting anything in. `None` for a
    /// caller without an mm (a kernel thread).
    ///
    /// Userspace has no other way to see these entries: `/proc/PID/pagemap`
    /// and `mincore()` report VM_PFNMAP vmas as holes (`walk_page_test()`).
    pub(crate) fn present_pages(&self) -> Option<usize> {
        let task = kernel::current!();
        let mm = task.mm()?;
        let vmas = Vmas::lock(mm);
        let mut present = 0;
        vmas.for_each(|vma| {
            if self.is_mapped_by(vma) && vma.flags() & virt::flags::PFNMAP != 0 {
                present += (vma.start()..vma.end())
                    .step_by(PAGE_SIZE)
                    .filter(|&a| lookup_pfn(vma, a).is_some())
                    .count();
            }
        });
        drop(vmas);
        Some(present)
    }
}
