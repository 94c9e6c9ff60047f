// SPDX-License-Identifier: GPL-2.0

//! INTx of a mock function: its INTA# line, as the function drives it and
//! as software sees and masks it.
//!
//! The line is STATUS.INTERRUPT (bit 3 of the Status register) of the
//! function's configuration space: the function sets it while it asserts
//! the line, software can read it but not write it, and every reset (FLR,
//! D3hot to D0, Secondary Bus Reset) clears it with the rest of the
//! registers, so a reset deasserts the line. The function *signals* an
//! asserted line only while COMMAND.INTX_DISABLE is clear and it is in D0
//! ([`signalled`]); the Status bit shows the line either way, which is the
//! PCI 2.3 masking VFIO relies on (`pci_check_and_mask_intx()` reads the
//! Status bit and sets INTX_DISABLE in the interrupt handler).
//!
//! A signalled line is delivered as the level interrupt of the function
//! on the bus's INTx domain (intx_domain.rs), outside the host's lock:
//! - when the function asserts it ([`Host::fire_intx`], debugfs
//!   `fire intx 1`), and again on each assert while it stays signalled;
//! - when a configuration write makes an asserted line signalled again
//!   (INTX_DISABLE cleared: [`write`] says so, and the accessor leaves the
//!   delivery to an irq_work, since it runs under the PCI core's raw
//!   `pci_lock`, which the interrupt handler takes again);
//! - when the interrupt controller unmasks the interrupt and the line is
//!   still signalled (a level interrupt fires again once unmasked: after
//!   `enable_irq()`, or after a handler that did not quiet the device).
//!
//! Only functions with an Interrupt Pin (`intx`) have a line: functions
//! without it refuse `fire intx` and never signal. Plain data under the
//! host's raw spinlock, except the `Host` methods, which deliver.

use crate::{
    config::{ConfigSpace, Template, PM_CAP},
    fabric::{Event, Fabric},
    host::Host,
};
use kernel::{bindings, prelude::*};

const COMMAND: usize = bindings::PCI_COMMAND as usize;
const STATUS: usize = bindings::PCI_STATUS as usize;
const PIN: usize = bindings::PCI_INTERRUPT_PIN as usize;
const PM_CTRL: usize = PM_CAP + bindings::PCI_PM_CTRL as usize;
const INTERRUPT: u32 = bindings::PCI_STATUS_INTERRUPT;
const INTX_DISABLE: u32 = bindings::PCI_COMMAND_INTX_DISABLE;

/// What driving a line did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// Asserted and signalled: the interrupt is to be delivered.
    Signalled,
    /// Asserted, but held by the function (COMMAND.INTX_DISABLE set, or
    /// not in D0): nothing is delivered until software lets it through.
    Held,
    /// Deasserted.
    Low,
}

/// Whether a function with Interrupt Pin `pin`, COMMAND and STATUS
/// `cmd_status` (the dword at 0x04) and PMCSR `pmcsr` signals its line:
/// it has a pin, the line is asserted, INTX_DISABLE is clear, and it is in
/// D0.
pub(crate) fn signals(pin: u32, cmd_status: u32, pmcsr: u32) -> bool {
    pin != 0
        && cmd_status >> 16 & INTERRUPT != 0
        && cmd_status & INTX_DISABLE == 0
        && pmcsr & bindings::PCI_PM_CTRL_STATE_MASK == 0
}

/// Whether the function has an Interrupt Pin.
pub(crate) fn has_pin(c: &ConfigSpace) -> bool {
    c.read(PIN, 1) != 0
}

/// Whether the function asserts its line (STATUS.INTERRUPT).
pub(crate) fn asserted(c: &ConfigSpace) -> bool {
    c.read(STATUS, 2) & INTERRUPT != 0
}

/// Whether the function signals its line (see [`signals`]).
pub(crate) fn signalled(c: &ConfigSpace) -> bool {
    signals(c.read(PIN, 1), c.read(COMMAND, 4), c.read(PM_CTRL, 2))
}

