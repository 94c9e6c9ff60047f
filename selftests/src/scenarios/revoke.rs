// SPDX-License-Identifier: GPL-2.0

//! The fork tests: map the BAR, write a pattern, fork a family, revoke,
//! and check what every process sees.
//!
//! Phases (each process reads the first word of every page):
//! 0. right after fork: the pattern with 0 faults (inherited PTEs), or,
//!    for a family forked before the parent touched the mapping, after
//!    faulting it in;
//! 1. after the revoke: SIGBUS while memory is disabled (COMMAND.MEM clear,
//!    unplug), or a fresh fault and the data (reset, driver revoke);
//! 2. after re-enabling memory: a fresh fault and the data.
//!
//! The parent takes part in phases 1 and 2 as process 0. With the fixed
//! driver every process passes; with legacy mode the children keep stale
//! PTEs and the test fails, as it must.

use super::checks::{self, Want};
use super::{new_seed, word, Ctx, Verdict};
use crate::err;
use crate::error::{Context, Result};
use crate::family::{Family, Report, Shared};
use crate::ktap::{diag, Outcome};
use crate::mapping::{Mapping, Place};
use crate::poll::{poll_until, wait_child, Pace};
use crate::probe::Seen;
use crate::probe::{self, PAGE};
use crate::sysfs::{self, Binding, Debugfs};
use crate::vfio::{Device, Path, Region};
use std::process::Child;
use std::time::{Duration, Instant};

/// How long a phase may take.
const PHASE_LIMIT: Duration = Duration::from_secs(30);
/// How long a sysfs remove may take to revoke, and to finish once every
/// user has closed the device.
const UNPLUG_LIMIT: Duration = Duration::from_secs(30);

/// The revocation a test performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoke {
    /// Clear COMMAND memory enable through the VFIO config region.
    MemDisable,
    /// PMCSR to D3hot through the VFIO config region (and back to D0).
    D3hot,
    /// `VFIO_DEVICE_FEATURE` low-power entry (and exit).
    LowPower,
    /// `VFIO_DEVICE_RESET`.
    Reset,
    /// Function Level Reset through a PCIe Device Control write.
    Flr,
    /// `VFIO_DEVICE_PCI_HOT_RESET` issued through another device of the
    /// same bus (the core resets and revokes them all), or through this
    /// one if it is alone.
    HotReset,
    /// vfio_variant's debugfs `revoke`.
    Driver,
    /// `echo 1 > /sys/bus/pci/devices/BDF/remove` from another process.
    Unplug,
}

impl Revoke {
    fn describe(self) -> &'static str {
        match self {
            Revoke::MemDisable => "COMMAND.MEM clear",
            Revoke::D3hot => "PMCSR D3hot",
            Revoke::LowPower => "low-power entry",
            Revoke::Reset => "VFIO_DEVICE_RESET",
            Revoke::Flr => "DevCtl FLR",
            Revoke::HotReset => "hot reset",
            Revoke::Driver => "debugfs revoke",
            Revoke::Unplug => "sysfs remove",
        }
    }

    /// Memory stays off after this revocation until [`restore`] (SIGBUS
    /// meanwhile).
    fn memory_off(self) -> bool {
        matches!(self, Revoke::MemDisable | Revoke::D3hot | Revoke::LowPower)
    }

    /// The device may reset its memory (the region then tells what the
    /// mappings must show).
    fn resets(self) -> bool {
        matches!(
            self,
            Revoke::D3hot | Revoke::LowPower | Revoke::Reset | Revoke::Flr | Revoke::HotReset
        )
    }
}

/// Why the device cannot do `revoke`, if it cannot.
fn lacks(dev: &Device, revoke: Revoke, bdf: &str) -> Result<Option<String>> {
    Ok(match revoke {
        Revoke::Reset if !dev.has_reset() => Some(format!(
            "{bdf} has no reset method (VFIO_DEVICE_FLAGS_RESET clear)"
        )),
        Revoke::D3hot if dev.find_cap(crate::uapi::PCI_CAP_ID_PM)?.is_none() => {
            Some(format!("{bdf} has no power management capability"))
        }
        Revoke::Flr if !dev.has_flr()? => Some(format!("{bdf} has no FLR (PCIe DevCap)")),
        Revoke::HotReset if dev.hot_reset_affected()?.is_none() => Some(format!(
            "{bdf} cannot be hot reset (no slot or bus reset: GET_PCI_HOT_RESET_INFO says ENODEV)"
        )),
        _ => None,
    })
}

