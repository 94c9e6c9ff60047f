// SPDX-License-Identifier: GPL-2.0

//! The fork/revoke race in `copy_huge_pmd()` (kernel/patches/0006): a
//! revocation that completes while fork is copying a BAR mapping must reach
//! the child too.
//!
//! 7.3's `copy_huge_pmd()` reads a special (PFNMAP) PMD without its lock and
//! installs that value in the child later, under the lock, without reading
//! it again. `unmap_mapping_range()` takes no mmap_lock, so a revoke landing
//! in between zaps the parent and the (still empty) child, and fork then
//! gives the child a stale PMD: the child keeps the revoked BAR.
//!
//! The window is a few instructions wide; the kernel's test-only delay point
//! (patch 0007, `CONFIG_DEBUG_FORK_COPY_DELAY`) holds fork in it:
//!
//! 1. the parent maps 2 MiB of the BAR, PMD aligned (one PMD entry) or one
//!    page off (PTEs only), writes a pattern and reads it back;
//! 2. it arms `<debugfs>/fork_copy_delay/delay_ms` and forks; fork sleeps
//!    at the first delay point it reaches for this vma;
//! 3. a helper process forked earlier (another mm, so the parent's fork
//!    blocks none of its page faults) sees the window counter move and
//!    clears COMMAND.MEM through VFIO, inside the window;
//! 4. after fork and revoke both returned: every page must get SIGBUS in
//!    the parent and in the child; after memory is re-enabled, every page
//!    must fault back in with the pattern.
//!
//! The test also proves that it exercised the race: the window counter
//! moved by exactly one, on the copy path the mapping implies, and the
//! revoke finished before the delay could have ended. A run that misses
//! the window fails rather than passing vacuously.
//!
//! Every KTAP run prints one `# fork_race result ...` line that
//! `selftests/fork-race` collects into its side-by-side report.

use super::{new_seed, word, Ctx, Verdict};
use crate::err;
use crate::error::{Context, Result};
use crate::family::{fork_run, pipe, Family, Gate, Shared};
use crate::ktap::{diag, Outcome};
use crate::mapping::{Mapping, Place, PMD};
use crate::probe::{self, PAGE};
use crate::sys;
use crate::vfio::{Device, Path};
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

/// How long fork sleeps in the window. The revoke takes milliseconds; the
/// rest of the margin absorbs a slow (TCG) guest.
const DELAY_MS: u64 = 600;
/// How long the helper waits for fork to reach the window.
const WINDOW_WAIT: Duration = Duration::from_secs(20);
/// How long a phase may take.
const PHASE_LIMIT: Duration = Duration::from_secs(30);
/// The kernel's delay knob (patch 0007).
const KNOB_DIR: &str = "/sys/kernel/debug/fork_copy_delay";

/// How the parent maps the BAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 2 MiB aligned, BAR offset 0: one PMD entry where the driver inserts
    /// PMDs; fork copies it in `copy_huge_pmd()`.
    Pmd,
    /// One page past a 2 MiB boundary: PTEs only; fork copies them in
    /// `copy_pte_range()`.
    Pte,
}

impl Kind {
    /// Test name suffix.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Pmd => "pmd",
            Kind::Pte => "pte",
        }
    }

    fn place(self) -> Place {
        match self {
            Kind::Pmd => Place::PmdAligned,
            Kind::Pte => Place::Misaligned,
        }
    }
}

/// Which copy path the delay point was hit on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    Pmd,
    Pte,
}

impl Window {
    fn function(self) -> &'static str {
        match self {
            Window::Pmd => "copy_huge_pmd",
            Window::Pte => "copy_pte_range",
        }
    }
}

/// The kernel's delay knob; disarmed again when dropped.
struct Knob;

impl Knob {
    fn find() -> Option<Self> {
        std::path::Path::new(KNOB_DIR)
            .join("delay_ms")
            .exists()
            .then_some(Knob)
    }

    fn read(name: &str) -> Result<u64> {
        let p = format!("{KNOB_DIR}/{name}");
        let s = fs::read_to_string(&p).ctx(format!("read {p}"))?;
        s.trim()
            .parse()
            .map_err(|_| err!("{p}: '{}' is not a number", s.trim()))
    }

    /// (copy_huge_pmd windows, copy_pte_range windows) so far.
    fn windows() -> Result<(u64, u64)> {
        Ok((Self::read("pmd_windows")?, Self::read("pte_windows")?))
    }

    fn arm(&self, ms: u64) -> Result<()> {
        let p = format!("{KNOB_DIR}/delay_ms");
        fs::write(&p, ms.to_string()).ctx(format!("write {ms} to {p}"))
    }
}

impl Drop for Knob {
    fn drop(&mut self) {
        let _ = self.arm(0);
    }
}

