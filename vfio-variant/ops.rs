// SPDX-License-Identifier: GPL-2.0

//! The revocation hooks: thin wrappers around the vfio-pci core's `write`,
//! `ioctl` and `device_feature` that notice when the core revoked device
//! memory, so that the revocation is counted and reaches legacy mappings
//! too (the core's own zap reaches only the device inode's mappings).
//!
//! A wrapper reads whether memory is enabled before and after the core
//! call, each time under `memory_lock` held for read
//! ([`CoreDevice::memory_enabled`]), as the core itself reads that state:
//! a snapshot never sees a transition the core is making under the lock
//! held for write. The lock is not held across the core call, which takes
//! it for write, nor while user memory is read (a fault on a user buffer
//! that maps this device's BAR takes it for read). Two snapshots do not
//! make the pair atomic with the core call: a revocation made by a
//! concurrent caller between them can be seen by both callers (counted
//! twice), or undone by one before the other looks (not seen).
//!
//! [`CoreDevice::memory_enabled`]: crate::vfio::CoreDevice::memory_enabled

use crate::{
    device::{State, VariantDevice},
    vfio::{self, ioctl::DEVICE_RESET, ioctl::PCI_HOT_RESET, OpenDevice},
};
use kernel::{prelude::*, uaccess::UserPtr};

/// `vfio_device_ops.write`.
pub(crate) fn write(
    dev: &OpenDevice<'_, State>,
    buf: UserPtr,
    count: usize,
    pos: &mut i64,
) -> Result<usize> {
    let pos_in = *pos as u64;
    let config = (pos_in >> vfio::OFFSET_SHIFT) == vfio::CONFIG_REGION_INDEX;
    let off = pos_in & ((1 << vfio::OFFSET_SHIFT) - 1);
    let before = config && dev.core().memory_enabled();
    // Reads the user buffer: with `memory_lock` not held (see the module doc).
    let flr = config && dev.core().write_requests_flr(off, buf, count);
    let ret = dev.core_write(buf, count, pos);
    // COMMAND.MEM clear and D3hot leave memory off; an FLR through Device
    // Control zaps, resets and leaves it on.
    if (before && !dev.core().memory_enabled()) || (flr && matches!(ret, Ok(n) if n > 0)) {
        dev.core_revoked();
    }
    ret
}

/// `vfio_device_ops.ioctl`.
pub(crate) fn ioctl(dev: &OpenDevice<'_, State>, cmd: u32, arg: usize) -> Result<isize> {
    let before = dev.core().memory_enabled();
    let ret = dev.core_ioctl(cmd, arg);
    if ret == Ok(0) && cmd == PCI_HOT_RESET {
        // The core zapped every device of the dev_set, this one included.
        dev.for_each_sibling(VariantDevice::core_revoked);
    } else if (ret == Ok(0) && cmd == DEVICE_RESET) || (before && !dev.core().memory_enabled()) {
        dev.core_revoked();
    }
    ret
}

/// `vfio_device_ops.device_feature`.
pub(crate) fn device_feature(
    dev: &OpenDevice<'_, State>,
    flags: u32,
    arg: UserPtr,
    argsz: usize,
) -> Result {
    let before = dev.core().memory_enabled();
    let ret = dev.core_device_feature(flags, arg, argsz);
    // Low-power entry zaps and engages runtime PM: memory is off.
    if before && !dev.core().memory_enabled() {
        dev.core_revoked();
    }
    ret
}
