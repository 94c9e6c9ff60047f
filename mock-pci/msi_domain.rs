// SPDX-License-Identifier: GPL-2.0

//! The MSI parent interrupt domain of the mock host bridge, modelled on
//! vmd's (drivers/pci/controller/vmd.c).
//!
//! Every function on the mock bus gets its per-device PCI/MSI and
//! PCI/MSI-X domains from the PCI core as children of this one, so that
//! `pci_alloc_irq_vectors()` (vfio-pci's MSI and MSI-X set-up) allocates
//! Linux interrupts here rather than APIC vectors nobody would raise. Each
//! interrupt gets a hardware number that names its function, kind and
//! vector ([`hwirq`]), and the message the PCI core writes into the
//! function's MSI capability or MSI-X table is that number at a fixed
//! doorbell address ([`DOORBELL`]). The device side (irq.rs) delivers a
//! message by decoding it ([`decode`], [`MsiDomain::deliver`]), after
//! checking that it names the sending function itself: that is what makes
//! the domain's isolated-MSI claim (`IRQ_DOMAIN_FLAG_ISOLATED_MSI`) true,
//! since a function whose MSI-X table userspace rewrote still cannot raise
//! another function's interrupts.
//!
//! Multi-message MSI is supported (vmd's domain lacks it), with blocks
//! naturally aligned because a block always starts at vector 0 of its
//! function. Affinity is not a thing here (`MSI_FLAG_NO_AFFINITY`).

use core::fmt;
use kernel::{bindings, ffi::c_void, prelude::*, str::CString};

/// The address every message of the domain carries. Not a DMA target and
/// not the x86 interrupt window: only this module decodes it.
pub(crate) const DOORBELL: u32 = 0xfeef_f000;

/// Which capability an interrupt belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Msi,
    MsiX,
}

/// Bits of the vector number in a hardware interrupt number: MSI-X has up
/// to 2048 vectors.
const VECTOR_BITS: u32 = 11;

/// The hardware interrupt number of vector `vector` of `kind` of the
/// function in `slot`: `slot << 12 | kind << 11 | vector`. It is also the
/// data of its message.
pub(crate) const fn hwirq(slot: usize, kind: Kind, vector: u32) -> u32 {
    let k = match kind {
        Kind::Msi => 0,
        Kind::MsiX => 1,
    };
    (slot as u32) << (VECTOR_BITS + 1) | k << VECTOR_BITS | (vector & ((1 << VECTOR_BITS) - 1))
}

/// Decodes message data back to (slot, kind, vector); the slot is 32 or
/// more if the data has bits above a slot's number.
pub(crate) const fn decode(data: u32) -> (usize, Kind, u32) {
    let kind = if data >> VECTOR_BITS & 1 == 1 {
        Kind::MsiX
    } else {
        Kind::Msi
    };
    (
        (data >> (VECTOR_BITS + 1)) as usize,
        kind,
        data & ((1 << VECTOR_BITS) - 1),
    )
}

/// Highest hardware interrupt number: 32 slots.
const HWIRQ_MAX: u64 = 32 << (VECTOR_BITS + 1);

/// The domain and the firmware node that names it.
pub(crate) struct MsiDomain {
    fwnode: *mut bindings::fwnode_handle,
    domain: *mut bindings::irq_domain,
}

// SAFETY: the pointers are only handed to the interrupt core, which
// serialises its own use of them.
unsafe impl Send for MsiDomain {}
// SAFETY: see `Send`.
unsafe impl Sync for MsiDomain {}

#[repr(transparent)]
struct Static<T>(T);
// SAFETY: tables of function pointers and constants, never written.
unsafe impl<T> Sync for Static<T> {}

static CHIP: Static<bindings::irq_chip> = Static({
    // SAFETY: all-zero is a valid `irq_chip` (every callback absent).
    let mut c: bindings::irq_chip = unsafe { core::mem::zeroed() };
    c.name = c"MOCK-MSI".to_bytes_with_nul().as_ptr();
    c.irq_compose_msi_msg = Some(compose_msi_msg);
    c
});

static DOMAIN_OPS: Static<bindings::irq_domain_ops> = Static({
    // SAFETY: all-zero is a valid `irq_domain_ops` (every op absent).
    let mut o: bindings::irq_domain_ops = unsafe { core::mem::zeroed() };
    o.alloc = Some(alloc);
    o.free = Some(bindings::irq_domain_free_irqs_common);
    o
});

