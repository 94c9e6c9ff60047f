// SPDX-License-Identifier: GPL-2.0

//! Values of the VFIO uAPI (`include/uapi/linux/vfio.h`) a variant driver
//! needs: the region layout of a device file and ioctl numbers; and the PCI
//! config space registers (`include/uapi/linux/pci_regs.h`) its users write
//! through the config region.

use kernel::bindings;

/// Bits of a device file offset that address bytes within one region
/// (`VFIO_PCI_OFFSET_SHIFT`): the region index is the offset shifted right
/// by this.
pub(crate) const OFFSET_SHIFT: u32 = bindings::VFIO_PCI_OFFSET_SHIFT;
/// Index of the PCI config space region (`VFIO_PCI_CONFIG_REGION_INDEX`).
pub(crate) const CONFIG_REGION_INDEX: u64 = bindings::VFIO_PCI_CONFIG_REGION_INDEX as u64;
/// Index of the expansion ROM region (`VFIO_PCI_ROM_REGION_INDEX`): regions
/// below it are the six BARs.
pub(crate) const ROM_REGION_INDEX: u64 = bindings::VFIO_PCI_ROM_REGION_INDEX as u64;

/// `ioctl` commands a variant driver may want to recognise.
pub(crate) mod ioctl {
    use kernel::{bindings, ioctl::_IO};

    /// `VFIO_DEVICE_RESET`.
    pub(crate) const DEVICE_RESET: u32 = _IO(bindings::VFIO_TYPE as u32, bindings::VFIO_BASE + 11);
    /// `VFIO_DEVICE_PCI_HOT_RESET`.
    pub(crate) const PCI_HOT_RESET: u32 = _IO(bindings::VFIO_TYPE as u32, bindings::VFIO_BASE + 13);
}

/// PCI config space registers and bits (the KUnit scenarios write them).
#[cfg(CONFIG_KUNIT)]
pub(crate) mod pci {
    use kernel::bindings;

    /// The Command register (`PCI_COMMAND`).
    pub(crate) const COMMAND: u64 = bindings::PCI_COMMAND as u64;
    /// Its Memory Space Enable bit (`PCI_COMMAND_MEMORY`).
    pub(crate) const COMMAND_MEMORY: u16 = bindings::PCI_COMMAND_MEMORY as u16;
    /// PMCSR's offset in the power management capability (`PCI_PM_CTRL`).
    pub(crate) const PM_CTRL: u64 = bindings::PCI_PM_CTRL as u64;
}
