// SPDX-License-Identifier: GPL-2.0

//! `ktap_expect`: judges the guest output of `make selftest` against what
//! each configuration must show (see `expect.rs`): prints one line per
//! skip, expected failure and unexpected result (plain passes are in the
//! KTAP already) and closes with `N passed, N failed, N skipped`. Exit 0 when
//! everything was as expected, 1 otherwise; bad usage (the usage on stderr)
//! and an unreadable LOG exit 1 too.
//!
//! ```text
//! ktap_expect [--configs fixed,stock,legacy] [--select ARGS] [--device mock|other]
//!             [--problem TEXT]... LOG
//! ```
//!
//! `--select ARGS` gives the arguments the test binary ran with, so that the
//! judge knows which tests each configuration must report (`--only`,
//! `--path`, `--no-unplug`); `--device other` accepts skips for features a
//! device other than the mock lacks.
//!
//! `--problem TEXT` counts one more failure (e.g. the guest's kernel log
//! showed a WARN), so the closing line always tells the whole story.

use std::process::exit;
use vfio_revoke_selftests::expect::{judge_log, Config, DeviceKind, Run, Selection};

const USAGE: &str = "usage: ktap_expect [--configs fixed,stock,legacy] [--select ARGS] \
                     [--device mock|other] [--problem TEXT]... LOG";

fn main() {
    let mut run = Run::default();
    let mut log = None;
    let mut problems = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--configs" => {
                let v = args.next().unwrap_or_default();
                run.configs = match v.split(',').map(Config::parse).collect::<Option<Vec<_>>>() {
                    Some(c) if !c.is_empty() => c,
                    _ => {
                        eprintln!(
                            "ktap_expect: --configs '{v}': use fixed, stock, legacy\n{USAGE}"
                        );
                        exit(1);
                    }
                };
            }
            "--select" => {
                run.selection = Selection::from_args(&args.next().unwrap_or_default())
                    .unwrap_or_else(|e| usage_error(&format!("--select: {e}")));
            }
            "--device" => {
                run.device = match args.next().as_deref() {
                    Some("mock") => DeviceKind::Mock,
                    Some("other") => DeviceKind::Other,
                    _ => usage_error("--device: use mock or other"),
                }
            }
            "--problem" => problems.push(args.next().unwrap_or_default()),
            _ if log.is_none() && !a.starts_with('-') => log = Some(a),
            _ => {
                eprintln!("{USAGE}");
                exit(1);
            }
        }
    }
    let Some(path) = log else {
        eprintln!("{USAGE}");
        exit(1);
    };
    let text = match std::fs::read(&path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            eprintln!("ktap_expect: read {path}: {e}");
            exit(1);
        }
    };
    let mut tally = judge_log(&text, &run);
    for p in problems {
        tally.failed += 1;
        tally.lines.push(format!("FAIL run    {p}"));
    }
    // Plain passes are in the KTAP above; show the rest.
    for l in tally.notable() {
        println!("{l}");
    }
    println!("{}", tally.summary());
    exit(if tally.failed == 0 { 0 } else { 1 });
}

fn usage_error(msg: &str) -> ! {
    eprintln!("ktap_expect: {msg}\n{USAGE}");
    exit(1);
}
