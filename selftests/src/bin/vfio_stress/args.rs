// SPDX-License-Identifier: GPL-2.0

//! The command line: which part, its options (every one with a default and
//! a range), and the device.

use crate::outcome::Outcome;
use crate::{bad_input, fork_revoke, fuzz, revoke_race, touch, unplug};
use vfio_revoke_selftests::error::Result;
use vfio_revoke_selftests::ktap::diag;
use vfio_revoke_selftests::vfio::Path;
use vfio_revoke_selftests::{err, probe, sysfs};

/// One option of a part: name, default, smallest and largest value, help.
pub type Opt = (&'static str, u64, u64, u64, &'static str);

/// A part of the stress run.
struct Part {
    name: &'static str,
    about: &'static str,
    opts: &'static [Opt],
    run: fn(&Ctx, &Opts) -> Result<Outcome>,
}

const PARTS: &[Part] = &[
    Part {
        name: "revoke-race",
        about: "children read and write the mapping while memory is toggled",
        opts: revoke_race::OPTS,
        run: revoke_race::run,
    },
    Part {
        name: "fork-revoke",
        about: "fork with populated PTE and PMD mappings while another process revokes",
        opts: fork_revoke::OPTS,
        run: fork_revoke::run,
    },
    Part {
        name: "unplug",
        about: "unplug (sysfs remove, mock-pci del_device) and replug while children fault, fork and exit",
        opts: unplug::OPTS,
        run: unplug::run,
    },
    Part {
        name: "touch",
        about: "map, fork a reader, revoke: one short check per load/unload cycle",
        opts: touch::OPTS,
        run: touch::run,
    },
    Part {
        name: "fuzz",
        about: "random config writes with BAR0 mapped: no access while memory is off",
        opts: fuzz::OPTS,
        run: fuzz::run,
    },
    Part {
        name: "bad-input",
        about: "bad mmaps, ioctls, preads and pwrites: VFIO's errno, nothing logged",
        opts: bad_input::OPTS,
        run: bad_input::run,
    },
];

/// The device under test.
pub struct Ctx {
    /// PCI address, bound to vfio_variant in fixed mode.
    pub bdf: String,
    /// How to open it.
    pub path: Path,
}

/// A part's option values.
pub struct Opts {
    values: Vec<(&'static str, u64)>,
}

impl Opts {
    /// The value of option `name` (every part's option has one).
    pub fn get(&self, name: &str) -> u64 {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, v)| *v)
    }

    fn parse(part: &Part, args: &[String]) -> std::result::Result<(Self, Vec<String>), String> {
        let mut values: Vec<_> = part.opts.iter().map(|o| (o.0, o.1)).collect();
        let mut rest = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                rest.push(a.clone());
                continue;
            };
            let value = it.next().ok_or(format!("--{name} needs a value"))?;
            if name == "path" {
                rest.push(format!("--path={value}"));
                continue;
            }
            let opt = part
                .opts
                .iter()
                .find(|o| o.0 == name)
                .ok_or(format!("{}: no option --{name} (see --help)", part.name))?;
            let v: u64 = value
                .parse()
                .map_err(|_| format!("--{name}: '{value}' is not a number"))?;
            if v < opt.2 || v > opt.3 {
                return Err(format!("--{name}: {v} is outside {}..={}", opt.2, opt.3));
            }
            if let Some(slot) = values.iter_mut().find(|(n, _)| *n == name) {
                slot.1 = v;
            }
        }
        Ok((Self { values }, rest))
    }
}

fn usage() -> String {
    let mut s = String::from(
        "usage: vfio_stress PART [--path group|cdev] [--OPTION N ...] BDF\n\n\
         Stress one revocation property of BDF (bound to vfio_variant, fixed\n\
         mode). Prints figures and 'PART: ...: N escapes'; exit 0 when clean,\n\
         1 on an escape or another failure or bad usage.\n\nparts and options:\n",
    );
    for p in PARTS {
        s += &format!("  {:<14}{}\n", p.name, p.about);
        for o in p.opts {
            s += &format!(
                "    --{:<14}{} (default {}, {}..={})\n",
                o.0, o.4, o.1, o.2, o.3
            );
        }
    }
    s
}

/// Parses the command line and runs the part; the exit code.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{}", usage());
        return i32::from(args.is_empty());
    }
    let Some(part) = PARTS.iter().find(|p| p.name == args[0]) else {
        eprintln!("vfio_stress: unknown part '{}'\n\n{}", args[0], usage());
        return 1;
    };
    let (opts, rest) = match Opts::parse(part, &args[1..]) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("vfio_stress: {e}");
            return 1;
        }
    };
    let mut path = Path::Group;
    let mut bdf = None;
    for a in rest {
        match a.strip_prefix("--path=") {
            Some("group") => path = Path::Group,
            Some("cdev") => path = Path::Cdev,
            Some(p) => {
                eprintln!("vfio_stress: --path: '{p}' is not group or cdev");
                return 1;
            }
            None if bdf.is_none() && sysfs::is_bdf(&a) => bdf = Some(a),
            None => {
                eprintln!("vfio_stress: unexpected argument '{a}'");
                return 1;
            }
        }
    }
    let Some(bdf) = bdf else {
        eprintln!("vfio_stress: no device given\n\n{}", usage());
        return 1;
    };
    let ctx = Ctx { bdf, path };
    let shown: Vec<String> = opts
        .values
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    diag(&format!(
        "{} on {} ({} path): {}",
        part.name,
        ctx.bdf,
        ctx.path.name(),
        shown.join(" ")
    ));
    probe::install();
    let outcome = match (part.run)(&ctx, &opts) {
        Ok(o) => o,
        Err(e) => {
            let mut o = Outcome::default();
            o.fail(e.0);
            o
        }
    };
    outcome.finish(part.name)
}

/// The vfio_variant debugfs of `bdf` (the escape checks read it), saying
/// which mode the device is in: `fixed` must show no escape, `legacy` (the
/// pre-2024 design, `STRESS_MODE=legacy`) is the negative control.
pub fn variant(bdf: &str) -> Result<sysfs::Debugfs> {
    let d = sysfs::Debugfs::find(bdf)
        .ok_or_else(|| err!("{bdf} is not bound to vfio_variant (or debugfs is not mounted)"))?;
    diag(&format!("{bdf}: vfio_variant, {} mode", d.mode()?));
    Ok(d)
}
