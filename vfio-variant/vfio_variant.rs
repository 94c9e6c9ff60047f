// SPDX-License-Identifier: GPL-2.0

//! vfio-variant: a vfio-pci variant driver for mock-pci devices that keeps
//! BAR mappings revocable across fork.
//!
//! Every mapping lives in the VFIO device inode's `address_space`, every
//! revocation zaps it with `unmap_mapping_range()`, and a fault inserts the
//! whole vma. A legacy mode reproduces the pre-2024 design as a negative
//! control for the tests.

use kernel::prelude::*;

mod region;

module! {
    type: VfioVariant,
    name: "vfio_variant",
    authors: ["vfio-revoke developers"],
    description: "vfio-pci variant driver with revocable, fork-safe BAR mappings",
    license: "GPL",
}

struct VfioVariant;

impl kernel::Module for VfioVariant {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("loaded\n");
        Ok(VfioVariant)
    }
}

impl Drop for VfioVariant {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
