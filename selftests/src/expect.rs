// SPDX-License-Identifier: GPL-2.0

//! What each configuration of `make selftest` must show, and the judgement
//! of a run against it (used by `ktap_expect`).
//!
//! [`TESTS`] is the canonical list: one row per test with what the fixed
//! variant, stock vfio-pci and legacy mode must each show. A run passes only
//! if every configuration printed exactly the selected tests (none missing,
//! none extra, none twice), each as its row says, and its exit code agrees
//! with its results.
//!
//! * `fixed` (vfio_variant): every test passes.
//! * `stock` (vfio-pci through driver_override): every test passes, except
//!   the variant-only ones, which must skip and say why.
//! * `legacy` (vfio_variant, pre-2024 design): the fork and revoke tests
//!   must FAIL with the bug's symptom, naming the forked process that kept
//!   access (that is the bug), everything else passes. If legacy passes a
//!   fork+revoke test, the tests no longer catch the bug: the run fails.
//!
//! A test may also skip where the device lacks the feature it exercises
//! (QEMU's ivshmem has no reset method), but never on the mock device,
//! which has them all.
//!
//! The guest prints each configuration's KTAP between marker lines:
//!
//! ```text
//! # vfio-revoke config legacy begin
//! TAP version 13
//! ...
//! # vfio-revoke config legacy end exit=1
//! ```

use crate::ktap::{self, Document, Status};
use std::collections::BTreeMap;

/// A configuration of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Config {
    /// vfio_variant, fixed mode.
    Fixed,
    /// Stock vfio-pci.
    Stock,
    /// vfio_variant, legacy mode (negative control).
    Legacy,
}

impl Config {
    /// The three, in run order.
    pub const ALL: [Config; 3] = [Config::Fixed, Config::Stock, Config::Legacy];

