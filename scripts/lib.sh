# Shared helpers for the project's scripts. Source it; do not run it.
# shellcheck shell=bash

info() { printf '>> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Pinned toolchain: the kernel build must use a rustc whose rust-src we can
# fetch with the exact same version, so it never follows a moving 'stable'.
RUST_TOOLCHAIN=${RUST_TOOLCHAIN:-1.95.0}
LLVM_SUFFIX=${LLVM_SUFFIX:--19}

rust_toolchain_check() {
	command -v rustup >/dev/null || die "rustup not found: install Rust with rustup (toolchain $RUST_TOOLCHAIN)"
	rustup which --toolchain "$RUST_TOOLCHAIN" rustc >/dev/null 2>&1 ||
		die "rust toolchain $RUST_TOOLCHAIN is not installed: run 'rustup toolchain install $RUST_TOOLCHAIN --component rustfmt,clippy' or set RUST_TOOLCHAIN"
}

# A line of the kernel log that is a report of a kernel bug: oops, BUG
# (KASAN, KFENCE and soft lockups say "BUG:"), WARN (lockdep says
# "WARNING:"), an RCU stall, a hung task, UBSAN, a PAT complaint.
# shellcheck disable=SC2034 # used by the scripts that source this file
KERNEL_REPORTS='(Oops|BUG:|WARNING:|kernel BUG|general protection fault|Kernel panic|x86/PAT: .*(conflicting|expected|invalid|failed)|rcu.*stall|hung_task|UBSAN|RIP: )'

rust_tool() { rustup which --toolchain "$RUST_TOOLCHAIN" "$1"; }

rustc_version() { "$(rust_tool rustc)" --version | awk '{print $2}'; }
