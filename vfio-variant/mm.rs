// SPDX-License-Identifier: GPL-2.0

//! Thin safe wrappers over the mm C API this driver needs and the kernel
//! crate does not cover yet: `vm_fault`, `vm_operations_struct`, PFN
//! insertion, moving a vma to another file, and PTE presence lookups.

use kernel::{
    bindings,
    fs::File,
    mm::virt::{self, VmaRef},
    prelude::*,
    sync::aref::ARef,
};

/// A `vm_fault_t` result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VmFault(pub(crate) bindings::vm_fault_t);

impl VmFault {
    /// Deliver SIGBUS.
    pub(crate) const SIGBUS: Self = Self(bindings::vm_fault_reason_VM_FAULT_SIGBUS);
    /// Out of memory.
    pub(crate) const OOM: Self = Self(bindings::vm_fault_reason_VM_FAULT_OOM);
    /// This order cannot be used here; the mm retries with a smaller one.
    pub(crate) const FALLBACK: Self = Self(bindings::vm_fault_reason_VM_FAULT_FALLBACK);

    /// `VM_FAULT_ERROR`: any error bit, fallback included.
    pub(crate) fn is_error(self) -> bool {
        const ERROR: bindings::vm_fault_t = bindings::vm_fault_reason_VM_FAULT_OOM
            | bindings::vm_fault_reason_VM_FAULT_SIGBUS
            | bindings::vm_fault_reason_VM_FAULT_SIGSEGV
            | bindings::vm_fault_reason_VM_FAULT_HWPOISON
            | bindings::vm_fault_reason_VM_FAULT_HWPOISON_LARGE
            | bindings::vm_fault_reason_VM_FAULT_FALLBACK;
        self.0 & ERROR != 0
    }
}

/// A page fault being handled (`struct vm_fault`).
pub(crate) struct Fault<'a> {
    raw: *mut bindings::vm_fault,
    vma: &'a VmaRef,
}

impl<'a> Fault<'a> {
    /// # Safety
    ///
    /// `raw` is the `vm_fault` passed to a `->fault`/`->huge_fault` handler
    /// that is running for the lifetime `'a` (the vma is locked for read).
    pub(crate) unsafe fn from_raw(raw: *mut bindings::vm_fault) -> Self {
        // SAFETY: per the caller, `vma` is valid and read-locked during `'a`.
        let vma = unsafe { VmaRef::from_raw((*raw).__bindgen_anon_1.vma) };
        Self { raw, vma }
    }

    /// The C pointer.
    pub(crate) fn as_ptr(&self) -> *mut bindings::vm_fault {
        self.raw
    }

    /// The faulting vma.
    pub(crate) fn vma(&self) -> &'a VmaRef {
        self.vma
    }

    /// The faulting address (page aligned).
    pub(crate) fn address(&self) -> usize {
        // SAFETY: `raw` is valid for `'a`.
        unsafe { (*self.raw).__bindgen_anon_1.address }
    }

    /// Inserts a PTE for `pfn` at `addr` of the faulting vma with the vma's
    /// protection (`vmf_insert_pfn`). An entry already present is success.
    pub(crate) fn insert_pte(&self, addr: usize, pfn: usize) -> VmFault {
        if addr < self.vma.start() || addr >= self.vma.end() {
            return VmFault::SIGBUS;
        }
        // SAFETY: the vma is read-locked (fault context) and is VM_PFNMAP
        // (set by `vfio_pci_core_mmap()`); `addr` lies inside it.
        VmFault(unsafe { bindings::vmf_insert_pfn(self.vma.as_ptr(), addr, pfn) })
    }
}

/// `cond_resched()`: a voluntary scheduling point for long loops in
/// process context. As in C it does nothing under full preemption
/// (`CONFIG_PREEMPTION` without `CONFIG_PREEMPT_DYNAMIC`), where the loop
/// is preempted anyway.
pub(crate) fn cond_resched() {
    #[cfg(any(not(CONFIG_PREEMPTION), CONFIG_PREEMPT_DYNAMIC))]
    // SAFETY: called from process context with no spinlock held (callers
    // are fault handlers and module code that may sleep).
    unsafe {
        bindings::__cond_resched();
    }
}

/// Whether the current task has a signal pending: a long fill stops early,
/// since the task is about to handle it (or die of it); what the fill left
/// empty faults in later.
pub(crate) fn signal_pending() -> bool {
    kernel::current!().signal_pending()
}

/// The private data pointer of a vma (`vm_private_data`).
pub(crate) fn private_data(vma: &VmaRef) -> *mut c_void {
    // SAFETY: reading a field of a valid vma.
    unsafe { (*vma.as_ptr()).vm_private_data }
}

/// The page offset of a vma (`vm_pgoff`).
pub(crate) fn pgoff(vma: &VmaRef) -> u64 {
    // SAFETY: reading a field of a valid vma.
    unsafe { (*vma.as_ptr()).vm_pgoff as u64 }
}

