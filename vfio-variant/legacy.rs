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
    bar::span_of,
    counters::Counters,
    device::{State, VariantDevice},
    vfio::{file_holding, BarMapping, Fault, VmFault, VmOps, VmaHandler},
};
use kernel::{fs::File, mm::virt::VmaRef, prelude::*, sync::aref::ARef};

/// The legacy fault path, as a [`VmaHandler`].
pub(crate) struct Legacy;

impl VmaHandler for Legacy {
    type Data = State;
    const HAS_OPEN: bool = true;
    const HAS_CLOSE: bool = true;

    /// The pre-fix "zap the new vma": under 7.3's fork order the child's
    /// table is still empty here and copy_page_range() fills it right after.
    fn open(_dev: &VariantDevice, vma: &VmaRef) {
        vma.zap_vma_range(vma.start(), vma.end() - vma.start());
    }

    /// The vma goes away: drop it from the list.
    fn close(dev: &VariantDevice, vma: &VmaRef) {
        dev.legacy().remove(vma);
    }

    /// One page per fault, and the vma joins the list.
    fn fault(dev: &VariantDevice, f: &Fault<'_>, _order: u32) -> VmFault {
        let span = span_of(dev, f.vma());
        let c = dev.counters();
        Counters::bump(&c.faults);
        let mut list = dev.legacy().lock();
        let mem = dev.core().memory_read();
        if !mem.enabled() || dev.unplugged() {
            Counters::bump(&c.sigbus);
            return VmFault::SIGBUS;
        }
        if list.track(f.vma()).is_err() {
            return VmFault::OOM;
        }
        // One page, as before the fix.
        let ret = mem.insert(f, span.pfn_at(f.address()), 0);
        if !ret.is_error() {
            Counters::bump(&c.ptes);
        }
        ret
    }
}

/// vm_ops of legacy-mode BAR mappings.
pub(crate) static VM_OPS: VmOps<Legacy> = VmOps::new();

/// Legacy `->mmap` tail: move the vma off the device inode's address_space
/// to an anon-inode file that holds the device file (so the mapping still
/// pins the device).
pub(crate) fn attach(vma: &BarMapping<'_, State>) -> Result {
    let anon = file_holding(c"[vfio-variant-legacy]", ARef::<File>::from(vma.file()))?;
    vma.set_file(&anon);
    vma.set_ops(&VM_OPS);
    Ok(())
}
