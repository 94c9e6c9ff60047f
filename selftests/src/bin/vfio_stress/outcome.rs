// SPDX-License-Identifier: GPL-2.0

//! What a part measured: its figures, its escapes and any other failure,
//! and the summary line `selftests/stress-guest` reads.

use vfio_revoke_selftests::ktap::diag;

/// The result of one part.
#[derive(Debug, Default)]
pub struct Outcome {
    /// `(name, value)` in print order.
    figures: Vec<(&'static str, u64)>,
    /// Accesses that succeeded where they must not have.
    pub escapes: u64,
    /// Everything else that went wrong, each a sentence.
    problems: Vec<String>,
}

impl Outcome {
    /// Records a figure.
    pub fn figure(&mut self, name: &'static str, value: u64) {
        self.figures.push((name, value));
    }

    /// Records a failure other than an escape.
    pub fn fail(&mut self, what: impl Into<String>) {
        let what = what.into();
        diag(&format!("FAIL: {what}"));
        self.problems.push(what);
    }

    /// Records a failure when `bad` holds.
    pub fn check(&mut self, bad: bool, what: impl FnOnce() -> String) {
        if bad {
            self.fail(what());
        }
    }

    /// Prints the summary line; the exit code (0 only when clean).
    pub fn finish(self, part: &str) -> i32 {
        let figs: Vec<String> = self
            .figures
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        let problems = if self.problems.is_empty() {
            String::new()
        } else {
            format!(", {} other failures", self.problems.len())
        };
        println!(
            "{part}: {}: {} escapes{problems}",
            figs.join(", "),
            self.escapes
        );
        i32::from(self.escapes > 0 || !self.problems.is_empty())
    }
}
