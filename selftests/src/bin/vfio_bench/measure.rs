// SPDX-License-Identifier: GPL-2.0

//! `vfio_bench run` (x86_64 only: it reads device memory with the SIGBUS
//! probe).

use std::time::{Duration, Instant};
use vfio_revoke_selftests::bench::Record;
use vfio_revoke_selftests::error::Result;
use vfio_revoke_selftests::family::{fork_run, wait_ok, Family};
use vfio_revoke_selftests::mapping::{Mapping, Place};
use vfio_revoke_selftests::probe::{self, Seen, PAGE};
use vfio_revoke_selftests::sysfs::{Counters, Debugfs};
use vfio_revoke_selftests::vfio::{Device, Path, Region};
use vfio_revoke_selftests::{err, sysfs};

/// Options of `run`.
pub struct Run {
    bdf: String,
    repeats: usize,
    children: Vec<u64>,
    config: Option<String>,
}

/// Parses the options of `run`.
pub fn parse_run(args: &[String]) -> Result<Run> {
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

/// Measures and prints the records.
pub fn run(opt: &Run) -> Result<()> {
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
