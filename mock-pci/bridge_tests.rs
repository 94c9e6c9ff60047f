// SPDX-License-Identifier: GPL-2.0

//! KUnit suite for the Root Port's configuration space (type 1 header, write
//! masks of the bus number and window registers, firmware programming) and
//! for Secondary Bus Reset of the functions behind it.

use kernel::prelude::*;

#[kunit_tests(mock_pci_bridge)]
mod tests {
    use crate::{
        bridge::*,
        config::*,
        config_tests::{BARS, ID},
        fabric::*,
        layout::{Layout, LayoutError},
        msi::Irqs,
    };
    use kernel::{bindings, prelude::*};

    const COMMAND: usize = bindings::PCI_COMMAND as usize;
    const BAR0: usize = bindings::PCI_BASE_ADDRESS_0 as usize;
    const BAR2: usize = bindings::PCI_BASE_ADDRESS_2 as usize;
    const BUSES: usize = bindings::PCI_PRIMARY_BUS as usize;
    const SBR: u32 = bindings::PCI_BRIDGE_CTL_BUS_RESET;
    const DLLLA: u32 = bindings::PCI_EXP_LNKSTA_DLLLA;
    /// The secondary bus and the devfn of slots 0 and 1 on it.
    const BUS: u8 = SECONDARY_BUS;
    const SLOT0: u32 = 0;
    const SLOT1: u32 = 1 << 3;

    fn layout() -> Result<Layout> {
        Layout::new(0x4000_0000, 256 << 20, BARS).map_err(|_: LayoutError| EINVAL)
    }

    /// The Root Port at power-on, nothing programmed, no function present.
    fn blank() -> Result<(KBox<Templates>, KBox<Fabric>)> {
        let t = KBox::new(
            Templates {
                port: template(),
                func: Template::new(&ID, &BARS, &Irqs::default()),
            },
            GFP_KERNEL,
        )?;
        let mut f = KBox::init(pin_init::init_zeroed::<Fabric>(), GFP_KERNEL)?;
        f.reset_port(&t.port);
        Ok((t, f))
    }

    /// As the module sets it up: port programmed by "firmware", functions
    /// in slots 0 and 1 with their BARs.
    fn fresh() -> Result<(KBox<Templates>, KBox<Fabric>)> {
        let (t, mut f) = blank()?;
        let l = layout()?;
        f.power_on_port(&t.port, &l);
        for s in 0..2 {
            f.power_on(&t.func, s, l.bar0(s), l.bar2(s));
        }
        Ok((t, f))
    }

    /// Reads a Root Port register (bus 0, device 0).
    fn port(f: &Fabric, offset: usize, size: usize) -> Option<u32> {
        f.read(0, 0, offset, size)
    }

    #[test]
    fn port_is_a_pcie_root_port() -> Result {
        let (t, mut f) = fresh()?;
        assert_eq!(port(&f, 0, 4), Some(0xf00e_1234));
        let class = port(&f, bindings::PCI_CLASS_REVISION as usize, 4);
        assert_eq!(class.map(|c| c >> 8), Some(0x06_0400));
        let header = port(&f, bindings::PCI_HEADER_TYPE as usize, 1);
        assert_eq!(header, Some(bindings::PCI_HEADER_TYPE_BRIDGE));
        let cap = port(&f, bindings::PCI_CAPABILITY_LIST as usize, 1);
        assert_eq!(cap, Some(PORT_EXP_CAP as u32));
        assert_eq!(port(&f, PORT_EXP_CAP, 1), Some(bindings::PCI_CAP_ID_EXP));
        assert_eq!(port(&f, PORT_EXP_CAP + 1, 1), Some(0));
        let flags = port(&f, PORT_EXP_CAP + bindings::PCI_EXP_FLAGS as usize, 2);
        assert_eq!(
            flags.map(|v| (v & bindings::PCI_EXP_FLAGS_TYPE) >> 4),
            Some(bindings::PCI_EXP_TYPE_ROOT_PORT)
        );
        assert_eq!(flags.map(|v| v & bindings::PCI_EXP_FLAGS_SLOT), Some(0));
        let lnkcap = port(&f, PORT_EXP_CAP + bindings::PCI_EXP_LNKCAP as usize, 4);
        assert_eq!(
            lnkcap.map(|v| v & bindings::PCI_EXP_LNKCAP_DLLLARC),
            Some(bindings::PCI_EXP_LNKCAP_DLLLARC)
        );
        assert_eq!(port(&f, EXP_LNKSTA, 2).map(|v| v & DLLLA), Some(DLLLA));
        // No BARs, no expansion ROM, no I/O window: all read-only zero.
        for reg in [
            bindings::PCI_BASE_ADDRESS_0,
            bindings::PCI_BASE_ADDRESS_1,
            bindings::PCI_ROM_ADDRESS1,
            bindings::PCI_IO_BASE_UPPER16,
        ] {
            f.write(&t.port, 0, 0, reg as usize, 4, !0);
            assert_eq!(port(&f, reg as usize, 4), Some(0));
        }
        f.write(&t.port, 0, 0, bindings::PCI_IO_BASE as usize, 2, 0xffff);
        assert_eq!(port(&f, bindings::PCI_IO_BASE as usize, 2), Some(0));
        // Other devices on bus 0 do not exist.
        assert_eq!(f.read(0, 1 << 3, 0, 4), None);
        assert_eq!(f.read(0, 1, 0, 4), None);
        Ok(())
    }