    /// Its name in marker lines.
    pub fn name(self) -> &'static str {
        match self {
            Config::Fixed => "fixed",
            Config::Stock => "stock",
            Config::Legacy => "legacy",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// The device the run used: the mock device has every feature the tests
/// exercise, so no test may skip for a missing feature on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// mock-pci's 1234:f00d.
    Mock,
    /// Any other device (QEMU's ivshmem).
    Other,
}

/// What one configuration must show for one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Must {
    /// `ok`.
    Pass,
    /// `ok # SKIP` with a reason containing this phrase: the test does not
    /// apply to the driver.
    Skip(&'static str),
    /// `not ok` with a reason containing `symptom` (the bug, not some other
    /// error); `why` says what the bug is.
    Fail {
        why: &'static str,
        symptom: &'static str,
    },
}

/// One test of the canonical list.
struct Row {
    /// The name, without the `_group`/`_cdev` suffix of per-path tests.
    base: &'static str,
    /// Run once per VFIO path (named `<base>_<path>`).
    per_path: bool,
    /// An unplug test (left out with `--no-unplug`).
    unplug: bool,
    fixed: Must,
    stock: Must,
    legacy: Must,
    /// The phrase of the skip reason a device without this test's feature
    /// gives; such a skip is accepted on devices other than the mock.
    lacks: Option<&'static str>,
}

/// The stale-access symptom printed by the fork tests.
const STALE: &str = "stale";

/// Legacy mode fails with stale access, for this reason.
const fn stale(why: &'static str) -> Must {
    Must::Fail {
        why,
        symptom: STALE,
    }
}

/// A fork+revoke test: the fixed variant and stock pass, legacy shows `why`.
const fn revoke(base: &'static str, why: &'static str) -> Row {
    Row {
        base,
        per_path: true,
        unplug: false,
        fixed: Must::Pass,
        stock: Must::Pass,
        legacy: stale(why),
        lacks: None,
    }
}

/// A test every configuration passes.
const fn passes(base: &'static str) -> Row {
    Row {
        legacy: Must::Pass,
        ..revoke(base, "")
    }
}

/// Why stock vfio-pci skips the variant's debugfs tests.
const NEEDS_DEBUGFS: &str = "needs vfio_variant's debugfs";
/// Legacy's revoke walks its own vma list, which forked vmas never join.
const NOT_LISTED: &str = "the revoke walks the vma list, which lacks the forked vmas";
/// The core's revoke reaches legacy vmas only through the variant's wrappers,
/// which zap the list: the child is not on it.
const CHILD_KEEPS: &str = "the child inherits PTEs that no revoke reaches";
/// Legacy's revoke takes the forking parent's mmap_lock, so it lands after
/// fork and misses the child.
const RACE: &str =
    "legacy's revoke waits for the forking parent's mmap_lock, then misses the child";

/// The canonical list of tests, in run order within a path.
const TESTS: &[Row] = &[
    passes("inherit"),
    revoke("fork_mem_disable", CHILD_KEEPS),
    Row {
        lacks: Some("has no reset method"),
        ..revoke("fork_reset", CHILD_KEEPS)
    },
    Row {
        lacks: Some("has no FLR"),
        ..revoke("fork_flr", CHILD_KEEPS)
    },
    Row {
        lacks: Some("cannot be hot reset"),
        ..revoke("fork_hot_reset", CHILD_KEEPS)
    },
    Row {
        lacks: Some("has no power management capability"),
        ..revoke("fork_d3hot", CHILD_KEEPS)
    },
    revoke("fork_low_power", CHILD_KEEPS),
    Row {
        stock: Must::Skip(NEEDS_DEBUGFS),
        ..revoke("fork_driver_revoke", NOT_LISTED)
    },
    revoke("many_children", NOT_LISTED),
    passes("fork_before_touch"),
    revoke("vma_split", NOT_LISTED),
    revoke("vma_mremap", NOT_LISTED),
    revoke("vma_offset", NOT_LISTED),
    revoke("two_mmaps", NOT_LISTED),
    Row {
        lacks: Some("has no mappable BAR"),
        ..revoke("other_bar", NOT_LISTED)
    },
    revoke("reshape_after_fork", NOT_LISTED),
    passes("fork_mem_disabled"),
    passes("madv_dontfork"),
    passes("madvise_refused"),
    passes("vfork_exec"),
    revoke("thread_reader", CHILD_KEEPS),
    revoke("fork_race_pmd", RACE),
    revoke("fork_race_pte", RACE),
    Row {
        stock: Must::Skip("whole-vma insert is the variant's"),
        legacy: Must::Fail {
            why: "legacy inserts one page per fault",
            symptom: "insert the whole vma",
        },
        ..passes("whole_vma")
    },
    passes("region_rw"),
    passes("bad_mmap"),
    Row {
        unplug: true,
        stock: Must::Skip("does not revoke mappings on remove"),
        ..revoke("fork_unplug", CHILD_KEEPS)
    },
    Row {
        per_path: false,
        ..passes("kernel_log")
    },
];

/// The tests a run selected, from the test binary's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// `group`, `cdev`, or both.
    pub paths: Vec<&'static str>,
    /// The unplug tests are in.
    pub unplug: bool,
    /// Only the tests whose name contains this.
    pub only: Option<String>,
}

impl Default for Selection {
    fn default() -> Self {
        Self {
            paths: vec!["group", "cdev"],
            unplug: true,
            only: None,
        }
    }
}

impl Selection {
    /// The selection made by these `vfio_fork_revoke` arguments (the options
    /// that do not select tests are skipped with their values).
    pub fn from_args(args: &str) -> Result<Self, String> {
        let mut s = Self::default();
        let mut it = args.split_whitespace();
        while let Some(a) = it.next() {
            match a {
                "--no-unplug" => s.unplug = false,
                "--only" => s.only = it.next().map(str::to_string),
                "--path" => {
                    s.paths = match it.next() {
                        Some("group") => vec!["group"],
                        Some("cdev") => vec!["cdev"],
                        Some("both") => vec!["group", "cdev"],
                        p => {
                            return Err(format!(
                                "--path {}: not group, cdev or both",
                                p.unwrap_or("")
                            ))
                        }
                    }
                }
                "--bar" | "--id" | "--children" | "--grandchildren" | "--max-kib" => {
                    it.next();
                }
                _ if !a.starts_with('-') => {}
                _ => return Err(format!("cannot tell which tests '{a}' selects")),
            }
        }
        Ok(s)
    }