/// CLOCK_MONOTONIC in nanoseconds: comparable across processes.
fn now_ns() -> i64 {
    let mut ts = sys::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-parameter.
    unsafe { sys::clock_gettime(sys::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// The helper's answer: when its revoke returned, or why it did not revoke.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct Revoked {
    /// 0: revoked at `at_ns`; 1: the window never opened; 2: the revoke failed.
    status: i64,
    at_ns: i64,
}

/// Forks the helper that revokes once fork is in the window. It waits for
/// `go`, polls the window counters until they pass `base`, clears
/// COMMAND.MEM and sends a [`Revoked`] up `tx`.
fn spawn_revoker(
    dev: &Device,
    go: &mut Gate,
    base: (u64, u64),
    tx: &OwnedFd,
) -> Result<sys::pid_t> {
    fork_run(|| {
        go.forget_write_end();
        go.wait();
        let send = |status: i64, at_ns: i64| {
            let r = Revoked { status, at_ns };
            // SAFETY: writes the bytes of a plain `repr(C)` record.
            unsafe {
                sys::write(
                    tx.as_raw_fd(),
                    (&raw const r).cast(),
                    std::mem::size_of::<Revoked>(),
                )
            };
        };
        let start = now_ns();
        loop {
            match Knob::windows() {
                Ok(w) if w.0 + w.1 > base.0 + base.1 => break,
                Ok(_) => {}
                Err(e) => {
                    eprintln!("fork_race helper: {e}");
                    send(1, 0);
                    return 1;
                }
            }
            if now_ns() - start > WINDOW_WAIT.as_nanos() as i64 {
                send(1, 0);
                return 0;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        match dev.set_memory(false) {
            Ok(()) => {
                send(0, now_ns());
                0
            }
            Err(e) => {
                eprintln!("fork_race helper: {e}");
                send(2, 0);
                1
            }
        }
    })
}

/// Whether the device's driver inserts PMD entries for an aligned mapping:
/// stock vfio-pci and vfio_variant's fixed mode do, unless vfio_variant
/// was loaded with `pte_only=1`; legacy mode inserts single pages.
fn driver_inserts_pmds(ctx: &Ctx) -> Result<bool> {
    let Some(d) = ctx.debugfs() else {
        return Ok(true);
    };
    Ok(d.mode()? == "fixed" && !d.pte_only()?)
}

/// Runs one fork_race test.
pub fn run(ctx: &Ctx, path: Path, kind: Kind) -> Result<Outcome> {
    let Some(knob) = Knob::find() else {
        return Ok(Outcome::Skip(format!(
            "the kernel has no {KNOB_DIR}: build it with CONFIG_DEBUG_FORK_COPY_DELAY \
             (kernel/patches/0007)"
        )));
    };
    let (dev, bar) = ctx.open(path)?;
    if (bar.size as usize) < PMD {
        return Ok(Outcome::Skip(format!(
            "BAR{} is {} KiB: a PMD entry needs 2 MiB",
            bar.index,
            bar.size / 1024
        )));
    }
    let want = match (kind, driver_inserts_pmds(ctx)?) {
        (Kind::Pmd, true) => Window::Pmd,
        _ => Window::Pte,
    };

    // The helper is forked before the BAR is mapped: it never maps it.
    let (rx, tx) = pipe()?;
    let mut go = Gate::new()?;
    let base = Knob::windows()?;
    let helper = spawn_revoker(&dev, &mut go, base, &tx)?;
    drop(tx);
    let helper = Reaped(helper);

    let map = Mapping::new(dev.fd(), &bar, 0, PMD, kind.place())?;
    let pages = PMD / PAGE;
    let expected = Shared::new(pages)?;
    let seed = new_seed();
    for i in 0..pages {
        expected.set(i, word(seed, i));
        // SAFETY: inside the mapping, page aligned, mapped RW.
        unsafe { std::ptr::write_volatile((map.addr() + i * PAGE) as *mut u32, word(seed, i)) };
    }
    let exp: &dyn Fn(usize) -> u32 = &|i| expected.get(i);
    let mut v = Verdict::default();
    let s = map.pass(exp);
    if s.pages as usize != pages || s.bad > 0 {
        return Err(err!("the parent cannot read back its own pattern: {s:?}"));
    }
    diag(&format!(
        "{} via {}: BAR{} mapped 2 MiB {} at {:#x}, expecting fork to copy it in {}",
        ctx.driver(),
        path.name(),
        bar.index,
        match kind {
            Kind::Pmd => "PMD aligned",
            Kind::Pte => "one page off PMD alignment",
        },
        map.addr(),
        want.function()
    ));

    knob.arm(DELAY_MS)?;
    go.open();
    let fork_ns = now_ns();
    let scratch = Mapping::scratch(exp)?;
    let mut fam = Family::spawn(1, 0, 3, |m| {
        expected.touch();
        probe::warm_up();
        let _ = scratch.pass(exp);
        for phase in 1..3 {
            m.wait(phase);
            m.report(phase, &map.pass(exp));
        }
    })?;
    let forked_ns = now_ns();
    let revoked = read_revoked(&rx)?;
    drop(helper);
    let after = Knob::windows()?;
    let armed = Knob::read("delay_ms")?;
    let opened = (
        after.0.saturating_sub(base.0),
        after.1.saturating_sub(base.1),
    );

    // Did this run exercise the race?
    let window = match opened {
        (1, 0) => Some(Window::Pmd),
        (0, 1) => Some(Window::Pte),
        _ => None,
    };
    v.check(armed == 0, || {
        format!("the delay knob is still armed ({armed} ms): fork never reached a delay point")
    });
    v.check(window == Some(want), || {
        format!(
            "fork opened {} copy_huge_pmd and {} copy_pte_range windows; expected one {} \
             window for this mapping",
            opened.0,
            opened.1,
            want.function()
        )
    });
    let inside = revoked.status == 0 && revoked.at_ns < fork_ns + (DELAY_MS * 1_000_000) as i64;
    match revoked.status {
        0 => diag(&format!(
            "fork took {} ms; the revoke (COMMAND.MEM clear) returned {} ms after fork began, \
             {} the {DELAY_MS} ms window",
            (forked_ns - fork_ns) / 1_000_000,
            (revoked.at_ns - fork_ns) / 1_000_000,
            if inside { "inside" } else { "NOT inside" }
        )),
        1 => v.fail(format!(
            "the helper saw no delay window open within {WINDOW_WAIT:?} and did not revoke"
        )),
        _ => v.fail("the helper's revoke (COMMAND.MEM clear) failed".into()),
    }
    v.check(revoked.status != 0 || inside, || {
        "the revoke did not finish inside the fork's delay window: the race was not exercised"
            .into()
    });
    if revoked.status != 0 {
        dev.set_memory(false)?;
    }

    // Memory is disabled: every page, in both processes, must fault and
    // get SIGBUS.
    let parent = map.pass(exp);
    fam.start(1);
    let child = fam.collect(1, PHASE_LIMIT)?[0].seen();
    diag(&format!(
        "after fork and revoke: parent {}/{pages} pages readable, {} SIGBUS; \
         child {}/{pages} readable, {} SIGBUS",
        parent.pages, parent.sigbus, child.pages, child.sigbus
    ));
    if parent.pages > 0 || parent.sigbus as usize != pages {
        v.fail(format!(
            "the parent read {} of {pages} pages after the revoke (SIGBUS on {})",
            parent.pages, parent.sigbus
        ));
    }
    if child.pages > 0 || child.sigbus as usize != pages {
        let entry = match window {
            Some(Window::Pmd) => "PMD entry (the copy_huge_pmd() race, kernel/patches/0006)",
            _ => "PTE entry",
        };
        v.fail(format!(
            "ESCAPE: the child read {} of {pages} pages of the revoked BAR after fork and \
             revoke had both returned (SIGBUS on {}): fork gave it a stale {entry}",
            child.pages, child.sigbus
        ));
    }

    // Memory back: every page faults in again, with the pattern.
    dev.set_memory(true)?;
    let parent2 = map.pass(exp);
    fam.start(2);
    let child2 = fam.collect(2, PHASE_LIMIT)?[0].seen();
    diag(&format!(
        "after re-enable: parent {}/{pages} readable in {} faults; child {}/{pages} in {} faults",
        parent2.pages, parent2.faults, child2.pages, child2.faults
    ));
    for (who, s) in [("parent", parent2), ("child", child2)] {
        if s.pages as usize != pages || s.bad > 0 || s.faults == 0 {
            v.fail(format!(
                "after re-enable the {who} read {} of {pages} pages ({} wrong) in {} faults; \
                 expected all, with the pattern, after faulting",
                s.pages, s.bad, s.faults
            ));
        }
    }
    if let Err(e) = fam.finish() {
        v.fail(format!("the child ended badly: {e}"));
    }
    println!(
        "# fork_race result kind={} path={} driver={} window={} revoked_inside={} \
         child_readable={} pages={pages}",
        kind.name(),
        path.name(),
        ctx.driver(),
        window.map_or("none", Window::function),
        inside,
        child.pages
    );
    Ok(v.outcome())
}

/// Reads the helper's [`Revoked`] record (it always sends one, or dies).
fn read_revoked(rx: &OwnedFd) -> Result<Revoked> {
    let mut r = Revoked::default();
    let want = std::mem::size_of::<Revoked>();
    // SAFETY: reads one record into a plain `repr(C)` struct; every bit
    // pattern is valid for it.
    let n = unsafe { sys::read(rx.as_raw_fd(), (&raw mut r).cast(), want) };
    if n != want as isize {
        return Err(err!("the revoke helper died without answering ({n} bytes)"));
    }
    Ok(r)
}

/// The helper's pid: killed (if still running) and reaped on drop, so
/// that it can never revoke during a later test.
struct Reaped(sys::pid_t);

impl Drop for Reaped {
    fn drop(&mut self) {
        // SAFETY: our own child, killed and reaped once.
        unsafe {
            sys::kill(self.0, sys::SIGKILL);
            sys::waitpid(self.0, std::ptr::null_mut(), 0);
        }
    }
}
