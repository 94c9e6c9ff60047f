// SPDX-License-Identifier: GPL-2.0

//! The tests, one per scenario and open path, in the order they run.
//!
//! | test | scenario |
//! |---|---|
//! | `inherit_<path>` | map, write a pattern, fork: the child reads it with 0 faults |
//! | `fork_mem_disable_<path>` | COMMAND.MEM clear: child SIGBUS; re-enable: child refaults |
//! | `fork_reset_<path>` | `VFIO_DEVICE_RESET`: the child's next access faults again |
//! | `fork_flr_<path>` | FLR through a PCIe Device Control write: same |
//! | `fork_d3hot_<path>` | PMCSR to D3hot: child SIGBUS; back to D0: child refaults |
//! | `fork_low_power_<path>` | `VFIO_DEVICE_FEATURE` low-power entry: child SIGBUS; exit: refaults |
//! | `fork_driver_revoke_<path>` | vfio_variant's debugfs `revoke`: same |
//! | `many_children_<path>` | children and grandchildren, all revoked |
//! | `fork_before_touch_<path>` | child forked before the parent touched the mapping |
//! | `vma_split_<path>` | middle page unmapped before fork: both halves revoked |
//! | `vma_mremap_<path>` | mapping moved before fork: revoked at its new place |
//! | `vma_offset_<path>` | mapping at a non-zero, unaligned BAR offset: revoked |
//! | `two_mmaps_<path>` | two mmaps of one BAR (overlapping): both revoked |
//! | `other_bar_<path>` | BAR2 instead of BAR0: revoked |
//! | `reshape_after_fork_<path>` | after fork the parent moves its mapping (growing it is refused), children shrink, split or move theirs: every piece revoked |
//! | `madv_dontfork_<path>` | `MADV_DONTFORK`: the child has no mapping (SIGSEGV), `MADV_DOFORK` refused; parent revoked |
//! | `madvise_refused_<path>` | DONTNEED, FREE, COLD, PAGEOUT, WIPEONFORK, DOFORK refused with EINVAL, entries kept |
//! | `vfork_exec_<path>` | vfork + exec leaves the parent's entries; a revoke reaches them |
//! | `thread_reader_<path>` | a child's thread reads in a loop while memory goes off and on 4 times: SIGBUS / data each time |
//! | `fork_mem_disabled_<path>` | fork while memory is disabled: the family gets SIGBUS, then faults in after re-enable |
//! | `whole_vma_<path>` | touching a fresh mapping costs one fault (per PMD chunk) |
//! | `region_rw_<path>` | pread/pwrite of the BAR region agree with the mmap |
//! | `bad_mmap_<path>` | MAP_PRIVATE and out-of-range mmaps fail with EINVAL |
//! | `fork_race_pmd_<path>`, `fork_race_pte_<path>` | revoke while fork copies a PMD / PTE mapping: no escape |
//! | `fork_unplug_<path>` | sysfs remove: child SIGBUS; device comes back afterwards |
//! | `kernel_log` | no WARN, BUG, oops or PAT complaint logged during the run |

pub mod checks;
pub mod fork_race;
pub mod kmsg;
pub mod mm;
pub mod region;
pub mod revoke;
pub mod whole_vma;

use crate::error::Result;
use crate::ktap::{self, Outcome};
use crate::sysfs::{self, Debugfs};
use crate::vfio::{Device, Path, Region};
use checks::Want;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// What every test needs to know about the run.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The device.
    pub bdf: String,
    /// The BAR to map.
    pub bar: u32,
    /// Children in the many-children test.
    pub children: usize,
    /// Grandchildren per child in the many-children test.
    pub grandchildren: usize,
    /// At most this many bytes of the BAR are mapped.
    pub max_len: usize,
}

impl Ctx {
    /// The driver the device is bound to now.
    pub fn driver(&self) -> String {
        sysfs::driver(&self.bdf).unwrap_or_else(|| "no driver".into())
    }

    /// Whether the device is bound to vfio_variant (either mode).
    pub fn is_variant(&self) -> bool {
        self.driver() == sysfs::VARIANT_DRIVER
    }

