// SPDX-License-Identifier: GPL-2.0

//! KUnit suite for SR-IOV: the capability's registers and write masks,
//! NumVFs locked while VF Enable is set, Virtual Functions answering only
//! while enabled, and the resets that clear them.

use kernel::prelude::*;

#[kunit_tests(mock_pci_sriov)]
mod tests {
    use crate::{
        bridge::{self, SECONDARY_BUS},
        config::*,
        config_tests::{BARS, ID},
        fabric::*,
        layout::{Layout, LayoutError},
        msi::Irqs,
        sriov::{self, SRIOV_CAP, SUPPORTED_PGSIZES},
    };
    use kernel::{bindings, prelude::*};

    const fn reg(r: u32) -> usize {
        SRIOV_CAP + r as usize
    }
    const CTRL: usize = reg(bindings::PCI_SRIOV_CTRL);
    const NUM_VF: usize = reg(bindings::PCI_SRIOV_NUM_VF);
    const TOTAL_VF: usize = reg(bindings::PCI_SRIOV_TOTAL_VF);
    const VFE: u32 = bindings::PCI_SRIOV_CTRL_VFE;
    const COMMAND: usize = bindings::PCI_COMMAND as usize;
    const MASTER: u32 = bindings::PCI_COMMAND_MASTER;
    const DEVCTL: usize = EXP_CAP + bindings::PCI_EXP_DEVCTL as usize;
    const FLR: u32 = bindings::PCI_EXP_DEVCTL_BCR_FLR;
    const SBR: u32 = bindings::PCI_BRIDGE_CTL_BUS_RESET;
    /// The PF sits in slot 1; its VFs are functions 1 to 3 there.
    const PF: u32 = 1 << 3;
    const BUS: u8 = SECONDARY_BUS;

    fn pf_template(vfs: u16) -> Template {
        let t = Template::new(&ID, &BARS, &Irqs::default());
        sriov::with_cap(t, vfs, 0xbeef)
    }

    /// The PF's registers at power-on (3 VFs), outside a fabric.
    fn fresh_pf() -> Result<(KBox<Template>, KBox<ConfigSpace>)> {
        let t = KBox::new(pf_template(3), GFP_KERNEL)?;
        let mut c = KBox::new(ConfigSpace::zeroed(), GFP_KERNEL)?;
        c.reset(&t);
        Ok((t, c))
    }

    /// As the module sets it up: port programmed, a PF with `vfs` VFs in
    /// slot 1.
    fn fabric(vfs: u16) -> Result<(KBox<Templates>, KBox<Fabric>)> {
        let t = KBox::new(
            Templates {
                port: bridge::template(),
                func: pf_template(vfs),
            },
            GFP_KERNEL,
        )?;
        let mut f = KBox::init(pin_init::init_zeroed::<Fabric>(), GFP_KERNEL)?;
        let l = Layout::new(0x4000_0000, 256 << 20, BARS).map_err(|_: LayoutError| EINVAL)?;
        f.power_on_port(&t.port, &l);
        f.power_on(&t.func, 1, l.bar0(1), l.bar2(1));
        Ok((t, f))
    }

    /// Sets NumVFs and VF Enable of the PF in slot 1 as the PCI core does.
    fn enable(t: &Templates, f: &mut Fabric, n: u32) {
        f.write(&t.port, BUS, PF, NUM_VF, 2, n);
        f.write(
            &t.port,
            BUS,
            PF,
            CTRL,
            2,
            VFE | bindings::PCI_SRIOV_CTRL_MSE,
        );
    }

