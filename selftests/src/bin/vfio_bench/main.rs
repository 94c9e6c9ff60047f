// SPDX-License-Identifier: GPL-2.0

//! `vfio_bench`: the measurements behind `make bench` (see selftests/bench).
//!
//! `vfio_bench run [options] BDF` runs in the guest against one device bound
//! to a VFIO driver and prints one `# bench ...` record per figure:
//!
//! * `first_touch`: map the whole BAR (2 MiB aligned, or one page off so
//!   that only 4 KiB entries fit), read every page once; time and faults;
//! * `fork`: fork with the mapping populated; the time of `fork()`, and
//!   (second phase, `exit_*` in JSON) of the child's immediate exit as
//!   `waitpid` sees it;
//! * `revoke`: with N children holding the populated mapping, clear memory
//!   enable (the time until the config write returns: the zap), then
//!   re-enable and wait until every child has read every page again
//!   (second phase, `refault_*` in JSON).
//!
//! `vfio_bench report LOG...` runs on the host: it collects the records
//! from the guest logs and writes the table (stdout), `--json` and `--svg`.

use std::process::exit;
use vfio_revoke_selftests::bench::{self, Record};
use vfio_revoke_selftests::err;
use vfio_revoke_selftests::error::{Error, Result};

#[cfg(target_arch = "x86_64")]
mod measure;

const USAGE: &str = "\
usage: vfio_bench run [--repeats N] [--children LIST] [--config NAME] BDF
       vfio_bench report [--kernel K] [--accel A] [--repeats N] [--json FILE] [--svg FILE] LOG...

run: measure BAR0 of BDF (bound to vfio_variant or vfio-pci) through the
group path; --children is a comma list (default 1,16,64), --repeats the
repetitions per figure (default 10), --config the name recorded (default:
the driver's). Prints '# bench' records.
report: read the records from LOGs; print the table, write JSON and SVG.";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("report") => {
            let opt = parse_report(&args[1..]).unwrap_or_else(|e| usage_error(e));
            report(opt)
        }
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return;
        }
        _ => usage_error(err!("expected 'run' or 'report'")),
    };
    if let Err(e) = r {
        eprintln!("vfio_bench: {e}");
        exit(1);
    }
}

/// Bad usage: the reason and the usage on stderr, exit 1.
fn usage_error(e: Error) -> ! {
    eprintln!("vfio_bench: {e}\n\n{USAGE}");
    exit(1);
}

#[cfg(target_arch = "x86_64")]
fn run(args: &[String]) -> Result<()> {
    let opt = measure::parse_run(args).unwrap_or_else(|e| usage_error(e));
    measure::run(&opt)
}

#[cfg(not(target_arch = "x86_64"))]
fn run(_: &[String]) -> Result<()> {
    Err(err!(
        "'run' measures on x86_64 only (the SIGBUS probe is x86_64 assembly)"
    ))
}

/// Options of `report`.
struct Report {
    kernel: String,
    accel: String,
    repeats: usize,
    json_out: Option<String>,
    svg_out: Option<String>,
    logs: Vec<String>,
}

fn parse_report(args: &[String]) -> Result<Report> {
    let mut r = Report {
        kernel: "?".into(),
        accel: "tcg".into(),
        repeats: 0,
        json_out: None,
        svg_out: None,
        logs: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| err!("{a} needs a value"));
        match a.as_str() {
            "--kernel" => r.kernel = value()?,
            "--accel" => r.accel = value()?,
            "--repeats" => {
                r.repeats = value()?
                    .parse()
                    .map_err(|_| err!("--repeats: not a number"))?
            }
            "--json" => r.json_out = Some(value()?),
            "--svg" => r.svg_out = Some(value()?),
            s if s.starts_with('-') => return Err(err!("unknown option '{s}'")),
            s => r.logs.push(s.to_string()),
        }
    }
    if r.logs.is_empty() {
        return Err(err!("report needs at least one LOG"));
    }
    Ok(r)
}

fn report(opt: Report) -> Result<()> {
    let Report {
        kernel,
        accel,
        mut repeats,
        json_out,
        svg_out,
        logs,
    } = opt;
    let mut records = Vec::new();
    for l in &logs {
        let text = std::fs::read_to_string(l).map_err(|e| err!("read {l}: {e}"))?;
        records.extend(text.lines().filter_map(Record::parse));
    }
    let records = bench::merge(records);
    if records.is_empty() {
        return Err(err!("no '# bench' records in {}", logs.join(" ")));
    }
    if repeats == 0 {
        repeats = records[0].samples.len();
    }
    print!("{}", bench::table(&records));
    if let Some(p) = json_out {
        std::fs::write(&p, bench::json(&records, &kernel, &accel, repeats))
            .map_err(|e| err!("write {p}: {e}"))?;
    }
    if let Some(p) = svg_out {
        let title =
            format!("vfio-revoke first touch, kernel {kernel}, {accel} (emulated: compare ratios)");
        std::fs::write(&p, bench::svg(&records, &title)).map_err(|e| err!("write {p}: {e}"))?;
    }
    Ok(())
}
