// SPDX-License-Identifier: GPL-2.0

//! Validation of the module parameters: each bad value is refused with
//! `EINVAL` and one log line that says what to use instead. (Whether an
//! explicit `domain=` is free is only known when the host reserves it:
//! host.rs, `EBUSY`.) The checks of one function's description
//! ([`bar_size`], [`vendor`], [`class`], [`msi_vectors`], [`msix_vectors`],
//! [`sriov_vfs`])
//! also check the attributes of configfs devices (configfs.rs).

use crate::config::{BarSizes, Identity};
use crate::layout::{Layout, LayoutError};
use crate::msi::{Irqs, MAX_MSI_VECTORS};
use crate::msix;
use crate::sriov;
use kernel::prelude::*;

/// Smallest BAR the module creates: one page, so that every BAR can be mmapped.
pub(crate) const MIN_BAR_SIZE: u64 = 4096;

/// Highest PCI domain `domain=` accepts. The upstream VFIO selftests read
/// a device address as `%4x:%2x:%2x.%2x` (tools/testing/selftests/vfio/lib/
/// libvfio.c), so a domain needs at most 4 hex digits there; the emulated
/// domains the module takes by default start at 0x10000.
pub(crate) const MAX_DOMAIN: u16 = u16::MAX;

/// The raw parameter values, as given to `insmod`.
pub(crate) struct Raw {
    pub(crate) num_devs: u32,
    pub(crate) domain: u32,
    pub(crate) bar0_size: u64,
    pub(crate) bar2_size: u64,
    pub(crate) window_base: u64,
    pub(crate) window_size: u64,
    pub(crate) allow_any_reserved: bool,
    pub(crate) iommu: bool,
    pub(crate) dma: bool,
    pub(crate) identity: Identity,
    pub(crate) irqs: Irqs,
    pub(crate) sriov_vfs: u32,
}

/// Validated settings.
pub(crate) struct Settings {
    pub(crate) num_devs: usize,
    /// The PCI domain asked for, or `None`: the first free emulated one
    /// from 0x10000 up.
    pub(crate) domain: Option<u16>,
    pub(crate) layout: Layout,
    pub(crate) identity: Identity,
    /// Interrupt Pin, MSI and MSI-X capabilities of every function.
    pub(crate) irqs: Irqs,
    /// The window may lie in any reserved range, not only a `memmap=` one.
    pub(crate) allow_any_reserved: bool,
    /// Register the software IOMMU for the mock functions.
    pub(crate) iommu: bool,
    /// Give every function a DMA engine.
    pub(crate) dma: bool,
    /// Virtual Functions every function may enable (0: no SR-IOV).
    pub(crate) sriov_vfs: u16,
}

/// Checks a BAR size parameter: a power of two of at least [`MIN_BAR_SIZE`].
pub(crate) fn bar_size(name: &str, size: u64, max: u64) -> Result<u64> {
    if size < MIN_BAR_SIZE || !size.is_power_of_two() || size > max {
        pr_err!(
            "{}={:#x} is invalid: use a power of two from {:#x} to {:#x}\n",
            name,
            size,
            MIN_BAR_SIZE,
            max
        );
        return Err(EINVAL);
    }
    Ok(size)
}

/// Checks `domain=`: 0 means any free emulated domain (from 0x10000 up),
/// otherwise a domain from 1 to [`MAX_DOMAIN`].
pub(crate) fn domain(nr: u32) -> Result<Option<u16>> {
    match u16::try_from(nr) {
        Ok(0) => Ok(None),
        Ok(d) => Ok(Some(d)),
        Err(_) => {
            pr_err!(
                "domain={:#x} is invalid: use 0x1 to {:#x} (4 hex digits, as the VFIO selftests read an address), or 0 for a free domain from 0x10000 up\n",
                nr,
                MAX_DOMAIN
            );
            Err(EINVAL)
        }
    }
}

/// Checks `msi_vectors=`: 0 (no MSI capability) or a power of two up to
/// [`MAX_MSI_VECTORS`].
pub(crate) fn msi_vectors(n: u32) -> Result<u32> {
    if n != 0 && (!n.is_power_of_two() || n > MAX_MSI_VECTORS) {
        pr_err!(
            "msi_vectors={} is invalid: use 0 (no MSI) or a power of two from 1 to {}\n",
            n,
            MAX_MSI_VECTORS
        );
        return Err(EINVAL);
    }
    Ok(n)
}

