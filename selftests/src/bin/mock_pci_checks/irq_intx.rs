// SPDX-License-Identifier: GPL-2.0

//! INTx delivery end to end through stock vfio-pci. mock-pci's debugfs
//! `fire` takes `intx 1` (assert the function's INTA# line) and `intx 0`
//! (deassert it); `irqs` counts `intx_delivered` (the line signalled and
//! its Linux interrupt raised), `intx_masked` (asserted, but held by
//! COMMAND.INTX_DISABLE) and `intx_dropped`. vfio-pci uses PCI 2.3
//! masking: its handler sets INTX_DISABLE when STATUS.INTERRUPT says the
//! device asserts the line (`pci_check_and_mask_intx()`). With the device
//! opened on the group path and INTx on an eventfd:
//!
//! * a. `VFIO_DEVICE_GET_IRQ_INFO` for INTx: count 1, flags EVENTFD,
//!   MASKABLE and AUTOMASKED; the Interrupt Pin is 1 and the PCI core
//!   gave the device an interrupt (sysfs `irq`);
//! * b. SET_IRQS with an eventfd: /proc/interrupts has the `vfio-intx`
//!   line on the `MOCK-INTx` chip (level), INTX_DISABLE is clear;
//! * c. `intx 1`: exactly one eventfd count, `intx_delivered` +1, the
//!   device shows STATUS.INTERRUPT and vfio set INTX_DISABLE (automasked);
//! * d. `intx 1` again: the line stays asserted and masked, no eventfd,
//!   `intx_masked` +1, /proc/interrupts does not move;
//! * e. `intx 0`, then `VFIO_IRQ_SET_ACTION_UNMASK`: STATUS.INTERRUPT and
//!   INTX_DISABLE clear, no eventfd; `intx 1` then signals once more;
//! * f. `VFIO_IRQ_SET_ACTION_MASK` with the line low holds the next
//!   `intx 1` (`intx_masked`, no eventfd); UNMASK with the line still
//!   asserted signals the eventfd once (vfio-pci's own resend:
//!   `pci_check_and_unmask_intx()` sees STATUS.INTERRUPT and leaves
//!   INTX_DISABLE set, so nothing is delivered by the device);
//! * g. the device's re-delivery: INTX_DISABLE set through sysfs `config`
//!   (past VFIO) holds `intx 1`; clearing it the same way, with the line
//!   asserted, delivers the interrupt again (mock-pci's irq_work, not the
//!   config accessor): one eventfd count, `intx_delivered` +1, and vfio
//!   masks again;
//! * h. bad input (`intx 2`, `intx`, `intx 1 1`, `intx x`): EINVAL, no
//!   counter moves; a device in another slot whose INTx is on an eventfd
//!   too never counted anything;
//! * i. SET_IRQS count 0: the `vfio-intx` line leaves /proc/interrupts.

use crate::common::{ensure, hw_config, hw_config_write};
use crate::irq_fire::{Counts, EventFds, Mock};
use std::fs;
use std::time::Duration;
use vfio_revoke_selftests::error::{Context, Result};
use vfio_revoke_selftests::uapi;
use vfio_revoke_selftests::vfio::{Device, Path};
use vfio_revoke_selftests::{err, poll, sys, sysfs};

/// How long an expected outcome may take to show (TCG is slow).
const WAIT: Duration = Duration::from_secs(2);
/// How long an eventfd that must stay quiet is given to fire anyway.
const QUIET: Duration = Duration::from_millis(100);
const INTX: u32 = uapi::VFIO_PCI_INTX_IRQ_INDEX;

/// The `vfio-intx(BDF)` line of /proc/interrupts (spaces squeezed) and its
/// count summed over CPUs.
fn proc_line(bdf: &str) -> Result<Option<(String, u64)>> {
    let s = fs::read_to_string("/proc/interrupts").ctx("read /proc/interrupts")?;
    let name = format!("vfio-intx({bdf})");
    Ok(s.lines().find(|l| l.contains(&name)).map(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        let total = words
            .iter()
            .skip(1)
            .map_while(|w| w.parse::<u64>().ok())
            .sum();
        (words.join(" "), total)
    }))
}

/// The /proc/interrupts count of `bdf`'s INTx, which must be `want`.
fn check_proc(bdf: &str, want: u64) -> Result<String> {
    let (line, total) = proc_line(bdf)?
        .ok_or_else(|| err!("/proc/interrupts has no vfio-intx({bdf}) line while INTx is enabled"))?;
    ensure(total == want, || {
        format!("/proc/interrupts counts {total} INTx interrupts of {bdf}, expected {want}: {line}")
    })?;
    Ok(line)
}

