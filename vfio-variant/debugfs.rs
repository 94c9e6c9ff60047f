// SPDX-License-Identifier: GPL-2.0

//! Per-device debugfs directory `vfio_variant/<BDF>/`:
//!
//! * `counters`: read for `faults`, `ptes`, `pmds`, `zaps`, `sigbus`; write
//!   anything to reset them all to zero.
//! * `revoke`: write anything for a driver-initiated revoke.
//! * `mode`: `fixed` or `legacy`; writing it selects the design that mmaps
//!   made from then on use (existing mappings keep theirs).
//! * `pte_only`: the module parameter `pte_only` as loaded (`1`: fixed-mode
//!   faults must insert no PMD entries), else `0`. It reports the setting,
//!   not what the fault path does, so that the tests can check the latter.
//! * `present`: read by a process, the number of pages of its own mappings
//!   of the device that have a page table entry right now (tests use it to
//!   see what a revocation left behind without faulting anything in).

use crate::device::{DevRef, Mode};
use kernel::{
    debugfs::{Dir, Scope},
    fmt,
    prelude::*,
    uaccess::UserSliceReader,
};

/// The device's debugfs directory; removed when dropped.
pub(crate) type DeviceDir = Scope<DevRef>;

/// Creates `parent/<name>/` for `dev`.
pub(crate) fn create(parent: &Dir, name: &CStr, dev: DevRef) -> Result<Pin<KBox<DeviceDir>>> {
    KBox::pin_init(
        parent.scope(dev, name, |dev, dir| {
            dir.read_write_callback_file(c"counters", dev, &show_counters, &reset_counters);
            dir.write_only_callback_file(c"revoke", dev, &revoke);
            dir.read_write_callback_file(c"mode", dev, &show_mode, &set_mode);
            dir.read_callback_file(c"pte_only", dev, &show_pte_only);
            dir.read_callback_file(c"present", dev, &show_present);
        }),
        GFP_KERNEL,
    )
}

/// Reads at most 16 bytes of user input, trimmed.
fn read_word(r: &mut UserSliceReader, buf: &mut [u8; 16]) -> Result<usize> {
    let n = r.len().min(buf.len());
    r.read_slice(&mut buf[..n])?;
    let mut n = n;
    while n > 0 && buf[n - 1].is_ascii_whitespace() {
        n -= 1;
    }
    Ok(n)
}

fn show_counters(dev: &DevRef, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{}", dev.counters().snapshot())
}

fn reset_counters(dev: &DevRef, _r: &mut UserSliceReader) -> Result {
    dev.counters().reset();
    Ok(())
}

fn revoke(dev: &DevRef, _r: &mut UserSliceReader) -> Result {
    dev.revoke();
    Ok(())
}

fn show_mode(dev: &DevRef, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match dev.mode() {
        Mode::Fixed => writeln!(f, "fixed"),
        Mode::Legacy => writeln!(f, "legacy"),
    }
}

fn show_pte_only(_dev: &DevRef, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(
        f,
        "{}",
        u8::from(crate::module_parameters::pte_only.value())
    )
}

fn show_present(dev: &DevRef, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match dev.core().present_pages() {
        Some(n) => writeln!(f, "{n}"),
        None => writeln!(f, "-1"),
    }
}

fn set_mode(dev: &DevRef, r: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 16];
    if r.len() > buf.len() {
        // Not cut to 16 bytes and then judged: say what was wrong.
        pr_err!("mode: input too long: write 'fixed' or 'legacy'\n");
        return Err(EINVAL);
    }
    let n = read_word(r, &mut buf)?;
    match &buf[..n] {
        b"fixed" | b"0" => dev.set_mode(Mode::Fixed),
        b"legacy" | b"1" => dev.set_mode(Mode::Legacy),
        other => {
            pr_err!(
                "mode: '{}' is not a mode: write 'fixed' or 'legacy'\n",
                core::str::from_utf8(other).unwrap_or("?")
            );
            return Err(EINVAL);
        }
    }
    Ok(())
}
