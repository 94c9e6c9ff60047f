// SPDX-License-Identifier: GPL-2.0

//! KUnit suite for the interrupt registers: the default configuration
//! space unchanged, the capability chain of every combination, MSI and
//! MSI-X register semantics, their reset, and the reset image of the MSI-X
//! table.

use kernel::prelude::*;

#[kunit_tests(mock_pci_msi)]
mod tests {
    use crate::{
        bridge,
        config::*,
        config_tests::{BARS, ID},
        fabric::{Event, Fabric, Templates},
        layout::{Layout, LayoutError},
        message::{Message, Outcome},
        msi::*,
        msix::{self, Table},
    };
    use kernel::{bindings, prelude::*};

    const CAP_LIST: usize = bindings::PCI_CAPABILITY_LIST as usize;
    const PIN: usize = bindings::PCI_INTERRUPT_PIN as usize;
    const MSI_FLAGS: usize = MSI_CAP + bindings::PCI_MSI_FLAGS as usize;
    const MSI_ADDR_LO: usize = MSI_CAP + bindings::PCI_MSI_ADDRESS_LO as usize;
    const MSI_ADDR_HI: usize = MSI_CAP + bindings::PCI_MSI_ADDRESS_HI as usize;
    const MSI_DATA: usize = MSI_CAP + bindings::PCI_MSI_DATA_64 as usize;
    const MSI_MASK: usize = MSI_CAP + bindings::PCI_MSI_MASK_64 as usize;
    const MSI_PENDING: usize = MSI_CAP + bindings::PCI_MSI_PENDING_64 as usize;
    const MSIX_FLAGS: usize = MSIX_CAP + bindings::PCI_MSIX_FLAGS as usize;
    const MSIX_TABLE: usize = MSIX_CAP + bindings::PCI_MSIX_TABLE as usize;
    const MSIX_PBA: usize = MSIX_CAP + bindings::PCI_MSIX_PBA as usize;
    const DEVCTL: usize = EXP_CAP + bindings::PCI_EXP_DEVCTL as usize;
    const PMCSR: usize = PM_CAP + bindings::PCI_PM_CTRL as usize;
    /// Message Control of MSI: 64-bit and per-vector masking, read-only.
    const MSI_64_PVM: u32 = bindings::PCI_MSI_FLAGS_64BIT | bindings::PCI_MSI_FLAGS_MASKBIT;
    const MSIX_RW: u32 = bindings::PCI_MSIX_FLAGS_MASKALL | bindings::PCI_MSIX_FLAGS_ENABLE;

    fn irqs(msi: u32, msix: u32, intx: bool) -> Irqs {
        Irqs { msi, msix, intx }
    }

    fn fresh_with(bars: &BarSizes, i: Irqs) -> Result<(KBox<Template>, KBox<ConfigSpace>)> {
        let t = KBox::new(Template::new(&ID, bars, &i), GFP_KERNEL)?;
        let mut c = KBox::new(ConfigSpace::zeroed(), GFP_KERNEL)?;
        c.reset(&t);
        Ok((t, c))
    }

    fn fresh(i: Irqs) -> Result<(KBox<Template>, KBox<ConfigSpace>)> {
        fresh_with(&BARS, i)
    }

    /// The configuration space of a function without interrupts as it was
    /// before they existed, written out register by register in numbers
    /// (not through the constants `Template::new` uses).
    fn todays_default() -> Template {
        let mut t = Template::blank();
        // Values.
        t.set32(0x00, 0xf00d_1234);
        t.set16(0x06, 0x0010);
        t.set32(0x08, 0xff00_0001);
        t.set32(0x10, 0x0000_000c);
        t.set32(0x2c, 0x0001_1234);
        t.set8(0x34, 0x40);
        t.set32(0x40, 0x0003_5001);
        t.set32(0x50, 0x0002_0010);
        t.set32(0x54, 0x1000_8000);
        t.set32(0x5c, 0x0000_0011);
        t.set16(0x62, 0x0011);
        // Writable and write-1-to-clear bits.
        t.set_mask16(0x04, 0x0546, 0);
        t.set_mask16(0x06, 0, 0xf900);
        t.set_mask8(0x0c, 0xff);
        t.set_mask32(0x10, 0xffe0_0000, 0);
        t.set_mask32(0x14, 0xffff_ffff, 0);
        t.set_mask32(0x18, 0xffff_0000, 0);
        t.set_mask8(0x3c, 0xff);
        t.set_mask16(0x44, 0x0003, 0);
        t.set_mask16(0x58, 0xf8ff, 0);
        t.set_mask16(0x5a, 0, 0x000f);
        t.set_mask16(0x60, 0x00cb, 0);
        t
    }

