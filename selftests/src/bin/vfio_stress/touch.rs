// SPDX-License-Identifier: GPL-2.0

//! Touch: one short map, fork and revoke, for the load/unload cycles
//! (`stress-guest`'s `cycles` runs it once per freshly loaded module pair).
//!
//! The parent maps all of BAR0 and forks a child that reads every page
//! (every read must succeed); the parent then clears COMMAND memory enable
//! and the child reads every page again: each page it can still read is an
//! escape. The child exits, memory is enabled again and the parent checks
//! that its own mapping faults back in.

use crate::args::{variant, Ctx, Opt, Opts};
use crate::outcome::Outcome;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};
use vfio_revoke_selftests::err;
use vfio_revoke_selftests::error::Result;
use vfio_revoke_selftests::family::{fork_run, wait_ok, Shared};
use vfio_revoke_selftests::mapping::{Mapping, Place};
use vfio_revoke_selftests::poll::{poll_until, Pace};
use vfio_revoke_selftests::probe::PAGE;
use vfio_revoke_selftests::vfio::Device;

/// Options: none besides the device.
pub const OPTS: &[Opt] = &[];

/// Longest wait for the other process.
const LIMIT: Duration = Duration::from_secs(20);

// Shared words.
const STEP: usize = 0;
const READ_BEFORE: usize = 1;
const SIGBUS_BEFORE: usize = 2;
const READ_AFTER: usize = 3;
const WORDS: usize = 4;

/// Waits until word `STEP` is at least `step`.
fn wait_step(sh: &Shared, step: u32) -> Result<()> {
    let reached = || sh.atomic(STEP).load(SeqCst) >= step;
    if !poll_until(
        Instant::now() + LIMIT,
        Pace::Every(Duration::from_millis(1)),
        reached,
    ) {
        return Err(err!("step {step} not reached in {LIMIT:?}"));
    }
    Ok(())
}

/// The child: a pass before the revoke (step 1), one after (step 3).
fn child(map: &Mapping, sh: &Shared) -> i32 {
    let s = map.pass(&|_| 0);
    sh.atomic(READ_BEFORE).store(s.pages, SeqCst);
    sh.atomic(SIGBUS_BEFORE).store(s.sigbus, SeqCst);
    sh.atomic(STEP).store(1, SeqCst);
    if wait_step(sh, 2).is_err() {
        return 2;
    }
    let s = map.pass(&|_| 0);
    sh.atomic(READ_AFTER).store(s.pages, SeqCst);
    sh.atomic(STEP).store(3, SeqCst);
    0
}

/// Runs the touch.
pub fn run(ctx: &Ctx, _o: &Opts) -> Result<Outcome> {
    let dbg = variant(&ctx.bdf)?;
    let dev = Device::open(&ctx.bdf, ctx.path)?;
    let bar = dev.bar(0)?;
    let map = Mapping::new(dev.fd(), &bar, 0, bar.size as usize, Place::Any)?;
    dev.set_memory(true)?;
    let pages = (map.len() / PAGE) as u32;
    let sh = Shared::new(WORDS)?;
    let before = dbg.counters()?;
    let pid = {
        let (map, sh) = (&map, &sh);
        fork_run(move || child(map, sh))?
    };
    let mut out = Outcome::default();
    let r = wait_step(&sh, 1)
        .and_then(|()| dev.set_memory(false))
        .and_then(|()| {
            sh.atomic(STEP).store(2, SeqCst);
            wait_step(&sh, 3)
        });
    if let Err(e) = r {
        out.fail(e.0);
    }
    if let Err(e) = wait_ok(pid) {
        out.fail(format!("child: {e}"));
    }
    dev.set_memory(true)?;
    let parent = map.pass(&|_| 0);
    let moved = dbg.counters()?.since(&before);
    let (read, sigbus, after) = (
        sh.atomic(READ_BEFORE).load(SeqCst),
        sh.atomic(SIGBUS_BEFORE).load(SeqCst),
        sh.atomic(READ_AFTER).load(SeqCst),
    );
    out.check(read != pages || sigbus != 0, || {
        format!("before the revoke the child read {read} of {pages} pages ({sigbus} SIGBUS)")
    });
    out.check(parent.pages != pages, || {
        format!(
            "after memory was enabled again the parent read {} of {pages} pages",
            parent.pages
        )
    });
    out.check(moved.zaps != 1, || {
        format!("{} zaps for one memory disable", moved.zaps)
    });
    out.escapes = u64::from(after);
    out.figure("pages", u64::from(pages));
    out.figure("read_after_revoke", u64::from(after));
    Ok(out)
}
