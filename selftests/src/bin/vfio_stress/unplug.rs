// SPDX-License-Identifier: GPL-2.0

//! Unplug race: the device is unplugged and plugged back again and again
//! while children access its BAR mapping, fork grandchildren that access it
//! too, and exit.
//!
//! Each cycle the parent opens the device, maps BAR0, forks `children`
//! processes and lets them run, then unplugs the device from another
//! process, alternately with sysfs `remove` and with mock-pci's
//! `del_device`. Either blocks until every user has closed the device, but
//! vfio_variant revokes every mapping as the remove starts (its driver
//! remove marks the device unplugged and zaps, under `memory_lock`).
//!
//! The escape protocol, as in `revoke_race`: a phase word in shared memory
//! goes *live* -> *removing* (published just before the unplug starts) ->
//! *revoked* (published once the parent's own mapping got SIGBUS: its fault
//! waited for the driver's zap to finish, so every mapping of the device
//! is revoked by then) -> *exit*. A worker reads the phase before and after
//! each access: one with both reads *revoked* that succeeded is an escape;
//! one with both reads *live* must succeed. The parent leaves *revoked*
//! only after every child made a judged access in it. Then the children
//! exit (closing their copies of the device fds), the parent closes its
//! own, and the unplug can finish; the run measures how long it took. The
//! device comes back with a PCI rescan or mock-pci's `new_device`, is bound
//! to vfio_variant again, fixed mode.

use crate::args::{variant, Ctx, Opt, Opts};
use crate::outcome::Outcome;
use std::process::Child;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};
use vfio_revoke_selftests::error::{Context, Result};
use vfio_revoke_selftests::family::{fork_run, wait_ok, wait_status, Shared};
use vfio_revoke_selftests::ktap::diag;
use vfio_revoke_selftests::mapping::{Mapping, Place};
use vfio_revoke_selftests::poll::{poll_until, wait_child, Pace};
use vfio_revoke_selftests::probe::{self, PAGE};
use vfio_revoke_selftests::sysfs::{self, Binding, Unplug};
use vfio_revoke_selftests::vfio::Device;
use vfio_revoke_selftests::{err, sys};

/// Options.
pub const OPTS: &[Opt] = &[
    (
        "cycles",
        20,
        1,
        10_000,
        "unplug/replug cycles (sysfs remove and del_device alternate)",
    ),
    (
        "children",
        4,
        1,
        64,
        "processes accessing the mapping in each cycle",
    ),
    (
        "live-ms",
        100,
        0,
        10_000,
        "how long the children run before the unplug starts",
    ),
];

/// Longest wait for the revocation, the children, and the unplug.
const LIMIT: Duration = Duration::from_secs(30);

// Phases.
const LIVE: u32 = 0;
const REMOVING: u32 = 1;
const REVOKED: u32 = 2;
const EXIT: u32 = 3;

// Shared words: the phase, then `SLOTS` per child.
const PHASE: usize = 0;
const HEADER: usize = 1;
const SLOTS: usize = 7;
// A child's slots (its grandchildren add to them too).
const ACK: usize = 0;
const LIVE_TRIED: usize = 1;
const LOST: usize = 2;
const OFF_TRIED: usize = 3;
const ESCAPED: usize = 4;
const FORKS: usize = 5;
const FIRST_ESCAPE: usize = 6;

/// Accesses a grandchild makes before it exits.
const GRANDCHILD_ACCESSES: u32 = 64;

/// One child (or grandchild) of cycle: its slots and the mapping.
struct Worker<'a> {
    sh: &'a Shared,
    slot0: usize,
    base: usize,
    pages: usize,
    seed: u32,
}

