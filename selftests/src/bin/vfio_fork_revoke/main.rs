// SPDX-License-Identifier: GPL-2.0

//! `vfio_fork_revoke`: the kselftest binary. Maps a BAR of a VFIO PCI
//! device, forks, revokes, and checks that every process lost its access
//! and faults again. KTAP on stdout; exit 0 (pass), 1 (a test failed, or
//! bad usage) or 4 (everything skipped). See README.md.
//!
//! The test is x86_64 only (its SIGBUS probe is x86_64 assembly, `sys` the
//! x86_64 C ABI). Built for another architecture the program only reports
//! a KTAP skip; the kselftest Makefile does not build it there at all.

#[cfg(target_arch = "x86_64")]
mod run;

#[cfg(target_arch = "x86_64")]
fn main() {
    run::main();
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    vfio_revoke_selftests::ktap::skip_all(&format!(
        "vfio_fork_revoke runs on x86_64 only (its SIGBUS probe is x86_64 assembly), not {}",
        std::env::consts::ARCH
    ));
}