    /// vfio_variant's debugfs directory for the device, if any.
    pub fn debugfs(&self) -> Option<Debugfs> {
        Debugfs::find(&self.bdf)
    }

    /// Opens the device through `path`, with memory enabled, and returns it
    /// with its BAR.
    pub fn open(&self, path: Path) -> Result<(Device, Region)> {
        let dev = Device::open(&self.bdf, path)?;
        let bar = dev.bar(self.bar)?;
        dev.set_memory(true)?;
        Ok((dev, bar))
    }

    /// Bytes of the BAR the tests map.
    pub fn map_len(&self, bar: &Region) -> usize {
        (bar.size as usize).min(self.max_len) & !(crate::probe::PAGE - 1)
    }
}

/// The word a test writes to page `page`: different for every test run.
pub fn word(seed: u32, page: usize) -> u32 {
    seed ^ (page as u32).wrapping_mul(0x9e37_79b1)
}

/// A seed no earlier test of this run used.
pub fn new_seed() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    t ^ std::process::id().rotate_left(16) ^ N.fetch_add(0x0101_0101, Relaxed)
}

/// Failures collected while a test runs; diagnostics go out immediately.
#[derive(Debug, Default)]
pub struct Verdict {
    fails: Vec<String>,
}

impl Verdict {
    /// Records a failure unless `ok`.
    pub fn check(&mut self, ok: bool, why: impl FnOnce() -> String) {
        if !ok {
            self.fails.push(why());
        }
    }

    /// Records a failure.
    pub fn fail(&mut self, why: String) {
        self.fails.push(why);
    }

    /// Judges a phase of a fork test and prints its summary.
    pub fn judge(
        &mut self,
        phase: &str,
        want: Want,
        reports: &[crate::family::Report],
        expect: &dyn Fn(usize) -> u32,
    ) {
        let (summary, fails) = checks::judge(phase, want, reports, expect);
        ktap::diag(&summary);
        if reports.len() <= 3 {
            for r in reports {
                ktap::diag(&format!(
                    "  {phase} | {}: {}",
                    checks::who(r),
                    checks::describe(r)
                ));
            }
        }
        self.fails.extend(fails);
    }

    /// The outcome: pass, or fail with every reason.
    pub fn outcome(self) -> Outcome {
        if self.fails.is_empty() {
            Outcome::Pass
        } else {
            Outcome::Fail(self.fails.join("; "))
        }
    }
}

/// A test run once per VFIO path.
type PathTest = fn(&Ctx, Path) -> Result<Outcome>;

/// A test body.
type Body = Box<dyn Fn(&Ctx) -> Result<Outcome>>;

/// A named test.
pub struct Test {
    /// KTAP name.
    pub name: String,
    run: Body,
}

impl Test {
    fn new(name: String, run: impl Fn(&Ctx) -> Result<Outcome> + 'static) -> Self {
        Self {
            name,
            run: Box::new(run),
        }
    }

    /// Runs the test; an error is a failure.
    pub fn run(&self, ctx: &Ctx) -> Outcome {
        (self.run)(ctx).unwrap_or_else(|e| Outcome::Fail(e.to_string()))
    }
}