impl Worker<'_> {
    fn slot(&self, s: usize) -> &std::sync::atomic::AtomicU32 {
        self.sh.atomic(self.slot0 + s)
    }

    fn next(&mut self) -> u32 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 17;
        self.seed ^= self.seed << 5;
        self.seed
    }

    /// One access, judged by the phase around it; the phase it was judged
    /// in, if any.
    fn access(&mut self) -> Option<u32> {
        let phase = self.sh.atomic(PHASE);
        let p1 = phase.load(SeqCst);
        let r = self.next();
        let page = r as usize % self.pages;
        let addr = self.base + page * PAGE + ((r as usize >> 16) % (PAGE / 4)) * 4;
        let ok = if r & 1 == 0 {
            // SAFETY: inside the mapping, aligned, RW; SIGBUS is caught.
            unsafe { probe::store(addr as *mut u32, r) }
        } else {
            // SAFETY: as above.
            unsafe { probe::load(addr as *const u32).is_some() }
        };
        if phase.load(SeqCst) != p1 {
            return None;
        }
        match p1 {
            LIVE => {
                self.slot(LIVE_TRIED).fetch_add(1, SeqCst);
                if !ok {
                    self.slot(LOST).fetch_add(1, SeqCst);
                }
            }
            REVOKED => {
                self.slot(OFF_TRIED).fetch_add(1, SeqCst);
                if ok && self.slot(ESCAPED).fetch_add(1, SeqCst) == 0 {
                    self.slot(FIRST_ESCAPE).store(page as u32, SeqCst);
                }
            }
            _ => {}
        }
        Some(p1)
    }

    /// The child's loop: access, every so often fork a grandchild that
    /// accesses a while and exits, until the parent says exit.
    fn run(mut self) -> i32 {
        let phase = self.sh.atomic(PHASE);
        let mut n = 0u32;
        loop {
            let p = phase.load(SeqCst);
            if p == EXIT {
                return 0;
            }
            if p == REVOKED && self.slot(ACK).load(SeqCst) != 0 {
                // Judged in this phase already: let the others run.
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            n = n.wrapping_add(1);
            if n.is_multiple_of(16) {
                let seed = self.next();
                let mut g = Worker { seed, ..self };
                match fork_run(move || {
                    for _ in 0..GRANDCHILD_ACCESSES {
                        g.access();
                    }
                    0
                }) {
                    Ok(pid) => {
                        self.slot(FORKS).fetch_add(1, SeqCst);
                        if wait_ok(pid).is_err() {
                            return 3;
                        }
                    }
                    Err(e) => {
                        eprintln!("unplug child: {e}");
                        return 2;
                    }
                }
                continue;
            }
            if self.access() == Some(REVOKED) {
                self.slot(ACK).store(1, SeqCst);
            }
        }
    }
}

/// Figures summed over the cycles.
#[derive(Default)]
struct Tally {
    live: u64,
    lost: u64,
    off: u64,
    escapes: u64,
    forks: u64,
    revoke_ms: Vec<u64>,
    remove_ms: Vec<u64>,
    after_close_ms: Vec<u64>,
    replug_ms: Vec<u64>,
}

/// Runs the unplug race.
pub fn run(ctx: &Ctx, o: &Opts) -> Result<Outcome> {
    variant(&ctx.bdf)?;
    let binding = Binding::capture(&ctx.bdf);
    let mut out = Outcome::default();
    let mut t = Tally::default();
    let cycles = o.get("cycles") as u32;
    let mut done = 0u32;
    for c in 0..cycles {
        let how = if c % 2 == 0 {
            Unplug::SysfsRemove
        } else {
            Unplug::MockDelDevice
        };
        let r = cycle(ctx, o, c, how, &binding, &mut t);
        if let Err(e) = r {
            out.fail(format!("cycle {c} ({}): {e}", how.describe()));
            if !sysfs::exists(&ctx.bdf) {
                // Try to leave the device for the next part anyway.
                let _ = sysfs::replug(&ctx.bdf, how).and_then(|()| binding.restore());
            }
            break;
        }
        done += 1;
    }
    let stat = |v: &[u64]| -> (u64, u64) {
        let max = v.iter().copied().max().unwrap_or(0);
        let avg = if v.is_empty() {
            0
        } else {
            v.iter().sum::<u64>() / v.len() as u64
        };
        (avg, max)
    };
    let (rv_avg, rv_max) = stat(&t.revoke_ms);
    let (rm_avg, rm_max) = stat(&t.remove_ms);
    let (ac_avg, ac_max) = stat(&t.after_close_ms);
    let (rp_avg, rp_max) = stat(&t.replug_ms);
    diag(&format!(
        "{done} cycles: revoked {rv_avg} ms after the unplug started (max {rv_max}); \
         unplug done after {rm_avg} ms (max {rm_max}), {ac_avg} ms after the last close \
         (max {ac_max}); back and bound in {rp_avg} ms (max {rp_max})"
    ));
    out.check(t.lost > 0, || {
        format!("{} accesses were refused before the unplug started", t.lost)
    });
    out.escapes = t.escapes;
    out.figure("cycles", u64::from(done));
    out.figure("accesses_live", t.live);
    out.figure("accesses_revoked", t.off);
    out.figure("grandchildren", t.forks);
    out.figure("refused_live", t.lost);
    out.figure("revoke_ms_max", rv_max);
    out.figure("remove_ms_max", rm_max);
    out.figure("after_close_ms_max", ac_max);
    Ok(out)
}

