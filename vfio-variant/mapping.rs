// SPDX-License-Identifier: GPL-2.0

//! Mode dispatch, in one place: which fault path a new BAR mapping gets,
//! and which device an existing mapping belongs to, whichever path it has.

use crate::{
    device::{Mode, State, VariantDevice},
    fixed, legacy, region,
    vfio::{self, OpenDevice},
};
use kernel::{
    mm::virt::{VmaNew, VmaRef},
    prelude::*,
};

/// `vfio_device_ops.mmap`: the core validates and sets up the vma exactly
/// as for the stock driver (same errors), then this driver takes over the
/// fault path of BAR mappings, with the design of the device's mode.
pub(crate) fn mmap(dev: &OpenDevice<'_, State>, vma: &VmaNew) -> Result {
    let bar = dev.core_mmap(vma)?;
    let (index, _) = region::split_pgoff(bar.pgoff());
    if index >= vfio::ROM_REGION_INDEX {
        // A device-specific region with its own mmap: not ours.
        return Ok(());
    }
    match dev.mode() {
        Mode::Fixed => {
            bar.set_ops(&fixed::VM_OPS);
            Ok(())
        }
        Mode::Legacy => legacy::attach(&bar),
    }
}

/// The device of a BAR mapping of this driver's, either mode: `None` for
/// any other vma.
///
/// A vma is this driver's if its `vm_ops` is one of the driver's tables,
/// which only [`mmap`] installs, right after `vfio_pci_core_mmap()` set
/// `vm_private_data` to the core device (as nvgrace-gpu's `vma_to_nvdev()`
/// checks). The borrow of the vma bounds the result.
#[cfg_attr(not(CONFIG_KUNIT), expect(dead_code))]
pub(crate) fn device_of(vma: &VmaRef) -> Option<&VariantDevice> {
    fixed::VM_OPS
        .device_of(vma)
        .or_else(|| legacy::VM_OPS.device_of(vma))
}