/// The device's COMMAND and STATUS as it holds them.
fn cmd_status(bdf: &str) -> Result<(u16, u16)> {
    let v = hw_config(bdf, uapi::PCI_COMMAND, 4)?;
    Ok((v as u16, (v >> 16) as u16))
}

/// INTX_DISABLE and STATUS.INTERRUPT of the device must be `disabled` and
/// `asserted`.
fn check_bits(bdf: &str, disabled: bool, asserted: bool, when: &str) -> Result<()> {
    let (cmd, status) = cmd_status(bdf)?;
    let d = cmd & uapi::PCI_COMMAND_INTX_DISABLE != 0;
    let a = status & uapi::PCI_STATUS_INTERRUPT != 0;
    ensure(d == disabled && a == asserted, || {
        format!("{when}: COMMAND {cmd:#06x} STATUS {status:#06x} (INTX_DISABLE {d}, INTERRUPT {a}), expected INTX_DISABLE {disabled}, INTERRUPT {asserted}")
    })
}

/// Does `what` through `act`; the eventfd must then count exactly
/// `signals` and `irqs` move as `delta` says, and nothing more.
fn step(
    mock: &Mock,
    efds: &EventFds,
    what: &str,
    act: impl FnOnce() -> Result<()>,
    delta: impl FnOnce(&mut Counts),
    signals: u64,
) -> Result<Counts> {
    let before = mock.counts()?;
    let mut expected = before;
    delta(&mut expected);
    act().ctx(what.to_string())?;
    if signals > 0 {
        efds.wait(0, WAIT)?;
    }
    let mut now = Ok(before);
    poll::wait_for(WAIT, || {
        now = mock.counts();
        matches!(&now, Ok(c) if *c == expected)
    });
    std::thread::sleep(QUIET);
    let now = now?;
    ensure(now == expected, || {
        format!("{what}: irqs went from '{before}' to '{now}', expected '{expected}'")
    })?;
    let got = efds.take_all()?;
    ensure(got == [signals], || {
        format!("{what}: the INTx eventfd counted {got:?}, expected [{signals}]")
    })?;
    let after = mock.counts()?;
    ensure(after == now, || {
        format!("{what}: irqs moved again after the outcome: '{now}' then '{after}'")
    })?;
    Ok(now)
}

fn fire(mock: &Mock, cmd: &str) -> Result<()> {
    mock.fire(cmd)
        .map_err(|e| err!("write '{cmd}' to {}/fire: {e}", mock.dir))
}

/// Writes COMMAND of `bdf` through sysfs `config` (past VFIO), with
/// INTX_DISABLE set or clear and the other bits as they are.
fn set_intx_disable(bdf: &str, on: bool) -> Result<()> {
    let (cmd, _) = cmd_status(bdf)?;
    let bit = uapi::PCI_COMMAND_INTX_DISABLE;
    let cmd = if on { cmd | bit } else { cmd & !bit };
    hw_config_write(bdf, uapi::PCI_COMMAND, &cmd.to_le_bytes())
}

/// A device in another slot with its INTx on an eventfd: it must never
/// count anything while the device under test fires.
struct Other {
    bdf: String,
    _dev: Device,
    efds: EventFds,
    mock: Mock,
    start: Counts,
}

impl Other {
    fn open(bdf: &str) -> Result<Self> {
        let dev = Device::open(bdf, Path::Group)?;
        let efds = EventFds::new(1)?;
        dev.set_irq_eventfds(INTX, 0, &efds.raw())?;
        let mock = Mock::new(bdf)?;
        let start = mock.counts()?;
        Ok(Other {
            bdf: bdf.to_string(),
            _dev: dev,
            efds,
            mock,
            start,
        })
    }

    fn quiet(&self) -> Result<()> {
        let got = self.efds.take_all()?;
        let now = self.mock.counts()?;
        ensure(got == [0] && now == self.start, || {
            format!(
                "{}: its INTx eventfd counted {got:?} and its irqs went from '{}' to '{now}' while another function fired",
                self.bdf, self.start
            )
        })?;
        check_proc(&self.bdf, 0).map(|_| ())
    }
}

