// SPDX-License-Identifier: GPL-2.0

//! Loads a module with the Nth fault-injectable call of the load failing:
//! writes N to `/proc/thread-self/fail-nth`, so that the Nth call in this
//! thread that a fault-injection capability (failslab, ...) lets fail
//! does fail (Documentation/fault-injection/fault-injection.rst), then
//! loads the module file with `finit_module(2)` from the same thread.
//! Prints two words: the load's errno (0 if it loaded) and `injected` or
//! `not-injected` (whether the Nth call came).

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use vfio_revoke_selftests::error::{Context, Result};
use vfio_revoke_selftests::{err, sys};

const FAIL_NTH: &str = "/proc/thread-self/fail-nth";

/// Loads `ko` with `params`, the `nth` fault-injectable call failing.
pub fn run(nth: &str, ko: &str, params: &[String]) -> Result<()> {
    let module = File::open(ko).ctx(format!("open {ko}"))?;
    let params =
        CString::new(params.join(" ")).map_err(|_| err!("a module parameter holds a NUL byte"))?;
    let mut ctl = OpenOptions::new()
        .read(true)
        .write(true)
        .open(FAIL_NTH)
        .ctx(format!(
            "open {FAIL_NTH} (a kernel with CONFIG_FAULT_INJECTION)"
        ))?;
    ctl.write_all(nth.as_bytes())
        .ctx(format!("write {nth} to {FAIL_NTH}"))?;
    // SAFETY: a live descriptor, a NUL-terminated string, no flags.
    let rc = unsafe {
        sys::syscall(
            sys::SYS_FINIT_MODULE,
            module.as_raw_fd() as sys::c_long,
            params.as_ptr(),
            0 as sys::c_long,
        )
    };
    let errno = if rc != 0 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    } else {
        0
    };
    let mut left = [0u8; 32];
    let n = ctl.read_at(&mut left, 0).ctx(format!("read {FAIL_NTH}"))?;
    let left = String::from_utf8_lossy(&left[..n]).trim().to_string();
    ctl.write_all(b"0").ctx(format!("write 0 to {FAIL_NTH}"))?;
    let left: i64 = left
        .parse()
        .map_err(|_| err!("{FAIL_NTH} reads '{left}', not a count"))?;
    println!(
        "{errno} {}",
        if left == 0 {
            "injected"
        } else {
            "not-injected"
        }
    );
    Ok(())
}