    #[test]
    fn bus_numbers_and_windows_have_their_write_masks() -> Result {
        let (t, mut f) = blank()?;
        // Primary, secondary, subordinate read/write; secondary latency
        // timer read-only zero.
        assert_eq!(port(&f, BUSES, 4), Some(0));
        f.write(&t.port, 0, 0, BUSES, 4, !0);
        assert_eq!(port(&f, BUSES, 4), Some(0x00ff_ffff));
        f.write(&t.port, 0, 0, BUSES + 1, 1, 0x22);
        assert_eq!(port(&f, BUSES, 4), Some(0x00ff_22ff));
        // Memory window: address bits 31:20, low nibble read-only zero.
        f.write(&t.port, 0, 0, PCI_MEMORY_BASE, 4, !0);
        assert_eq!(port(&f, PCI_MEMORY_BASE, 2), Some(0xfff0));
        assert_eq!(port(&f, PCI_MEMORY_LIMIT, 2), Some(0xfff0));
        // Prefetchable window: same, with the 64-bit type in the low nibble,
        // and read/write upper halves.
        assert_eq!(port(&f, PCI_PREF_MEMORY_BASE, 2), Some(1));
        f.write(&t.port, 0, 0, PCI_PREF_MEMORY_BASE, 4, 0);
        assert_eq!(port(&f, PCI_PREF_MEMORY_BASE, 4), Some(0x0001_0001));
        f.write(&t.port, 0, 0, PCI_PREF_MEMORY_BASE, 4, !0);
        assert_eq!(port(&f, PCI_PREF_MEMORY_BASE, 4), Some(0xfff1_fff1));
        f.write(&t.port, 0, 0, PCI_PREF_BASE_UPPER32, 4, !0);
        f.write(&t.port, 0, 0, PCI_PREF_LIMIT_UPPER32, 4, 0x1234_5678);
        assert_eq!(port(&f, PCI_PREF_BASE_UPPER32, 4), Some(!0));
        assert_eq!(port(&f, PCI_PREF_LIMIT_UPPER32, 4), Some(0x1234_5678));
        // Bridge Control: only the implemented bits stick.
        f.write(&t.port, 0, 0, PCI_BRIDGE_CONTROL, 2, 0xffff);
        assert_eq!(
            port(&f, PCI_BRIDGE_CONTROL, 2),
            Some(u32::from(BRIDGE_CTL_WRITABLE))
        );
        Ok(())
    }

    #[test]
    fn firmware_programs_buses_and_windows() -> Result {
        let (_t, f) = fresh()?;
        let l = layout()?;
        // Primary 0, secondary 1, subordinate 1.
        assert_eq!(port(&f, BUSES, 4), Some(0x0001_0100));
        // 0x44000000-0x441fffff: BAR2 of all 32 slots.
        assert_eq!(l.mem_window().start, 0x4400_0000);
        assert_eq!(port(&f, PCI_MEMORY_BASE, 2), Some(0x4400));
        assert_eq!(port(&f, PCI_MEMORY_LIMIT, 2), Some(0x4410));
        // 0x40000000-0x43ffffff: BAR0 of all 32 slots, 64-bit.
        assert_eq!(port(&f, PCI_PREF_MEMORY_BASE, 2), Some(0x4001));
        assert_eq!(port(&f, PCI_PREF_MEMORY_LIMIT, 2), Some(0x43f1));
        assert_eq!(port(&f, PCI_PREF_BASE_UPPER32, 4), Some(0));
        assert_eq!(port(&f, PCI_PREF_LIMIT_UPPER32, 4), Some(0));
        let cmd = port(&f, COMMAND, 2).unwrap_or(0);
        assert!(cmd & bindings::PCI_COMMAND_MEMORY != 0);
        // The functions answer on the secondary bus with their BARs.
        assert_eq!(f.read(BUS, SLOT0, 0, 4), Some(0xf00d_1234));
        assert_eq!(f.read(BUS, SLOT1, BAR0, 4), Some(0x4020_000c));
        assert_eq!(f.read(BUS, SLOT1, BAR2, 4), Some(0x4401_0000));
        Ok(())
    }

