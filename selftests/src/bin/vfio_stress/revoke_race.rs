// SPDX-License-Identifier: GPL-2.0

//! Revoke race: many processes (some with threads) read and write a BAR
//! mapping while the parent clears and sets COMMAND memory enable.
//!
//! The escape protocol. The parent steps a phase counter kept in shared
//! memory through four states per toggle:
//!
//! * `4t + 1` *disabling*: published before memory is disabled;
//! * `4t + 2` *disabled*: published after the disable returned (the driver
//!   zapped every mapping before the config write completed);
//! * `4t + 3` *enabling*: published before memory is enabled again;
//! * `4t + 4` *enabled*: published after the enable returned.
//!
//! A worker reads the phase before and after each access. An access with
//! both reads in the same disabled phase ran entirely while memory was off:
//! if it succeeded it is an escape. One with both reads in an enabled
//! phase must succeed (else the refault is broken: a "lost" access). The
//! parent leaves a disabled phase only after every worker acknowledged an
//! access judged in it, so each toggle tests every worker.

use crate::args::{variant, Ctx, Opt, Opts};
use crate::outcome::Outcome;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};
use vfio_revoke_selftests::error::Result;
use vfio_revoke_selftests::family::{fork_run, wait_ok, Shared};
use vfio_revoke_selftests::ktap::diag;
use vfio_revoke_selftests::mapping::{Mapping, Place};
use vfio_revoke_selftests::poll::{poll_until, Pace};
use vfio_revoke_selftests::probe::{self, PAGE};
use vfio_revoke_selftests::vfio::Device;
use vfio_revoke_selftests::{err, sys};

/// Options.
pub const OPTS: &[Opt] = &[
    ("children", 32, 1, 256, "processes accessing the mapping"),
    ("threads", 2, 0, 16, "extra threads in every fourth child"),
    (
        "toggles",
        1000,
        1,
        1_000_000,
        "memory disable/enable cycles",
    ),
    (
        "kib",
        2048,
        4,
        1 << 20,
        "KiB of BAR0 mapped (at most the BAR)",
    ),
];

/// How long the parent waits for every worker to act in one phase.
const PHASE_LIMIT: Duration = Duration::from_secs(20);

// The phases, modulo 4 (disabling is 1).
const DISABLED: u32 = 2;
const ENABLING: u32 = 3;
const ENABLED: u32 = 0;

// Shared words: the phase, the stop flag, then `SLOTS` per worker.
const PHASE: usize = 0;
const STOP: usize = 1;
const HEADER: usize = 2;
const SLOTS: usize = 6;
// A worker's slots.
const ACK: usize = 0;
const OFF_TRIED: usize = 1;
const ESCAPED: usize = 2;
const ON_TRIED: usize = 3;
const LOST: usize = 4;
const FIRST_ESCAPE: usize = 5;

/// One worker's view: the shared words and its mapping.
struct Worker<'a> {
    sh: &'a Shared,
    id: usize,
    base: usize,
    pages: usize,
}

impl Worker<'_> {
    fn slot(&self, s: usize) -> &AtomicU32 {
        self.sh.atomic(HEADER + self.id * SLOTS + s)
    }

    /// Accesses the mapping until the parent says stop.
    fn run(&self) {
        let phase = self.sh.atomic(PHASE);
        let mut k = self.id * 37;
        loop {
            if self.sh.atomic(STOP).load(SeqCst) != 0 {
                return;
            }
            let p1 = phase.load(SeqCst);
            // Nothing to judge while memory comes back, and nothing more in
            // a disabled phase already judged: let the others run.
            if p1 % 4 == ENABLING || (p1 % 4 == DISABLED && self.slot(ACK).load(SeqCst) == p1) {
                std::thread::yield_now();
                continue;
            }
            // Each worker its own word of the page, every page in turn.
            k = k.wrapping_add(37);
            let page = k % self.pages;
            let addr = self.base + page * PAGE + (self.id % (PAGE / 4)) * 4;
            let ok = if k.is_multiple_of(2) {
                // SAFETY: inside the mapping, aligned, RW; SIGBUS is caught.
                unsafe { probe::store(addr as *mut u32, ((self.id as u32) << 16) | p1) }
            } else {
                // SAFETY: as above.
                unsafe { probe::load(addr as *const u32).is_some() }
            };
            let p2 = phase.load(SeqCst);
            if p1 == p2 && p1 % 4 == DISABLED {
                self.slot(OFF_TRIED).fetch_add(1, SeqCst);
                if ok && self.slot(ESCAPED).fetch_add(1, SeqCst) == 0 {
                    self.slot(FIRST_ESCAPE).store(page as u32, SeqCst);
                }
                self.slot(ACK).store(p1, SeqCst);
            } else if p1 == p2 && p1 % 4 == ENABLED {
                self.slot(ON_TRIED).fetch_add(1, SeqCst);
                if !ok {
                    self.slot(LOST).fetch_add(1, SeqCst);
                }
            }
            // One access per time slice keeps the parent's toggles going.
            std::thread::yield_now();
        }
    }
}

/// Workers of child `c`: itself, plus `threads` more in every fourth.
fn workers_of(c: usize, threads: usize) -> usize {
    1 + if c.is_multiple_of(4) { threads } else { 0 }
}