    /// Every test name this selection runs.
    pub fn names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in TESTS.iter().filter(|r| self.unplug || !r.unplug) {
            if r.per_path {
                out.extend(self.paths.iter().map(|p| format!("{}_{p}", r.base)));
            } else {
                out.push(r.base.to_string());
            }
        }
        if let Some(only) = &self.only {
            out.retain(|n| n.contains(only.as_str()));
        }
        out
    }
}

/// The test name without its `_group`/`_cdev` suffix.
pub fn base_name(name: &str) -> &str {
    name.strip_suffix("_group")
        .or_else(|| name.strip_suffix("_cdev"))
        .unwrap_or(name)
}

fn row(name: &str) -> Option<&'static Row> {
    let base = base_name(name);
    TESTS.iter().find(|r| r.base == base)
}

/// The reason legacy mode must fail `name` and the symptom its failure
/// message must show, if it must fail.
pub fn legacy_must_fail(name: &str) -> Option<(&'static str, &'static str)> {
    match row(name)?.legacy {
        Must::Fail { why, symptom } => Some((why, symptom)),
        _ => None,
    }
}

/// Whether a failure message names the forked process that kept access (a
/// child or grandchild), as the bug's symptom must.
fn names_forked_process(reason: &str) -> bool {
    reason.contains("child")
        || reason.match_indices("process ").any(|(i, m)| {
            reason[i + m.len()..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n >= 1)
        })
}

/// Outcome of one result against its configuration's expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// As expected (passed, or failed where it must fail).
    Expected(String),
    /// Skipped where a skip is acceptable.
    Skipped(String),
    /// Not as expected: the run fails.
    Unexpected(String),
}

/// Judges one parsed result of `config` on a device of `kind`.
pub fn judge(config: Config, kind: DeviceKind, r: &ktap::Parsed) -> Verdict {
    let Some(row) = row(&r.name) else {
        return Verdict::Unexpected(format!("{}: not in the canonical list of tests", r.name));
    };
    let must = match config {
        Config::Fixed => row.fixed,
        Config::Stock => row.stock,
        Config::Legacy => row.legacy,
    };
    let lacks = row
        .lacks
        .filter(|phrase| kind == DeviceKind::Other && r.reason.contains(phrase));
    match (r.status, must) {
        (Status::Skip, _) if lacks.is_some() => Verdict::Skipped(format!(
            "skipped, the device lacks the feature: {}",
            r.reason
        )),
        (Status::Skip, Must::Skip(phrase)) if r.reason.contains(phrase) => {
            Verdict::Skipped(format!("skipped: {}", r.reason))
        }
        (Status::Skip, _) => Verdict::Unexpected(format!(
            "skipped ({}), but it must run in the {} configuration{}",
            r.reason,
            config.name(),
            if kind == DeviceKind::Mock {
                " on the mock device"
            } else {
                ""
            }
        )),
        (Status::Ok, Must::Pass) => Verdict::Expected("passed".into()),
        (Status::Ok, Must::Skip(phrase)) => Verdict::Unexpected(format!(
            "passed, but in the {} configuration it must skip ({phrase}): wrong driver bound?",
            config.name()
        )),
        (Status::Ok, Must::Fail { why, .. }) => Verdict::Unexpected(format!(
            "PASSED in legacy mode, where it must fail ({why}): the test no longer catches the bug"
        )),
        (Status::NotOk, Must::Fail { why, symptom }) if r.reason.contains(symptom) => {
            if symptom == STALE && !names_forked_process(&r.reason) {
                Verdict::Unexpected(format!(
                    "failed with stale access, but the message does not name the forked \
                     process that kept it ({why}): {}",
                    r.reason
                ))
            } else {
                Verdict::Expected(format!("failed as it must ({why})"))
            }
        }
        (Status::NotOk, Must::Fail { why, .. }) => Verdict::Unexpected(format!(
            "failed, but not with the bug's symptom ({why}): {}",
            r.reason
        )),
        (Status::NotOk, _) => Verdict::Unexpected(format!("failed: {}", r.reason)),
    }
}