/// Drives the line of a function that has a pin to `level`: sets or clears
/// STATUS.INTERRUPT and says whether the interrupt is to be delivered.
pub(crate) fn drive(c: &mut ConfigSpace, level: bool) -> Line {
    let status = c.read(STATUS, 2);
    let status = if level {
        status | INTERRUPT
    } else {
        status & !INTERRUPT
    };
    c.set16(STATUS, status as u16);
    match (level, signalled(c)) {
        (false, _) => Line::Low,
        (true, true) => Line::Signalled,
        (true, false) => Line::Held,
    }
}

/// Whether the function answering at `bus`/`devfn` signals its line.
fn signalled_at(f: &Fabric, bus: u8, devfn: u32) -> bool {
    let read = |at, size| f.read(bus, devfn, at, size);
    match (read(PIN, 1), read(COMMAND, 4), read(PM_CTRL, 2)) {
        (Some(pin), Some(cs), Some(pm)) => signals(pin, cs, pm),
        _ => false,
    }
}

/// A configuration write as the accessors do it ([`Fabric::write`]), which
/// also says which slot's line the write made signalled again (an
/// asserted line whose INTX_DISABLE software cleared): the caller
/// re-delivers that interrupt once it is out of the accessor.
pub(crate) fn write(
    f: &mut Fabric,
    port: &Template,
    bus: u8,
    devfn: u32,
    offset: usize,
    size: usize,
    value: u32,
) -> (Option<Event>, Option<usize>) {
    let before = signalled_at(f, bus, devfn);
    let event = f.write(port, bus, devfn, offset, size, value);
    let unmasked = !before && signalled_at(f, bus, devfn);
    (event, unmasked.then_some((devfn >> 3) as usize))
}

impl Host {
    /// Drives the INTx line of the function in `slot` to `level` (debugfs
    /// `fire intx 1` or `intx 0`), and delivers the interrupt if the
    /// function signals it. `ENODEV` if the slot is empty or held in
    /// reset, or if the function has no Interrupt Pin.
    pub(crate) fn fire_intx(&self, slot: usize, level: bool) -> Result {
        let line = {
            let mut fabric = self.fabric.lock();
            let Some(cfg) = fabric.function_mut(slot) else {
                pr_err!("fire: slot {} is empty or held in reset\n", slot);
                return Err(ENODEV);
            };
            if !has_pin(cfg) {
                pr_err!(
                    "fire: the function in slot {} has no INTx (Interrupt Pin 0)\n",
                    slot
                );
                return Err(ENODEV);
            }
            let line = drive(cfg, level);
            if line == Line::Held {
                fabric.count_irq(slot, |s| s.intx_masked += 1);
            }
            line
        };
        if line == Line::Signalled {
            self.deliver_intx(slot);
        }
        Ok(())
    }

    /// Raises the INTx interrupt of the function in `slot` (without the
    /// host's lock held) and counts it.
    fn deliver_intx(&self, slot: usize) {
        let delivered = self.intx.deliver(slot);
        self.fabric.lock().count_irq(slot, |s| {
            if delivered {
                s.intx_delivered += 1
            } else {
                s.intx_dropped += 1
            }
        });
    }

    /// Delivers again the INTx interrupt of every function in `slots` (a
    /// bit per slot) whose line is still signalled: the irq_work of the
    /// INTx domain runs this after a configuration write cleared
    /// INTX_DISABLE, or after the interrupt was unmasked.
    pub(crate) fn recheck_intx(&self, slots: u32) {
        for slot in (0..32).filter(|s| slots >> s & 1 != 0) {
            let signalled = self
                .fabric
                .lock()
                .function_mut(slot)
                .is_some_and(|c| signalled(c));
            if signalled {
                self.deliver_intx(slot);
            }
        }
    }
}