/// The other devices a hot reset of `dev` resets, opened the way `dev` is
/// (the reset must prove it owns them all).
fn open_siblings(dev: &Device) -> Result<Vec<Device>> {
    let all = dev.hot_reset_affected()?.unwrap_or_default();
    let mut out = Vec::new();
    for bdf in all.iter().filter(|b| **b != dev.bdf) {
        match sysfs::driver(bdf) {
            Some(d) if d.contains("vfio") => out.push(dev.open_sibling(bdf)?),
            d => {
                return Err(err!(
                    "a hot reset of {} also resets {bdf}, which is bound to {}: bind every \
                     device on the bus to a VFIO driver",
                    dev.bdf,
                    d.as_deref().unwrap_or("no driver")
                ))
            }
        }
    }
    diag(&format!(
        "hot reset affects {}; issued through {}",
        all.join(", "),
        out.first().map_or(dev.bdf.as_str(), |s| s.bdf.as_str())
    ));
    Ok(out)
}

/// Performs `revoke` (all but the unplug).
fn perform(dev: &Device, revoke: Revoke, dbg: Option<&Debugfs>, siblings: &[Device]) -> Result<()> {
    match revoke {
        Revoke::HotReset => match siblings.split_first() {
            Some((through, rest)) => {
                let others: Vec<&Device> = std::iter::once(dev).chain(rest).collect();
                through.hot_reset(&others)
            }
            None => dev.hot_reset(&[]),
        },
        Revoke::MemDisable => dev.set_memory(false),
        Revoke::D3hot => dev.set_d3hot(true),
        Revoke::LowPower => dev.low_power(true),
        Revoke::Reset => dev.reset(),
        Revoke::Flr => dev.flr(),
        Revoke::Driver => dbg.ok_or_else(|| err!("no debugfs"))?.revoke(),
        Revoke::Unplug => Err(err!("the unplug is performed by another process")),
    }
}

/// Brings memory back after a [`Revoke::memory_off`] revocation.
fn restore(dev: &Device, revoke: Revoke) -> Result<()> {
    match revoke {
        Revoke::MemDisable => dev.set_memory(true),
        Revoke::D3hot => dev.set_d3hot(false),
        Revoke::LowPower => dev.low_power(false),
        _ => Ok(()),
    }
}

/// What the mapping looks like when the family is forked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One vma over the mapped part of the BAR.
    Whole,
    /// A middle page unmapped: two vmas.
    Split,
    /// Moved with mremap.
    Moved,
    /// One vma starting half-way plus a page into the BAR (a non-zero,
    /// unaligned offset).
    Offset,
    /// Two mmaps of one BAR: all of it, and again its second half.
    Twice,
}

/// One fork test.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The revocation, or `None` to only check inheritance.
    pub revoke: Option<Revoke>,
    /// The mapping's shape at fork.
    pub shape: Shape,
    /// Children.
    pub children: usize,
    /// Grandchildren per child.
    pub grandchildren: usize,
    /// The parent populates the mapping before forking.
    pub touch_first: bool,
    /// Use the run's children/grandchildren counts.
    pub many: bool,
    /// Memory is disabled before the fork and enabled after it: the
    /// family inherits no entries and must fault the BAR in.
    pub disabled_at_fork: bool,
    /// Map this BAR instead of the run's.
    pub bar: Option<u32>,
    /// After fork, every process reshapes its own mapping (the parent
    /// moves it; children shrink it, punch a page out of it or move it)
    /// before the revoke.
    pub reshape: bool,
}