/// Runs every step on `bdf` (and `other`, if given), both bound to stock
/// vfio-pci.
pub fn run(bdf: &str, other: Option<&str>) -> Result<()> {
    for b in std::iter::once(bdf).chain(other) {
        let drv = sysfs::driver(b);
        ensure(drv.as_deref() == Some("vfio-pci"), || {
            format!("{b} is bound to {drv:?}, not the stock vfio-pci")
        })?;
    }
    let dev = Device::open(bdf, Path::Group)?;
    let mock = Mock::new(bdf)?;

    // a. What VFIO and the PCI core say.
    let info = dev.irq_info(INTX)?;
    let flags =
        uapi::VFIO_IRQ_INFO_EVENTFD | uapi::VFIO_IRQ_INFO_MASKABLE | uapi::VFIO_IRQ_INFO_AUTOMASKED;
    ensure(info.count == 1 && info.flags == flags, || {
        format!(
            "VFIO_DEVICE_GET_IRQ_INFO(INTx): count {} flags {:#x}, expected count 1 flags {flags:#x} (EVENTFD, MASKABLE, AUTOMASKED)",
            info.count, info.flags
        )
    })?;
    let pin = hw_config(bdf, uapi::PCI_INTERRUPT_PIN, 1)?;
    let p = format!("/sys/bus/pci/devices/{bdf}/irq");
    let irq: u32 = fs::read_to_string(&p)
        .ctx(format!("read {p}"))?
        .trim()
        .parse()
        .map_err(|_| err!("{p} is not a number"))?;
    ensure(pin == 1 && irq != 0, || {
        format!("Interrupt Pin {pin}, sysfs irq {irq}: expected pin 1 (INTA#) and an interrupt")
    })?;
    println!(
        "ok: a. INTx: count {} flags {:#x} (EVENTFD, MASKABLE, AUTOMASKED); pin {pin}, irq {irq}",
        info.count, info.flags
    );

    let other = other.map(Other::open).transpose()?;

    // b. INTx on an eventfd.
    let efds = EventFds::new(1)?;
    dev.set_irq_eventfds(INTX, 0, &efds.raw())?;
    check_bits(bdf, false, false, "after SET_IRQS(INTx)")?;
    let line = check_proc(bdf, 0)?;
    ensure(
        line.contains("MOCK-INTx") && line.contains("level") && line.starts_with(&format!("{irq}:")),
        || format!("/proc/interrupts line of vfio-intx({bdf}) is not interrupt {irq} on the MOCK-INTx chip, level: {line}"),
    )?;
    println!("ok: b. SET_IRQS(INTx) with an eventfd: INTX_DISABLE clear; /proc/interrupts: {line}");

    // c. Assert: one interrupt, automasked by vfio.
    let c = step(
        &mock,
        &efds,
        "intx 1",
        || fire(&mock, "intx 1"),
        |c| c.intx_delivered += 1,
        1,
    )?;
    check_bits(bdf, true, true, "after 'intx 1'")?;
    let line = check_proc(bdf, 1)?;
    println!("ok: c. intx 1: one eventfd count, the device asserts STATUS.INTERRUPT and vfio set INTX_DISABLE; irqs: {c}; {line}");

    // d. Assert again: masked.
    let c = step(
        &mock,
        &efds,
        "intx 1 with the line asserted and masked",
        || fire(&mock, "intx 1"),
        |c| c.intx_masked += 1,
        0,
    )?;
    check_proc(bdf, 1)?;
    println!("ok: d. intx 1 again: held by INTX_DISABLE, no eventfd, /proc/interrupts unmoved; irqs: {c}");

    // e. Deassert, unmask, assert again.
    step(&mock, &efds, "intx 0", || fire(&mock, "intx 0"), |_| {}, 0)?;
    check_bits(bdf, true, false, "after 'intx 0'")?;
    step(
        &mock,
        &efds,
        "VFIO_IRQ_SET_ACTION_UNMASK with the line low",
        || dev.irq_action(INTX, uapi::VFIO_IRQ_SET_ACTION_UNMASK),
        |_| {},
        0,
    )?;
    check_bits(bdf, false, false, "after UNMASK")?;
    let c = step(
        &mock,
        &efds,
        "intx 1 after unmask",
        || fire(&mock, "intx 1"),
        |c| c.intx_delivered += 1,
        1,
    )?;
    check_bits(bdf, true, true, "after the second delivery")?;
    check_proc(bdf, 2)?;
    step(&mock, &efds, "intx 0", || fire(&mock, "intx 0"), |_| {}, 0)?;
    dev.irq_action(INTX, uapi::VFIO_IRQ_SET_ACTION_UNMASK)?;
    check_bits(bdf, false, false, "after intx 0 and UNMASK")?;
    println!("ok: e. intx 0 and UNMASK: INTERRUPT and INTX_DISABLE clear, no eventfd; intx 1 signalled once more; irqs: {c}");

    // f. MASK holds delivery; UNMASK with the line asserted signals.
    dev.irq_action(INTX, uapi::VFIO_IRQ_SET_ACTION_MASK)?;
    check_bits(bdf, true, false, "after VFIO_IRQ_SET_ACTION_MASK")?;
    step(
        &mock,
        &efds,
        "intx 1 while masked through VFIO",
        || fire(&mock, "intx 1"),
        |c| c.intx_masked += 1,
        0,
    )?;
    let c = step(
        &mock,
        &efds,
        "VFIO_IRQ_SET_ACTION_UNMASK with the line asserted",
        || dev.irq_action(INTX, uapi::VFIO_IRQ_SET_ACTION_UNMASK),
        |_| {},
        1,
    )?;
    check_bits(bdf, true, true, "after UNMASK with the line asserted")?;
    check_proc(bdf, 2)?;
    step(&mock, &efds, "intx 0", || fire(&mock, "intx 0"), |_| {}, 0)?;
    dev.irq_action(INTX, uapi::VFIO_IRQ_SET_ACTION_UNMASK)?;
    check_bits(bdf, false, false, "after intx 0 and UNMASK")?;
    println!("ok: f. MASK held intx 1 (masked, no eventfd); UNMASK with the line asserted signalled once (vfio's resend, INTX_DISABLE kept); irqs: {c}");

    // g. The device re-delivers when INTX_DISABLE is cleared under an
    // asserted line.
    set_intx_disable(bdf, true)?;
    step(
        &mock,
        &efds,
        "intx 1 with INTX_DISABLE set through sysfs config",
        || fire(&mock, "intx 1"),
        |c| c.intx_masked += 1,
        0,
    )?;
    let c = step(
        &mock,
        &efds,
        "INTX_DISABLE cleared through sysfs config with the line asserted",
        || set_intx_disable(bdf, false),
        |c| c.intx_delivered += 1,
        1,
    )?;
    check_bits(bdf, true, true, "after the re-delivery")?;
    let line = check_proc(bdf, 3)?;
    step(&mock, &efds, "intx 0", || fire(&mock, "intx 0"), |_| {}, 0)?;
    dev.irq_action(INTX, uapi::VFIO_IRQ_SET_ACTION_UNMASK)?;
    check_bits(bdf, false, false, "after intx 0 and UNMASK")?;
    println!("ok: g. INTX_DISABLE cleared under an asserted line: delivered again (one eventfd count, vfio masked again); irqs: {c}; {line}");

    // h. Bad input; the other function heard nothing.
    for cmd in ["intx 2", "intx", "intx 1 1", "intx x"] {
        let before = mock.counts()?;
        match mock.fire(cmd) {
            Err(e) if e.raw_os_error() == Some(sys::EINVAL) => {}
            r => return Err(err!("write '{cmd}' to fire: {r:?}, expected EINVAL")),
        }
        let after = mock.counts()?;
        ensure(after == before, || {
            format!("refused '{cmd}' moved irqs: '{before}' to '{after}'")
        })?;
    }
    let got = efds.take_all()?;
    ensure(got == [0], || {
        format!("bad input: the INTx eventfd counted {got:?}")
    })?;
    if let Some(o) = &other {
        o.quiet()?;
    }
    println!(
        "ok: h. 'intx 2', 'intx', 'intx 1 1', 'intx x': EINVAL, no counter moved{}",
        other
            .as_ref()
            .map(|o| format!("; {} (INTx on an eventfd too) counted nothing", o.bdf))
            .unwrap_or_default()
    );

    // i. INTx off.
    dev.disable_irqs(INTX)?;
    let left = proc_line(bdf)?;
    ensure(left.is_none(), || {
        format!("vfio-intx({bdf}) left in /proc/interrupts after SET_IRQS count 0: {left:?}")
    })?;
    println!("ok: i. SET_IRQS(INTx) count 0: the vfio-intx line is gone; irqs: {}", mock.counts()?);
    Ok(())
}
