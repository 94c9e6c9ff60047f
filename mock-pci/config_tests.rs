// SPDX-License-Identifier: GPL-2.0

//! KUnit suite for the configuration space semantics.

use crate::config::{BarSizes, Identity};
use kernel::prelude::*;

/// The function the suites build: the module's default identity, a 2 MiB
/// BAR0 and a 64 KiB BAR2.
pub(crate) const ID: Identity = Identity {
    vendor: 0x1234,
    device: 0xf00d,
    subsys_vendor: 0x1234,
    subsys_device: 0x0001,
    class: 0xff_0000,
    revision: 1,
};
/// Its BAR sizes.
pub(crate) const BARS: BarSizes = BarSizes {
    bar0: 2 << 20,
    bar2: 64 << 10,
};

#[kunit_tests(mock_pci_config)]
mod tests {
    use super::{BARS, ID};
    use crate::{config::*, msi::Irqs};
    use kernel::{bindings, prelude::*};

    const COMMAND: usize = bindings::PCI_COMMAND as usize;
    const STATUS: usize = bindings::PCI_STATUS as usize;
    const BAR0: usize = bindings::PCI_BASE_ADDRESS_0 as usize;

    fn fresh() -> Result<(KBox<Template>, KBox<ConfigSpace>)> {
        let t = KBox::new(Template::new(&ID, &BARS, &Irqs::default()), GFP_KERNEL)?;
        let mut c = KBox::new(ConfigSpace::zeroed(), GFP_KERNEL)?;
        c.reset(&t);
        Ok((t, c))
    }

    #[test]
    fn ids_are_read_only() -> Result {
        let (t, mut c) = fresh()?;
        assert_eq!(c.read(0, 4), 0xf00d_1234);
        assert_eq!(
            c.read(bindings::PCI_CLASS_REVISION as usize, 4),
            0xff00_0001
        );
        assert_eq!(
            c.read(bindings::PCI_SUBSYSTEM_VENDOR_ID as usize, 4),
            0x0001_1234
        );
        assert_eq!(c.read(bindings::PCI_HEADER_TYPE as usize, 1), 0);
        c.write(&t, 0, 4, 0);
        c.write(&t, bindings::PCI_CLASS_REVISION as usize, 4, 0x0102_0304);
        assert_eq!(c.read(0, 4), 0xf00d_1234);
        assert_eq!(
            c.read(bindings::PCI_CLASS_REVISION as usize, 4),
            0xff00_0001
        );
        // Extended configuration space is an empty capability list.
        assert_eq!(c.read(0x100, 4), 0);
        Ok(())
    }

    #[test]
    fn bar_sizing_reads_back_size_masks() -> Result {
        let (t, mut c) = fresh()?;
        for bar in 0..6 {
            c.write(&t, BAR0 + 4 * bar, 4, 0xffff_ffff);
        }
        // 2 MiB, 64-bit (type 10b), prefetchable.
        assert_eq!(c.read(BAR0, 4), 0xffe0_000c);
        assert_eq!(c.read(BAR0 + 4, 4), 0xffff_ffff);
        // 64 KiB, 32-bit, non-prefetchable.
        assert_eq!(c.read(BAR0 + 8, 4), 0xffff_0000);
        for unused in 3..6 {
            assert_eq!(c.read(BAR0 + 4 * unused, 4), 0);
        }
        assert_eq!(c.read(bindings::PCI_ROM_ADDRESS as usize, 4), 0);
        // Programming an address keeps the flags.
        c.write(&t, BAR0, 4, 0x4020_0000);
        c.write(&t, BAR0 + 4, 4, 0);
        assert_eq!(c.read(BAR0, 4), 0x4020_000c);
        assert_eq!(c.read(BAR0 + 4, 4), 0);
        Ok(())
    }

    #[test]
    fn command_keeps_only_writable_bits() -> Result {
        let (t, mut c) = fresh()?;
        c.write(&t, COMMAND, 2, 0xffff);
        assert_eq!(c.read(COMMAND, 2), u32::from(COMMAND_WRITABLE));
        assert_eq!(c.read(COMMAND, 2) & bindings::PCI_COMMAND_IO, 0);
        c.write(&t, COMMAND, 2, 0);
        assert_eq!(c.read(COMMAND, 2), 0);
        Ok(())
    }

    #[test]
    fn status_errors_are_write_one_to_clear() -> Result {
        let (t, mut c) = fresh()?;
        let cap = bindings::PCI_STATUS_CAP_LIST;
        assert_eq!(c.read(STATUS, 2), cap);
        c.raise_status(STATUS_W1C);
        assert_eq!(c.read(STATUS, 2), cap | u32::from(STATUS_W1C));
        c.write(&t, STATUS, 2, 0);
        assert_eq!(c.read(STATUS, 2), cap | u32::from(STATUS_W1C));
        c.write(&t, STATUS, 2, bindings::PCI_STATUS_REC_MASTER_ABORT | cap);
        let left = u32::from(STATUS_W1C) & !bindings::PCI_STATUS_REC_MASTER_ABORT;
        assert_eq!(c.read(STATUS, 2), cap | left);
        c.write(&t, STATUS, 2, 0xffff);
        assert_eq!(c.read(STATUS, 2), cap);
        Ok(())
    }