/// Whether `vma`'s `vm_ops` is `ops`: how a driver tells its own vmas,
/// whose `vm_private_data` it set, from any other.
pub(crate) fn has_ops(vma: &VmaRef, ops: &'static VmOps) -> bool {
    // SAFETY: reading a field of a valid vma.
    core::ptr::eq(unsafe { (*vma.as_ptr()).vm_ops }, &ops.0)
}

/// A static `vm_operations_struct`.
#[repr(transparent)]
pub(crate) struct VmOps(pub(crate) bindings::vm_operations_struct);

// SAFETY: a table of function pointers, never written after construction.
unsafe impl Sync for VmOps {}

/// A vma handed to `->mmap`, before the mm links it anywhere.
pub(crate) struct NewVma(*mut bindings::vm_area_struct);

impl NewVma {
    /// # Safety
    ///
    /// `vma` is the vma passed to a `->mmap` handler that is running.
    pub(crate) unsafe fn from_raw(vma: *mut bindings::vm_area_struct) -> Self {
        Self(vma)
    }

    /// The C pointer.
    pub(crate) fn as_ptr(&self) -> *mut bindings::vm_area_struct {
        self.0
    }

    /// The page offset (`vm_pgoff`).
    pub(crate) fn pgoff(&self) -> u64 {
        // SAFETY: the vma is valid during `->mmap`.
        unsafe { (*self.0).vm_pgoff as u64 }
    }

    /// The file being mapped.
    pub(crate) fn file(&self) -> &File {
        // SAFETY: a file mapping always has `vm_file` during `->mmap`, and
        // the vma holds a reference to it.
        unsafe { File::from_raw_file((*self.0).vm_file) }
    }

    /// Replaces the vm_ops.
    pub(crate) fn set_ops(&self, ops: &'static VmOps) {
        // SAFETY: the vma is not yet visible to anyone else during `->mmap`.
        unsafe { (*self.0).vm_ops = &ops.0 };
    }

    /// Moves the vma to `file` (`vma_set_file`): the mm links the vma into
    /// `file`'s `f_mapping` once `->mmap` returns.
    pub(crate) fn set_file(&self, file: &File) {
        // SAFETY: the vma is valid and being set up; `vma_set_file` takes its
        // own reference to `file` and drops the old one.
        unsafe { bindings::vma_set_file(self.0, file.as_ptr()) };
    }
}

/// Creates an anonymous-inode file (`anon_inode_getfile`). All such files
/// share the single anon inode and therefore its address_space.
///
/// # Safety
///
/// `fops` must stay valid while the file lives and must cope with `private`.
pub(crate) unsafe fn anon_file(
    name: &CStr,
    fops: *const bindings::file_operations,
    private: *mut c_void,
) -> Result<ARef<File>> {
    // SAFETY: valid name and fops per the caller.
    let f = unsafe {
        bindings::anon_inode_getfile(name.as_char_ptr(), fops, private, bindings::O_RDWR as c_int)
    };
    let f = kernel::error::from_err_ptr(f)?;
    // SAFETY: `anon_inode_getfile` returned a new reference we now own.
    Ok(unsafe { ARef::from_raw(core::ptr::NonNull::from(File::from_raw_file(f))) })
}

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
    // SAFETY: `vma` is valid and its mmap lock is held (VmaRef invariant).
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

/// Pages with a present PFN entry in the calling process's vmas that map
/// the device whose core is `private` (the `vm_private_data` that
/// `vfio_pci_core_mmap()` sets), looked up without faulting anything in.
/// `None` for a caller without an mm (a kernel thread).
///
/// Userspace has no other way to see these entries: `/proc/PID/pagemap`
/// and `mincore()` report VM_PFNMAP vmas as holes (`walk_page_test()`).
pub(crate) fn present_pages(private: *mut c_void) -> Option<usize> {
    let task = kernel::current!();
    let mm = task.mm()?;
    let guard = mm.mmap_read_lock();
    let mut present = 0;
    let mut addr = 0;
    loop {
        // SAFETY: `guard` holds the mmap read lock of `mm`; any address is
        // a valid argument.
        let raw = unsafe { bindings::find_vma(mm.as_raw(), addr) };
        if raw.is_null() {
            break;
        }
        // SAFETY: a vma found under the mmap read lock stays valid while
        // `guard` is held, which outlives this borrow.
        let vma = unsafe { VmaRef::from_raw(raw) };
        if private_data(vma) == private && vma.flags() & virt::flags::PFNMAP != 0 {
            present += (vma.start()..vma.end())
                .step_by(crate::region::PAGE_SIZE)
                .filter(|&a| lookup_pfn(vma, a).is_some())
                .count();
        }
        addr = vma.end();
    }
    drop(guard);
    Some(present)
}
