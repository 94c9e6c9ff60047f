// SPDX-License-Identifier: GPL-2.0

//! KUnit suite for the INTx line of a mock function (intx.rs), without
//! the interrupt core: STATUS.INTERRUPT follows the line, INTX_DISABLE
//! (and D3hot) holds it, a configuration write clearing INTX_DISABLE with
//! the line asserted asks for re-delivery, and every reset deasserts it.

use kernel::prelude::*;

#[kunit_tests(mock_pci_intx)]
mod tests {
    use crate::{
        bridge,
        config::*,
        config_tests::{BARS, ID},
        fabric::{Event, Fabric, Templates},
        intx::{self, Line},
        layout::{Layout, LayoutError},
        msi::Irqs,
    };
    use kernel::{bindings, prelude::*};

    const COMMAND: usize = bindings::PCI_COMMAND as usize;
    const STATUS: usize = bindings::PCI_STATUS as usize;
    const PIN: usize = bindings::PCI_INTERRUPT_PIN as usize;
    const DEVCTL: usize = EXP_CAP + bindings::PCI_EXP_DEVCTL as usize;
    const PMCSR: usize = PM_CAP + bindings::PCI_PM_CTRL as usize;
    const INTERRUPT: u32 = bindings::PCI_STATUS_INTERRUPT;
    const DISABLE: u32 = bindings::PCI_COMMAND_INTX_DISABLE;
    const BUS: u8 = bridge::SECONDARY_BUS;

    fn irqs(intx: bool) -> Irqs {
        Irqs {
            msi: 0,
            msix: 0,
            intx,
        }
    }

    fn fresh(intx: bool) -> Result<(KBox<Template>, KBox<ConfigSpace>)> {
        let t = KBox::new(Template::new(&ID, &BARS, &irqs(intx)), GFP_KERNEL)?;
        let mut c = KBox::new(ConfigSpace::zeroed(), GFP_KERNEL)?;
        c.reset(&t);
        Ok((t, c))
    }

    /// A fabric with the Root Port programmed and a function with a pin in
    /// slots 0 and 1 and one without in slot 2.
    fn fabric() -> Result<(KBox<Templates>, KBox<Template>, KBox<Fabric>)> {
        let t = KBox::new(
            Templates {
                port: bridge::template(),
                func: Template::new(&ID, &BARS, &irqs(true)),
            },
            GFP_KERNEL,
        )?;
        let none = KBox::new(Template::new(&ID, &BARS, &irqs(false)), GFP_KERNEL)?;
        let l = Layout::new(0x4000_0000, 256 << 20, BARS).map_err(|_: LayoutError| EINVAL)?;
        let mut f = KBox::init(pin_init::init_zeroed::<Fabric>(), GFP_KERNEL)?;
        f.power_on_port(&t.port, &l);
        f.power_on(&t.func, 0, l.bar0(0), l.bar2(0));
        f.power_on(&t.func, 1, l.bar0(1), l.bar2(1));
        f.power_on(&none, 2, l.bar0(2), l.bar2(2));
        Ok((t, none, f))
    }

    fn status(c: &ConfigSpace) -> u32 {
        c.read(STATUS, 2)
    }

    /// STATUS.INTERRUPT is the line: set while asserted, clear once
    /// deasserted, and software can neither set nor clear it (it is not
    /// write-1-to-clear like the error bits).
    #[test]
    fn status_follows_the_line() -> Result {
        let (t, mut c) = fresh(true)?;
        assert_eq!(c.read(PIN, 1), 1);
        assert!(intx::has_pin(&c));
        assert!(!intx::asserted(&c));
        assert_eq!(status(&c) & INTERRUPT, 0);
        assert_eq!(intx::drive(&mut c, true), Line::Signalled);
        assert!(intx::asserted(&c) && intx::signalled(&c));
        assert_eq!(status(&c) & INTERRUPT, INTERRUPT);
        // Capabilities List stays; a write of all ones clears nothing.
        assert_eq!(status(&c), INTERRUPT | bindings::PCI_STATUS_CAP_LIST);
        c.write(&t, STATUS, 2, 0xffff);
        assert_eq!(status(&c) & INTERRUPT, INTERRUPT);
        // Asserting an asserted line signals it again (a level input).
        assert_eq!(intx::drive(&mut c, true), Line::Signalled);
        assert_eq!(intx::drive(&mut c, false), Line::Low);
        assert!(!intx::asserted(&c) && !intx::signalled(&c));
        assert_eq!(status(&c), bindings::PCI_STATUS_CAP_LIST);
        c.write(&t, STATUS, 2, INTERRUPT);
        assert_eq!(status(&c) & INTERRUPT, 0);
        Ok(())
    }

