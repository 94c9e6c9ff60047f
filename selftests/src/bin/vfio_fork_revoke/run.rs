// SPDX-License-Identifier: GPL-2.0

//! The program on x86_64: options, the choice of the device, the run.

use std::process::exit;
use vfio_revoke_selftests::ktap::{self, diag, skip_all, Writer};
use vfio_revoke_selftests::scenarios::{self, kmsg::Kmsg, Ctx};
use vfio_revoke_selftests::vfio::Path;
use vfio_revoke_selftests::{probe, sys, sysfs};

const USAGE: &str = "\
usage: vfio_fork_revoke [options] [BDF]

Runs the fork/revoke tests against the VFIO PCI device BDF
(segment:bus:device.function). Without a BDF argument: $VFIO_SELFTESTS_BDF
(as the in-tree VFIO selftests), else $VFR_BDF, else the first device with
ID $VFR_ID (default 1234:f00d, mock-pci), preferring one bound to a VFIO
driver; with none of them it skips. The device must be bound to
vfio_variant or vfio-pci; run as root, with vfio.enable_unsafe_noiommu_mode=1
on machines without an IOMMU.

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

KTAP on stdout, without the 'TAP version 13' line when $KSFT_TAP_LEVEL is
set (the kselftest runner printed it). Exit: 0 all passed (skips allowed),
1 a test failed or bad usage, 4 all skipped (no device, not root, device not
bound to VFIO).";

/// Where the device address came from (for the diagnostics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Argument,
    VfioSelftestsBdf,
    VfrBdf,
    Found,
}

impl Source {
    fn describe(self) -> &'static str {
        match self {
            Source::Argument => "argument",
            Source::VfioSelftestsBdf => "$VFIO_SELFTESTS_BDF",
            Source::VfrBdf => "$VFR_BDF",
            Source::Found => "looked up by ID",
        }
    }
}

struct Args {
    bdf: Option<(String, Source)>,
    bar: u32,
    paths: Vec<Path>,
    id: (u16, u16),
    children: usize,
    grandchildren: usize,
    max_kib: usize,
    unplug: bool,
    only: Option<String>,
    list: bool,
    help: bool,
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

/// The device given on the command line or in the environment, in this
/// order of precedence; an address that is not a BDF is bad usage.
fn choose_bdf(
    arg: Option<String>,
    vfio_selftests_bdf: Option<String>,
    vfr_bdf: Option<String>,
) -> Result<Option<(String, Source)>, String> {
    let given = [
        (arg, Source::Argument),
        (vfio_selftests_bdf, Source::VfioSelftestsBdf),
        (vfr_bdf, Source::VfrBdf),
    ];
    match given.into_iter().find_map(|(b, s)| b.map(|b| (b, s))) {
        Some((b, s)) if !sysfs::is_bdf(&b) => Err(format!(
            "{}: '{b}' is not a PCI address (segment:bus:device.function, e.g. 0000:00:03.0)",
            s.describe()
        )),
        chosen => Ok(chosen),
    }
}

/// Parses the options (`argv` without the program name); `env` reads the
/// environment (an empty variable counts as unset).
fn parse_args(
    argv: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Args, String> {
    let env = |k: &str| env(k).filter(|v| !v.is_empty());
    let mut a = Args {
        bdf: None,
        bar: env("VFR_BAR").map_or(Ok(0), |v| number("VFR_BAR", Some(v)))?,
        paths: parse_paths(env("VFR_PATH").as_deref().unwrap_or("both"))?,
        id: (0x1234, 0xf00d),
        children: 4,
        grandchildren: 3,
        max_kib: 4096,
        unplug: true,
        only: None,
        list: false,
        help: false,
    };
    if let Some(id) = env("VFR_ID") {
        a.id = sysfs::parse_id(&id).ok_or(format!("VFR_ID: '{id}' is not VVVV:DDDD"))?;
    }
    let mut positional = None;
    let mut it = argv.into_iter();
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
            "--only" => a.only = Some(it.next().ok_or("--only needs a value")?),
            "--list" => a.list = true,
            "-h" | "--help" => a.help = true,
            s if s.starts_with('-') => return Err(format!("unknown option '{s}'")),
            s if positional.is_some() => return Err(format!("a second BDF '{s}': give one")),
            s => positional = Some(s.to_string()),
        }
    }
    if a.children == 0 || a.max_kib < 16 {
        return Err("--children must be >= 1 and --max-kib >= 16".into());
    }
    a.bdf = choose_bdf(positional, env("VFIO_SELFTESTS_BDF"), env("VFR_BDF"))?;
    Ok(a)
}

