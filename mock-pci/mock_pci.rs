// SPDX-License-Identifier: GPL-2.0

//! mock-pci: real PCI devices on a software PCI bus, with memory-backed BARs.
//!
//! The module creates a PCI host bridge in a PCI domain of its own and
//! populates it with emulated functions whose BARs are carved out of a
//! boot-time `memmap=` reservation, so that the PCI core, `lspci`, sysfs and
//! VFIO see genuine `struct pci_dev`s without any hardware.

use kernel::prelude::*;

mod params;

module! {
    type: MockPci,
    name: "mock_pci",
    authors: ["vfio-revoke developers"],
    description: "Software PCI bus with memory-backed BARs for VFIO testing",
    license: "GPL",
    params: {
        bar0_size: u64 {
            default: 2 * 1024 * 1024,
            description: "Size of BAR0 (64-bit prefetchable) in bytes: a power of two, at least 4096",
        },
    },
}

struct MockPci;

impl kernel::Module for MockPci {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let bar0 = params::bar_size("bar0_size", module_parameters::bar0_size.value())?;
        pr_info!("loaded: BAR0 {} KiB\n", bar0 / 1024);
        Ok(MockPci)
    }
}

impl Drop for MockPci {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