impl Spec {
    /// One child, parent populated first.
    pub fn one(revoke: Option<Revoke>) -> Self {
        Self {
            revoke,
            shape: Shape::Whole,
            children: 1,
            grandchildren: 0,
            touch_first: true,
            many: false,
            disabled_at_fork: false,
            bar: None,
            reshape: false,
        }
    }

    /// The run's full family size.
    pub fn many(revoke: Revoke) -> Self {
        Self {
            many: true,
            ..Self::one(Some(revoke))
        }
    }

    /// A child and a grandchild over a split or moved mapping.
    pub fn shaped(shape: Shape) -> Self {
        Self {
            shape,
            grandchildren: 1,
            ..Self::one(Some(Revoke::MemDisable))
        }
    }

    /// Applies the run's family size if this spec wants it.
    pub fn sized(mut self, ctx: &Ctx) -> Self {
        if self.many {
            self.children = ctx.children;
            self.grandchildren = ctx.grandchildren;
        }
        self
    }
}

/// Runs one fork test.
pub fn run(ctx: &Ctx, path: Path, spec: &Spec) -> Result<Outcome> {
    match spec.revoke {
        Some(Revoke::Driver) if ctx.debugfs().is_none() => {
            return Ok(Outcome::Skip(format!(
                "needs vfio_variant's debugfs revoke; {} is bound to {}",
                ctx.bdf,
                ctx.driver()
            )));
        }
        Some(Revoke::Unplug) if !ctx.is_variant() => {
            return Ok(Outcome::Skip(format!(
                "{} does not revoke mappings on remove: vfio_pci_core_request() only \
                 asks the user to release the device and remove waits",
                ctx.driver()
            )));
        }
        _ => {}
    }
    let binding = Binding::capture(&ctx.bdf);
    let mut remover = None;
    let mut result = run_family(ctx, path, spec, &mut remover);
    // Every fd and mapping of this test is closed now: the remove can end.
    if let Some(child) = remover {
        if let Err(e) = finish_unplug(child, &binding) {
            result = match result {
                Ok(Outcome::Fail(why)) => Ok(Outcome::Fail(format!("{why}; {e}"))),
                Ok(_) => Err(e),
                Err(first) => Err(err!("{first}; {e}")),
            };
        }
    }
    result
}