    #[test]
    fn no_interrupts_keep_the_configuration_space_byte_for_byte() -> Result {
        let old = KBox::new(todays_default(), GFP_KERNEL)?;
        let t = KBox::new(Template::new(&ID, &BARS, &Irqs::default()), GFP_KERNEL)?;
        assert_eq!(t.first_difference(&old), None);
        assert!(t.msix().is_none());
        Ok(())
    }

    /// The capabilities from the Capabilities Pointer on: (offset, ID).
    fn walk(c: &ConfigSpace) -> Result<KVec<(usize, u32)>> {
        let mut found = KVec::new();
        let mut at = c.read(CAP_LIST, 1) as usize;
        while at != 0 && found.len() < 8 {
            found.push((at, c.read(at, 1)), GFP_KERNEL)?;
            at = c.read(at + 1, 1) as usize;
        }
        Ok(found)
    }

    #[test]
    fn capability_chain_of_each_combination() -> Result {
        let pm = (PM_CAP, bindings::PCI_CAP_ID_PM);
        let exp = (EXP_CAP, bindings::PCI_CAP_ID_EXP);
        let msi = (MSI_CAP, bindings::PCI_CAP_ID_MSI);
        let msix = (MSIX_CAP, bindings::PCI_CAP_ID_MSIX);
        let cases: [(Irqs, &[(usize, u32)]); 5] = [
            (irqs(0, 0, false), &[pm, exp]),
            (irqs(0, 0, true), &[pm, exp]),
            (irqs(4, 0, false), &[pm, exp, msi]),
            (irqs(0, 8, false), &[pm, exp, msix]),
            (irqs(32, 2048, true), &[pm, exp, msi, msix]),
        ];
        for (i, want) in cases {
            let bars = BarSizes {
                bar0: BARS.bar0,
                bar2: 128 << 10,
            };
            let (_t, c) = fresh_with(&bars, i)?;
            assert_eq!(&walk(&c)?[..], want);
        }
        Ok(())
    }

    #[test]
    fn interrupt_pin_is_read_only() -> Result {
        for (intx, pin) in [(false, 0), (true, 1)] {
            let (t, mut c) = fresh(irqs(0, 0, intx))?;
            assert_eq!(c.read(PIN, 1), pin);
            c.write(&t, PIN - 1, 2, 0xffff);
            // Interrupt Line stays read/write.
            assert_eq!(c.read(PIN - 1, 2), pin << 8 | 0xff);
        }
        Ok(())
    }

    #[test]
    fn msi_message_control() -> Result {
        let (t, mut c) = fresh(irqs(16, 0, false))?;
        // 16 vectors capable (MMC 100b), one enabled, disabled.
        assert_eq!(c.read(MSI_FLAGS, 2), MSI_64_PVM | 4 << 1);
        // Enable and MME are read/write; MMC, 64-bit and PVM are not.
        c.write(&t, MSI_FLAGS, 2, 1 | 2 << 4);
        assert_eq!(c.read(MSI_FLAGS, 2), MSI_64_PVM | 4 << 1 | 2 << 4 | 1);
        c.write(&t, MSI_FLAGS, 2, 0);
        assert_eq!(c.read(MSI_FLAGS, 2), MSI_64_PVM | 4 << 1);
        // More than capable (and every other bit) reads as capable.
        c.write(&t, MSI_FLAGS, 2, 0xffff);
        assert_eq!(c.read(MSI_FLAGS, 2), MSI_64_PVM | 4 << 1 | 4 << 4 | 1);
        c.write(&t, MSI_FLAGS, 1, 5 << 4);
        assert_eq!(c.read(MSI_FLAGS, 2), MSI_64_PVM | 4 << 1 | 4 << 4);
        // The capability ID and next pointer are read-only.
        c.write(&t, MSI_CAP, 2, 0);
        assert_eq!(c.read(MSI_CAP, 2), bindings::PCI_CAP_ID_MSI);
        for (vectors, mmc) in [(1, 0), (2, 1), (32, 5)] {
            let (t, mut c) = fresh(irqs(vectors, 0, false))?;
            c.write(&t, MSI_FLAGS, 2, 7 << 4);
            assert_eq!(c.read(MSI_FLAGS, 2), MSI_64_PVM | mmc << 1 | mmc << 4);
        }
        Ok(())
    }

