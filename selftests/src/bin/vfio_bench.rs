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
use std::time::{Duration, Instant};
use vfio_revoke_selftests::bench::{self, Record};
use vfio_revoke_selftests::error::Result;
use vfio_revoke_selftests::family::{fork_run, wait_ok, Family};
use vfio_revoke_selftests::mapping::{Mapping, Place};
use vfio_revoke_selftests::probe::{self, Seen, PAGE};
use vfio_revoke_selftests::sysfs::{Counters, Debugfs};
use vfio_revoke_selftests::vfio::{Device, Path, Region};
use vfio_revoke_selftests::{err, sysfs};

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
        Some("report") => report(&args[1..]),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return;
        }
        _ => Err(err!("expected 'run' or 'report'\n\n{USAGE}")),
    };
    if let Err(e) = r {
        eprintln!("vfio_bench: {e}");
        exit(1);
    }
}

/// Options of `run`.
struct Run {
    bdf: String,
    repeats: usize,
    children: Vec<u64>,
    config: Option<String>,
}

fn parse_run(args: &[String]) -> Result<Run> {
    let mut r = Run {
        bdf: String::new(),
        repeats: 10,
        children: vec![1, 16, 64],
        config: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| err!("{a} needs a value"));
        match a.as_str() {
            "--repeats" => {
                r.repeats = value()?
                    .parse()
                    .map_err(|_| err!("--repeats: not a number"))?
            }
            "--children" => {
                r.children = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| err!("--children: not a comma list of numbers"))?
            }
            "--config" => r.config = Some(value()?.clone()),
            s if s.starts_with('-') => return Err(err!("unknown option '{s}'")),
            s => r.bdf = s.to_string(),
        }
    }
    if r.bdf.is_empty() || r.repeats == 0 {
        return Err(err!("run needs a BDF and --repeats >= 1"));
    }
    Ok(r)
}

fn run(args: &[String]) -> Result<()> {
    let opt = parse_run(args)?;
    probe::install();
    let config = opt
        .config
        .clone()
        .or_else(|| sysfs::driver(&opt.bdf))
        .unwrap_or_else(|| "unknown".into());
    let dev = Device::open(&opt.bdf, Path::Group)?;
    let bar = dev.bar(0)?;
    dev.set_memory(true)?;
    let counters = Debugfs::find(&opt.bdf);
    let base = Record {
        case: String::new(),
        config,
        bar: bar.size,
        aligned: true,
        children: 0,
        faults: 0,
        extra: Default::default(),
        samples: Vec::new(),
        then: Vec::new(),
    };
    for aligned in [true, false] {
        let r = first_touch(&dev, &bar, aligned, opt.repeats, counters.as_ref(), &base)?;
        println!("{}", r.line());
        let r = fork(&dev, &bar, aligned, opt.repeats, &base)?;
        println!("{}", r.line());
    }
    for &n in &opt.children {
        let r = revoke(&dev, &bar, n, opt.repeats, &base)?;
        println!("{}", r.line());
    }
    Ok(())
}

fn place(aligned: bool) -> Place {
    if aligned {
        Place::PmdAligned
    } else {
        Place::Misaligned
    }
}

/// Reads the first word of every page of `map`; SIGBUS is an error.
fn touch(map: &Mapping) -> Result<()> {
    for k in 0..map.len() / PAGE {
        // SAFETY: inside the single-piece mapping, page aligned, readable.
        if unsafe { probe::load((map.addr() + k * PAGE) as *const u32) }.is_none() {
            return Err(err!("SIGBUS on page {k} of an enabled BAR"));
        }
    }
    Ok(())
}

fn counters_now(c: Option<&Debugfs>) -> Result<Option<Counters>> {
    c.map(Debugfs::counters).transpose()
}

fn first_touch(
    dev: &Device,
    bar: &Region,
    aligned: bool,
    repeats: usize,
    counters: Option<&Debugfs>,
    base: &Record,
) -> Result<Record> {
    let mut r = Record {
        case: "first_touch".into(),
        aligned,
        ..base.clone()
    };
    for _ in 0..repeats {
        let map = Mapping::new(dev.fd(), bar, 0, bar.size as usize, place(aligned))?;
        let c0 = counters_now(counters)?;
        let f0 = probe::minflt();
        let t = Instant::now();
        touch(&map)?;
        r.samples.push(t.elapsed().as_nanos() as u64);
        r.faults = (probe::minflt() - f0) as u64;
        if let (Some(c0), Some(c1)) = (c0, counters_now(counters)?) {
            let d = c1.since(&c0);
            r.extra.insert("driver_faults".into(), d.faults.to_string());
            r.extra.insert("ptes".into(), d.ptes.to_string());
            r.extra.insert("pmds".into(), d.pmds.to_string());
        }
    }
    Ok(r)
}

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

fn fork(
    dev: &Device,
    bar: &Region,
    aligned: bool,
    repeats: usize,
    base: &Record,
) -> Result<Record> {
    let mut r = Record {
        case: "fork".into(),
        aligned,
        children: 1,
        ..base.clone()
    };
    let map = Mapping::new(dev.fd(), bar, 0, bar.size as usize, place(aligned))?;
    touch(&map)?;
    for _ in 0..repeats {
        let t = Instant::now();
        let pid = fork_run(|| 0)?;
        r.samples.push(ns(t.elapsed()));
        let t = Instant::now();
        wait_ok(pid)?;
        r.then.push(ns(t.elapsed()));
    }
    Ok(r)
}

fn revoke(
    dev: &Device,
    bar: &Region,
    children: u64,
    repeats: usize,
    base: &Record,
) -> Result<Record> {
    let mut r = Record {
        case: "revoke".into(),
        aligned: true,
        children,
        ..base.clone()
    };
    let map = Mapping::new(dev.fd(), bar, 0, bar.size as usize, Place::PmdAligned)?;
    for _ in 0..repeats {
        touch(&map)?;
        let mut fam = Family::spawn(children as usize, 0, 2, |m| {
            m.wait(1);
            let ok = touch(&map).is_ok();
            m.report(
                1,
                &Seen {
                    sigbus: u32::from(!ok),
                    ..Seen::default()
                },
            );
        })?;
        let t = Instant::now();
        dev.set_memory(false)?;
        r.samples.push(ns(t.elapsed()));
        let t = Instant::now();
        dev.set_memory(true)?;
        fam.start(1);
        let reports = fam.collect(1, Duration::from_secs(600))?;
        r.then.push(ns(t.elapsed()));
        fam.finish()?;
        if reports.iter().any(|p| p.sigbus != 0) {
            return Err(err!("a child got SIGBUS after memory was re-enabled"));
        }
    }
    Ok(r)
}

fn report(args: &[String]) -> Result<()> {
    let (mut kernel, mut accel, mut repeats) = (String::from("?"), String::from("tcg"), 0);
    let (mut json_out, mut svg_out, mut logs) = (None, None, Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| err!("{a} needs a value"));
        match a.as_str() {
            "--kernel" => kernel = value()?,
            "--accel" => accel = value()?,
            "--repeats" => repeats = value()?.parse().map_err(|_| err!("--repeats"))?,
            "--json" => json_out = Some(value()?),
            "--svg" => svg_out = Some(value()?),
            s => logs.push(s.to_string()),
        }
    }
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