/// Runs the program; exits with the kselftest code.
pub fn main() -> ! {
    let env = |k: &str| std::env::var(k).ok();
    let args = parse_args(std::env::args().skip(1), env).unwrap_or_else(|e| {
        // Not a test result, so no KTAP: the reason and the usage on stderr,
        // exit 1 (2 and 4 mean XFAIL and SKIP to kselftest).
        eprintln!("vfio_fork_revoke: {e}\n\n{USAGE}");
        exit(ktap::KSFT_FAIL);
    });
    if args.help {
        println!("{USAGE}");
        exit(ktap::KSFT_PASS);
    }
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
        exit(ktap::KSFT_PASS);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { sys::geteuid() } != 0 {
        skip_all("must run as root (VFIO no-IOMMU needs CAP_SYS_RAWIO; sysfs writes)");
    }
    let found = || sysfs::find_device(args.id).map(|b| (b, Source::Found));
    let (bdf, source) = match args.bdf.clone().or_else(found) {
        Some(b) => b,
        None => skip_all(&format!(
            "no device: none given and no PCI device {:04x}:{:04x} present; set \
             VFIO_SELFTESTS_BDF=segment:bus:device.function (or pass the BDF) to a device \
             bound to vfio-pci or vfio_variant, or load mock_pci",
            args.id.0, args.id.1
        )),
    };
    if !sysfs::exists(&bdf) {
        skip_all(&format!("no PCI device {bdf} ({})", source.describe()));
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
        "device {} ({}), driver {}{mode}, BAR{}, kernel {}",
        ctx.bdf,
        source.describe(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str], env: &[(&str, &str)]) -> Result<Args, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_args(argv.iter().map(|s| s.to_string()), |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    fn bdf(argv: &[&str], env: &[(&str, &str)]) -> Option<(String, Source)> {
        parse(argv, env).unwrap().bdf
    }

    #[test]
    fn device_from_argument_then_environment() {
        let vfio = ("VFIO_SELFTESTS_BDF", "0000:00:04.0");
        let vfr = ("VFR_BDF", "0000:00:05.0");
        assert_eq!(
            bdf(&["0000:00:03.0"], &[vfio, vfr]),
            Some(("0000:00:03.0".into(), Source::Argument))
        );
        assert_eq!(
            bdf(&["--bar", "2"], &[vfio, vfr]),
            Some(("0000:00:04.0".into(), Source::VfioSelftestsBdf))
        );
        assert_eq!(
            bdf(&[], &[vfr]),
            Some(("0000:00:05.0".into(), Source::VfrBdf))
        );
        // Empty is unset; mock-pci's segment has five digits.
        assert_eq!(
            bdf(
                &[],
                &[("VFIO_SELFTESTS_BDF", ""), ("VFR_BDF", "10000:00:00.0")]
            ),
            Some(("10000:00:00.0".into(), Source::VfrBdf))
        );
        // Nothing given: the caller looks the device up by ID.
        assert_eq!(bdf(&[], &[]), None);
    }

    #[test]
    fn bad_usage_is_an_error() {
        let bad = |argv: &[&str], env: &[(&str, &str)]| parse(argv, env).err().unwrap();
        assert!(bad(&["--frob"], &[]).contains("unknown option"));
        assert!(bad(&["--bar"], &[]).contains("needs a value"));
        assert!(bad(&["--bar", "x"], &[]).contains("not a number"));
        assert!(bad(&["--path", "fd"], &[]).contains("group, cdev or both"));
        assert!(bad(&["--only"], &[]).contains("needs a value"));
        assert!(bad(&["--children", "0"], &[]).contains(">= 1"));
        assert!(bad(&["0000:00:03.0", "0000:00:04.0"], &[]).contains("second BDF"));
        let e = bad(&["00:03.0"], &[]);
        assert!(
            e.starts_with("argument: '00:03.0' is not a PCI address"),
            "{e}"
        );
        let e = bad(&[], &[("VFIO_SELFTESTS_BDF", "dev0")]);
        assert!(e.starts_with("$VFIO_SELFTESTS_BDF: 'dev0'"), "{e}");
        assert!(bad(&[], &[("VFR_ID", "f00d")]).contains("VVVV:DDDD"));
        assert!(parse(&["--help"], &[]).unwrap().help);
    }
}