    #[test]
    fn msi_address_data_and_mask_bits() -> Result {
        for vectors in [1, 2, 16, 32] {
            let (t, mut c) = fresh(irqs(vectors, 0, false))?;
            for reg in [MSI_ADDR_LO, MSI_ADDR_HI, MSI_DATA, MSI_MASK, MSI_PENDING] {
                assert_eq!(c.read(reg, 4), 0);
                c.write(&t, reg, 4, 0xffff_ffff);
            }
            // Dword-aligned address, 16 bits of data, a mask bit per
            // vector, nothing pending.
            assert_eq!(c.read(MSI_ADDR_LO, 4), 0xffff_fffc);
            assert_eq!(c.read(MSI_ADDR_HI, 4), 0xffff_ffff);
            assert_eq!(c.read(MSI_DATA, 4), 0xffff);
            assert_eq!(c.read(MSI_MASK, 4), u32::MAX >> (32 - vectors));
            assert_eq!(c.read(MSI_PENDING, 4), 0);
        }
        Ok(())
    }

    #[test]
    fn msix_registers() -> Result {
        let bir = 2;
        // 64 entries in a 64 KiB BAR2: the table at 32 KiB, 1 KiB of
        // entries, the PBA right after it.
        let (t, mut c) = fresh(irqs(0, 64, false))?;
        assert_eq!(c.read(MSIX_FLAGS, 2), 63);
        assert_eq!(c.read(MSIX_TABLE, 4), 0x8000 | bir);
        assert_eq!(c.read(MSIX_PBA, 4), 0x8400 | bir);
        for (reg, size) in [(MSIX_CAP, 2), (MSIX_TABLE, 4), (MSIX_PBA, 4)] {
            let v = c.read(reg, size);
            c.write(&t, reg, size, !v);
            assert_eq!(c.read(reg, size), v);
        }
        // Function Mask and Enable are read/write, Table Size is not.
        c.write(&t, MSIX_FLAGS, 2, 0xffff);
        assert_eq!(c.read(MSIX_FLAGS, 2), MSIX_RW | 63);
        c.write(&t, MSIX_FLAGS, 2, 0);
        assert_eq!(c.read(MSIX_FLAGS, 2), 63);
        let table = t.msix().ok_or(EINVAL)?;
        assert_eq!((table.vectors(), table.offset()), (64, 0x8000));
        assert_eq!(table.pba_offset(), 0x8400);
        // 2048 entries fill 32 KiB of a 128 KiB BAR2, one in a 4 KiB one.
        let cases = [
            (2048, 128 << 10, 0x7ff, 0x1_0000, 0x1_8000),
            (1, 4096, 0, 0x800, 0x810),
        ];
        for (vectors, bar2, size, table, pba) in cases {
            let bars = BarSizes {
                bar0: BARS.bar0,
                bar2,
            };
            let (_t, c) = fresh_with(&bars, irqs(0, vectors, false))?;
            assert_eq!(c.read(MSIX_FLAGS, 2), size);
            assert_eq!(c.read(MSIX_TABLE, 4), table | bir);
            assert_eq!(c.read(MSIX_PBA, 4), pba | bir);
        }
        Ok(())
    }

    /// The interrupt registers a reset restores: (offset, size).
    const RESTORED: [(usize, usize); 7] = [
        (MSI_FLAGS, 2),
        (MSI_ADDR_LO, 4),
        (MSI_ADDR_HI, 4),
        (MSI_DATA, 2),
        (MSI_MASK, 4),
        (MSIX_FLAGS, 2),
        (PIN, 1),
    ];