/// Every test, in run order: the per-path tests for each path, then the
/// unplug tests (they remove and re-add the device), then the kernel log.
pub fn all(paths: &[Path], unplug: bool, kmsg: Option<kmsg::Kmsg>) -> Vec<Test> {
    use revoke::{Revoke, Shape, Spec};
    let mut tests = Vec::new();
    for &path in paths {
        let p = path.name();
        let fork = |name: &str, spec: Spec| {
            Test::new(format!("{name}_{p}"), move |ctx: &Ctx| {
                revoke::run(ctx, path, &spec.sized(ctx))
            })
        };
        tests.push(fork("inherit", Spec::one(None)));
        tests.push(fork(
            "fork_mem_disable",
            Spec::one(Some(Revoke::MemDisable)),
        ));
        tests.push(fork("fork_reset", Spec::one(Some(Revoke::Reset))));
        tests.push(fork("fork_flr", Spec::one(Some(Revoke::Flr))));
        tests.push(fork("fork_hot_reset", Spec::one(Some(Revoke::HotReset))));
        tests.push(fork("fork_d3hot", Spec::one(Some(Revoke::D3hot))));
        tests.push(fork("fork_low_power", Spec::one(Some(Revoke::LowPower))));
        tests.push(fork("fork_driver_revoke", Spec::one(Some(Revoke::Driver))));
        tests.push(fork("many_children", Spec::many(Revoke::MemDisable)));
        tests.push(fork(
            "fork_before_touch",
            Spec {
                touch_first: false,
                ..Spec::one(Some(Revoke::MemDisable))
            },
        ));
        tests.push(fork("vma_split", Spec::shaped(Shape::Split)));
        tests.push(fork("vma_mremap", Spec::shaped(Shape::Moved)));
        tests.push(fork("vma_offset", Spec::shaped(Shape::Offset)));
        tests.push(fork("two_mmaps", Spec::shaped(Shape::Twice)));
        tests.push(fork(
            "other_bar",
            Spec {
                bar: Some(2),
                ..Spec::one(Some(Revoke::MemDisable))
            },
        ));
        tests.push(fork(
            "reshape_after_fork",
            Spec {
                reshape: true,
                children: 2,
                ..Spec::shaped(Shape::Whole)
            },
        ));
        tests.push(fork(
            "fork_mem_disabled",
            Spec {
                disabled_at_fork: true,
                ..Spec::one(None)
            },
        ));
        let mm_tests: [(&str, PathTest); 4] = [
            ("madv_dontfork", mm::dontfork),
            ("madvise_refused", mm::madvise_refused),
            ("vfork_exec", mm::vfork_exec),
            ("thread_reader", mm::thread_reader),
        ];
        for (name, f) in mm_tests {
            tests.push(Test::new(format!("{name}_{p}"), move |ctx: &Ctx| {
                f(ctx, path)
            }));
        }
        for kind in [fork_race::Kind::Pmd, fork_race::Kind::Pte] {
            tests.push(Test::new(
                format!("fork_race_{}_{p}", kind.name()),
                move |ctx: &Ctx| fork_race::run(ctx, path, kind),
            ));
        }
        tests.push(Test::new(format!("whole_vma_{p}"), move |ctx: &Ctx| {
            whole_vma::run(ctx, path)
        }));
        tests.push(Test::new(format!("region_rw_{p}"), move |ctx: &Ctx| {
            region::rw(ctx, path)
        }));
        tests.push(Test::new(format!("bad_mmap_{p}"), move |ctx: &Ctx| {
            region::bad_mmap(ctx, path)
        }));
    }
    if unplug {
        for &path in paths {
            tests.push(Test::new(
                format!("fork_unplug_{}", path.name()),
                move |ctx: &Ctx| revoke::run(ctx, path, &Spec::one(Some(Revoke::Unplug))),
            ));
        }
    }
    let kmsg = std::cell::RefCell::new(kmsg);
    tests.push(Test::new("kernel_log".into(), move |_ctx: &Ctx| {
        Ok(kmsg::check(kmsg.borrow_mut().as_mut()))
    }));
    tests
}

#[cfg(test)]
mod tests {
    use crate::expect::Selection;
    use crate::vfio::Path;

    /// The tests the binary runs are exactly the judge's canonical list.
    #[test]
    fn canonical_list() {
        let mut ran: Vec<String> = super::all(&Path::ALL, true, None)
            .into_iter()
            .map(|t| t.name)
            .collect();
        let mut want = Selection::default().names();
        ran.sort();
        want.sort();
        assert_eq!(ran, want);
        let ran: Vec<String> = super::all(&[Path::Cdev], false, None)
            .into_iter()
            .map(|t| t.name)
            .collect();
        let want = Selection::from_args("--path cdev --no-unplug")
            .unwrap()
            .names();
        assert_eq!(ran.len(), want.len());
    }
}