fn run_family(ctx: &Ctx, path: Path, spec: &Spec, remover: &mut Option<Child>) -> Result<Outcome> {
    let (dev, bar) = ctx.open(path)?;
    let bar = match spec.bar {
        None => bar,
        Some(i) => match dev.region(i) {
            Ok(r) if r.size > 0 && r.mappable() => r,
            _ => {
                return Ok(Outcome::Skip(format!(
                    "{} has no mappable BAR{i} besides BAR{}",
                    ctx.bdf, ctx.bar
                )))
            }
        },
    };
    if let Some(why) = spec
        .revoke
        .map(|r| lacks(&dev, r, &ctx.bdf))
        .transpose()?
        .flatten()
    {
        return Ok(Outcome::Skip(why));
    }
    let siblings = match spec.revoke {
        Some(Revoke::HotReset) => open_siblings(&dev)?,
        _ => Vec::new(),
    };
    let len = ctx.map_len(&bar);
    let start = if spec.shape == Shape::Offset {
        len / 2 + PAGE
    } else {
        0
    };
    let mut map = Mapping::new(dev.fd(), &bar, start, len - start, Place::Any)?;
    match spec.shape {
        Shape::Whole | Shape::Offset => {}
        Shape::Split => map.punch(len / PAGE / 2)?,
        Shape::Moved => map.remap()?,
        Shape::Twice => map.add(dev.fd(), &bar, len / 2, len / 2)?,
    }
    let pages = len / PAGE;
    let expected = Shared::new(pages)?;
    let seed = new_seed();
    for i in 0..pages {
        expected.set(i, word(seed, i));
    }
    let exp: &dyn Fn(usize) -> u32 = &|i| expected.get(i);
    if spec.touch_first {
        for piece in map.pieces() {
            for k in 0..piece.len / PAGE {
                let v = exp(piece.bar_offset / PAGE + k);
                // SAFETY: inside the piece, page aligned, mapped RW.
                unsafe { std::ptr::write_volatile((piece.addr + k * PAGE) as *mut u32, v) };
            }
        }
        let s = map.pass(exp);
        if s.sigbus > 0 || s.bad > 0 {
            return Err(err!("the parent cannot read back its own pattern: {s:?}"));
        }
    } else {
        for i in 0..pages {
            dev.write_u32(&bar, (i * PAGE) as u64, exp(i))?;
        }
    }
    diag(&format!(
        "{} via {}: BAR{} {} KiB, {} KiB mapped in {} vma(s){}, {} child(ren) x {} grandchild(ren)",
        ctx.driver(),
        path.name(),
        bar.index,
        bar.size / 1024,
        map.len() / 1024,
        map.pieces().len(),
        match spec.shape {
            Shape::Whole => "",
            Shape::Split => " (split by munmap)",
            Shape::Moved => " (moved by mremap)",
            Shape::Offset => " (at a non-zero BAR offset)",
            Shape::Twice => " (two mmaps of the BAR)",
        },
        spec.children,
        spec.grandchildren
    ));

    if spec.disabled_at_fork {
        dev.set_memory(false)?;
        let p = parent(0, &map, exp, None);
        if p.sigbus as usize != map.len() / PAGE {
            return Err(err!(
                "the parent read its mapping with memory disabled: {p:?}"
            ));
        }
    }
    let phases = match spec.revoke {
        _ if spec.disabled_at_fork => 2,
        None => 1,
        Some(r) if r.memory_off() => 3,
        Some(_) => 2,
    };
    let dbg = ctx.debugfs();
    let scratch = Mapping::scratch(exp)?;
    let mut fam = Family::spawn(spec.children, spec.grandchildren, phases, |m| {
        // Take this process's first-touch faults (stack, data, the shared
        // words, the code of the pass) before anything is measured.
        expected.touch();
        probe::warm_up();
        let _ = scratch.pass(exp);
        let _ = dbg.as_ref().map(Debugfs::present);
        let mut mine = map.view();
        if spec.reshape {
            if let Err(e) = reshape_member(&mut mine, m.who) {
                eprintln!("process {}: {e}", m.who);
                std::process::exit(5);
            }
        }
        for phase in 0..phases {
            m.wait(phase);
            m.report(phase, &pass(&mine, exp, dbg.as_ref()));
        }
    })?;
    let mut v = Verdict::default();
    let r0 = fam.collect(0, PHASE_LIMIT)?;
    if spec.disabled_at_fork {
        v.judge("forked with memory disabled", Want::Sigbus, &r0, exp);
        dev.set_memory(true)?;
        let p1 = parent(1, &map, exp, dbg.as_ref());
        fam.start(1);
        let mut r1 = fam.collect(1, PHASE_LIMIT)?;
        r1.insert(0, p1);
        v.judge("after re-enable", Want::Faulted, &r1, exp);
        if let Err(e) = fam.finish() {
            v.fail(format!("a process ended badly: {e}"));
        }
        return Ok(v.outcome());
    }
    if spec.touch_first {
        v.judge("after fork", Want::Inherited, &r0, exp);
    } else {
        v.judge("after fork, untouched", Want::Faulted, &r0, exp);
        let p = parent(0, &map, exp, dbg.as_ref());
        v.judge("parent's first touch", Want::Faulted, &[p], exp);
    }
    let Some(revoke) = spec.revoke else {
        fam.finish()?;
        return Ok(v.outcome());
    };
    if spec.reshape {
        map.remap()?;
        let e = map.try_expand();
        v.check(e == Some(crate::sys::EFAULT), || {
            format!("mremap growing a PFN map in place: expected EFAULT, got {e:?}")
        });
        diag(&format!(
            "after fork: parent moved its mapping (growing it failed: {e:?}); processes \
             1, 4, ... shrank theirs, 2, 5, ... punched a page out, 3, 6, ... moved theirs"
        ));
    }

    let counters = ctx.debugfs();
    let before = counters.as_ref().map(|d| d.counters()).transpose()?;
    let p1 = match revoke {
        Revoke::Unplug => {
            *remover = Some(sysfs::start_remove(&ctx.bdf)?);
            wait_revoked(&map)?;
            // Every page now, not only the one polled. The debugfs
            // directory is going away with the device: no presence count.
            parent(1, &map, exp, None)
        }
        _ => {
            perform(&dev, revoke, counters.as_ref(), &siblings)?;
            if revoke.resets() && !revoke.memory_off() {
                reload_expected(&dev, &bar, &expected, seed)?;
            }
            parent(1, &map, exp, dbg.as_ref())
        }
    };
    fam.start(1);
    let mut r1 = fam.collect(1, PHASE_LIMIT)?;
    r1.insert(0, p1);
    let after = format!("after {}", revoke.describe());
    if revoke.memory_off() || revoke == Revoke::Unplug {
        v.judge(&after, Want::Sigbus, &r1, exp);
    } else {
        v.judge(&after, Want::Refaulted, &r1, exp);
    }
    let mut refaulted = r1.clone();
    if revoke.memory_off() {
        restore(&dev, revoke)?;
        if revoke.resets() {
            reload_expected(&dev, &bar, &expected, seed)?;
        }
        let p2 = parent(2, &map, exp, dbg.as_ref());
        fam.start(2);
        let mut r2 = fam.collect(2, PHASE_LIMIT)?;
        r2.insert(0, p2);
        v.judge("after memory is back", Want::Refaulted, &r2, exp);
        refaulted = r2;
    }
    if let Err(e) = fam.finish() {
        v.fail(format!("a process ended badly: {e}"));
    }
    if let (Some(d), Some(before)) = (counters, before) {
        if revoke != Revoke::Unplug {
            let moved = d.counters()?.since(&before);
            let pmds = if spec.reshape {
                None
            } else {
                Some(checks::fill_cost(map.pieces(), d.pte_only().unwrap_or(false)).pmds)
            };
            check_counters(&mut v, revoke, &r1, &refaulted, pmds, &d, &moved);
        }
    } else {
        diag("no vfio_variant counters for this driver: checked ru_minflt only");
    }
    Ok(v.outcome())
}

