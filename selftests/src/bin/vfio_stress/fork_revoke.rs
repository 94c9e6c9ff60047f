// SPDX-License-Identifier: GPL-2.0

//! Fork vs revoke: the parent populates its mapping (PMD-mapped or
//! PTE-mapped) and forks in a loop while a revoker process (forked before
//! the mapping existed, so that it never waits on the parent's mmap_lock)
//! revokes at a random moment around the fork: through vfio_variant's
//! debugfs `revoke` or by clearing COMMAND memory enable.
//!
//! Once the revoke has returned, every process must be without access:
//! the child's and the parent's page tables hold no entry of the device
//! (vfio_variant's `present`, which looks without faulting) and, when
//! memory is off, every page of the child's copy gets SIGBUS. Each entry
//! present or page read is an escape. The run also counts how many revokes
//! overlapped a fork in progress, so that it shows the race was taken.

use crate::args::{variant, Ctx, Opt, Opts};
use crate::outcome::Outcome;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};
use vfio_revoke_selftests::error::Result;
use vfio_revoke_selftests::family::{fork_run, wait_ok, wait_status, Shared};
use vfio_revoke_selftests::ktap::diag;
use vfio_revoke_selftests::mapping::{Mapping, Place, PMD};
use vfio_revoke_selftests::poll::{poll_until, Pace};
use vfio_revoke_selftests::probe::PAGE;
use vfio_revoke_selftests::sysfs::Debugfs;
use vfio_revoke_selftests::vfio::Device;
use vfio_revoke_selftests::{err, sys};

/// Options.
pub const OPTS: &[Opt] = &[(
    "iterations",
    250,
    1,
    1_000_000,
    "forks per mapping shape and revoke kind",
)];

/// Longest wait for the revoker or a child.
const LIMIT: Duration = Duration::from_secs(20);

// Shared words.
const REQ: usize = 0;
const KIND: usize = 1;
const DELAY_US: usize = 2;
const DONE: usize = 3;
const FAILED: usize = 4;
const REV_START: usize = 5;
const REV_END: usize = 6;
const STOP: usize = 7;
const CHILD_ESCAPES: usize = 8;
const WORDS: usize = 9;

/// How the revoker revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// vfio_variant's debugfs `revoke`: a zap, memory stays on.
    Debugfs = 1,
    /// COMMAND memory enable cleared.
    MemoryOff = 2,
}

/// Microseconds of CLOCK_MONOTONIC, truncated: differences of nearby
/// instants are exact with wrapping arithmetic.
fn now_us() -> u32 {
    let mut ts = sys::timespec::default();
    // SAFETY: `ts` is a valid out-parameter.
    unsafe { sys::clock_gettime(sys::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000) as u32
}

/// `a` is before `b` (wrapping).
fn before(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) > 0
}

/// The revoker process: waits for a request, waits its delay, revokes.
fn revoker(dev: &Device, dbg: &Debugfs, sh: &Shared) -> i32 {
    // It lives as long as the whole part, beyond fork_run's 120 s alarm;
    // PR_SET_PDEATHSIG and the STOP word end it.
    // SAFETY: a plain syscall.
    unsafe { sys::alarm(0) };
    let mut last = 0;
    loop {
        let req = sh.atomic(REQ).load(SeqCst);
        if sh.atomic(STOP).load(SeqCst) != 0 {
            return 0;
        }
        if req == last {
            std::thread::yield_now();
            continue;
        }
        last = req;
        let delay = Duration::from_micros(u64::from(sh.atomic(DELAY_US).load(SeqCst)));
        let t0 = Instant::now();
        while t0.elapsed() < delay {
            std::hint::spin_loop();
        }
        let start = now_us();
        let r = if sh.atomic(KIND).load(SeqCst) == Kind::MemoryOff as u32 {
            dev.set_memory(false)
        } else {
            dbg.revoke()
        };
        sh.atomic(REV_START).store(start, SeqCst);
        sh.atomic(REV_END).store(now_us(), SeqCst);
        if let Err(e) = r {
            eprintln!("fork-revoke revoker: {e}");
            sh.atomic(FAILED).store(1, SeqCst);
        }
        sh.atomic(DONE).store(req, SeqCst);
    }
}

/// Waits until the revoker finished request `it`.
fn wait_done(sh: &Shared, it: u32) -> Result<()> {
    let done = || sh.atomic(DONE).load(SeqCst) == it;
    if !poll_until(Instant::now() + LIMIT, Pace::Yield, done) {
        return Err(err!("the revoker did not finish revoke {it} in {LIMIT:?}"));
    }
    if sh.atomic(FAILED).load(SeqCst) != 0 {
        return Err(err!("revoke {it} failed (the revoker's error is above)"));
    }
    Ok(())
}

/// The child: after the revoke returned, counts what it can still reach.
fn child(map: &Mapping, dbg: &Debugfs, sh: &Shared, it: u32, kind: Kind) -> i32 {
    if let Err(e) = wait_done(sh, it) {
        eprintln!("fork-revoke child: {e}");
        return 2;
    }
    let present = match dbg.present() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("fork-revoke child: {e}");
            return 2;
        }
    };
    let mut escapes = present;
    if kind == Kind::MemoryOff {
        escapes += map.pass(&|_| 0).pages;
    }
    sh.atomic(CHILD_ESCAPES).store(escapes, SeqCst);
    i32::from(escapes > 0)
}

/// Figures of one shape and kind.
#[derive(Default)]
struct Tally {
    forks: u64,
    overlapped: u64,
    checked: u64,
    escapes: u64,
}

