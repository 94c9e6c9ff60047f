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
    bar::span_of,
    counters::Counters,
    device::{State, VariantDevice},
    region::{self, Span},
    vfio::{cond_resched, signal_pending, Fault, MemoryRead, VmFault, VmOps, VmaHandler},
};
use core::ops::Range;

/// The fixed fault path, as a [`VmaHandler`].
pub(crate) struct Fixed;

impl VmaHandler for Fixed {
    type Data = State;
    const HAS_HUGE_FAULT: bool = true;

    /// `vm_ops->fault` (order 0) and `->huge_fault` (PMD order; PUD, not
    /// supported here, falls back).
    fn fault(dev: &VariantDevice, f: &Fault<'_>, order: u32) -> VmFault {
        handle(dev, f, order)
    }
}

/// vm_ops of fixed-mode BAR mappings.
pub(crate) static VM_OPS: VmOps<Fixed> = VmOps::new();

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

fn handle(dev: &VariantDevice, f: &Fault<'_>, order: u32) -> VmFault {
    let span = span_of(dev, f.vma());
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