    #[test]
    fn capability_registers_and_masks() -> Result {
        let (t, mut c) = fresh_pf()?;
        // Extended capability header: SR-IOV, version 1, last in the list.
        assert_eq!(c.read(SRIOV_CAP, 4), 0x0001_0010);
        assert_eq!(c.read(reg(bindings::PCI_SRIOV_CAP), 4), 0);
        assert_eq!(c.read(reg(bindings::PCI_SRIOV_INITIAL_VF), 2), 3);
        assert_eq!(c.read(TOTAL_VF, 2), 3);
        assert_eq!(c.read(reg(bindings::PCI_SRIOV_VF_OFFSET), 2), 1);
        assert_eq!(c.read(reg(bindings::PCI_SRIOV_VF_STRIDE), 2), 1);
        assert_eq!(c.read(reg(bindings::PCI_SRIOV_VF_DID), 2), 0xbeef);
        let sup = reg(bindings::PCI_SRIOV_SUP_PGSIZE);
        assert_eq!(c.read(sup, 4), SUPPORTED_PGSIZES);
        // Read-only: header, TotalVFs, InitialVFs, offset, stride, device
        // ID, supported page sizes, VF BARs.
        for (at, size) in [
            (SRIOV_CAP, 4),
            (reg(bindings::PCI_SRIOV_INITIAL_VF), 4),
            (reg(bindings::PCI_SRIOV_VF_OFFSET), 4),
            (reg(bindings::PCI_SRIOV_VF_DID), 2),
            (sup, 4),
            (reg(bindings::PCI_SRIOV_BAR), 4),
            (reg(bindings::PCI_SRIOV_VFM), 4),
        ] {
            let before = c.read(at, size);
            c.write(&t, at, size, !0);
            assert_eq!(c.read(at, size), before);
        }
        // Control: VF Enable, VF MSE, ARI Capable Hierarchy; no VF Migration.
        c.write(&t, CTRL, 2, 0xffff);
        assert_eq!(c.read(CTRL, 2), u32::from(sriov::CTRL_WRITABLE));
        assert_eq!(u32::from(sriov::CTRL_WRITABLE), 0x19);
        // System Page Size: only supported sizes stick.
        let sys = reg(bindings::PCI_SRIOV_SYS_PGSIZE);
        assert_eq!(c.read(sys, 4), 1);
        c.write(&t, sys, 4, !0);
        assert_eq!(c.read(sys, 4), SUPPORTED_PGSIZES);
        // Reset brings the power-on values back.
        c.reset(&t);
        assert_eq!(c.read(CTRL, 2), 0);
        assert_eq!(c.read(sys, 4), 1);
        Ok(())
    }

    #[test]
    fn no_capability_without_vfs() -> Result {
        let (t, mut f) = fabric(0)?;
        assert_eq!(f.read(BUS, PF, SRIOV_CAP, 4), Some(0));
        enable(&t, &mut f, 1);
        assert_eq!(f.read(BUS, PF, CTRL, 2), Some(0));
        assert_eq!(f.read(BUS, PF | 1, 0, 4), None);
        assert_eq!(f.enabled_vfs(1), 0);
        Ok(())
    }

    #[test]
    fn function_link_is_the_pfs_devfn() -> Result {
        let (_t, f) = fabric(3)?;
        let link = reg(bindings::PCI_SRIOV_FUNC_LINK);
        assert_eq!(f.read(BUS, PF, link, 1), Some(PF));
        Ok(())
    }

    #[test]
    fn numvfs_is_locked_while_vf_enable_is_set() -> Result {
        let (t, mut c) = fresh_pf()?;
        sriov::write_pf(&mut c, &t, NUM_VF, 2, 2);
        assert_eq!(c.read(NUM_VF, 2), 2);
        sriov::write_pf(&mut c, &t, CTRL, 2, VFE);
        assert_eq!(sriov::enabled_vfs(&c), 2);
        sriov::write_pf(&mut c, &t, NUM_VF, 2, 3);
        assert_eq!(c.read(NUM_VF, 2), 2);
        // A dword write that covers TotalVFs and NumVFs.
        sriov::write_pf(&mut c, &t, TOTAL_VF, 4, 0x0001_0007);
        assert_eq!(c.read(NUM_VF, 2), 2);
        sriov::write_pf(&mut c, &t, CTRL, 2, 0);
        assert_eq!(sriov::enabled_vfs(&c), 0);
        sriov::write_pf(&mut c, &t, NUM_VF, 2, 3);
        assert_eq!(c.read(NUM_VF, 2), 3);
        Ok(())
    }