static PARENT_OPS: Static<bindings::msi_parent_ops> = Static(bindings::msi_parent_ops {
    supported_flags: bindings::MSI_GENERIC_FLAGS_MASK
        | bindings::MSI_FLAG_PCI_MSIX
        | bindings::MSI_FLAG_MULTI_PCI_MSI
        | bindings::MSI_FLAG_PCI_MSIX_ALLOC_DYN,
    required_flags: bindings::MSI_FLAG_USE_DEF_DOM_OPS | bindings::MSI_FLAG_NO_AFFINITY,
    chip_flags: 0,
    bus_select_token: bindings::irq_domain_bus_token_DOMAIN_BUS_NEXUS,
    // MATCH_PCI_MSI.
    bus_select_mask: 1 << bindings::irq_domain_bus_token_DOMAIN_BUS_PCI_MSI,
    prefix: c"MOCK-".to_bytes_with_nul().as_ptr(),
    init_dev_msi_info: Some(bindings::msi_lib_init_dev_msi_info),
});

/// A named firmware node for an interrupt domain of the bus, `NAME` in
/// `/sys/kernel/debug/irq/domains` (`irq_domain_alloc_named_fwnode()`),
/// which the caller frees with `irq_domain_free_fwnode()` after the domain.
pub(crate) fn named_fwnode(name: fmt::Arguments<'_>) -> Result<*mut bindings::fwnode_handle> {
    let name = CString::try_from_fmt(name)?;
    // SAFETY: allocates a firmware node with a copy of the name.
    let fwnode = unsafe {
        bindings::__irq_domain_alloc_fwnode(
            bindings::IRQCHIP_FWNODE_NAMED,
            0,
            name.as_char_ptr(),
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        )
    };
    if fwnode.is_null() {
        pr_err!(
            "cannot allocate the firmware node of {}\n",
            name.to_str().unwrap_or("a domain")
        );
        return Err(ENOMEM);
    }
    Ok(fwnode)
}

impl MsiDomain {
    /// Creates the domain of the host bridge of PCI domain `pci_domain`,
    /// named `mock-pci-MSI-DOMAIN` (`/sys/kernel/debug/irq/domains`).
    pub(crate) fn new(pci_domain: i32) -> Result<Self> {
        let fwnode = named_fwnode(fmt!("mock-pci-MSI-{:04x}", pci_domain))?;
        // SAFETY: all-zero is a valid `irq_domain_info`; the fields that
        // matter are set.
        let mut info: bindings::irq_domain_info = unsafe { core::mem::zeroed() };
        info.fwnode = fwnode;
        info.domain_flags = bindings::IRQ_DOMAIN_FLAG_ISOLATED_MSI;
        info.hwirq_max = HWIRQ_MAX as usize;
        info.ops = &DOMAIN_OPS.0;
        // SAFETY: `info` is complete; the ops tables are static.
        let domain = unsafe { bindings::msi_create_parent_irq_domain(&mut info, &PARENT_OPS.0) };
        if domain.is_null() {
            // SAFETY: allocated above and not used by any domain.
            unsafe { bindings::irq_domain_free_fwnode(fwnode) };
            pr_err!("cannot create the MSI parent domain\n");
            return Err(ENOMEM);
        }
        Ok(MsiDomain { fwnode, domain })
    }

    /// Makes the domain the MSI domain of `bridge`'s buses: the root bus
    /// takes it from the bridge device, the buses below from their bridges,
    /// and every device from its bus. Without it, the bridge says the
    /// devices have no MSI (`bridge->msi_domain`), rather than falling back
    /// to the platform's domain.
    ///
    /// # Safety
    ///
    /// `bridge` is allocated and not yet scanned; the domain outlives its
    /// buses.
    pub(crate) unsafe fn attach(&self, bridge: *mut bindings::pci_host_bridge) {
        // SAFETY: see the function's safety section.
        unsafe {
            bindings::dev_set_msi_domain(&raw mut (*bridge).dev, self.domain);
            (*bridge).set_msi_domain(1);
        }
    }
}

