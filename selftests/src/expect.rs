// SPDX-License-Identifier: GPL-2.0

//! What each configuration of `make selftest` must show, and the judgement
//! of a run against it (used by `ktap_expect`).
//!
//! * `fixed` (vfio_variant): every test passes.
//! * `stock` (vfio-pci through driver_override): every test that applies
//!   passes; the variant-only tests skip.
//! * `legacy` (vfio_variant, pre-2024 design): the fork and revoke tests
//!   must FAIL (that is the bug), everything else passes. If legacy passes a
//!   fork+revoke test, the tests no longer catch the bug: the run fails.
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

/// A test legacy mode must fail: why, and a phrase its failure message
/// must contain (so that a legacy failure for another reason, say an open
/// error, does not count as the bug being caught).
struct LegacyFail {
    test: &'static str,
    why: &'static str,
    symptom: &'static str,
}

const fn lf(test: &'static str, why: &'static str, symptom: &'static str) -> LegacyFail {
    LegacyFail { test, why, symptom }
}

/// The stale-access symptom printed by the fork tests.
const STALE: &str = "stale";

const LEGACY_FAILS: &[LegacyFail] = &[
    lf(
        "fork_mem_disable",
        "the child keeps stale PTEs after COMMAND.MEM clear",
        STALE,
    ),
    lf(
        "fork_reset",
        "the child keeps stale PTEs across VFIO_DEVICE_RESET",
        STALE,
    ),
    lf(
        "fork_driver_revoke",
        "the revoke walks the vma list, which lacks the child",
        STALE,
    ),
    lf(
        "many_children",
        "no forked process is on the vma list",
        STALE,
    ),
    lf(
        "vma_split",
        "the forked halves are not on the vma list",
        STALE,
    ),
    lf(
        "vma_mremap",
        "the forked, moved vma is not on the vma list",
        STALE,
    ),
    lf(
        "fork_unplug",
        "the child keeps access after the unplug revoke",
        STALE,
    ),
    lf(
        "fork_race_pmd",
        "legacy's revoke waits for the forking parent's mmap_lock, then misses the child",
        STALE,
    ),
    lf(
        "fork_race_pte",
        "legacy's revoke waits for the forking parent's mmap_lock, then misses the child",
        STALE,
    ),
    lf(
        "whole_vma",
        "legacy inserts one page per fault",
        "insert the whole vma",
    ),
];

/// Tests that may skip in a configuration, and why.
fn skip_allowed(config: Config, base: &str) -> bool {
    match base {
        // Devices without a reset method (QEMU's ivshmem).
        "fork_reset" => true,
        "fork_driver_revoke" | "whole_vma" | "fork_unplug" => config == Config::Stock,
        _ => false,
    }
}

/// The test name without its `_group`/`_cdev` suffix.
pub fn base_name(name: &str) -> &str {
    name.strip_suffix("_group")
        .or_else(|| name.strip_suffix("_cdev"))
        .unwrap_or(name)
}

