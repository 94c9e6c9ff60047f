// SPDX-License-Identifier: GPL-2.0

//! Bad input through the VFIO uAPI (the cases are in the library's
//! `bad_input`): each must get the answer VFIO's own code gives, and none
//! may write to the kernel log: the kernel does not let userspace fill the
//! log with misuse of its uAPI. The module parameter and control
//! file cases are shell (`selftests/stress-guest`, `bad_input`).

use crate::args::{variant, Ctx, Opt, Opts};
use crate::outcome::Outcome;
use vfio_revoke_selftests::bad_input::{run_cases, Answer};
use vfio_revoke_selftests::err;
use vfio_revoke_selftests::error::Result;
use vfio_revoke_selftests::ktap::diag;
use vfio_revoke_selftests::scenarios::kmsg::Kmsg;
use vfio_revoke_selftests::vfio::Device;

/// Options: none besides the device.
pub const OPTS: &[Opt] = &[];

/// The checks so far.
struct Cases {
    kmsg: Option<Kmsg>,
    count: u64,
    wrong: u64,
    logged: u64,
    out: Outcome,
}

impl Cases {
    /// Judges one case: `got` against `want`, and the log lines it caused.
    fn judge(&mut self, class: &str, what: &str, want: Answer, got: Answer) {
        let lines = self.kmsg.as_mut().map(Kmsg::read_new).unwrap_or_default();
        self.count += 1;
        diag(&format!(
            "{class} {what}: {got} (expected {want}), {} new log lines",
            lines.len()
        ));
        if got != want {
            self.wrong += 1;
            self.out
                .fail(format!("{class} {what}: got {got}, expected {want}"));
        }
        if !lines.is_empty() {
            self.logged += lines.len() as u64;
            for l in lines.iter().take(3) {
                diag(&format!("  kernel: {l}"));
            }
            self.out.fail(format!(
                "{class} {what} wrote {} lines to the kernel log (uAPI misuse must log nothing)",
                lines.len()
            ));
        }
    }
}

/// Runs the bad-input checks.
pub fn run(ctx: &Ctx, _o: &Opts) -> Result<Outcome> {
    variant(&ctx.bdf)?;
    let dev = Device::open(&ctx.bdf, ctx.path)?;
    let bar = dev.bar(0)?;
    dev.set_memory(true)?;
    let kmsg = Kmsg::open();
    if kmsg.is_none() {
        return Err(err!(
            "cannot read /dev/kmsg: the log lines of each case are the point"
        ));
    }
    let mut c = Cases {
        kmsg,
        count: 0,
        wrong: 0,
        logged: 0,
        out: Outcome::default(),
    };
    run_cases(&dev, &bar, &mut |class, what, want, got| {
        c.judge(class, what, want, got)
    })?;
    let mut out = c.out;
    out.figure("cases", c.count);
    out.figure("wrong_errno", c.wrong);
    out.figure("log_lines", c.logged);
    Ok(out)
}