/// A pass over `map`, with the pages that had an entry before it as the
/// driver reports them (vfio_variant), else `NOT_MEASURED`.
fn pass(map: &Mapping, exp: &dyn Fn(usize) -> u32, dbg: Option<&Debugfs>) -> Seen {
    let present = dbg.and_then(|d| d.present().ok());
    let pte_only = dbg.is_some_and(|d| d.pte_only().unwrap_or(false));
    let mut s = map.pass(exp);
    s.present = present.unwrap_or(probe::NOT_MEASURED);
    s.fills = checks::fill_cost(map.pieces(), pte_only).faults as u32;
    s
}

/// The parent's own pass, as a report from process 0.
fn parent(phase: u32, map: &Mapping, exp: &dyn Fn(usize) -> u32, dbg: Option<&Debugfs>) -> Report {
    Report::new(0, phase, &pass(map, exp, dbg))
}

/// After a reset the device decides what its memory holds: take what the
/// region reads as the truth the mappings must agree with.
fn reload_expected(dev: &Device, bar: &Region, expected: &Shared, seed: u32) -> Result<()> {
    let mut changed = 0;
    for i in 0..expected.len() {
        let v = dev.read_u32(bar, (i * PAGE) as u64)?;
        if v != word(seed, i) {
            changed += 1;
        }
        expected.set(i, v);
    }
    diag(&format!(
        "after the reset {changed} pages read differently through the region (device reset its memory: {})",
        if changed > 0 { "yes" } else { "no" }
    ));
    Ok(())
}

/// Polls page 0 of the parent's own mapping until the remove revoked it (a
/// SIGBUS, or a fault on a page that was present).
fn wait_revoked(map: &Mapping) -> Result<()> {
    let start = Instant::now();
    let revoked = || {
        let f0 = probe::minflt();
        map.read_u32(0).is_none() || probe::minflt() > f0
    };
    if !poll_until(
        start + UNPLUG_LIMIT,
        Pace::Every(Duration::from_millis(10)),
        revoked,
    ) {
        return Err(err!(
            "sysfs remove did not revoke the parent's mapping within {UNPLUG_LIMIT:?}"
        ));
    }
    diag(&format!(
        "remove revoked the parent's mapping after {} ms",
        start.elapsed().as_millis()
    ));
    Ok(())
}