    #[test]
    fn secondary_bus_reset_resets_every_function() -> Result {
        let (t, mut f) = fresh()?;
        for devfn in [SLOT0, SLOT1] {
            f.write(
                &t.port,
                BUS,
                devfn,
                COMMAND,
                2,
                bindings::PCI_COMMAND_MEMORY,
            );
            assert_eq!(
                f.read(BUS, devfn, COMMAND, 2),
                Some(bindings::PCI_COMMAND_MEMORY)
            );
        }
        let bctl = port(&f, PCI_BRIDGE_CONTROL, 2).unwrap_or(0);
        let asserted = f.write(&t.port, 0, 0, PCI_BRIDGE_CONTROL, 2, bctl | SBR);
        assert_eq!(asserted, Some(Event::BusResetAsserted));
        // Held in reset: the functions do not answer, the link is down.
        assert_eq!(f.read(BUS, SLOT0, 0, 4), None);
        assert_eq!(f.write(&t.port, BUS, SLOT1, COMMAND, 2, 2), None);
        assert_eq!(port(&f, EXP_LNKSTA, 2).map(|v| v & DLLLA), Some(0));
        // Writing the bit again is no new edge.
        let again = f.write(&t.port, 0, 0, PCI_BRIDGE_CONTROL, 2, bctl | SBR);
        assert_eq!(again, Some(Event::None));
        let released = f.write(&t.port, 0, 0, PCI_BRIDGE_CONTROL, 2, bctl);
        assert_eq!(released, Some(Event::BusResetReleased));
        assert_eq!(port(&f, EXP_LNKSTA, 2).map(|v| v & DLLLA), Some(DLLLA));
        // Every function is back at its power-on state, as after an FLR:
        // decoding off, BAR addresses zero (type bits remain).
        for (slot, devfn) in [(0, SLOT0), (1, SLOT1)] {
            assert_eq!(f.read(BUS, devfn, 0, 4), Some(0xf00d_1234));
            assert_eq!(f.read(BUS, devfn, COMMAND, 2), Some(0));
            assert_eq!(f.read(BUS, devfn, BAR0, 4), Some(0xc));
            assert_eq!(f.read(BUS, devfn, BAR2, 4), Some(0));
            assert_eq!(f.resets(slot), 1);
        }
        // An empty slot stays empty; the port keeps its own configuration.
        assert!(!f.present(2));
        assert_eq!(f.resets(2), 0);
        assert_eq!(port(&f, BUSES, 4), Some(0x0001_0100));
        assert_eq!(port(&f, PCI_MEMORY_BASE, 2), Some(0x4400));
        assert_eq!(port(&f, PCI_PREF_MEMORY_BASE, 2), Some(0x4001));
        Ok(())
    }

    #[test]
    fn flr_resets_one_function_only() -> Result {
        let (t, mut f) = fresh()?;
        let devctl = EXP_CAP + bindings::PCI_EXP_DEVCTL as usize;
        let flr = bindings::PCI_EXP_DEVCTL_BCR_FLR;
        let ev = f.write(&t.port, BUS, SLOT1, devctl, 2, flr);
        assert_eq!(ev, Some(Event::FunctionReset(1)));
        assert_eq!(f.resets(1), 1);
        assert_eq!(f.resets(0), 0);
        assert_eq!(f.read(BUS, SLOT1, BAR0, 4), Some(0xc));
        assert_eq!(f.read(BUS, SLOT0, BAR0, 4), Some(0x4000_000c));
        Ok(())
    }

    #[test]
    fn requests_route_by_the_secondary_bus_number() -> Result {
        let (t, mut f) = fresh()?;
        // Only function 0 of present slots, only on the secondary bus.
        assert_eq!(f.read(BUS, SLOT0 + 1, 0, 4), None);
        assert_eq!(f.read(BUS, 2 << 3, 0, 4), None);
        assert_eq!(f.read(2, SLOT0, 0, 4), None);
        // Renumbering the secondary bus moves the functions with it.
        f.write(&t.port, 0, 0, BUSES + 1, 2, 0x0505);
        assert_eq!(f.read(5, SLOT0, 0, 4), Some(0xf00d_1234));
        assert_eq!(f.read(BUS, SLOT0, 0, 4), None);
        Ok(())
    }
}
