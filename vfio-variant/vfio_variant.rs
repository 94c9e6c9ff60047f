// SPDX-License-Identifier: GPL-2.0

//! vfio-variant: a vfio-pci variant driver for mock-pci devices that keeps
//! BAR mappings revocable across fork.
//!
//! Every mapping lives in the VFIO device inode's `address_space`, every
//! revocation zaps it with `unmap_mapping_range()`, and a fault inserts the
//! whole vma (PMD entries where possible). A legacy mode reproduces the
//! pre-2024 design as a negative control for the tests; see README.md.
//!
//! Layout: [`vfio`] is the VFIO PCI variant-driver abstraction, where every
//! `unsafe` block of the module lives. On top of it, in safe Rust:
//! [`driver`] (the [`vfio::Driver`] implementation, probe/remove),
//! [`device`] (per-device state, revocation), [`mapping`] (mmap and mode
//! dispatch), [`fixed`] and [`legacy`] (the two fault paths), [`bar`] and
//! [`tracked`] (what they share with the rest), [`ops`] (revocation hooks),
//! [`counters`], [`debugfs`] and [`region`] (pure geometry). The KUnit
//! suite that needs a device, [`kunit_dev`], is built with `CONFIG_KUNIT`
//! only.

use kernel::prelude::*;

mod bar;
mod counters;
mod debugfs;
mod device;
mod driver;
mod fixed;
#[cfg(CONFIG_KUNIT)]
mod kunit_dev;
mod legacy;
mod mapping;
mod ops;
mod region;
mod tracked;
mod vfio;

module! {
    type: VfioVariant,
    name: "vfio_variant",
    authors: ["vfio-revoke developers"],
    description: "vfio-pci variant driver with revocable, fork-safe BAR mappings",
    license: "GPL",
    params: {
        legacy: bool {
            default: false,
            description: "Map BARs with the pre-2024 (buggy) design: negative control for tests only",
        },
        pte_only: bool {
            default: false,
            description: "Insert 4 KiB entries only, never PMDs: for kernels without the copy_huge_pmd() fork fix (README)",
        },
        enable_sriov: bool {
            default: false,
            description: "Let sriov_numvfs create Virtual Functions of a PF bound here (bound here too, each with the PF's VF token), as vfio-pci's enable_sriov",
        },
        extra_id: u32 {
            default: 0,
            description: "Also bind this device ID, as 0xVVVVDDDD (testing on e.g. ivshmem 0x1af41110)",
        },
    },
}

#[pin_data]
struct VfioVariant {
    #[pin]
    driver: driver::Driver,
}

impl kernel::InPlaceModule for VfioVariant {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pin_init::pin_init_scope(move || {
            let extra_id = extra_id(module_parameters::extra_id.value())?;
            if module_parameters::legacy.value() {
                pr_warn!(
                    "legacy mode: BAR mappings use the pre-2024 design (fork bug reproduced)\n"
                );
            }
            if module_parameters::pte_only.value() {
                pr_info!("pte_only: BAR mappings get 4 KiB entries only (no PMDs)\n");
            }
            Ok(try_pin_init!(Self {
                driver <- driver::VariantDriver::register(module, extra_id),
            }))
        })
    }
}

/// Checks the `extra_id` parameter: 0 (none), or `0xVVVVDDDD` with a vendor
/// ID that can exist (not 0x0000 or 0xffff, which mean "no device") and a
/// device ID other than 0xffff. A bad one is refused with `EINVAL` and one
/// log line, like every other bad parameter of the project's modules.
fn extra_id(id: u32) -> Result<u32> {
    let (vendor, device) = (id >> 16, id & 0xffff);
    if id != 0 && (vendor == 0 || vendor == 0xffff || device == 0xffff) {
        pr_err!(
            "extra_id={:#010x} is invalid: give 0xVVVVDDDD with a vendor ID other than 0x0000 and 0xffff and a device ID other than 0xffff\n",
            id
        );
        return Err(EINVAL);
    }
    Ok(id)
}
