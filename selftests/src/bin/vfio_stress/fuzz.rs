// SPDX-License-Identifier: GPL-2.0

//! Config fuzz: random writes through the VFIO config region while all of
//! BAR0 is mapped, checking after each one that the mapping is out of
//! reach whenever the device says its memory is.
//!
//! Each write has a random size (1, 2 or 4 bytes), a random value and a
//! random offset: six in ten anywhere in the config region (4 KiB on the
//! mock), three in ten in the first 256 bytes (the header and the
//! capabilities, where the emulated registers are), one in ten at COMMAND
//! or at the power management control/status register (PMCSR), so that
//! memory goes off and on often. The generator is seeded (printed; rerun
//! with `--seed`). A write the kernel refuses is counted, not a failure.
//!
//! After each write the part reads COMMAND and PMCSR back through VFIO.
//! While memory is not accessible (COMMAND memory enable clear, or a power
//! state other than D0) one access to a random page of the mapping must
//! get SIGBUS and the process must have no page table entry of the device
//! left (vfio_variant's `present`): a check that finds either is an
//! escape. While memory is accessible the access normally succeeds; one
//! that gets SIGBUS is counted (`sigbus_while_on`) but is no failure: the
//! core's fault check reads a virtual COMMAND.MEM that can differ from the
//! device's after a D3hot -> D0 restore.
//!
//! At the end the device is brought back (D0, `VFIO_DEVICE_RESET`, memory
//! on) and must work: sane IDs in the config header, and data written
//! through the region read back through the mapping and the other way.

use crate::args::{variant, Ctx, Opt, Opts};
use crate::outcome::Outcome;
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use vfio_revoke_selftests::error::{Context, Result};
use vfio_revoke_selftests::ktap::diag;
use vfio_revoke_selftests::mapping::{Mapping, Place};
use vfio_revoke_selftests::probe::{self, PAGE};
use vfio_revoke_selftests::sysfs::{self, Debugfs};
use vfio_revoke_selftests::vfio::{Device, Region};
use vfio_revoke_selftests::{err, sys, uapi};

/// Options.
pub const OPTS: &[Opt] = &[
    ("writes", 10_000, 1, 10_000_000, "random config writes"),
    (
        "seed",
        1,
        0,
        0xffff_ffff,
        "generator seed (0: one from the clock; printed)",
    ),
];

/// Escapes described one by one (the rest are only counted).
const SHOWN: u64 = 10;

/// Writes shown before the first surprise.
const HISTORY: usize = 12;

/// xorshift64*: small, fast, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A seed from the clock.
fn clock_seed() -> u64 {
    let mut ts = sys::timespec::default();
    // SAFETY: `ts` is a valid out-parameter.
    unsafe { sys::clock_gettime(sys::CLOCK_MONOTONIC, &mut ts) };
    ((ts.tv_sec as u64) ^ (ts.tv_nsec as u64)) & 0xffff_ffff | 1
}

/// One write: where, how wide, what.
#[derive(Debug, Clone, Copy)]
struct Write {
    offset: u64,
    size: usize,
    value: u32,
}

/// The device's memory state as VFIO shows it.
#[derive(Debug, Clone, Copy)]
struct State {
    command: u16,
    pmcsr: u16,
}

impl State {
    fn accessible(self) -> bool {
        self.command & uapi::PCI_COMMAND_MEMORY != 0
            && self.pmcsr & uapi::PCI_PM_CTRL_STATE_MASK == 0
    }
}

fn read_u16(dev: &Device, cfg: &Region, at: u64) -> Result<u16> {
    let mut b = [0u8; 2];
    dev.read(cfg, at, &mut b)?;
    Ok(u16::from_le_bytes(b))
}

fn state(dev: &Device, cfg: &Region, pmcsr: u64) -> Result<State> {
    Ok(State {
        command: read_u16(dev, cfg, uapi::PCI_COMMAND)?,
        pmcsr: read_u16(dev, cfg, pmcsr)?,
    })
}

/// The byte of `w` that lands at config offset `at`, if `w` covers it.
fn byte_at(w: &Write, at: u64) -> Option<u8> {
    (w.offset <= at && at < w.offset + w.size as u64)
        .then(|| (w.value >> (8 * (at - w.offset))) as u8)
}