/// One configuration's section of the guest output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Which configuration.
    pub config: Config,
    /// The KTAP text.
    pub text: String,
    /// The test binary's exit code, if the end marker was seen.
    pub exit: Option<i32>,
}

/// Splits the guest output into sections.
pub fn sections(log: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    let mut open: Option<Section> = None;
    for line in log.lines() {
        let Some(rest) = line.trim_start().strip_prefix("# vfio-revoke config ") else {
            if let Some(s) = open.as_mut() {
                s.text.push_str(line);
                s.text.push('\n');
            }
            continue;
        };
        let mut w = rest.split_whitespace();
        let (Some(name), Some(kind)) = (w.next(), w.next()) else {
            continue;
        };
        let Some(config) = Config::parse(name) else {
            continue;
        };
        match kind {
            "begin" => {
                out.extend(open.take());
                open = Some(Section {
                    config,
                    text: String::new(),
                    exit: None,
                });
            }
            "end" => {
                if let Some(mut s) = open.take() {
                    s.exit = w
                        .next()
                        .and_then(|e| e.strip_prefix("exit="))
                        .and_then(|e| e.parse().ok());
                    out.push(s);
                }
            }
            _ => {}
        }
    }
    out.extend(open);
    out
}

/// Counts of a judged run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Results as expected.
    pub passed: usize,
    /// Results not as expected (and section-level problems).
    pub failed: usize,
    /// Acceptable skips.
    pub skipped: usize,
    /// One line per result and problem, for printing.
    pub lines: Vec<String>,
    /// Indices into `lines` of plain passes (left out of the short report).
    pub plain: Vec<usize>,
}

impl Tally {
    fn add(&mut self, config: Config, name: &str, v: Verdict) {
        let (tag, text) = match v {
            Verdict::Expected(t) => {
                self.passed += 1;
                if t == "passed" {
                    self.plain.push(self.lines.len());
                }
                ("ok  ", t)
            }
            Verdict::Skipped(t) => {
                self.skipped += 1;
                ("skip", t)
            }
            Verdict::Unexpected(t) => {
                self.failed += 1;
                ("FAIL", t)
            }
        };
        self.lines
            .push(format!("{tag} {:<6} {name}: {text}", config.name()));
    }

    fn problem(&mut self, config: Config, text: String) {
        self.failed += 1;
        self.lines.push(format!("FAIL {:<6} {text}", config.name()));
    }

    /// Every line but the plain passes: skips, expected failures and
    /// everything unexpected.
    pub fn notable(&self) -> impl Iterator<Item = &String> {
        self.lines
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.plain.contains(i))
            .map(|(_, l)| l)
    }

    /// The closing line: `N passed, N failed, N skipped`.
    pub fn summary(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }
}

/// What a run is judged against.
#[derive(Debug, Clone)]
pub struct Run {
    /// The configurations that must be in the log.
    pub configs: Vec<Config>,
    /// The tests each configuration must report.
    pub selection: Selection,
    /// The device the tests ran on.
    pub device: DeviceKind,
}

impl Default for Run {
    fn default() -> Self {
        Self {
            configs: Config::ALL.to_vec(),
            selection: Selection::default(),
            device: DeviceKind::Mock,
        }
    }
}