    /// COMMAND.INTX_DISABLE holds the line (the Status bit still shows
    /// it), and so does D3hot; a function without a pin never signals.
    #[test]
    fn intx_disable_holds_the_line() -> Result {
        let (t, mut c) = fresh(true)?;
        c.write(&t, COMMAND, 2, DISABLE);
        assert_eq!(c.read(COMMAND, 2), DISABLE);
        assert_eq!(intx::drive(&mut c, true), Line::Held);
        assert!(intx::asserted(&c) && !intx::signalled(&c));
        assert_eq!(status(&c) & INTERRUPT, INTERRUPT);
        c.write(&t, COMMAND, 2, 0);
        assert!(intx::signalled(&c));
        // D3hot: held; back in D0 the function has reset (no
        // No_Soft_Reset), which deasserted the line.
        c.write(&t, PMCSR, 2, 3);
        assert!(!intx::signalled(&c));
        assert_eq!(intx::drive(&mut c, true), Line::Held);
        c.write(&t, PMCSR, 2, 0);
        assert!(!intx::asserted(&c));

        let (_, mut none) = fresh(false)?;
        assert_eq!(none.read(PIN, 1), 0);
        assert!(!intx::has_pin(&none));
        none.set16(STATUS, INTERRUPT as u16);
        assert!(!intx::signalled(&none));
        // Only the combination delivers.
        let cs = |cmd: u32, st: u32| cmd | st << 16;
        assert!(intx::signals(1, cs(0, INTERRUPT), 0));
        assert!(!intx::signals(0, cs(0, INTERRUPT), 0));
        assert!(!intx::signals(1, cs(0, 0), 0));
        assert!(!intx::signals(1, cs(DISABLE, INTERRUPT), 0));
        assert!(!intx::signals(1, cs(0, INTERRUPT), 3));
        Ok(())
    }

    /// A configuration write that clears INTX_DISABLE while the line is
    /// asserted asks for re-delivery of that slot; no other write does
    /// (setting it, clearing it with the line low, writing it clear
    /// again, another function, the Root Port, a function without pin).
    #[test]
    fn clearing_intx_disable_asks_for_redelivery() -> Result {
        let (t, _none, mut f) = fabric()?;
        let port = &t.port;
        let w =
            |f: &mut Fabric, devfn: u32, v: u32| intx::write(f, port, BUS, devfn, COMMAND, 2, v);
        // Clearing with the line low: nothing to deliver.
        assert_eq!(w(&mut f, 8, DISABLE), (Some(Event::None), None));
        assert_eq!(w(&mut f, 8, 0), (Some(Event::None), None));
        // Asserted while disabled, then enabled: slot 1 again.
        assert_eq!(w(&mut f, 8, DISABLE), (Some(Event::None), None));
        let c = f.function_mut(1).ok_or(ENODEV)?;
        assert_eq!(intx::drive(c, true), Line::Held);
        assert_eq!(w(&mut f, 0, 0), (Some(Event::None), None));
        assert_eq!(w(&mut f, 8, 0), (Some(Event::None), Some(1)));
        assert_eq!(w(&mut f, 8, 0), (Some(Event::None), None));
        // Byte writes to COMMAND's upper byte count too.
        assert_eq!(
            intx::write(&mut f, port, BUS, 8, COMMAND + 1, 1, DISABLE >> 8),
            (Some(Event::None), None)
        );
        assert_eq!(
            intx::write(&mut f, port, BUS, 8, COMMAND + 1, 1, 0),
            (Some(Event::None), Some(1))
        );
        // Setting it while asserted is masking: nothing to deliver.
        assert_eq!(w(&mut f, 8, DISABLE), (Some(Event::None), None));
        // The Root Port and a function without pin never ask.
        assert_eq!(
            intx::write(&mut f, port, 0, 0, COMMAND, 2, 0),
            (Some(Event::None), None)
        );
        let c = f.function_mut(2).ok_or(ENODEV)?;
        c.set16(STATUS, INTERRUPT as u16);
        assert_eq!(w(&mut f, 16, DISABLE), (Some(Event::None), None));
        assert_eq!(w(&mut f, 16, 0), (Some(Event::None), None));
        // Nothing answers at an empty slot.
        assert_eq!(w(&mut f, 24, 0), (None, None));
        Ok(())
    }

    /// FLR, D3hot to D0 and a Secondary Bus Reset deassert the line; a
    /// reset never asks for re-delivery.
    #[test]
    fn reset_deasserts() -> Result {
        let (t, _none, mut f) = fabric()?;
        let port = &t.port;
        let assert_line = |f: &mut Fabric, slot: usize| -> Result {
            let c = f.function_mut(slot).ok_or(ENODEV)?;
            assert_eq!(intx::drive(c, true), Line::Signalled);
            Ok(())
        };
        let asserted =
            |f: &mut Fabric, slot: usize| f.function_mut(slot).is_some_and(|c| intx::asserted(c));
        let flr = bindings::PCI_EXP_DEVCTL_BCR_FLR;
        assert_line(&mut f, 0)?;
        assert_eq!(
            intx::write(&mut f, port, BUS, 0, DEVCTL, 2, flr),
            (Some(Event::FunctionReset(0)), None)
        );
        assert!(!asserted(&mut f, 0));
        assert_line(&mut f, 0)?;
        assert_eq!(
            intx::write(&mut f, port, BUS, 0, PMCSR, 2, 3),
            (Some(Event::None), None)
        );
        assert_eq!(
            intx::write(&mut f, port, BUS, 0, PMCSR, 2, 0),
            (Some(Event::FunctionReset(0)), None)
        );
        assert!(!asserted(&mut f, 0));
        assert_line(&mut f, 0)?;
        assert_line(&mut f, 1)?;
        let bctl = bridge::PCI_BRIDGE_CONTROL;
        let sbr = bindings::PCI_BRIDGE_CTL_BUS_RESET;
        assert_eq!(
            intx::write(&mut f, port, 0, 0, bctl, 2, sbr),
            (Some(Event::BusResetAsserted), None)
        );
        assert_eq!(
            intx::write(&mut f, port, 0, 0, bctl, 2, 0),
            (Some(Event::BusResetReleased), None)
        );
        assert!(!asserted(&mut f, 0) && !asserted(&mut f, 1));
        Ok(())
    }
}
