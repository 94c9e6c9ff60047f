// SPDX-License-Identifier: GPL-2.0

//! KTAP output (Documentation/dev-tools/ktap.rst) in the kselftest flavour,
//! and a parser for the same format (used by `ktap_expect`).
//!
//! ```text
//! TAP version 13
//! 1..2
//! # a diagnostic
//! ok 1 inherit_group
//! not ok 2 fork_mem_disable_group
//! ok 3 fork_reset_group # SKIP device has no reset method
//! # Totals: pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0
//! ```
//!
//! Exit codes follow kselftest.h: 0 when nothing failed, 1 when anything
//! failed, 4 (`KSFT_SKIP`) when every test was skipped.
//!
//! Like kselftest.h's `ksft_print_header()`, the `TAP version 13` line is
//! left out when `KSFT_TAP_LEVEL` is set: a runner that sets it has printed
//! the version line of the whole run already. The plan line always comes.

use std::io::Write;

/// kselftest exit code: every test passed (skips allowed).
pub const KSFT_PASS: i32 = 0;
/// kselftest exit code: at least one test failed.
pub const KSFT_FAIL: i32 = 1;
/// kselftest exit code: every test was skipped.
pub const KSFT_SKIP: i32 = 4;

/// Set by a kselftest runner that printed `TAP version 13` itself.
pub const TAP_LEVEL_ENV: &str = "KSFT_TAP_LEVEL";

/// Whether this process runs under a runner that set [`TAP_LEVEL_ENV`]
/// (set at all, whatever its value, as kselftest.h checks it).
pub fn nested() -> bool {
    std::env::var_os(TAP_LEVEL_ENV).is_some()
}

/// The first lines of the document: `TAP version 13` unless `nested`,
/// then the plan `1..plan`, or `1..0 # SKIP reason` when `skip_all` gives
/// the reason nothing runs.
pub fn preamble(plan: usize, skip_all: Option<&str>, nested: bool) -> String {
    let mut s = String::new();
    if !nested {
        s.push_str("TAP version 13\n");
    }
    match skip_all {
        Some(why) => s.push_str(&format!("1..0 # SKIP {}\n", why.replace('\n', " "))),
        None => s.push_str(&format!("1..{plan}\n")),
    }
    s
}

/// Nothing applies here (no device, not root, wrong architecture): prints
/// the KTAP of an empty, skipped run and exits with [`KSFT_SKIP`].
pub fn skip_all(reason: &str) -> ! {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(preamble(0, Some(reason), nested()).as_bytes());
    let _ = out.flush();
    std::process::exit(KSFT_SKIP);
}

/// The result of one test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `ok N name`.
    Pass,
    /// `not ok N name`; the reason is printed as a diagnostic before it.
    Fail(String),
    /// `ok N name # SKIP reason`.
    Skip(String),
}

/// Writes a KTAP document to stdout, counting results.
#[derive(Debug, Default)]
pub struct Writer {
    next: usize,
    pass: usize,
    fail: usize,
    skip: usize,
}

/// Prints `# line` for every line of `msg` and flushes, so diagnostics
/// interleave correctly with the output of forked children.
pub fn diag(msg: &str) {
    let mut out = std::io::stdout().lock();
    for line in msg.lines() {
        let _ = writeln!(out, "# {line}");
    }
    let _ = out.flush();
}

/// Makes `name` safe for a KTAP result line (no `#`, no whitespace).
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c == '#' || c.is_whitespace() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Formats one result line (`ok 3 name # SKIP why`), the reason of a
/// failure excluded.
pub fn result_line(number: usize, name: &str, outcome: &Outcome) -> String {
    let name = sanitize(name);
    match outcome {
        Outcome::Pass => format!("ok {number} {name}"),
        Outcome::Fail(_) => format!("not ok {number} {name}"),
        Outcome::Skip(why) => {
            format!("ok {number} {name} # SKIP {}", why.replace('\n', " "))
        }
    }
}

impl Writer {
    /// Prints the header (see [`preamble`]) and the plan.
    pub fn start(plan: usize) -> Self {
        print!("{}", preamble(plan, None, nested()));
        let _ = std::io::stdout().flush();
        Self {
            next: 1,
            ..Self::default()
        }
    }

    /// Prints a result; a failure's reason goes out as diagnostics first.
    pub fn result(&mut self, name: &str, outcome: &Outcome) {
        match outcome {
            Outcome::Pass => self.pass += 1,
            Outcome::Fail(why) => {
                diag(&format!("FAIL: {why}"));
                self.fail += 1;
            }
            Outcome::Skip(_) => self.skip += 1,
        }
        println!("{}", result_line(self.next, name, outcome));
        let _ = std::io::stdout().flush();
        self.next += 1;
    }

    /// Prints the kselftest totals line and returns the exit code.
    pub fn finish(self) -> i32 {
        diag(&format!(
            "Totals: pass:{} fail:{} xfail:0 xpass:0 skip:{} error:0",
            self.pass, self.fail, self.skip
        ));
        exit_code(self.pass, self.fail, self.skip)
    }
}