/// Checks `msix_vectors=`: 0 (no MSI-X capability) up to
/// [`msix::MAX_VECTORS`], with the table and the PBA in the upper half of a
/// BAR2 of `bar2_size` bytes.
pub(crate) fn msix_vectors(n: u32, bar2_size: u64) -> Result<u32> {
    if n > msix::MAX_VECTORS {
        pr_err!(
            "msix_vectors={} is invalid: use 0 (no MSI-X) to {}\n",
            n,
            msix::MAX_VECTORS
        );
        return Err(EINVAL);
    }
    if !msix::Table::fits(n, bar2_size) {
        pr_err!(
            "msix_vectors={} does not fit bar2_size={:#x}: the MSI-X table and PBA ({:#x} bytes) live in the upper half of BAR2; use bar2_size={:#x} or more\n",
            n,
            bar2_size,
            msix::Table::footprint(n),
            msix::Table::min_bar2(n, MIN_BAR_SIZE)
        );
        return Err(EINVAL);
    }
    Ok(n)
}

/// Checks `sriov_vfs=`: 0 (no SR-IOV capability) to [`sriov::MAX_VFS`]
/// Virtual Functions, functions 1 to 7 of the PF's slot.
pub(crate) fn sriov_vfs(n: u32) -> Result<u16> {
    match u16::try_from(n) {
        Ok(n) if usize::from(n) <= sriov::MAX_VFS => Ok(n),
        _ => {
            pr_err!(
                "sriov_vfs={} is invalid: use 0 (no SR-IOV) to {} (the VFs are functions 1 to {} of the device's slot)\n",
                n,
                sriov::MAX_VFS,
                sriov::MAX_VFS
            );
            Err(EINVAL)
        }
    }
}

/// Checks a vendor ID: anything but 0 and 0xffff.
pub(crate) fn vendor(vendor: u16) -> Result<u16> {
    if vendor == 0 || vendor == 0xffff {
        pr_err!(
            "vendor={:#06x} is invalid: 0x0000 and 0xffff mean 'no device'\n",
            vendor
        );
        return Err(EINVAL);
    }
    Ok(vendor)
}

/// Checks a class code: 24 bits.
pub(crate) fn class(class: u32) -> Result<u32> {
    if class > 0xff_ffff {
        pr_err!(
            "class={:#x} is invalid: a class code has 24 bits (base class, subclass, prog-if)\n",
            class
        );
        return Err(EINVAL);
    }
    Ok(class)
}

fn identity(id: Identity) -> Result<Identity> {
    vendor(id.vendor)?;
    class(id.class)?;
    Ok(id)
}

fn layout(raw: &Raw, bars: BarSizes) -> Result<Layout> {
    let end = raw.window_base.checked_add(raw.window_size);
    if raw.window_size == 0 || end.is_none() {
        pr_err!(
            "window_size={:#x} at window_base={:#x} is invalid: give the size of the memmap= reservation\n",
            raw.window_size,
            raw.window_base
        );
        return Err(EINVAL);
    }
    Layout::new(raw.window_base, raw.window_size, bars).map_err(|e| {
        match e {
            LayoutError::Unaligned { align } => pr_err!(
                "window_base={:#x} is not aligned to the largest BAR and 1 MiB ({:#x}): reserve memory at an aligned address\n",
                raw.window_base,
                align
            ),
            LayoutError::TooSmall { need } => pr_err!(
                "window_size={:#x} cannot hold one device with these BARs ({:#x} needed): enlarge the memmap= reservation or shrink bar0_size/bar2_size\n",
                raw.window_size,
                need
            ),
            LayoutError::Above4G => pr_err!(
                "window_base={:#x} puts the 32-bit BAR2 window above 4 GiB: reserve memory below 4 GiB\n",
                raw.window_base
            ),
        };
        EINVAL
    })
}

/// Validates every parameter.
pub(crate) fn validate(raw: &Raw) -> Result<Settings> {
    let bars = BarSizes {
        bar0: bar_size("bar0_size", raw.bar0_size, 1 << 40)?,
        bar2: bar_size("bar2_size", raw.bar2_size, 1 << 30)?,
    };
    let identity = identity(raw.identity)?;
    let irqs = Irqs {
        msi: msi_vectors(raw.irqs.msi)?,
        msix: msix_vectors(raw.irqs.msix, bars.bar2)?,
        intx: raw.irqs.intx,
    };
    let domain = domain(raw.domain)?;
    let sriov_vfs = sriov_vfs(raw.sriov_vfs)?;
    let layout = layout(raw, bars)?;
    let num_devs = raw.num_devs as usize;
    if num_devs > layout.slots() {
        pr_err!(
            "num_devs={} is too many: the window holds {} devices with these BAR sizes\n",
            num_devs,
            layout.slots()
        );
        return Err(EINVAL);
    }
    Ok(Settings {
        num_devs,
        domain,
        layout,
        identity,
        irqs,
        allow_any_reserved: raw.allow_any_reserved,
        iommu: raw.iommu,
        dma: raw.dma,
        sriov_vfs,
    })
}

#[kunit_tests(mock_pci_params)]
mod tests {
    use super::*;

