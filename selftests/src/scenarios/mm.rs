// SPDX-License-Identifier: GPL-2.0

//! mm operations around a BAR mapping that do not fit the fork family of
//! `revoke.rs`: `MADV_DONTFORK`, vfork + exec, and a child thread that keeps
//! reading while the parent revokes and restores memory again and again.

use super::checks::Want;
use super::{new_seed, word, Ctx, Verdict};
use crate::err;
use crate::error::{last_os, Result};
use crate::family::{fork_run, wait_status, Family, Shared};
use crate::ktap::{diag, Outcome};
use crate::mapping::{Mapping, Place};
use crate::probe::PAGE;
use crate::sys;
use crate::vfio::{Device, Path};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

/// How long a phase of the thread test may take.
const PHASE_LIMIT: Duration = Duration::from_secs(30);
/// Memory off/on rounds in the thread test.
const ROUNDS: usize = 4;

/// The device, a mapping of the run's BAR written with a fresh pattern,
/// and the pattern.
fn setup(ctx: &Ctx, path: Path) -> Result<(Device, Mapping, Shared)> {
    let (dev, bar) = ctx.open(path)?;
    let len = ctx.map_len(&bar);
    let map = Mapping::new(dev.fd(), &bar, 0, len, Place::Any)?;
    let expected = Shared::new(len / PAGE)?;
    let seed = new_seed();
    for i in 0..len / PAGE {
        expected.set(i, word(seed, i));
        map.write_u32(i * PAGE, word(seed, i));
    }
    Ok((dev, map, expected))
}

/// Clears and sets COMMAND.MEM, checking that the parent's every page gets
/// SIGBUS in between and faults back in with its data afterwards.
fn revoke_parent(
    v: &mut Verdict,
    dev: &Device,
    map: &Mapping,
    exp: &dyn Fn(usize) -> u32,
) -> Result<()> {
    let pages = (map.len() / PAGE) as u32;
    dev.set_memory(false)?;
    let s = map.pass(exp);
    v.check(s.sigbus == pages, || {
        format!(
            "after COMMAND.MEM clear the parent read {} of {pages} pages",
            s.pages
        )
    });
    dev.set_memory(true)?;
    let s = map.pass(exp);
    v.check(s.pages == pages && s.bad == 0 && s.faults > 0, || {
        format!("after re-enable the parent saw {s:?}, expected every page faulted back in")
    });
    Ok(())
}

/// `MADV_DONTFORK`: the child has no mapping (SIGSEGV on touching it),
/// `MADV_DOFORK` cannot undo it on a PFN map, and the parent's mapping is
/// still revoked and restored.
pub fn dontfork(ctx: &Ctx, path: Path) -> Result<Outcome> {
    let (dev, map, expected) = setup(ctx, path)?;
    let exp: &dyn Fn(usize) -> u32 = &|i| expected.get(i);
    let mut v = Verdict::default();
    if let Some(e) = map.madvise(sys::MADV_DONTFORK) {
        return Err(err!("madvise(MADV_DONTFORK) failed with errno {e}"));
    }
    let addr = map.addr();
    let pid = fork_run(|| {
        // SAFETY: the address is not mapped in this child (that is the
        // point): the load kills it with SIGSEGV, which the parent expects.
        let v = unsafe { std::ptr::read_volatile(addr as *const u32) };
        i32::from(v == 0) + 10
    })?;
    let st = wait_status(pid)?;
    let segv = !sys::WIFEXITED(st) && sys::WTERMSIG(st) == sys::SIGSEGV;
    diag(&format!(
        "MADV_DONTFORK: the child touching the range {}",
        if segv {
            "died of SIGSEGV (no vma)".into()
        } else {
            format!("ended with wait status {st:#x}")
        }
    ));
    v.check(segv, || {
        format!("after MADV_DONTFORK the child touched the BAR range and ended with wait status {st:#x}, not SIGSEGV: it inherited the mapping")
    });
    let e = map.madvise(sys::MADV_DOFORK);
    v.check(e == Some(sys::EINVAL), || {
        format!("MADV_DOFORK on a VM_IO mapping: expected EINVAL, got {e:?}")
    });
    revoke_parent(&mut v, &dev, &map, exp)?;
    Ok(v.outcome())
}

/// The advice a PFN map refuses with EINVAL, leaving every entry in place.
const REFUSED: &[(&str, sys::c_int)] = &[
    ("MADV_DONTNEED", sys::MADV_DONTNEED),
    ("MADV_FREE", sys::MADV_FREE),
    ("MADV_COLD", sys::MADV_COLD),
    ("MADV_PAGEOUT", sys::MADV_PAGEOUT),
    ("MADV_WIPEONFORK", sys::MADV_WIPEONFORK),
    ("MADV_DOFORK", sys::MADV_DOFORK),
];