/// Picks the next write.
fn pick(rng: &mut Rng, cfg_size: u64, pmcsr: u64) -> Write {
    let value = rng.next() as u32;
    let size = [1, 2, 4][rng.below(3) as usize];
    match rng.below(10) {
        0..=5 => Write {
            offset: rng.below(cfg_size),
            size,
            value,
        },
        6..=8 => Write {
            offset: rng.below(256.min(cfg_size)),
            size,
            value,
        },
        _ => Write {
            offset: if rng.below(2) == 0 {
                uapi::PCI_COMMAND
            } else {
                pmcsr
            },
            size: 2,
            value,
        },
    }
}

/// Figures of the run.
#[derive(Default)]
struct Tally {
    writes: u64,
    refused: BTreeMap<i32, u64>,
    short: u64,
    off_checks: u64,
    off_events: u64,
    on_checks: u64,
    refused_on: u64,
    escapes: u64,
    escapes_vfio_on: u64,
}

/// Runs the config fuzz.
pub fn run(ctx: &Ctx, o: &Opts) -> Result<Outcome> {
    // vfio_variant in fixed mode, or (to compare) any other VFIO driver:
    // without the variant's `present` only the accesses are judged.
    let dbg = match sysfs::driver(&ctx.bdf) {
        Some(d) if d == sysfs::VARIANT_DRIVER => Some(variant(&ctx.bdf)?),
        Some(d) if d.contains("vfio") => None,
        d => return Err(err!("{} is bound to {d:?}, not to a VFIO driver", ctx.bdf)),
    };
    let dbg: Option<&Debugfs> = dbg.as_ref();
    let dev = Device::open(&ctx.bdf, ctx.path)?;
    let cfg = dev.region(uapi::VFIO_PCI_CONFIG_REGION_INDEX)?;
    let bar = dev.bar(0)?;
    let map = Mapping::new(dev.fd(), &bar, 0, bar.size as usize, Place::PmdAligned)?;
    let pages = map.len() / PAGE;
    dev.set_memory(true)?;
    let pm = dev
        .find_cap(uapi::PCI_CAP_ID_PM)?
        .ok_or_else(|| err!("{}: no power management capability", ctx.bdf))?;
    let pmcsr = pm + uapi::PCI_PM_CTRL;
    let seed = match o.get("seed") {
        0 => clock_seed(),
        s => s,
    };
    diag(&format!(
        "seed {seed} (rerun: vfio_stress fuzz --seed {seed} --writes {} {}); config region \
         {} bytes; writes: 60% anywhere, 30% in the first 256 bytes, 10% at COMMAND or \
         PMCSR ({pmcsr:#x}); BAR0 mapped whole ({pages} pages)",
        o.get("writes"),
        ctx.bdf,
        cfg.size
    ));
    let resets_before = mock_resets(&ctx.bdf);
    let counters_before = dbg.map(Debugfs::counters).transpose()?;
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut t = Tally::default();
    let mut out = Outcome::default();
    let mut was = state(&dev, &cfg, pmcsr)?;
    // COMMAND.MEM as VFIO's virtual config space holds it: what the core's
    // fault check uses. Every write whose part at COMMAND reaches
    // `vfio_basic_config_write()` sets it; nothing else in this loop does
    // (resets and power transitions restore the device, not this copy).
    let mut vfio_mem = true;
    // The last writes and the state after each, shown with the first
    // surprise.
    let mut history: std::collections::VecDeque<(u64, Write, State)> = Default::default();
    for i in 0..o.get("writes") {
        let w = pick(&mut rng, cfg.size, pmcsr);
        let bytes = w.value.to_le_bytes();
        match dev.file().write_at(&bytes[..w.size], cfg.offset + w.offset) {
            Ok(n) if n == w.size => {
                if let Some(b) = byte_at(&w, uapi::PCI_COMMAND) {
                    vfio_mem = b & uapi::PCI_COMMAND_MEMORY as u8 != 0;
                }
            }
            Ok(_) => t.short += 1,
            Err(e) => *t.refused.entry(e.raw_os_error().unwrap_or(0)).or_default() += 1,
        }
        t.writes += 1;
        let now = state(&dev, &cfg, pmcsr).ctx(format!("after write {i} ({w:x?})"))?;
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back((i, w, now));
        let r = rng.next();
        let page = (r as usize >> 8) % pages;
        let addr = map.addr() + page * PAGE;
        if now.accessible() {
            t.on_checks += 1;
            // SAFETY: inside the mapping, aligned; SIGBUS is caught.
            if unsafe { probe::load(addr as *const u32) }.is_none() {
                t.refused_on += 1;
                if t.refused_on == 1 {
                    show(&history);
                }
                if t.refused_on <= SHOWN {
                    diag(&format!(
                        "write {i} {w:x?}: COMMAND {:#06x} PMCSR {:#06x} (memory accessible): \
                         page {page} got SIGBUS",
                        now.command, now.pmcsr
                    ));
                }
            }
        } else {
            t.off_checks += 1;
            t.off_events += u64::from(was.accessible());
            let ok = if r & 1 == 0 {
                // SAFETY: as above, and the mapping is writable.
                unsafe { probe::store(addr as *mut u32, r as u32) }
            } else {
                // SAFETY: as above.
                unsafe { probe::load(addr as *const u32) }.is_some()
            };
            let present = match dbg {
                Some(d) => u64::from(d.present()?),
                None => 0,
            };
            // One escape per check that found the mapping reachable: the
            // access succeeded, or some page still had an entry.
            let escaped = u64::from(ok || present > 0);
            // VFIO itself believes memory is on: its virtual COMMAND.MEM
            // is set and the device in D0, but the device's own bit is
            // clear (a D3hot -> D0 transition restored the bit it had when
            // it entered D3hot, after the user set it).
            let vfio_on = vfio_mem && now.pmcsr & uapi::PCI_PM_CTRL_STATE_MASK == 0;
            if escaped > 0 && vfio_on {
                t.escapes_vfio_on += escaped;
            }
            if escaped > 0 {
                if t.escapes == 0 {
                    show(&history);
                }
                if t.escapes < SHOWN {
                    diag(&format!(
                        "write {i} {w:x?}: COMMAND {:#06x} PMCSR {:#06x} (memory off; VFIO's \
                         virtual COMMAND.MEM {}): page {page} {}, {present} entries present",
                        now.command,
                        now.pmcsr,
                        u8::from(vfio_mem),
                        if ok { "accessible" } else { "SIGBUS" }
                    ));
                }
                t.escapes += escaped;
            }
        }
        was = now;
    }
    let refused: u64 = t.refused.values().sum();
    let moved = match (dbg, counters_before) {
        (Some(d), Some(before)) => d.counters()?.since(&before).to_string(),
        _ => "no vfio_variant counters".into(),
    };
    let errnos: Vec<String> = t
        .refused
        .iter()
        .map(|(e, n)| format!("{n} x {}", std::io::Error::from_raw_os_error(*e)))
        .collect();
    diag(&format!(
        "{} writes, {refused} refused ({}), {} short; memory went off {} times; {} checks \
         with memory off, {} with memory on ({} refused); driver: {moved}; mock-pci resets: {}",
        t.writes,
        if errnos.is_empty() {
            "none".into()
        } else {
            errnos.join(", ")
        },
        t.short,
        t.off_events,
        t.off_checks,
        t.on_checks,
        t.refused_on,
        match (resets_before, mock_resets(&ctx.bdf)) {
            (Some(a), Some(b)) => format!("{}", b.saturating_sub(a)),
            _ => "n/a".into(),
        }
    ));
    if t.refused_on > 0 {
        // Not an escape, and not the variant's doing: the core's fault
        // check (`__vfio_pci_memory_enabled()`) reads COMMAND.MEM from its
        // virtual config space, a config read returns the device's own bit,
        // and a D3hot -> D0 transition restores the bit the device had when
        // it entered D3hot, whatever the user wrote since.
        diag(&format!(
            "{} accesses got SIGBUS although COMMAND.MEM read set and the device D0: VFIO's \
             fault check uses its virtual COMMAND.MEM, which can differ from the device's \
             after a D3hot -> D0 restore (the write before the first is shown above)",
            t.refused_on
        ));
    }
    if t.escapes_vfio_on > 0 {
        diag(&format!(
            "{} of the escapes happened while VFIO's virtual COMMAND.MEM was set and the device \
             in D0 but the device's own COMMAND.MEM clear: the vfio-pci core restores the state \
             a device had when it entered D3hot on its way back to D0 (vfio_pci_set_power_state()) \
             without updating its virtual COMMAND, and its fault check \
             (__vfio_pci_memory_enabled()) reads only the virtual bit",
            t.escapes_vfio_on
        ));
    }
    out.check(t.off_checks == 0, || {
        "memory was never off: the fuzz proved nothing".into()
    });
    recover(&dev, &cfg, pmcsr, &bar, &map, &ctx.bdf, &mut out)?;
    out.escapes = t.escapes;
    out.figure("seed", seed);
    out.figure("writes", t.writes);
    out.figure("refused", refused);
    out.figure("memory_off", t.off_events);
    out.figure("off_checks", t.off_checks);
    out.figure("on_checks", t.on_checks);
    out.figure("sigbus_while_on", t.refused_on);
    out.figure("escapes_vfio_on", t.escapes_vfio_on);
    Ok(out)
}