    /// What a driver sets up for MSI (8 vectors, 8 enabled) and MSI-X (16
    /// entries), through `write(offset, size, value)`.
    fn program(mut write: impl FnMut(usize, usize, u32)) {
        write(MSI_ADDR_LO, 4, 0xfee0_0000);
        write(MSI_ADDR_HI, 4, 1);
        write(MSI_DATA, 2, 0x41);
        write(MSI_MASK, 4, 0xff);
        write(MSI_FLAGS, 2, 1 | 3 << 4);
        write(MSIX_FLAGS, 2, MSIX_RW);
    }

    /// Whether `read(offset, size)` shows the power-on interrupt registers
    /// of 8 MSI vectors, 16 MSI-X entries and INTA#.
    fn at_power_on(read: impl Fn(usize, usize) -> u32) -> bool {
        let want = [MSI_64_PVM | 3 << 1, 0, 0, 0, 0, 15, 1];
        RESTORED
            .iter()
            .zip(want)
            .all(|(&(reg, size), v)| read(reg, size) == v)
    }

    #[test]
    fn flr_and_pm_reset_restore_the_interrupt_registers() -> Result {
        let (t, mut c) = fresh(irqs(8, 16, true))?;
        assert!(at_power_on(|reg, size| c.read(reg, size)));
        program(|reg, size, v| {
            c.write(&t, reg, size, v);
        });
        assert_eq!(c.read(MSI_FLAGS, 2), MSI_64_PVM | 3 << 1 | 3 << 4 | 1);
        assert_eq!(c.read(MSIX_FLAGS, 2), MSIX_RW | 15);
        assert!(!at_power_on(|reg, size| c.read(reg, size)));
        let flr = bindings::PCI_EXP_DEVCTL_BCR_FLR;
        assert_eq!(c.write(&t, DEVCTL, 2, flr), Effect::Reset);
        assert!(at_power_on(|reg, size| c.read(reg, size)));
        // D3hot to D0.
        program(|reg, size, v| {
            c.write(&t, reg, size, v);
        });
        assert_eq!(c.write(&t, PMCSR, 2, 3), Effect::None);
        assert_eq!(c.write(&t, PMCSR, 2, 0), Effect::Reset);
        assert!(at_power_on(|reg, size| c.read(reg, size)));
        Ok(())
    }

    #[test]
    fn secondary_bus_reset_restores_the_interrupt_registers() -> Result {
        let t = KBox::new(
            Templates {
                port: bridge::template(),
                func: Template::new(&ID, &BARS, &irqs(8, 16, true)),
            },
            GFP_KERNEL,
        )?;
        let l = Layout::new(0x4000_0000, 256 << 20, BARS).map_err(|_: LayoutError| EINVAL)?;
        let mut f = KBox::init(pin_init::init_zeroed::<Fabric>(), GFP_KERNEL)?;
        f.power_on_port(&t.port, &l);
        f.power_on(&t.func, 0, l.bar0(0), l.bar2(0));
        let bus = bridge::SECONDARY_BUS;
        program(|reg, size, v| {
            f.write(&t.port, bus, 0, reg, size, v);
        });
        let read = |f: &Fabric, reg, size| f.read(bus, 0, reg, size).unwrap_or(!0);
        assert!(!at_power_on(|reg, size| read(&f, reg, size)));
        let bctl = bridge::PCI_BRIDGE_CONTROL;
        let sbr = bindings::PCI_BRIDGE_CTL_BUS_RESET;
        assert_eq!(
            f.write(&t.port, 0, 0, bctl, 2, sbr),
            Some(Event::BusResetAsserted)
        );
        assert_eq!(
            f.write(&t.port, 0, 0, bctl, 2, 0),
            Some(Event::BusResetReleased)
        );
        assert!(at_power_on(|reg, size| read(&f, reg, size)));
        Ok(())
    }

