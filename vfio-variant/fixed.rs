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
//! chunk, that whole chunk (see `Span::fill_ranges`: the pages are computed,
//! so a fault costs what it inserts, not the size of the vma). Faults hold
//! `memory_lock` for read, in batches for a long fill, and get SIGBUS while
//! memory is disabled or once the device is being removed.

use crate::{
    counters::Counters,
    device::VariantDevice,
    legacy,
    mm::{cond_resched, signal_pending, Fault, VmFault, VmOps},
    region::{self, Span},
    vfio::MemoryRead,
};
use core::ops::Range;
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

/// The device and span of a BAR mapping of this driver's, either mode:
/// `None` for any other vma.
///
/// A vma is this driver's if its `vm_ops` is one of the driver's tables,
/// which only its `mmap` installs, right after `vfio_pci_core_mmap()` set
/// `vm_private_data` to the core device of a `VariantDevice` (as
/// nvgrace-gpu's `vma_to_nvdev()` checks). The device outlives the vma:
/// the vma pins the device file (legacy mode: through its own file), and
/// the device is not freed while a file of it is open. The borrow of the
/// vma bounds the result.
pub(crate) fn span_of(vma: &VmaRef) -> Option<(&VariantDevice, Span)> {
    if !crate::mm::has_ops(vma, &VM_OPS) && !crate::mm::has_ops(vma, &legacy::VM_OPS) {
        return None;
    }
    // SAFETY: the vma is ours (checked above), so `vm_private_data` is the
    // core device of a live `VariantDevice` that outlives the vma borrow.
    let dev = unsafe { VariantDevice::from_core(crate::mm::private_data(vma).cast()) };
    let (index, pgoff) = region::split_pgoff(crate::mm::pgoff(vma));
    let span = Span {
        start: vma.start(),
        end: vma.end(),
        pfn: dev.core().bar_pfn(index as usize) + pgoff as usize,
        huge: pmds_allowed(),
    };
    Some((dev, span))
}

/// Pages inserted between two chances for writers of `memory_lock` and
/// for the scheduler.
const FILL_BATCH: usize = 512;

/// Inserts PTEs over `ranges`, skipping the faulting page, which the caller
/// inserted with `mem` held; the fill releases `mem` when it is done.
///
/// The fill is done in batches. Between batches it drops `memory_lock`,
/// offers to reschedule and takes the lock again, so that a 1 GiB vma does
/// not hold off COMMAND, reset and power-state writers (or make
/// `VFIO_DEVICE_PCI_HOT_RESET`'s trylock fail) for the whole fill. That is
/// safe: the fault keeps the vma (its lock or mmap_lock) throughout, every
/// PTE is inserted with `memory_lock` held and memory enabled, and if a
/// revocation ran while the lock was dropped, its zap removed what was
/// inserted so far and the fill stops; pages left empty fault later. The
/// fill also stops at the first insert that fails (out of memory) and when
/// the faulting task has a signal pending. Only the faulting page
/// decides the fault's result.
fn fill<'a>(
    dev: &'a VariantDevice,
    f: &Fault<'_>,
    span: &Span,
    ranges: &[Range<usize>],
    mut mem: MemoryRead<'a>,
) {
    let mut batch = 0;
    for addr in region::pages(ranges) {
        if addr == f.address() {
            continue;
        }
        if batch == FILL_BATCH {
            batch = 0;
            drop(mem);
            if signal_pending() {
                return;
            }
            cond_resched();
            mem = dev.core().memory_read();
            if !mem.enabled() || dev.unplugged() {
                return;
            }
        }
        batch += 1;
        if f.insert_pte(addr, span.pfn_at(addr)).is_error() {
            break;
        }
        Counters::bump(&dev.counters().ptes);
    }
}

fn handle(f: &Fault<'_>, order: u32) -> VmFault {
    let Some((dev, span)) = span_of(f.vma()) else {
        // Not reachable: only this driver's vmas have these vm_ops.
        return VmFault::SIGBUS;
    };
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
    // The core's insert checks its virtual COMMAND.MEM only; `enabled()`
    // also asks the device.
    if !mem.enabled() || dev.unplugged() {
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
    Counters::bump(if order == 0 { &c.ptes } else { &c.pmds });
    fill(dev, f, &span, &span.fill_ranges(f.address(), order), mem);
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