/// Prints the last writes and the state after each.
fn show(history: &std::collections::VecDeque<(u64, Write, State)>) {
    for (i, w, st) in history {
        diag(&format!(
            "  write {i}: {} byte(s) {:#x} at {:#05x} -> COMMAND {:#06x} PMCSR {:#06x}",
            w.size, w.value, w.offset, st.command, st.pmcsr
        ));
    }
}

/// The reset count of a mock-pci device, if it is one.
fn mock_resets(bdf: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/sys/kernel/debug/mock_pci/{bdf}/resets"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Brings the device back (D0, reset, memory on) and checks it works.
fn recover(
    dev: &Device,
    cfg: &Region,
    pmcsr: u64,
    bar: &Region,
    map: &Mapping,
    bdf: &str,
    out: &mut Outcome,
) -> Result<()> {
    let before = state(dev, cfg, pmcsr)?;
    if before.pmcsr & uapi::PCI_PM_CTRL_STATE_MASK != 0 {
        dev.set_d3hot(false).ctx("back to D0")?;
    }
    if dev.has_reset() {
        dev.reset()?;
    }
    dev.set_memory(true)?;
    let now = state(dev, cfg, pmcsr)?;
    let mut id = [0u8; 4];
    dev.read(cfg, 0, &mut id)?;
    let (vendor, device) = (
        u16::from_le_bytes([id[0], id[1]]),
        u16::from_le_bytes([id[2], id[3]]),
    );
    let sysfs_id = |f: &str| -> Option<u16> {
        let s = std::fs::read_to_string(format!("/sys/bus/pci/devices/{bdf}/{f}")).ok()?;
        u16::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
    };
    let mut header = [0u8; 1];
    dev.read(cfg, 0x0e, &mut header)?;
    diag(&format!(
        "after the fuzz: COMMAND {:#06x} PMCSR {:#06x}; after D0, reset and memory on: COMMAND \
         {:#06x} PMCSR {:#06x}, ID {vendor:04x}:{device:04x}, header type {:#04x}",
        before.command, before.pmcsr, now.command, now.pmcsr, header[0]
    ));
    out.check(
        Some(vendor) != sysfs_id("vendor") || Some(device) != sysfs_id("device"),
        || format!("config header reads ID {vendor:04x}:{device:04x}, sysfs says otherwise"),
    );
    out.check(header[0] & 0x7f != 0, || {
        format!("header type {:#04x} is not a type 0 header", header[0])
    });
    // Data both ways, on pages spread over the BAR.
    let pages = map.len() / PAGE;
    let step = (pages / 16).max(1);
    let mut wrong = 0;
    for (k, page) in (0..pages).step_by(step).enumerate() {
        let v = 0x5a00_0000 | (k as u32) << 8 | 0x11;
        dev.write_u32(bar, (page * PAGE) as u64, v)?;
        if map.read_u32(page * PAGE) != Some(v) {
            wrong += 1;
        }
        let v2 = !v;
        let addr = map.addr() + page * PAGE + 4;
        // SAFETY: inside the mapping, aligned, writable; SIGBUS is caught.
        let stored = unsafe { probe::store(addr as *mut u32, v2) };
        if !stored || dev.read_u32(bar, (page * PAGE + 4) as u64)? != v2 {
            wrong += 1;
        }
    }
    out.check(wrong > 0, || {
        format!("after the recovery {wrong} words did not round-trip between the region and the mapping")
    });
    if wrong == 0 {
        diag("the device works again: data round trip region <-> mapping");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_of_a_write() {
        let w = |offset, size| Write {
            offset,
            size,
            value: 0x4433_2211,
        };
        assert_eq!(byte_at(&w(4, 2), 4), Some(0x11));
        assert_eq!(byte_at(&w(2, 4), 4), Some(0x33));
        assert_eq!(byte_at(&w(3, 2), 4), Some(0x22));
        assert_eq!(byte_at(&w(4, 1), 5), None);
        assert_eq!(byte_at(&w(5, 4), 4), None);
        assert_eq!(byte_at(&w(1, 2), 4), None);
    }

    #[test]
    fn the_generator_is_reproducible_and_stays_in_range() {
        let mut a = Rng(7);
        let mut b = Rng(7);
        for _ in 0..1000 {
            let (x, y) = (pick(&mut a, 4096, 0x44), pick(&mut b, 4096, 0x44));
            assert_eq!((x.offset, x.size, x.value), (y.offset, y.size, y.value));
            assert!(x.offset < 4096 && [1, 2, 4].contains(&x.size));
        }
    }
}