    #[test]
    fn msix_table_reset_image() -> Result {
        const FILL: u8 = 0xa5;
        for (vectors, bar2) in [
            (1usize, 4096usize),
            (64, 64 << 10),
            (100, 64 << 10),
            (2048, 128 << 10),
        ] {
            let table = Table::new(vectors as u32, bar2 as u64);
            let mut bar = KVec::from_elem(FILL, bar2, GFP_KERNEL)?;
            table.reset_with(|at, bytes| {
                let at = at as usize;
                let dst = bar.get_mut(at..at + bytes.len()).ok_or(EINVAL)?;
                dst.copy_from_slice(bytes);
                Ok(())
            })?;
            let (start, pba) = (table.offset() as usize, table.pba_offset() as usize);
            let end = pba + vectors.div_ceil(64) * 8;
            // Every entry masked, address and data zero.
            for e in bar[start..pba].chunks_exact(16) {
                assert_eq!(e, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
            }
            assert_eq!(pba - start, 16 * vectors);
            // Nothing pending; the rest of the BAR untouched.
            assert!(bar[pba..end].iter().all(|&b| b == 0));
            assert!(bar[..start].iter().all(|&b| b == FILL));
            assert!(bar[end..].iter().all(|&b| b == FILL));
        }
        Ok(())
    }

    /// MSI: the vector must be enabled (MME); disabled, masked (pending
    /// latched) and sent, with the vector in the data's low bits.
    #[test]
    fn msi_raise() -> Result {
        let (t, mut c) = fresh(irqs(16, 0, false))?;
        let enable = bindings::PCI_MSI_FLAGS_ENABLE;
        assert_eq!(check_vector(&c, 0), Ok(()));
        assert_eq!(check_vector(&c, 1), Err(EINVAL));
        assert_eq!(raise(&mut c, 0), Outcome::Disabled);
        // Four vectors (MME 2), enabled, at 0x1_feef_f000 with data 0x40.
        c.write(&t, MSI_FLAGS, 2, enable | 2 << 4);
        c.write(&t, MSI_ADDR_LO, 4, 0xfeef_f000);
        c.write(&t, MSI_ADDR_HI, 4, 1);
        c.write(&t, MSI_DATA, 2, 0x43);
        assert_eq!(check_vector(&c, 3), Ok(()));
        assert_eq!(check_vector(&c, 4), Err(EINVAL));
        let sent = |data| {
            Outcome::Sent(Message {
                address: 0x1_feef_f000,
                data,
            })
        };
        assert_eq!(raise(&mut c, 0), sent(0x40));
        assert_eq!(raise(&mut c, 3), sent(0x43));
        c.write(&t, MSI_MASK, 4, 1 << 2);
        assert_eq!(raise(&mut c, 2), Outcome::Pending);
        assert_eq!(c.read(MSI_PENDING, 4), 1 << 2);
        assert_eq!(raise(&mut c, 1), sent(0x41));
        // Software cannot clear a pending bit.
        c.write(&t, MSI_PENDING, 4, 0);
        assert_eq!(c.read(MSI_PENDING, 4), 1 << 2);
        Ok(())
    }

    /// MSI-X: disabled, function mask, entry mask, sent; entries and PBA
    /// bits of a table.
    #[test]
    fn msix_outcome() {
        let enable = bindings::PCI_MSIX_FLAGS_ENABLE;
        let maskall = bindings::PCI_MSIX_FLAGS_MASKALL;
        let mut entry = [0u8; msix::ENTRY];
        entry[0..4].copy_from_slice(&0xfeef_f000u32.to_le_bytes());
        entry[4..8].copy_from_slice(&2u32.to_le_bytes());
        entry[8..12].copy_from_slice(&0x805u32.to_le_bytes());
        let sent = Outcome::Sent(Message {
            address: 0x2_feef_f000,
            data: 0x805,
        });
        assert_eq!(msix::outcome(0, &entry), Outcome::Disabled);
        assert_eq!(msix::outcome(enable, &entry), sent);
        assert_eq!(msix::outcome(enable | maskall, &entry), Outcome::Pending);
        entry[12] = 1;
        assert_eq!(msix::outcome(enable, &entry), Outcome::Pending);
        let table = Table::new(64, 64 * 1024);
        assert_eq!(table.entry(0), Some(32 * 1024));
        assert_eq!(table.entry(63), Some(32 * 1024 + 63 * 16));
        assert_eq!(table.entry(64), None);
        assert_eq!(table.pending_bit(0), (u64::from(table.pba_offset()), 1));
        assert_eq!(
            table.pending_bit(13),
            (u64::from(table.pba_offset()) + 1, 1 << 5)
        );
    }
}