    #[test]
    fn capability_list_has_pm_then_pcie() -> Result {
        let (_t, c) = fresh()?;
        let mut at = c.read(bindings::PCI_CAPABILITY_LIST as usize, 1) as usize;
        let mut found = KVec::new();
        while at != 0 {
            found.push(c.read(at, 1), GFP_KERNEL)?;
            at = c.read(at + 1, 1) as usize;
            assert!(found.len() < 8);
        }
        assert_eq!(
            &found[..],
            &[bindings::PCI_CAP_ID_PM, bindings::PCI_CAP_ID_EXP]
        );
        // An endpoint below the Root Port, on a trained x1 2.5 GT/s link.
        let flags = c.read(EXP_CAP + bindings::PCI_EXP_FLAGS as usize, 2);
        assert_eq!(
            (flags & bindings::PCI_EXP_FLAGS_TYPE) >> 4,
            bindings::PCI_EXP_TYPE_ENDPOINT
        );
        let devcap = c.read(EXP_CAP + bindings::PCI_EXP_DEVCAP as usize, 4);
        assert!(devcap & bindings::PCI_EXP_DEVCAP_FLR != 0);
        assert!(devcap & bindings::PCI_EXP_DEVCAP_RBER != 0);
        let lnkcap = c.read(EXP_CAP + bindings::PCI_EXP_LNKCAP as usize, 4);
        assert_eq!(lnkcap, bindings::PCI_EXP_LNKCAP_SLS_2_5GB | 1 << 4);
        let lnksta = c.read(EXP_CAP + bindings::PCI_EXP_LNKSTA as usize, 2);
        assert_eq!(
            lnksta,
            bindings::PCI_EXP_LNKSTA_CLS_2_5GB | bindings::PCI_EXP_LNKSTA_NLW_X1
        );
        let pmcsr = c.read(PM_CAP + bindings::PCI_PM_CTRL as usize, 2);
        assert_eq!(pmcsr & bindings::PCI_PM_CTRL_NO_SOFT_RESET, 0);
        Ok(())
    }

    #[test]
    fn link_control_keeps_only_writable_bits() -> Result {
        let (t, mut c) = fresh()?;
        let lnkctl = EXP_CAP + bindings::PCI_EXP_LNKCTL as usize;
        let rw = bindings::PCI_EXP_LNKCTL_ASPMC
            | bindings::PCI_EXP_LNKCTL_RCB
            | bindings::PCI_EXP_LNKCTL_CCC
            | bindings::PCI_EXP_LNKCTL_ES;
        c.write(&t, lnkctl, 2, 0xffff);
        // Retrain Link and Link Disable read as zero.
        assert_eq!(c.read(lnkctl, 2), rw);
        let lnkcap = EXP_CAP + bindings::PCI_EXP_LNKCAP as usize;
        c.write(&t, lnkcap, 4, 0);
        assert_eq!(
            c.read(lnkcap, 4),
            bindings::PCI_EXP_LNKCAP_SLS_2_5GB | 1 << 4
        );
        Ok(())
    }

    fn program(t: &Template, c: &mut ConfigSpace) {
        c.write(t, BAR0, 4, 0x4000_0000);
        c.write(t, COMMAND, 2, bindings::PCI_COMMAND_MEMORY);
    }

    #[test]
    fn d3hot_to_d0_resets_the_function() -> Result {
        let (t, mut c) = fresh()?;
        let pmcsr = PM_CAP + bindings::PCI_PM_CTRL as usize;
        program(&t, &mut c);
        assert_eq!(c.write(&t, pmcsr, 2, 3), Effect::None);
        assert_eq!(c.power_state(), 3);
        assert_eq!(c.read(BAR0, 4), 0x4000_000c);
        assert_eq!(c.write(&t, pmcsr, 2, 0), Effect::Reset);
        assert_eq!(c.power_state(), 0);
        assert_eq!(c.read(BAR0, 4), 0xc);
        assert_eq!(c.read(COMMAND, 2), 0);
        // D0 to D0 is no reset.
        program(&t, &mut c);
        assert_eq!(c.write(&t, pmcsr, 2, 0), Effect::None);
        assert_eq!(c.read(COMMAND, 2), bindings::PCI_COMMAND_MEMORY);
        Ok(())
    }

    #[test]
    fn unadvertised_d1_d2_are_refused() -> Result {
        let (t, mut c) = fresh()?;
        let pmcsr = PM_CAP + bindings::PCI_PM_CTRL as usize;
        for state in [1, 2] {
            assert_eq!(c.write(&t, pmcsr, 2, state), Effect::None);
            assert_eq!(c.power_state(), 0);
        }
        assert_eq!(c.write(&t, pmcsr, 2, 3), Effect::None);
        assert_eq!(c.write(&t, pmcsr, 2, 1), Effect::None);
        assert_eq!(c.power_state(), 3);
        Ok(())
    }

    #[test]
    fn flr_resets_and_reads_as_zero() -> Result {
        let (t, mut c) = fresh()?;
        let devctl = EXP_CAP + bindings::PCI_EXP_DEVCTL as usize;
        program(&t, &mut c);
        let flr = bindings::PCI_EXP_DEVCTL_BCR_FLR;
        assert_eq!(c.write(&t, devctl, 2, flr), Effect::Reset);
        assert_eq!(c.read(devctl, 2) & flr, 0);
        assert_eq!(c.read(COMMAND, 2), 0);
        assert_eq!(c.read(BAR0, 4), 0xc);
        Ok(())
    }
}