/// A child: its workers on its own copy of the mapping, or (every third
/// child) on a fresh mapping of its own.
fn child(dev: &Device, map: &Mapping, sh: &Shared, first: usize, n: usize, own: bool) -> i32 {
    // The run may outlast fork_run's 120 s alarm; the parent's phase
    // limit and PR_SET_PDEATHSIG still bound it.
    // SAFETY: a plain syscall.
    unsafe { sys::alarm(0) };
    let own_map;
    let (base, len) = if own {
        let bar = match dev.bar(0) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("revoke-race child: {e}");
                return 2;
            }
        };
        own_map = match Mapping::new(dev.fd(), &bar, 0, map.len(), Place::Any) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("revoke-race child: {e}");
                return 2;
            }
        };
        (own_map.addr(), own_map.len())
    } else {
        (map.addr(), map.len())
    };
    std::thread::scope(|s| {
        for id in first + 1..first + n {
            s.spawn(move || {
                Worker {
                    sh,
                    id,
                    base,
                    pages: len / PAGE,
                }
                .run();
            });
        }
        Worker {
            sh,
            id: first,
            base,
            pages: len / PAGE,
        }
        .run();
    });
    0
}

/// Runs the revoke race.
pub fn run(ctx: &Ctx, o: &Opts) -> Result<Outcome> {
    let dbg = variant(&ctx.bdf)?;
    let dev = Device::open(&ctx.bdf, ctx.path)?;
    let bar = dev.bar(0)?;
    let len = ((o.get("kib") as usize) * 1024).min(bar.size as usize);
    let map = Mapping::new(dev.fd(), &bar, 0, len, Place::PmdAligned)?;
    dev.set_memory(true)?;
    let children = o.get("children") as usize;
    let threads = o.get("threads") as usize;
    let toggles = o.get("toggles") as u32;
    let total: usize = (0..children).map(|c| workers_of(c, threads)).sum();
    let sh = Shared::new(HEADER + total * SLOTS)?;
    // Populated before the children are forked: they start with the
    // parent's entries, which the first revoke must reach too.
    let seen = map.pass(&|_| 0);
    if seen.sigbus > 0 {
        return Err(err!(
            "populate: {} pages got SIGBUS with memory on",
            seen.sigbus
        ));
    }
    let before = dbg.counters()?;

    let mut pids = Vec::new();
    let mut first = 0;
    for c in 0..children {
        let n = workers_of(c, threads);
        let (dev, map, sh) = (&dev, &map, &sh);
        pids.push(fork_run(move || child(dev, map, sh, first, n, c % 3 == 2))?);
        first += n;
    }
    let mut out = Outcome::default();
    let start = Instant::now();
    let toggled = toggle(&dev, &sh, total, toggles, &mut out);
    let took = start.elapsed();
    sh.atomic(STOP).store(1, SeqCst);
    if let Err(e) = dev.set_memory(true) {
        out.fail(format!("enable memory at the end: {e}"));
    }
    for pid in pids {
        if let Err(e) = wait_ok(pid) {
            out.fail(e.0);
        }
    }
    let moved = dbg.counters()?.since(&before);
    let sum = |s: usize| -> u64 {
        (0..total)
            .map(|w| u64::from(sh.atomic(HEADER + w * SLOTS + s).load(SeqCst)))
            .sum()
    };
    out.escapes = sum(ESCAPED);
    for w in 0..total {
        let e = sh.atomic(HEADER + w * SLOTS + ESCAPED).load(SeqCst);
        if e > 0 {
            let page = sh.atomic(HEADER + w * SLOTS + FIRST_ESCAPE).load(SeqCst);
            diag(&format!(
                "worker {w}: {e} escapes, the first on page {page}"
            ));
        }
    }
    let (off, on, lost) = (sum(OFF_TRIED), sum(ON_TRIED), sum(LOST));
    diag(&format!(
        "{toggled} toggles in {:.1} s, {children} children, {total} workers: \
         {off} accesses while disabled, {on} while enabled ({lost} refused); \
         driver: {moved}",
        took.as_secs_f64()
    ));
    out.check(toggled < toggles, || {
        format!("only {toggled} of {toggles} toggles done")
    });
    out.check(lost > 0, || {
        format!("{lost} accesses were refused while memory was enabled")
    });
    // Every toggle with something mapped is one zap in fixed mode.
    out.check(moved.zaps != u64::from(toggled), || {
        format!("{} zaps for {toggled} memory disables", moved.zaps)
    });
    out.figure("children", children as u64);
    out.figure("workers", total as u64);
    out.figure("toggles", u64::from(toggled));
    out.figure("accesses", off + on);
    out.figure("while_disabled", off);
    out.figure("refused_enabled", lost);
    Ok(out)
}

/// The parent's loop; returns the toggles completed.
fn toggle(dev: &Device, sh: &Shared, workers: usize, toggles: u32, out: &mut Outcome) -> u32 {
    let phase = sh.atomic(PHASE);
    let mut seed = 0x2545_f491u32;
    for t in 0..toggles {
        // Let the workers fault the mapping back in for a random while.
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        spin(Duration::from_micros(u64::from(seed % 2000)));
        phase.store(4 * t + 1, SeqCst);
        if let Err(e) = dev.set_memory(false) {
            out.fail(format!("toggle {t}: disable: {e}"));
            return t;
        }
        let off = 4 * t + 2;
        phase.store(off, SeqCst);
        let deadline = Instant::now() + PHASE_LIMIT;
        for w in 0..workers {
            let ack = sh.atomic(HEADER + w * SLOTS + ACK);
            if !poll_until(deadline, Pace::Yield, || ack.load(SeqCst) == off) {
                out.fail(err!("toggle {t}: worker {w} made no access in {PHASE_LIMIT:?}").0);
                return t;
            }
        }
        phase.store(off + 1, SeqCst);
        if let Err(e) = dev.set_memory(true) {
            out.fail(format!("toggle {t}: enable: {e}"));
            return t;
        }
        phase.store(off + 2, SeqCst);
    }
    toggles
}

/// Busy-waits `d` (sleeping would let the workers run in lockstep with the
/// timer tick).
fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}
