// SPDX-License-Identifier: GPL-2.0

//! `vfio_stress`: the userspace side of `make stress`. Each part hammers
//! one revocation property of a device bound to vfio_variant (fixed mode)
//! and counts *escapes*: accesses that succeeded where the device's memory
//! must have been out of reach. It prints its figures as `# ` lines and
//! ends with one summary line
//!
//! ```text
//! PART: name=value, ...: N escapes
//! ```
//!
//! exiting 0 only with no escape and no other failure. `selftests/stress-guest`
//! runs the parts in a guest and adds the kernel reports each one caused.
//! x86_64 only, like the probe it uses.

vfio_revoke_selftests::x86_64_only! {
    mod args;
    mod bad_input;
    mod fork_revoke;
    mod fuzz;
    mod outcome;
    mod revoke_race;
    mod touch;
    mod unplug;
}

#[cfg(target_arch = "x86_64")]
fn main() {
    std::process::exit(args::main());
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    eprintln!(
        "vfio_stress runs on x86_64 only (its SIGBUS probe is x86_64 assembly), not {}",
        std::env::consts::ARCH
    );
    std::process::exit(4);
}