impl MsiDomain {
    /// Raises interrupt `hwirq` of the domain, from any context (it
    /// disables interrupts around the flow handler), and says whether a
    /// Linux interrupt is mapped to it.
    pub(crate) fn deliver(&self, hwirq: u32) -> bool {
        // SAFETY: the domain lives until drop.
        unsafe { bindings::generic_handle_domain_irq_safe(self.domain, hwirq as usize) == 0 }
    }
}

impl Drop for MsiDomain {
    fn drop(&mut self) {
        // SAFETY: created in `new`; the buses (and with them every device's
        // child domain) are gone by now.
        unsafe {
            bindings::irq_domain_remove(self.domain);
            bindings::irq_domain_free_fwnode(self.fwnode);
        }
    }
}

/// `irq_domain_ops.alloc`: `n` interrupts for the MSI descriptor in `arg`
/// (a block of multi-message MSI, or one MSI-X vector), from vector
/// `msi_index` of its function on.
///
/// # Safety
///
/// Called by the interrupt core for this domain, with the child PCI/MSI
/// domain's `msi_alloc_info_t` as `arg`.
unsafe extern "C" fn alloc(
    d: *mut bindings::irq_domain,
    virq: u32,
    n: u32,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: the PCI/MSI child domain passes its `msi_alloc_info_t`, whose
    // descriptor belongs to a PCI device of the mock bus.
    let (slot, kind, first) = unsafe {
        let desc = (*arg.cast::<bindings::msi_alloc_info_t>()).desc;
        let pdev = bindings::msi_desc_to_pci_dev(desc);
        let kind = if (*desc).__bindgen_anon_1.pci.msi_attrib.is_msix() != 0 {
            Kind::MsiX
        } else {
            Kind::Msi
        };
        (
            ((*pdev).devfn >> 3) as usize,
            kind,
            u32::from((*desc).msi_index),
        )
    };
    for i in 0..n {
        // SAFETY: `virq + i` was allocated for this domain by the core.
        unsafe {
            bindings::irq_domain_set_info(
                d,
                virq + i,
                hwirq(slot, kind, first + i) as usize,
                &CHIP.0,
                core::ptr::null_mut(),
                Some(bindings::handle_simple_irq),
                core::ptr::null_mut(),
                core::ptr::null(),
            );
        }
    }
    0
}

/// `irq_chip.irq_compose_msi_msg`: the doorbell and the interrupt's number.
///
/// # Safety
///
/// Called by the interrupt core for an interrupt of this domain.
unsafe extern "C" fn compose_msi_msg(data: *mut bindings::irq_data, msg: *mut bindings::msi_msg) {
    // SAFETY: the core passes this domain's interrupt data and a message to
    // fill.
    unsafe {
        let hwirq = (*data).hwirq as u32;
        (*msg).__bindgen_anon_1.address_lo = DOORBELL;
        (*msg).__bindgen_anon_2.address_hi = 0;
        (*msg).__bindgen_anon_3.data = hwirq;
    }
}

#[kunit_tests(mock_pci_msi_domain)]
mod tests {
    use super::*;

    #[test]
    fn hwirq_round_trips() {
        for (slot, kind, v) in [
            (0, Kind::Msi, 0),
            (31, Kind::MsiX, 2047),
            (5, Kind::Msi, 31),
        ] {
            assert_eq!(decode(hwirq(slot, kind, v)), (slot, kind, v));
        }
        assert!(decode(0x2_0000).0 >= 32);
    }

    /// Every function, kind and vector has a number of its own, below
    /// the domain's limit.
    #[test]
    fn hwirq_is_unique_and_in_range() {
        assert_eq!(hwirq(0, Kind::Msi, 0), 0);
        assert_eq!(hwirq(0, Kind::MsiX, 0), 1 << 11);
        assert_eq!(hwirq(1, Kind::Msi, 0), 1 << 12);
        assert_eq!(hwirq(31, Kind::MsiX, 2047), (32 << 12) - 1);
        assert!(u64::from(hwirq(31, Kind::MsiX, 2047)) < HWIRQ_MAX);
    }

    /// Multi-message MSI adds the vector to the data's low bits: a block
    /// starts at an aligned number.
    #[test]
    fn msi_block_is_aligned() {
        assert_eq!(hwirq(3, Kind::Msi, 0) & 31, 0);
        assert_eq!(hwirq(3, Kind::Msi, 0) | 7, hwirq(3, Kind::Msi, 7));
    }
}
