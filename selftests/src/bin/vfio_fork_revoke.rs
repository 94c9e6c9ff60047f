// SPDX-License-Identifier: GPL-2.0

//! `vfio_fork_revoke`: the kselftest binary. Maps a BAR of a VFIO PCI
//! device, forks, revokes, and checks that every process lost its access
//! and faults again. KTAP on stdout; exit 0 (pass), 1 (a test failed) or
//! 4 (everything skipped). See README.md.

use std::process::exit;
use vfio_revoke_selftests::ktap::{self, diag, Writer};
use vfio_revoke_selftests::scenarios::{self, kmsg::Kmsg, Ctx};
use vfio_revoke_selftests::vfio::Path;
use vfio_revoke_selftests::{probe, sys, sysfs};

const USAGE: &str = "\
usage: vfio_fork_revoke [options] [BDF]

Runs the fork/revoke tests against the VFIO PCI device BDF (default: $VFR_BDF,
else the first device with ID $VFR_ID, default 1234:f00d, preferring one bound
to a VFIO driver). The device must be bound to vfio_variant or vfio-pci; run
as root, with vfio.enable_unsafe_noiommu_mode=1 on machines without an IOMMU.

options:
  --bar N             BAR to map (default $VFR_BAR, else 0)
  --path P            group, cdev or both (default $VFR_PATH, else both)
  --id VVVV:DDDD      device ID to look for when no BDF is given
  --children N        children in many_children (default 4)
  --grandchildren N   grandchildren per child in many_children (default 3)
  --max-kib N         map at most N KiB of the BAR (default 4096)
  --no-unplug         leave out the fork_unplug tests
  --only TEXT         run only the tests whose name contains TEXT
  --list              list the tests and exit
  -h, --help          this text

exit: 0 all passed (skips allowed), 1 a test failed, 4 all skipped, 2 bad usage";

struct Args {
    bdf: Option<String>,
    bar: u32,
    paths: Vec<Path>,
    id: (u16, u16),
    children: usize,
    grandchildren: usize,
    max_kib: usize,
    unplug: bool,
    only: Option<String>,
    list: bool,
}

fn parse_paths(s: &str) -> Result<Vec<Path>, String> {
    match s {
        "group" => Ok(vec![Path::Group]),
        "cdev" => Ok(vec![Path::Cdev]),
        "both" => Ok(Path::ALL.to_vec()),
        _ => Err(format!("--path: '{s}' is not group, cdev or both")),
    }
}

fn number<T: std::str::FromStr>(opt: &str, v: Option<String>) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{opt} needs a value"))?;
    v.parse()
        .map_err(|_| format!("{opt}: '{v}' is not a number"))
}

fn parse_args() -> Result<Args, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut a = Args {
        bdf: env("VFR_BDF"),
        bar: env("VFR_BAR").map_or(Ok(0), |v| number("VFR_BAR", Some(v)))?,
        paths: parse_paths(env("VFR_PATH").as_deref().unwrap_or("both"))?,
        id: (0x1234, 0xf00d),
        children: 4,
        grandchildren: 3,
        max_kib: 4096,
        unplug: true,
        only: None,
        list: false,
    };
    if let Some(id) = env("VFR_ID") {
        a.id = sysfs::parse_id(&id).ok_or(format!("VFR_ID: '{id}' is not VVVV:DDDD"))?;
    }
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bar" => a.bar = number("--bar", it.next())?,
            "--path" => a.paths = parse_paths(&it.next().unwrap_or_default())?,
            "--id" => {
                let v = it.next().unwrap_or_default();
                a.id = sysfs::parse_id(&v).ok_or(format!("--id: '{v}' is not VVVV:DDDD"))?;
            }
            "--children" => a.children = number("--children", it.next())?,
            "--grandchildren" => a.grandchildren = number("--grandchildren", it.next())?,
            "--max-kib" => a.max_kib = number("--max-kib", it.next())?,
            "--no-unplug" => a.unplug = false,
            "--only" => a.only = it.next(),
            "--list" => a.list = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                exit(0);
            }
            s if s.starts_with('-') => return Err(format!("unknown option '{s}'")),
            s => a.bdf = Some(s.to_string()),
        }
    }
    if a.children == 0 || a.max_kib < 16 {
        return Err("--children must be >= 1 and --max-kib >= 16".into());
    }
    Ok(a)
}

/// The whole run does not apply here: KTAP for "nothing ran", exit 4.
fn skip_all(reason: &str) -> ! {
    println!("TAP version 13");
    println!("1..0 # SKIP {reason}");
    exit(ktap::KSFT_SKIP);
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("vfio_fork_revoke: {e}\n\n{USAGE}");
        exit(2);
    });
    // Opened first, so that the kernel_log window covers the whole run.
    let kmsg = Kmsg::open();
    let mut tests = scenarios::all(&args.paths, args.unplug, kmsg);
    if let Some(only) = &args.only {
        tests.retain(|t| t.name.contains(only.as_str()));
    }
    if args.list {
        for t in &tests {
            println!("{}", t.name);
        }
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { sys::geteuid() } != 0 {
        skip_all("must run as root (VFIO no-IOMMU needs CAP_SYS_RAWIO; sysfs writes)");
    }
    let bdf = match args.bdf.clone().or_else(|| sysfs::find_device(args.id)) {
        Some(b) => b,
        None => skip_all(&format!(
            "no PCI device {:04x}:{:04x} (load mock_pci, or pass a BDF / set VFR_BDF)",
            args.id.0, args.id.1
        )),
    };
    if !sysfs::exists(&bdf) {
        skip_all(&format!("no PCI device {bdf}"));
    }
    match sysfs::driver(&bdf) {
        Some(d) if d.contains("vfio") => {}
        d => skip_all(&format!(
            "{bdf} is bound to {}, not a VFIO driver: bind it to vfio_variant or vfio-pci",
            d.as_deref().unwrap_or("no driver")
        )),
    }
    if tests.is_empty() {
        skip_all("--only matched no test");
    }
    probe::install();
    let ctx = Ctx {
        bdf,
        bar: args.bar,
        children: args.children,
        grandchildren: args.grandchildren,
        max_len: args.max_kib * 1024,
    };
    let mut w = Writer::start(tests.len());
    let mode = ctx
        .debugfs()
        .and_then(|d| d.mode().ok())
        .map(|m| format!(", mode {m}"))
        .unwrap_or_default();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    diag(&format!(
        "device {} driver {}{mode}, BAR{}, kernel {}",
        ctx.bdf,
        ctx.driver(),
        ctx.bar,
        release.trim()
    ));
    for t in &tests {
        let outcome = t.run(&ctx);
        w.result(&t.name, &outcome);
    }
    exit(w.finish());
}