/// The reason legacy mode must fail `name` and the symptom its failure
/// message must show, if it must fail.
pub fn legacy_must_fail(name: &str) -> Option<(&'static str, &'static str)> {
    let base = base_name(name);
    LEGACY_FAILS
        .iter()
        .find(|l| l.test == base)
        .map(|l| (l.why, l.symptom))
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

/// Judges one parsed result of `config`.
pub fn judge(config: Config, r: &ktap::Parsed) -> Verdict {
    let must_fail = if config == Config::Legacy {
        legacy_must_fail(&r.name)
    } else {
        None
    };
    match (r.status, must_fail) {
        (Status::Skip, _) if skip_allowed(config, base_name(&r.name)) => {
            Verdict::Skipped(format!("skipped: {}", r.reason))
        }
        (Status::Skip, _) => Verdict::Unexpected(format!(
            "skipped ({}), but it must run in the {} configuration",
            r.reason,
            config.name()
        )),
        (Status::Ok, None) => Verdict::Expected("passed".into()),
        (Status::NotOk, Some((why, symptom))) if r.reason.contains(symptom) => {
            Verdict::Expected(format!("failed as it must ({why})"))
        }
        (Status::NotOk, Some((why, _))) => Verdict::Unexpected(format!(
            "failed, but not with the bug's symptom ({why}): {}",
            r.reason
        )),
        (Status::Ok, Some((why, _))) => Verdict::Unexpected(format!(
            "PASSED in legacy mode, where it must fail ({why}): the test no longer catches the bug"
        )),
        (Status::NotOk, None) => Verdict::Unexpected(format!("failed: {}", r.reason)),
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

/// Judges one section into `t`.
pub fn judge_section(s: &Section, t: &mut Tally) {
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
        Some(0) => t.problem(c, "no tests ran (plan 1..0)".into()),
        _ => {}
    }
    match s.exit {
        Some(0 | 1 | 4) => {}
        Some(e) => t.problem(c, format!("the test binary exited with {e}")),
        None => t.problem(
            c,
            "no end marker: the guest stopped during this configuration".into(),
        ),
    }
    let mut legacy_caught = 0;
    for r in &doc.results {
        let v = judge(c, r);
        if c == Config::Legacy && r.status == Status::NotOk && matches!(v, Verdict::Expected(_)) {
            legacy_caught += 1;
        }
        t.add(c, &r.name, v);
    }
    if c == Config::Legacy && legacy_caught == 0 && !doc.results.is_empty() {
        t.problem(
            c,
            "legacy mode failed no fork/revoke test: the negative control proved nothing".into(),
        );
    }
}

/// Judges a whole guest log: every configuration in `want` must be there.
pub fn judge_log(log: &str, want: &[Config]) -> Tally {
    let mut t = Tally::default();
    let secs = sections(log);
    for &c in want {
        match secs.iter().find(|s| s.config == c) {
            Some(s) => judge_section(s, &mut t),
            None => t.problem(c, "configuration missing from the guest output".into()),
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(config: &str, body: &str, exit: i32) -> String {
        format!("# vfio-revoke config {config} begin\n{body}# vfio-revoke config {config} end exit={exit}\n")
    }

    const FIXED: &str = "TAP version 13\n1..3\nok 1 inherit_group\nok 2 fork_mem_disable_group\n\
                         ok 3 fork_reset_group # SKIP no reset method\n";
    const STOCK: &str = "TAP version 13\n1..3\nok 1 inherit_group\nok 2 fork_mem_disable_group\n\
                         ok 3 whole_vma_group # SKIP stock costs 512 faults\n";
    const LEGACY: &str = "TAP version 13\n1..3\nok 1 inherit_group\n\
                          # FAIL: process 1 kept access through stale PTEs (the fork bug)\n\
                          not ok 2 fork_mem_disable_group\nok 3 region_rw_cdev\n";

    #[test]
    fn good_run() {
        let log = format!(
            "boot noise\n{}{}{}",
            section("fixed", FIXED, 0),
            section("stock", STOCK, 0),
            section("legacy", LEGACY, 1)
        );
        let t = judge_log(&log, &Config::ALL);
        assert_eq!((t.passed, t.failed, t.skipped), (7, 0, 2), "{:#?}", t.lines);
        assert_eq!(t.summary(), "7 passed, 0 failed, 2 skipped");
    }

    #[test]
    fn legacy_passing_a_revoke_test_fails_the_run() {
        let body = "TAP version 13\n1..2\nok 1 inherit_group\nok 2 fork_mem_disable_cdev\n";
        let t = judge_log(&section("legacy", body, 0), &[Config::Legacy]);
        // The pass is unexpected, and the control caught nothing.
        assert_eq!(t.failed, 2, "{:#?}", t.lines);
        assert!(t
            .lines
            .iter()
            .any(|l| l.contains("no longer catches the bug")));
    }

    #[test]
    fn legacy_failing_for_another_reason_fails_the_run() {
        let body = "TAP version 13\n1..1\n# FAIL: open /dev/vfio/vfio: No such file\n\
                    not ok 1 fork_mem_disable_group\n";
        let t = judge_log(&section("legacy", body, 1), &[Config::Legacy]);
        assert_eq!(t.failed, 2, "{:#?}", t.lines);
        assert!(t.lines[0].contains("not with the bug's symptom"));
    }

    #[test]
    fn notable_leaves_out_plain_passes() {
        let log = section("legacy", LEGACY, 1);
        let t = judge_log(&log, &[Config::Legacy]);
        let n: Vec<&String> = t.notable().collect();
        assert_eq!(n.len(), 1, "{n:#?}");
        assert!(n[0].contains("failed as it must"));
    }

    #[test]
    fn fixed_failure_and_bad_skip_fail() {
        let body =
            "TAP version 13\n1..2\n# FAIL: child kept access\nnot ok 1 many_children_group\n\
                    ok 2 whole_vma_group # SKIP why\n";
        let t = judge_log(&section("fixed", body, 1), &[Config::Fixed]);
        assert_eq!((t.passed, t.failed), (0, 2), "{:#?}", t.lines);
        assert!(t.lines[0].contains("child kept access"));
    }

    #[test]
    fn crashes_and_missing_sections_fail() {
        let body = "TAP version 13\n1..3\nok 1 inherit_group\n";
        let t = judge_log(
            &section("stock", body, 139),
            &[Config::Stock, Config::Fixed],
        );
        assert_eq!(t.failed, 3, "{:#?}", t.lines);
        let unterminated = "# vfio-revoke config fixed begin\nTAP version 13\n1..1\nok 1 a\n";
        let t = judge_log(unterminated, &[Config::Fixed]);
        assert_eq!(t.failed, 1);
        assert!(t.lines.iter().any(|l| l.contains("no end marker")));
    }

    #[test]
    fn names() {
        assert_eq!(base_name("fork_reset_cdev"), "fork_reset");
        assert_eq!(base_name("kernel_log"), "kernel_log");
        assert!(legacy_must_fail("vma_split_group").is_some());
        assert!(legacy_must_fail("inherit_group").is_none());
        assert!(legacy_must_fail("fork_before_touch_group").is_none());
    }
}
