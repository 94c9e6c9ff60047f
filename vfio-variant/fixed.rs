// SPDX-License-Identifier: GPL-2.0

//! The fixed (2024) fault path.
//!
//! The vma stays linked into the device inode's address_space (the core set
//! `f_mapping` to it when the file was opened), so every revocation reaches
//! it with `unmap_mapping_range()`, in every process, forked children
//! included. There is no `open`/`close` and no per-driver vma list.
//!
//! A fault populates the whole vma, not just the faulting page: a PMD fault
//! inserts its PMD plus every page no PMD can cover; a page fault inserts
//! every page no PMD can cover plus, if it fell back from a PMD-capable
//! chunk, that whole chunk. Faults hold `memory_lock` for read and get
//! SIGBUS while memory is disabled or once the device is being removed.

use crate::{
    counters::Counters,
    device::VariantDevice,
    mm::{Fault, VmFault, VmOps},
    region::{self, Span},
};
use kernel::{bindings, mm::virt::VmaRef, prelude::*};

/// vm_ops of fixed-mode BAR mappings.
pub(crate) static VM_OPS: VmOps = VmOps(bindings::vm_operations_struct {
    fault: Some(fault),
    huge_fault: Some(huge_fault),
    // SAFETY: all-zero is a valid `vm_operations_struct` (no callbacks).
    ..unsafe { core::mem::zeroed() }
});

/// Whether faults may insert PMD entries: the architecture maps PFNs with
/// PMDs and the module was not loaded with `pte_only=1` (the workaround
/// for kernels whose fork can leak a revoked PMD, see README.md).
pub(crate) fn pmds_allowed() -> bool {
    cfg!(CONFIG_ARCH_SUPPORTS_PMD_PFNMAP) && !crate::module_parameters::pte_only.value()
}

/// The device and span of a vma set up by `vfio_pci_core_mmap()`.
pub(crate) fn span_of<'a>(vma: &VmaRef) -> (&'a VariantDevice, Span) {
    // SAFETY: `vfio_pci_core_mmap()` stored the core device in
    // `vm_private_data`; the vma pins the device file, so the device
    // outlives the vma.
    let dev = unsafe { VariantDevice::from_core(crate::mm::private_data(vma).cast()) };
    let (index, pgoff) = region::split_pgoff(crate::mm::pgoff(vma));
    let span = Span {
        start: vma.start(),
        end: vma.end(),
        pfn: dev.core().bar_pfn(index as usize) + pgoff as usize,
        huge: pmds_allowed(),
    };
    (dev, span)
}

/// Inserts PTEs at `pages` (errors ignored: another thread may be filling
/// the same vma, and the faulting page is what decides the result).
fn fill(dev: &VariantDevice, f: &Fault<'_>, span: &Span, pages: impl Iterator<Item = usize>) {
    for addr in pages {
        if addr == f.address() {
            continue;
        }
        if !f.insert_pte(addr, span.pfn_at(addr)).is_error() {
            Counters::bump(&dev.counters().ptes);
        }
    }
}

fn handle(f: &Fault<'_>, order: u32) -> VmFault {
    let (dev, span) = span_of(f.vma());
    let c = dev.counters();
    if order == region::PMD_ORDER {
        if span.pmd_chunk(f.address()).is_none() {
            return VmFault::FALLBACK;
        }
    } else if order != 0 {
        return VmFault::FALLBACK;
    }
    Counters::bump(&c.faults);
    let mem = dev.core().memory_read();
    if dev.unplugged() {
        Counters::bump(&c.sigbus);
        return VmFault::SIGBUS;
    }
    let base = if order == 0 {
        f.address()
    } else {
        f.address() & !(region::PMD_SIZE - 1)
    };
    let ret = mem.insert(f, span.pfn_at(base), order);
    if ret == VmFault::SIGBUS {
        Counters::bump(&c.sigbus);
        return ret;
    }
    if ret.is_error() {
        return ret;
    }
    if order == 0 {
        Counters::bump(&c.ptes);
        fill(dev, f, &span, span.pte_pages(f.address()));
    } else {
        Counters::bump(&c.pmds);
        fill(dev, f, &span, span.pte_only_pages());
    }
    ret
}

/// `vm_ops->fault`: order-0 fault.
///
/// # Safety
///
/// Only called by the kernel through the ops table it is registered in,
/// with the arguments that callback's C contract guarantees.
unsafe extern "C" fn fault(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
    // SAFETY: called by the mm with a valid `vm_fault` for a locked vma.
    let f = unsafe { Fault::from_raw(vmf) };
    handle(&f, 0).0
}

/// `vm_ops->huge_fault`: PMD (and, unsupported here, PUD) order.
///
/// # Safety
///
/// Only called by the kernel through the ops table it is registered in,
/// with the arguments that callback's C contract guarantees.
unsafe extern "C" fn huge_fault(
    vmf: *mut bindings::vm_fault,
    order: c_uint,
) -> bindings::vm_fault_t {
    // SAFETY: called by the mm with a valid `vm_fault` for a locked vma.
    let f = unsafe { Fault::from_raw(vmf) };
    handle(&f, order).0
}