/// The madvise calls a PFN map refuses are refused with EINVAL and change
/// nothing: every entry stays, the next pass takes no fault, and a revoke
/// still reaches the mapping.
pub fn madvise_refused(ctx: &Ctx, path: Path) -> Result<Outcome> {
    let (dev, map, expected) = setup(ctx, path)?;
    let exp: &dyn Fn(usize) -> u32 = &|i| expected.get(i);
    let mut v = Verdict::default();
    let pages = (map.len() / PAGE) as u32;
    let _ = map.pass(exp);
    refused_advice(&mut v, &map);
    let present = ctx.debugfs().and_then(|d| d.present().ok());
    let s = map.pass(exp);
    v.check(s.pages == pages && s.bad == 0 && s.faults == 0, || {
        format!("after the refused advice the parent saw {s:?}: entries were dropped")
    });
    v.check(present.is_none_or(|p| p == pages), || {
        format!("after the refused advice only {present:?} of {pages} entries were present")
    });
    revoke_parent(&mut v, &dev, &map, exp)?;
    Ok(v.outcome())
}

/// Issues each refused advice over `map` and records any that was not
/// refused with EINVAL.
fn refused_advice(v: &mut Verdict, map: &Mapping) {
    for &(name, advice) in REFUSED {
        let e = map.madvise(advice);
        v.check(e == Some(sys::EINVAL), || {
            format!("{name} on a PFN map: expected EINVAL, got {e:?}")
        });
    }
    diag(&format!(
        "refused on the PFN map: {}",
        REFUSED
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    ));
}

/// vfork + exec: the child shares the parent's mm until exec and copies
/// nothing; the parent's entries stay, untouched, and a revoke reaches them.
pub fn vfork_exec(ctx: &Ctx, path: Path) -> Result<Outcome> {
    let (dev, map, expected) = setup(ctx, path)?;
    let exp: &dyn Fn(usize) -> u32 = &|i| expected.get(i);
    let mut v = Verdict::default();
    let pages = (map.len() / PAGE) as u32;
    let _ = map.pass(exp);
    let prog = c"/bin/true";
    let argv = [prog.as_ptr(), std::ptr::null()];
    // SAFETY: the child only calls execv and _exit with data prepared
    // before the vfork, as vfork requires.
    let pid = unsafe {
        let pid = sys::vfork();
        if pid == 0 {
            sys::execv(prog.as_ptr(), argv.as_ptr());
            sys::_exit(127);
        }
        pid
    };
    if pid < 0 {
        return Err(last_os("vfork"));
    }
    let st = wait_status(pid)?;
    v.check(sys::WIFEXITED(st) && sys::WEXITSTATUS(st) == 0, || {
        format!("vfork + exec /bin/true: wait status {st:#x}")
    });
    let present = ctx.debugfs().and_then(|d| d.present().ok());
    let s = map.pass(exp);
    diag(&format!(
        "after vfork + exec: {} pages read in {} faults, {} entries present",
        s.pages,
        s.faults,
        present.map_or("unmeasured".into(), |p| p.to_string())
    ));
    v.check(s.pages == pages && s.bad == 0 && s.faults == 0, || {
        format!("after vfork + exec the parent saw {s:?}: its entries should be untouched")
    });
    v.check(present.is_none_or(|p| p == pages), || {
        format!("after vfork + exec only {present:?} of {pages} entries were present")
    });
    revoke_parent(&mut v, &dev, &map, exp)?;
    Ok(v.outcome())
}

/// A thread of a forked child reads the mapping in a loop while the parent
/// clears and sets COMMAND.MEM [`ROUNDS`] times: after each clear the
/// thread's next full pass must get SIGBUS on every page, after each set
/// read the data.
pub fn thread_reader(ctx: &Ctx, path: Path) -> Result<Outcome> {
    let (dev, map, expected) = setup(ctx, path)?;
    let exp: &dyn Fn(usize) -> u32 = &|i| expected.get(i);
    let phases = 1 + 2 * ROUNDS;
    let mut fam = Family::spawn(1, 0, phases, |m| {
        let words: Vec<u32> = (0..expected.len()).map(|i| expected.get(i)).collect();
        let cur = AtomicUsize::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                let exp = |i: usize| words[i];
                let exp: &dyn Fn(usize) -> u32 = &exp;
                let mut next = 0;
                while next < phases {
                    if cur.load(SeqCst) >= next {
                        // A full pass begun after the phase started.
                        m.report(next, &map.pass(exp));
                        next += 1;
                    } else {
                        let _ = map.pass(exp);
                    }
                }
            });
            for phase in 1..phases {
                m.wait(phase);
                cur.store(phase, SeqCst);
            }
        });
    })?;
    let mut v = Verdict::default();
    v.judge(
        "thread, after fork",
        Want::Readable,
        &fam.collect(0, PHASE_LIMIT)?,
        exp,
    );
    for round in 0..ROUNDS {
        dev.set_memory(false)?;
        fam.start(1 + 2 * round);
        let r = fam.collect(1 + 2 * round, PHASE_LIMIT)?;
        v.judge(
            &format!("thread, round {round}, memory off"),
            Want::Sigbus,
            &r,
            exp,
        );
        dev.set_memory(true)?;
        fam.start(2 + 2 * round);
        let r = fam.collect(2 + 2 * round, PHASE_LIMIT)?;
        v.judge(
            &format!("thread, round {round}, memory on"),
            Want::Readable,
            &r,
            exp,
        );
    }
    if let Err(e) = fam.finish() {
        v.fail(format!("the reader ended badly: {e}"));
    }
    Ok(v.outcome())
}