/// The kselftest exit code for these counts.
pub fn exit_code(pass: usize, fail: usize, skip: usize) -> i32 {
    if fail > 0 {
        KSFT_FAIL
    } else if pass == 0 && skip > 0 {
        KSFT_SKIP
    } else {
        KSFT_PASS
    }
}

/// Status of a parsed result line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `ok` without a directive.
    Ok,
    /// `not ok`.
    NotOk,
    /// `ok ... # SKIP`.
    Skip,
}

/// One parsed result line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The test number.
    pub number: usize,
    /// The test name.
    pub name: String,
    /// Its status.
    pub status: Status,
    /// The SKIP reason, or the `FAIL:` diagnostic printed before a failure.
    pub reason: String,
}

/// A parsed KTAP document (top level only; nested subtests are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Document {
    /// The plan (`1..N`), if one was seen.
    pub plan: Option<usize>,
    /// The results, in order.
    pub results: Vec<Parsed>,
}

/// Parses `text`. Lines that are not top-level KTAP are ignored; a `# FAIL:`
/// diagnostic is attached to the `not ok` line that follows it.
pub fn parse(text: &str) -> Document {
    let mut doc = Document::default();
    let mut last_fail = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("1..") {
            // `1..0 # SKIP reason` is a plan too.
            let count = rest.split('#').next().unwrap_or("");
            if let Ok(n) = count.trim().parse() {
                doc.plan = Some(n);
            }
            continue;
        }
        if let Some(why) = line.strip_prefix("# FAIL: ") {
            last_fail = why.to_string();
            continue;
        }
        let (status, rest) = if let Some(r) = line.strip_prefix("not ok ") {
            (Status::NotOk, r)
        } else if let Some(r) = line.strip_prefix("ok ") {
            (Status::Ok, r)
        } else {
            continue;
        };
        let (head, directive) = match rest.split_once(" # ") {
            Some((h, d)) => (h, Some(d)),
            None => (rest, None),
        };
        let mut words = head.splitn(2, ' ');
        let Some(number) = words.next().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let name = words.next().unwrap_or("").trim().to_string();
        let mut parsed = Parsed {
            number,
            name,
            status,
            reason: String::new(),
        };
        if let Some(d) = directive {
            let upper = d.to_ascii_uppercase();
            if status == Status::Ok && upper.starts_with("SKIP") {
                parsed.status = Status::Skip;
                parsed.reason = d[4..].trim().to_string();
            }
        }
        if parsed.status == Status::NotOk {
            parsed.reason = std::mem::take(&mut last_fail);
        }
        doc.results.push(parsed);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(result_line(1, "a b", &Outcome::Pass), "ok 1 a_b");
        assert_eq!(
            result_line(2, "x", &Outcome::Fail("why".into())),
            "not ok 2 x"
        );
        assert_eq!(
            result_line(3, "y#z", &Outcome::Skip("no\nreset".into())),
            "ok 3 y_z # SKIP no reset"
        );
    }

    #[test]
    fn version_line_only_when_not_nested() {
        assert_eq!(preamble(3, None, false), "TAP version 13\n1..3\n");
        assert_eq!(preamble(3, None, true), "1..3\n");
        assert_eq!(
            preamble(0, Some("no device\nat all"), false),
            "TAP version 13\n1..0 # SKIP no device at all\n"
        );
        assert_eq!(
            preamble(5, Some("not root"), true),
            "1..0 # SKIP not root\n"
        );
        // What the runner sees either way parses the same.
        for nested in [false, true] {
            assert_eq!(parse(&preamble(2, None, nested)).plan, Some(2));
            assert_eq!(parse(&preamble(0, Some("x"), nested)).plan, Some(0));
        }
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(3, 0, 1), KSFT_PASS);
        assert_eq!(exit_code(3, 1, 1), KSFT_FAIL);
        assert_eq!(exit_code(0, 0, 2), KSFT_SKIP);
        assert_eq!(exit_code(0, 1, 2), KSFT_FAIL);
        assert_eq!(exit_code(0, 0, 0), KSFT_PASS);
    }

    #[test]
    fn parses_its_own_output() {
        let text = "TAP version 13\n1..3\n# hello\nok 1 a\n# FAIL: child kept access\n\
                    not ok 2 b\nok 3 c # SKIP no reset method\n# Totals: pass:1\n";
        let doc = parse(text);
        assert_eq!(doc.plan, Some(3));
        assert_eq!(doc.results.len(), 3);
        assert_eq!(doc.results[0].status, Status::Ok);
        assert_eq!(doc.results[1].status, Status::NotOk);
        assert_eq!(doc.results[1].reason, "child kept access");
        assert_eq!(doc.results[2].status, Status::Skip);
        assert_eq!(doc.results[2].reason, "no reset method");
        assert_eq!(doc.results[2].name, "c");
    }

    #[test]
    fn ignores_noise_and_other_directives() {
        let doc = parse("ok 1 x # TODO later\nokay\nnot ok x y\n    ok 1 nested\n");
        assert_eq!(doc.plan, None);
        assert_eq!(doc.results.len(), 1);
        assert_eq!(doc.results[0].status, Status::Ok);
    }
}
