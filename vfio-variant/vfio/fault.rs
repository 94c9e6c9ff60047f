// SPDX-License-Identifier: GPL-2.0

//! Page faults: [`Fault`] (`struct vm_fault`), [`VmFault`] (`vm_fault_t`),
//! and the scheduling helpers a long fault handler needs.

use kernel::{bindings, mm::virt::VmaRef};

/// Order of a PMD-sized entry (512 pages on x86-64): the order of the
/// `->huge_fault` calls a BAR mapping can serve.
pub(crate) const PMD_ORDER: u32 = bindings::PMD_ORDER;

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
///
/// # Invariants
///
/// `raw` is the `vm_fault` of a `->fault`/`->huge_fault` call that runs for
/// `'a`, and `vma` is its vma, locked for read (per-vma lock or mmap_lock)
/// during `'a`.
pub(crate) struct Fault<'a> {
    raw: *mut bindings::vm_fault,
    vma: &'a VmaRef,
}

impl<'a> Fault<'a> {
    /// # Safety
    ///
    /// `raw` is the `vm_fault` passed to a `->fault`/`->huge_fault` handler
    /// that is running for the lifetime `'a`.
    pub(super) unsafe fn from_raw(raw: *mut bindings::vm_fault) -> Self {
        // SAFETY: per the caller, `vma` is valid and read-locked during `'a`.
        let vma = unsafe { VmaRef::from_raw((*raw).__bindgen_anon_1.vma) };
        // INVARIANT: per the caller.
        Self { raw, vma }
    }

    /// The C pointer.
    pub(super) fn as_ptr(&self) -> *mut bindings::vm_fault {
        self.raw
    }

    /// The faulting vma.
    pub(crate) fn vma(&self) -> &'a VmaRef {
        self.vma
    }

    /// The faulting address (page aligned).
    pub(crate) fn address(&self) -> usize {
        // SAFETY: `raw` is valid for `'a` (type invariant).
        unsafe { (*self.raw).__bindgen_anon_1.address }
    }

    /// Inserts a PTE for `pfn` at `addr` of the faulting vma with the vma's
    /// protection (`vmf_insert_pfn`). An entry already present is success;
    /// an address outside the vma is SIGBUS.
    pub(crate) fn insert_pte(&self, addr: usize, pfn: usize) -> VmFault {
        if addr < self.vma.start() || addr >= self.vma.end() {
            return VmFault::SIGBUS;
        }
        // SAFETY: the vma is read-locked (type invariant) and is VM_PFNMAP
        // (the handlers this type reaches are only installed on mappings
        // set up by `vfio_pci_core_mmap()`); `addr` lies inside it.
        VmFault(unsafe { bindings::vmf_insert_pfn(self.vma.as_ptr(), addr, pfn) })
    }
}

/// `cond_resched()`: a voluntary scheduling point for long loops in
/// process context. As in C it does nothing under full preemption
/// (`CONFIG_PREEMPTION` without `CONFIG_PREEMPT_DYNAMIC`), where the loop
/// is preempted anyway.
pub(crate) fn cond_resched() {
    #[cfg(any(not(CONFIG_PREEMPTION), CONFIG_PREEMPT_DYNAMIC))]
    // SAFETY: always sound in process context; in atomic context it is a
    // might_sleep() bug report, not undefined behaviour.
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