/// Judges one section into `t`.
pub fn judge_section(s: &Section, run: &Run, t: &mut Tally) {
    let doc: Document = ktap::parse(&s.text);
    let c = s.config;
    match doc.plan {
        None => t.problem(c, "no KTAP plan: the test binary did not run".into()),
        Some(n) if n != doc.results.len() => t.problem(
            c,
            format!(
                "plan 1..{n} but {} results: the test binary crashed?",
                doc.results.len()
            ),
        ),
        _ => {}
    }
    check_names(c, &doc, &run.selection.names(), t);
    let count = |st| doc.results.iter().filter(|r| r.status == st).count();
    let want_exit = ktap::exit_code(count(Status::Ok), count(Status::NotOk), count(Status::Skip));
    match s.exit {
        Some(e) if e == want_exit => {}
        Some(e) => t.problem(
            c,
            format!("the test binary exited with {e}, but its results call for {want_exit}"),
        ),
        None => t.problem(
            c,
            "no end marker: the guest stopped during this configuration".into(),
        ),
    }
    let mut legacy_caught = 0;
    for r in &doc.results {
        let v = judge(c, run.device, r);
        if c == Config::Legacy && r.status == Status::NotOk && matches!(v, Verdict::Expected(_)) {
            legacy_caught += 1;
        }
        t.add(c, &r.name, v);
    }
    let must_catch = run
        .selection
        .names()
        .iter()
        .any(|n| legacy_must_fail(n).is_some());
    if c == Config::Legacy && legacy_caught == 0 && must_catch {
        t.problem(
            c,
            "legacy mode failed no fork/revoke test: the negative control proved nothing".into(),
        );
    }
}

/// Every selected test reported exactly once, and nothing else.
fn check_names(c: Config, doc: &Document, want: &[String], t: &mut Tally) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &doc.results {
        *seen.entry(r.name.as_str()).or_default() += 1;
    }
    let missing: Vec<&str> = want
        .iter()
        .map(String::as_str)
        .filter(|n| !seen.contains_key(n))
        .collect();
    if !missing.is_empty() {
        t.problem(
            c,
            format!("tests missing from the results: {}", missing.join(", ")),
        );
    }
    let extra: Vec<&str> = seen
        .keys()
        .copied()
        .filter(|n| !want.iter().any(|w| w == n))
        .collect();
    if !extra.is_empty() {
        t.problem(
            c,
            format!("results for tests not selected: {}", extra.join(", ")),
        );
    }
    let twice: Vec<&str> = seen
        .iter()
        .filter(|(_, &k)| k > 1)
        .map(|(n, _)| *n)
        .collect();
    if !twice.is_empty() {
        t.problem(
            c,
            format!("tests reported more than once: {}", twice.join(", ")),
        );
    }
}