/// Waits for the remove to finish, then brings the device back with its
/// driver and mode.
fn finish_unplug(mut child: Child, binding: &Binding) -> Result<()> {
    let start = Instant::now();
    match wait_child(&mut child, UNPLUG_LIMIT).ctx("wait for the sysfs remove")? {
        Some(st) if st.success() => {}
        Some(st) => return Err(err!("sysfs remove failed: {st}")),
        None => {
            return Err(err!(
                "sysfs remove still blocked {UNPLUG_LIMIT:?} after every user closed the device"
            ))
        }
    }
    let took = start.elapsed();
    binding
        .restore()
        .ctx("bring the device back after the unplug")?;
    diag(&format!(
        "remove finished {} ms after the last close; device back on {}",
        took.as_millis(),
        binding.driver().unwrap_or("no driver")
    ));
    Ok(())
}

/// What member `who` does to its own copy of the mapping after fork.
fn reshape_member(map: &mut Mapping, who: u32) -> Result<()> {
    let len = map.len();
    match who % 3 {
        1 => map.shrink(len / 2),
        2 => map.punch(len / PAGE / 2),
        _ => map.remap(),
    }
}

/// The variant's counters must have seen the revoke once, a SIGBUS for
/// every page of every process while memory was off (each probe is one
/// fault), and, net of those, the refaults the design promises: in fixed
/// mode exactly one per vma and process, every page entered once, and no
/// more PMDs than the alignment allows (`max_pmds`: per process, if known).
fn check_counters(
    v: &mut Verdict,
    revoke: Revoke,
    revoked: &[Report],
    refaulted: &[Report],
    max_pmds: Option<u64>,
    dbg: &Debugfs,
    d: &sysfs::Counters,
) {
    diag(&format!("counters moved by: {d}"));
    let fixed = dbg.mode().is_ok_and(|m| m == "fixed");
    let procs = revoked.len() as u64;
    let sum =
        |rs: &[Report], f: &dyn Fn(&Report) -> u32| rs.iter().map(|r| u64::from(f(r))).sum::<u64>();
    v.check(d.zaps == 1 || (!fixed && d.zaps >= 1), || {
        format!(
            "counters: zaps +{}: the revoke was not counted exactly once",
            d.zaps
        )
    });
    if revoke.memory_off() {
        let want = sum(revoked, &|r| r.sigbus + r.pages);
        v.check(d.sigbus == want, || {
            format!(
                "counters: sigbus +{}, expected {want} (every page of {procs} processes, \
                 each probed once while memory was off)",
                d.sigbus
            )
        });
    }
    let refaults = d.faults.saturating_sub(d.sigbus);
    if !fixed {
        v.check(refaults >= procs, || {
            format!(
                "counters: {refaults} faults besides the SIGBUS ones for {procs} processes \
                 that each had to fault the BAR back in"
            )
        });
        return;
    }
    // A PMD needs an empty PMD slot: where a PTE table is left from an
    // earlier mapping (mremap moves PTE tables), the fill inserts PTEs.
    // whole_vma checks that fresh mappings get every PMD they can.
    let faults = sum(refaulted, &|r| r.fills);
    let entered = sum(refaulted, &|r| r.pages);
    let max_pmds = max_pmds.map_or(entered / 512, |per| per * procs);
    let got = d.ptes + 512 * d.pmds;
    v.check(
        refaults == faults && got == entered && d.pmds <= max_pmds,
        || {
            format!(
                "counters: +{refaults} faults besides SIGBUS, +{} PTEs, +{} PMDs; the whole-vma \
             design promises {faults} faults (per vma and process: one per PMD-capable \
             chunk, and one for the pages outside them), every page entered \
             once ({entered} pages, got {got}) and at most {max_pmds} PMDs",
                d.ptes, d.pmds
            )
        },
    );
}