/// Runs the fork vs revoke race.
pub fn run(ctx: &Ctx, o: &Opts) -> Result<Outcome> {
    let dbg = variant(&ctx.bdf)?;
    let dev = Device::open(&ctx.bdf, ctx.path)?;
    let bar = dev.bar(0)?;
    if (bar.size as usize) < PMD {
        return Err(err!(
            "BAR0 is {} bytes: the PMD shape needs 2 MiB",
            bar.size
        ));
    }
    dev.set_memory(true)?;
    let sh = Shared::new(WORDS)?;
    let revoker_pid = {
        let (dev, dbg, sh) = (&dev, &dbg, &sh);
        fork_run(move || revoker(dev, dbg, sh))?
    };
    let mut out = Outcome::default();
    let iterations = o.get("iterations") as u32;
    let mut it = 0u32;
    let mut pmd = Tally::default();
    let mut pte = Tally::default();
    for (place, len, name) in [
        (Place::PmdAligned, PMD, "PMD"),
        (Place::Misaligned, PMD - PAGE, "PTE"),
    ] {
        let map = Mapping::new(dev.fd(), &bar, 0, len, place)?;
        let tally = if name == "PMD" { &mut pmd } else { &mut pte };
        for kind in [Kind::Debugfs, Kind::MemoryOff] {
            let before = dbg.counters()?;
            let r = shape(&dev, &dbg, &sh, &map, kind, iterations, &mut it, tally);
            if let Err(e) = r {
                out.fail(format!("{name}-mapped, {kind:?}: {e}"));
                break;
            }
            let moved = dbg.counters()?.since(&before);
            diag(&format!("{name}-mapped, {kind:?}: driver {moved}"));
            if name == "PMD" {
                out.check(moved.pmds < u64::from(iterations), || {
                    format!(
                        "PMD-mapped, {kind:?}: only {} PMDs inserted in {iterations} refills",
                        moved.pmds
                    )
                });
            } else {
                out.check(moved.pmds != 0, || {
                    format!("PTE-mapped, {kind:?}: {} PMDs inserted", moved.pmds)
                });
            }
        }
        diag(&format!(
            "{name}-mapped: {} forks, {} revokes overlapped a fork, {} pages and entries checked, {} escapes",
            tally.forks, tally.overlapped, tally.checked, tally.escapes
        ));
        out.check(tally.overlapped == 0 && tally.forks >= 20, || {
            format!(
                "{name}-mapped: no revoke overlapped a fork in {} forks",
                tally.forks
            )
        });
    }
    sh.atomic(STOP).store(1, SeqCst);
    if let Err(e) = wait_ok(revoker_pid) {
        out.fail(format!("revoker: {e}"));
    }
    dev.set_memory(true)?;
    out.escapes = pmd.escapes + pte.escapes;
    out.figure("forks_pmd", pmd.forks);
    out.figure("overlapped_pmd", pmd.overlapped);
    out.figure("escapes_pmd", pmd.escapes);
    out.figure("forks_pte", pte.forks);
    out.figure("overlapped_pte", pte.overlapped);
    out.figure("escapes_pte", pte.escapes);
    Ok(out)
}

/// `iterations` forks of one shape with one revoke kind.
#[allow(clippy::too_many_arguments)]
fn shape(
    dev: &Device,
    dbg: &Debugfs,
    sh: &Shared,
    map: &Mapping,
    kind: Kind,
    iterations: u32,
    it: &mut u32,
    t: &mut Tally,
) -> Result<()> {
    let pages = (map.len() / PAGE) as u32;
    let mut fork_us = 1000u32;
    let mut seed = 0x9e37_79b9u32 ^ *it;
    for _ in 0..iterations {
        dev.set_memory(true)?;
        let s = map.pass(&|_| 0);
        if s.sigbus > 0 {
            return Err(err!(
                "populate: {} pages got SIGBUS with memory on",
                s.sigbus
            ));
        }
        let present = dbg.present()?;
        if present != pages {
            return Err(err!("populate: {present} of {pages} pages present"));
        }
        *it += 1;
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        sh.atomic(KIND).store(kind as u32, SeqCst);
        sh.atomic(DELAY_US).store(seed % (2 * fork_us + 1), SeqCst);
        sh.atomic(CHILD_ESCAPES).store(0, SeqCst);
        sh.atomic(REQ).store(*it, SeqCst);
        let fork_start = now_us();
        let n = *it;
        let pid = fork_run(|| child(map, dbg, sh, n, kind))?;
        let fork_end = now_us();
        fork_us = fork_end.wrapping_sub(fork_start).clamp(100, 100_000);
        wait_done(sh, n)?;
        let st = wait_status(pid)?;
        let parent_present = dbg.present()?;
        if !sys::WIFEXITED(st) || sys::WEXITSTATUS(st) > 1 {
            return Err(err!("child of fork {n} ended badly (status {st:#x})"));
        }
        let child_escapes = u64::from(sh.atomic(CHILD_ESCAPES).load(SeqCst));
        let (rs, re) = (
            sh.atomic(REV_START).load(SeqCst),
            sh.atomic(REV_END).load(SeqCst),
        );
        t.forks += 1;
        t.overlapped += u64::from(before(rs, fork_end) && before(fork_start, re));
        t.checked += 2 * u64::from(pages)
            + if kind == Kind::MemoryOff {
                u64::from(pages)
            } else {
                0
            };
        t.escapes += child_escapes + u64::from(parent_present);
        if child_escapes + u64::from(parent_present) > 0 {
            diag(&format!(
                "fork {n} ({kind:?}): child kept {child_escapes}, parent {parent_present} \
                 (revoke {}..{} us, fork {}..{} us)",
                rs.wrapping_sub(fork_start) as i32,
                re.wrapping_sub(fork_start) as i32,
                0,
                fork_end.wrapping_sub(fork_start)
            ));
        }
    }
    Ok(())
}