/// Judges a whole guest log: every configuration of `run` must be there.
pub fn judge_log(log: &str, run: &Run) -> Tally {
    let mut t = Tally::default();
    let secs = sections(log);
    for &c in &run.configs {
        match secs.iter().filter(|s| s.config == c).count() {
            0 => t.problem(c, "configuration missing from the guest output".into()),
            1 => {}
            n => t.problem(
                c,
                format!("configuration ran {n} times in the guest output"),
            ),
        }
        if let Some(s) = secs.iter().find(|s| s.config == c) {
            judge_section(s, run, &mut t);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A section where every selected test shows what `config` must show.
    fn good(config: Config, sel: &Selection) -> String {
        let mut body = String::new();
        let names = sel.names();
        body.push_str(&format!("TAP version 13\n1..{}\n", names.len()));
        let (mut fail, mut pass) = (0, 0);
        for (i, n) in names.iter().enumerate() {
            let r = row(n).unwrap();
            let must = match config {
                Config::Fixed => r.fixed,
                Config::Stock => r.stock,
                Config::Legacy => r.legacy,
            };
            let line = match must {
                Must::Pass => {
                    pass += 1;
                    format!("ok {} {n}", i + 1)
                }
                Must::Skip(p) => format!("ok {} {n} # SKIP stock: {p}", i + 1),
                Must::Fail { symptom, .. } => {
                    fail += 1;
                    format!(
                        "# FAIL: process 2 kept access ({symptom})\nnot ok {} {n}",
                        i + 1
                    )
                }
            };
            body.push_str(&line);
            body.push('\n');
        }
        let exit = ktap::exit_code(pass, fail, names.len() - pass - fail);
        section(config.name(), &body, exit)
    }

    /// `log` with the result line of test `name` replaced by `status name
    /// tail` (same number), and the FAIL diagnostic before it dropped.
    fn set(log: &str, name: &str, status: &str, tail: &str) -> String {
        let mut out = String::new();
        let mut last_diag = None;
        for l in log.lines() {
            let words: Vec<&str> = l.split(' ').collect();
            let hit = match words.as_slice() {
                ["ok", n, t, ..] | ["not", "ok", n, t, ..] if *t == name => Some(*n),
                _ => None,
            };
            if let Some(n) = hit {
                if let Some(d) = last_diag.take() {
                    if status == "not ok" {
                        out.push_str(d);
                        out.push('\n');
                    }
                }
                out.push_str(&format!("{status} {n} {name}{tail}\n"));
                continue;
            }
            if let Some(d) = last_diag.take() {
                out.push_str(d);
                out.push('\n');
            }
            if l.starts_with("# FAIL") {
                last_diag = Some(l);
            } else {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    fn section(config: &str, body: &str, exit: i32) -> String {
        format!("# vfio-revoke config {config} begin\n{body}# vfio-revoke config {config} end exit={exit}\n")
    }

    fn all_good() -> String {
        let sel = Selection::default();
        format!(
            "boot noise\n{}{}{}",
            good(Config::Fixed, &sel),
            good(Config::Stock, &sel),
            good(Config::Legacy, &sel)
        )
    }

    fn one(config: Config) -> Run {
        Run {
            configs: vec![config],
            ..Run::default()
        }
    }

    #[test]
    fn good_run() {
        let t = judge_log(&all_good(), &Run::default());
        assert_eq!(t.failed, 0, "{:#?}", t.lines);
        let n = Selection::default().names().len();
        assert_eq!(t.passed + t.skipped, 3 * n);
        assert_eq!(t.skipped, 6, "{:#?}", t.lines);
    }

    #[test]
    fn legacy_passing_a_revoke_test_fails_the_run() {
        let log = good(Config::Legacy, &Selection::default()).replace(
            "not ok 3 fork_mem_disable_group",
            "ok 3 fork_mem_disable_group",
        );
        let t = judge_log(&log, &one(Config::Legacy));
        // The pass is unexpected, and the exit code no longer agrees.
        assert_eq!(t.failed, 1, "{:#?}", t.lines);
        assert!(t
            .lines
            .iter()
            .any(|l| l.contains("no longer catches the bug")));
    }

    #[test]
    fn legacy_failing_for_another_reason_or_naming_no_child_fails() {
        let log = good(Config::Legacy, &Selection::default()).replacen(
            "process 2 kept access (stale)",
            "open /dev/vfio/vfio: No such file",
            1,
        );
        let t = judge_log(&log, &one(Config::Legacy));
        assert_eq!(t.failed, 1, "{:#?}", t.lines);
        assert!(t
            .lines
            .iter()
            .any(|l| l.contains("not with the bug's symptom")));
        let log = good(Config::Legacy, &Selection::default()).replacen(
            "process 2 kept access (stale)",
            "parent kept access (stale)",
            1,
        );
        let t = judge_log(&log, &one(Config::Legacy));
        assert_eq!(t.failed, 1, "{:#?}", t.lines);
        assert!(t
            .lines
            .iter()
            .any(|l| l.contains("does not name the forked")));
    }

    #[test]
    fn missing_extra_and_duplicate_results_fail() {
        let sel = Selection::default();
        let g = good(Config::Fixed, &sel);
        let missing: String = g
            .lines()
            .filter(|l| !l.ends_with(" fork_mem_disable_cdev"))
            .map(|l| format!("{l}\n"))
            .collect();
        let t = judge_log(&missing, &one(Config::Fixed));
        assert!(t
            .lines
            .iter()
            .any(|l| l.contains("missing from the results: fork_mem_disable_cdev")));
        assert!(t.lines.iter().any(|l| l.contains("plan 1..")));
        let extra = g.replace(
            "ok 1 inherit_group\n",
            "ok 1 inherit_group\nok 1 surprise\n",
        );
        let t = judge_log(&extra, &one(Config::Fixed));
        assert!(
            t.lines.iter().any(|l| l.contains("not selected: surprise")),
            "{:#?}",
            t.lines
        );
        let twice = g.replace(
            "ok 1 inherit_group\n",
            "ok 1 inherit_group\nok 1 inherit_group\n",
        );
        let t = judge_log(&twice, &one(Config::Fixed));
        assert!(t
            .lines
            .iter()
            .any(|l| l.contains("more than once: inherit_group")));
    }

    #[test]
    fn exit_code_must_agree() {
        let g = good(Config::Fixed, &Selection::default());
        let t = judge_log(&g.replace("exit=0", "exit=1"), &one(Config::Fixed));
        assert_eq!(t.failed, 1, "{:#?}", t.lines);
        assert!(t.lines[0].contains("exited with 1, but its results call for 0"));
        let l = good(Config::Legacy, &Selection::default());
        let t = judge_log(&l.replace("exit=1", "exit=0"), &one(Config::Legacy));
        assert_eq!(t.failed, 1, "{:#?}", t.lines);
    }

    #[test]
    fn skips_need_a_reason_the_device_justifies() {
        let g = set(
            &good(Config::Fixed, &Selection::default()),
            "fork_reset_group",
            "ok",
            " # SKIP 0000:00:04.0 has no reset method",
        );
        let t = judge_log(&g, &one(Config::Fixed));
        assert_eq!(t.failed, 1, "mock has FLR: {:#?}", t.lines);
        let other = Run {
            device: DeviceKind::Other,
            ..one(Config::Fixed)
        };
        assert_eq!(judge_log(&g, &other).failed, 0);
        let g = good(Config::Fixed, &Selection::default()).replace(
            "ok 5 fork_reset_group",
            "ok 5 fork_reset_group # SKIP felt like it",
        );
        assert_eq!(judge_log(&g, &other).failed, 1);
        // Stock passing a variant-only test means the wrong driver ran.
        let s = set(
            &good(Config::Stock, &Selection::default()),
            "fork_driver_revoke_group",
            "ok",
            "",
        );
        let t = judge_log(&s, &one(Config::Stock));
        assert!(
            t.lines.iter().any(|l| l.contains("wrong driver")),
            "{:#?}",
            t.lines
        );
    }

    #[test]
    fn crashes_and_missing_sections_fail() {
        let t = judge_log(&good(Config::Stock, &Selection::default()), &Run::default());
        assert_eq!(t.failed, 2, "{:#?}", t.lines);
        let cut: String = good(Config::Fixed, &Selection::default())
            .lines()
            .take(5)
            .map(|l| format!("{l}\n"))
            .collect();
        let t = judge_log(&cut, &one(Config::Fixed));
        assert!(t.lines.iter().any(|l| l.contains("no end marker")));
        assert!(t
            .lines
            .iter()
            .any(|l| l.contains("missing from the results")));
    }

    #[test]
    fn selection() {
        let s = Selection::from_args("--only fork_race --children 8 0000:01:00.0").unwrap();
        assert_eq!(
            s.names(),
            [
                "fork_race_pmd_group",
                "fork_race_pmd_cdev",
                "fork_race_pte_group",
                "fork_race_pte_cdev"
            ]
        );
        let s = Selection::from_args("--no-unplug --path cdev").unwrap();
        assert!(s
            .names()
            .iter()
            .all(|n| n.ends_with("_cdev") || n == "kernel_log"));
        assert!(!s.names().iter().any(|n| n.contains("unplug")));
        assert!(Selection::from_args("--frobnicate").is_err());
        assert!(Selection::from_args("--path both").is_ok());
    }

    #[test]
    fn names() {
        assert_eq!(base_name("fork_reset_cdev"), "fork_reset");
        assert_eq!(base_name("kernel_log"), "kernel_log");
        assert!(legacy_must_fail("vma_split_group").is_some());
        assert!(legacy_must_fail("inherit_group").is_none());
        assert!(legacy_must_fail("fork_before_touch_group").is_none());
        assert!(names_forked_process("process 3 kept"));
        assert!(names_forked_process("ESCAPE: the child read"));
        assert!(!names_forked_process("process 0 and the parent"));
    }
}
