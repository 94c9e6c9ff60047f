// SPDX-License-Identifier: GPL-2.0

//! What VFIO tells userspace about a device's interrupts: the count and
//! flags `VFIO_DEVICE_GET_IRQ_INFO` reports for INTx, MSI and MSI-X, one
//! line each (`msi: count 16 flags 0x9`), for mock-pci's guest check of
//! the `msi_vectors`, `msix_vectors` and `intx` parameters.

use vfio_revoke_selftests::error::Result;
use vfio_revoke_selftests::uapi;
use vfio_revoke_selftests::vfio::{Device, Path};

/// Prints the interrupt counts of `bdf`, bound to a vfio-pci driver,
/// opened through the group path.
pub fn run(bdf: &str) -> Result<()> {
    let dev = Device::open(bdf, Path::Group)?;
    for (name, index) in [
        ("intx", uapi::VFIO_PCI_INTX_IRQ_INDEX),
        ("msi", uapi::VFIO_PCI_MSI_IRQ_INDEX),
        ("msix", uapi::VFIO_PCI_MSIX_IRQ_INDEX),
    ] {
        let i = dev.irq_info(index)?;
        println!("{name}: count {} flags {:#x}", i.count, i.flags);
    }
    Ok(())
}