    #[test]
    fn vfs_answer_only_while_enabled() -> Result {
        let (t, mut f) = fabric(3)?;
        for vf in 1..8 {
            assert_eq!(f.read(BUS, PF | vf, 0, 4), None);
        }
        enable(&t, &mut f, 2);
        assert_eq!(f.enabled_vfs(1), 2);
        for vf in 1..3 {
            // Vendor and Device ID read all ones; class and subsystem are
            // the PF's; a type 0 header, not multi-function.
            assert_eq!(f.read(BUS, PF | vf, 0, 4), Some(0xffff_ffff));
            let class = bindings::PCI_CLASS_REVISION as usize;
            assert_eq!(f.read(BUS, PF | vf, class, 4), f.read(BUS, PF, class, 4));
            let subsys = bindings::PCI_SUBSYSTEM_VENDOR_ID as usize;
            assert_eq!(f.read(BUS, PF | vf, subsys, 4), Some(0x0001_1234));
            let header = bindings::PCI_HEADER_TYPE as usize;
            assert_eq!(f.read(BUS, PF | vf, header, 1), Some(0));
            // No BARs, no interrupt pin, PCIe capability with FLR.
            let bar0 = bindings::PCI_BASE_ADDRESS_0 as usize;
            f.write(&t.port, BUS, PF | vf, bar0, 4, !0);
            assert_eq!(f.read(BUS, PF | vf, bar0, 4), Some(0));
            let pin = bindings::PCI_INTERRUPT_PIN as usize;
            assert_eq!(f.read(BUS, PF | vf, pin, 1), Some(0));
            let devcap = EXP_CAP + bindings::PCI_EXP_DEVCAP as usize;
            let flr = f
                .read(BUS, PF | vf, devcap, 4)
                .map(|v| v & bindings::PCI_EXP_DEVCAP_FLR);
            assert_eq!(flr, Some(bindings::PCI_EXP_DEVCAP_FLR));
        }
        // Only NumVFs of them; nothing past TotalVFs, even if asked.
        assert_eq!(f.read(BUS, PF | 3, 0, 4), None);
        // Other slots have no VFs.
        assert_eq!(f.read(BUS, 1, 0, 4), None);
        f.write(&t.port, BUS, PF, CTRL, 2, 0);
        assert_eq!(f.read(BUS, PF | 1, 0, 4), None);
        f.write(&t.port, BUS, PF, NUM_VF, 2, 7);
        f.write(&t.port, BUS, PF, CTRL, 2, VFE);
        assert_eq!(f.enabled_vfs(1), 3);
        assert!(f.read(BUS, PF | 3, 0, 4).is_some());
        assert_eq!(f.read(BUS, PF | 4, 0, 4), None);
        // A removed PF takes its VFs along.
        f.remove(1);
        assert_eq!(f.read(BUS, PF | 1, 0, 4), None);
        Ok(())
    }

    #[test]
    fn vf_command_has_bus_master_only() -> Result {
        let (t, mut f) = fabric(1)?;
        enable(&t, &mut f, 1);
        f.write(&t.port, BUS, PF | 1, COMMAND, 2, 0xffff);
        assert_eq!(f.read(BUS, PF | 1, COMMAND, 2), Some(MASTER));
        Ok(())
    }

    #[test]
    fn vf_flr_resets_that_vf_only() -> Result {
        let (t, mut f) = fabric(2)?;
        enable(&t, &mut f, 2);
        f.write(&t.port, BUS, PF, COMMAND, 2, MASTER);
        for vf in 1..3 {
            f.write(&t.port, BUS, PF | vf, COMMAND, 2, MASTER);
        }
        let ev = f.write(&t.port, BUS, PF | 2, DEVCTL, 2, FLR);
        assert_eq!(ev, Some(Event::VfReset(1, 2)));
        assert_eq!(f.read(BUS, PF | 2, COMMAND, 2), Some(0));
        assert_eq!(f.read(BUS, PF | 1, COMMAND, 2), Some(MASTER));
        assert_eq!(f.read(BUS, PF, COMMAND, 2), Some(MASTER));
        assert_eq!(f.enabled_vfs(1), 2);
        Ok(())
    }

    #[test]
    fn pf_resets_clear_vf_enable_and_the_vfs() -> Result {
        let (t, mut f) = fabric(2)?;
        // PF FLR.
        enable(&t, &mut f, 2);
        f.write(&t.port, BUS, PF | 1, COMMAND, 2, MASTER);
        let ev = f.write(&t.port, BUS, PF, DEVCTL, 2, FLR);
        assert_eq!(ev, Some(Event::FunctionReset(1)));
        assert_eq!(f.read(BUS, PF, CTRL, 2), Some(0));
        assert_eq!(f.read(BUS, PF | 1, 0, 4), None);
        // Enabled again, the VFs come back from reset.
        enable(&t, &mut f, 2);
        assert_eq!(f.read(BUS, PF | 1, COMMAND, 2), Some(0));
        // Secondary Bus Reset.
        f.write(&t.port, BUS, PF | 1, COMMAND, 2, MASTER);
        let bctl = bridge::PCI_BRIDGE_CONTROL;
        f.write(&t.port, 0, 0, bctl, 2, SBR);
        f.write(&t.port, 0, 0, bctl, 2, 0);
        assert_eq!(f.read(BUS, PF, CTRL, 2), Some(0));
        assert_eq!(f.read(BUS, PF | 1, 0, 4), None);
        enable(&t, &mut f, 1);
        assert_eq!(f.read(BUS, PF | 1, COMMAND, 2), Some(0));
        // Power-on (unplug and plug) starts with VF Enable clear.
        let l = Layout::new(0x4000_0000, 256 << 20, BARS).map_err(|_: LayoutError| EINVAL)?;
        f.power_on(&t.func, 1, l.bar0(1), l.bar2(1));
        assert_eq!(f.enabled_vfs(1), 0);
        assert_eq!(f.read(BUS, PF | 1, 0, 4), None);
        Ok(())
    }
}