    fn defaults() -> Raw {
        Raw {
            num_devs: 2,
            domain: 0,
            bar0_size: 2 << 20,
            bar2_size: 64 << 10,
            window_base: 0x4000_0000,
            window_size: 256 << 20,
            allow_any_reserved: false,
            iommu: false,
            dma: false,
            identity: crate::config_tests::ID,
            irqs: Irqs::default(),
            sriov_vfs: 0,
        }
    }

    #[test]
    fn defaults_are_valid() -> Result {
        let s = validate(&defaults())?;
        assert_eq!(s.num_devs, 2);
        assert_eq!(s.domain, None);
        assert_eq!(s.layout.bar0(1), 0x4020_0000);
        assert_eq!(s.layout.bar2(1), 0x4401_0000);
        assert_eq!(s.irqs, Irqs::default());
        Ok(())
    }

    #[test]
    fn bar_size_rejects_bad_values() {
        assert_eq!(bar_size("t", 4096, 1 << 30), Ok(4096));
        assert_eq!(bar_size("t", 0, 1 << 30), Err(EINVAL));
        assert_eq!(bar_size("t", 2048, 1 << 30), Err(EINVAL));
        assert_eq!(bar_size("t", 3 << 20, 1 << 30), Err(EINVAL));
        assert_eq!(bar_size("t", 1 << 31, 1 << 30), Err(EINVAL));
    }

    #[test]
    fn vendor_and_class() {
        assert_eq!(vendor(0x1234), Ok(0x1234));
        assert_eq!(vendor(0), Err(EINVAL));
        assert_eq!(vendor(0xffff), Err(EINVAL));
        assert_eq!(class(0), Ok(0));
        assert_eq!(class(0xff_ffff), Ok(0xff_ffff));
        assert_eq!(class(0x100_0000), Err(EINVAL));
    }

    #[test]
    fn domain_range() {
        assert_eq!(domain(0), Ok(None));
        assert_eq!(domain(1), Ok(Some(1)));
        assert_eq!(domain(0x1000), Ok(Some(0x1000)));
        assert_eq!(domain(0xffff), Ok(Some(0xffff)));
        assert_eq!(domain(0x1_0000), Err(EINVAL));
        assert_eq!(domain(0x1_1000), Err(EINVAL));
        assert_eq!(domain(u32::MAX), Err(EINVAL));
    }

    #[test]
    fn msi_vectors_are_a_power_of_two_up_to_32() {
        for n in [0, 1, 2, 4, 8, 16, 32] {
            assert_eq!(msi_vectors(n), Ok(n));
        }
        for n in [3, 6, 24, 33, 64, u32::MAX] {
            assert_eq!(msi_vectors(n), Err(EINVAL));
        }
    }

    #[test]
    fn msix_table_and_pba_fit_the_upper_half_of_bar2() {
        let k = 1 << 10;
        assert_eq!(msix_vectors(0, 4 * k), Ok(0));
        assert_eq!(msix_vectors(1, 4 * k), Ok(1));
        // 127 entries and one PBA word: 2032 + 8 bytes of 2 KiB.
        assert_eq!(msix_vectors(127, 4 * k), Ok(127));
        assert_eq!(msix_vectors(128, 4 * k), Err(EINVAL));
        // 2048 entries and 32 PBA words: 32 KiB + 256 bytes.
        assert_eq!(msix_vectors(2048, 64 * k), Err(EINVAL));
        assert_eq!(msix_vectors(2048, 128 * k), Ok(2048));
        assert_eq!(msix_vectors(2049, 1 << 30), Err(EINVAL));
        assert_eq!(msix::Table::min_bar2(2048, MIN_BAR_SIZE), 128 * k);
        assert_eq!(msix::Table::min_bar2(128, MIN_BAR_SIZE), 8 * k);
        assert_eq!(msix::Table::min_bar2(1, MIN_BAR_SIZE), 4 * k);
    }

    #[test]
    fn sriov_vfs_up_to_seven() {
        for n in 0..=7 {
            assert_eq!(sriov_vfs(n), Ok(n as u16));
        }
        for n in [8, 0x1_0001, u32::MAX] {
            assert_eq!(sriov_vfs(n), Err(EINVAL));
        }
    }

    #[test]
    fn rejects_bad_settings() {
        let cases: [fn(&mut Raw); 11] = [
            |r| r.num_devs = 33,
            |r| r.bar0_size = 3 << 20,
            |r| r.window_size = 1 << 20,
            |r| r.window_base = 0x4000_1000,
            |r| r.identity.vendor = 0xffff,
            |r| r.identity.class = 0x100_0000,
            |r| r.domain = 0x1_0000,
            |r| r.irqs.msi = 3,
            |r| r.irqs.msix = 2049,
            |r| r.irqs.msix = 2048,
            |r| r.sriov_vfs = 8,
        ];
        for change in cases {
            let mut raw = defaults();
            change(&mut raw);
            assert!(validate(&raw).is_err());
        }
    }
}