/// One cycle: open, map, fork, unplug, judge, close, wait, replug.
fn cycle(ctx: &Ctx, o: &Opts, c: u32, how: Unplug, binding: &Binding, t: &mut Tally) -> Result<()> {
    let children = o.get("children") as usize;
    let sh = Shared::new(HEADER + children * SLOTS)?;
    let dev = Device::open(&ctx.bdf, ctx.path)?;
    let bar = dev.bar(0)?;
    let map = Mapping::new(dev.fd(), &bar, 0, bar.size as usize, Place::PmdAligned)?;
    dev.set_memory(true)?;
    let populated = map.pass(&|_| 0);
    if populated.sigbus > 0 {
        return Err(err!("{} pages got SIGBUS with memory on", populated.sigbus));
    }
    let mut pids = Vec::new();
    for k in 0..children {
        let w = Worker {
            sh: &sh,
            slot0: HEADER + k * SLOTS,
            base: map.addr(),
            pages: map.len() / PAGE,
            seed: 0x9e37_79b9 ^ (c << 8) ^ k as u32,
        };
        pids.push(fork_run(move || w.run())?);
    }
    std::thread::sleep(Duration::from_millis(o.get("live-ms")));
    sh.atomic(PHASE).store(REMOVING, SeqCst);
    let start = Instant::now();
    let remover = sysfs::start_unplug(&ctx.bdf, how)?;
    let judged = judge(&sh, &map, children, start);
    sh.atomic(PHASE).store(EXIT, SeqCst);
    let mut ended = Ok(());
    for pid in pids {
        if let Err(e) = wait_status(pid).and_then(|st| {
            if sys::WIFEXITED(st) && sys::WEXITSTATUS(st) == 0 {
                Ok(())
            } else {
                Err(err!("child {pid} ended with status {st:#x}"))
            }
        }) {
            ended = ended.and(Err(e));
        }
    }
    drop(map);
    drop(dev);
    let closed = Instant::now();
    let finished = wait_unplug(remover, how);
    let (removed, after_close) = (start.elapsed(), closed.elapsed());
    t.revoke_ms.push(judged?.as_millis() as u64);
    ended?;
    finished?;
    let sum = |s: usize| -> u64 {
        (0..children)
            .map(|k| u64::from(sh.atomic(HEADER + k * SLOTS + s).load(SeqCst)))
            .sum()
    };
    for k in 0..children {
        let e = sh.atomic(HEADER + k * SLOTS + ESCAPED).load(SeqCst);
        if e > 0 {
            let page = sh.atomic(HEADER + k * SLOTS + FIRST_ESCAPE).load(SeqCst);
            diag(&format!(
                "cycle {c}: child {k} (or its grandchildren): {e} accesses succeeded after the \
                 revoke, the first on page {page}"
            ));
        }
    }
    t.live += sum(LIVE_TRIED);
    t.lost += sum(LOST);
    t.off += sum(OFF_TRIED);
    t.escapes += sum(ESCAPED);
    t.forks += sum(FORKS);
    t.remove_ms.push(removed.as_millis() as u64);
    t.after_close_ms.push(after_close.as_millis() as u64);
    let back = Instant::now();
    sysfs::replug(&ctx.bdf, how)?;
    binding.restore().ctx("rebind after the replug")?;
    t.replug_ms.push(back.elapsed().as_millis() as u64);
    Ok(())
}

/// Waits until the unplug revoked the parent's own mapping (SIGBUS), then
/// publishes *revoked* and waits until every child made a judged access;
/// how long after `start` the revocation was seen.
fn judge(sh: &Shared, map: &Mapping, children: usize, start: Instant) -> Result<Duration> {
    if !poll_until(start + LIMIT, Pace::Every(Duration::from_millis(1)), || {
        map.read_u32(0).is_none()
    }) {
        return Err(err!(
            "the unplug did not revoke the parent's mapping in {LIMIT:?}"
        ));
    }
    let revoked = start.elapsed();
    sh.atomic(PHASE).store(REVOKED, SeqCst);
    let deadline = Instant::now() + LIMIT;
    for k in 0..children {
        let ack = sh.atomic(HEADER + k * SLOTS + ACK);
        if !poll_until(deadline, Pace::Every(Duration::from_millis(1)), || {
            ack.load(SeqCst) != 0
        }) {
            return Err(err!(
                "child {k} made no access after the revoke in {LIMIT:?}"
            ));
        }
    }
    Ok(revoked)
}

/// Waits for the unplug process to finish.
fn wait_unplug(mut child: Child, how: Unplug) -> Result<()> {
    match wait_child(&mut child, LIMIT).ctx(format!("wait for the {}", how.describe()))? {
        Some(st) if st.success() => Ok(()),
        Some(st) => Err(err!("{} failed: {st}", how.describe())),
        None => {
            let _ = child.kill();
            Err(err!(
                "{} still blocked {LIMIT:?} after every user closed the device",
                how.describe()
            ))
        }
    }
}
