# SPDX-License-Identifier: GPL-2.0
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

# The arguments as POSIX sh words, space-separated: each in single quotes,
# with every ' written as '\''. dash, busybox sh and bash all read every byte
# back unchanged (newlines, quotes, $, \, empty strings, non-ASCII). Bash's
# printf %q is not portable: it writes $'a\nb', which dash takes as a literal
# '$' followed by 'anb'.
sh_quote() {
	local a q="'\\''" sep=""
	for a in "$@"; do
		printf "%s'%s'" "$sep" "${a//\'/"$q"}"
		sep=" "
	done
}

# Arguments through a file, NUL-terminated: any argument (no C string holds
# a NUL) comes back unchanged, however long, with no shell in between.
argv_save() {
	local file=$1
	shift
	if [ $# -gt 0 ]; then printf '%s\0' "$@" >"$file"; else : >"$file"; fi
}
# argv_load FILE NAME: read them back into the array NAME.
argv_load() { mapfile -d '' -t "$2" <"$1"; }

# Guest memory layout (scripts/vm-run). Guests run on QEMU's q35 machine
# under TCG and KVM alike. q35 keeps all RAM below 4 GiB while --memory is
# under 0xb0000000 (2816 MiB); from there on it keeps 2 GiB low and puts the
# rest at 4 GiB. The firmware (SeaBIOS) keeps the top 132 KiB of low RAM for
# its tables (e820 "reserved"); a memmap= reservation keeps 1 MiB away.
Q35_SPLIT=$((0xb0000000)) Q35_LOW_MAX=$((0x80000000)) FW_TOP=$((1 << 20))
MEMMAP_ALIGN=$((2 << 20))

# Bytes in SIZE: a whole number with an optional K, M, G or T suffix (any
# case; powers of 1024, as QEMU's -m and the kernel's memmap= read them);
# without a suffix UNIT (default 1: bytes). Fails on anything else.
size_bytes() {
	local s=$1 unit=${2:-1} n
	[[ $s =~ ^([0-9]+)([kKmMgGtT]?)$ ]] || return 1
	n=$((10#${BASH_REMATCH[1]}))
	case ${BASH_REMATCH[2]} in
	k | K) unit=$((1 << 10)) ;;
	m | M) unit=$((1 << 20)) ;;
	g | G) unit=$((1 << 30)) ;;
	t | T) unit=$((1 << 40)) ;;
	esac
	echo $((n * unit))
}

# A byte count in the largest unit that divides it: 1G, 1022M, 132K, 4097.
size_str() {
	local b=$1 u
	for u in T:40 G:30 M:20 K:10; do
		if [ "$b" -ge $((1 << ${u#*:})) ] && [ $((b % (1 << ${u#*:}))) = 0 ]; then
			echo "$((b >> ${u#*:}))${u%%:*}"
			return
		fi
	done
	echo "$b"
}

# memmap_check MEMORY MEMMAP: whether the memmap=SIZE$ADDR reservation lies
# in RAM of a q35 guest with MEMORY (QEMU -m syntax, MiB without a suffix).
# Prints nothing and succeeds if it does; otherwise prints what is wrong and
# values that would work, and fails.
memmap_check() {
	local memory=$1 memmap=$2 ram size base end low high_end ok max need new sep align
	ram=$(size_bytes "$memory" $((1 << 20))) ||
		{ echo "--memory '$memory' is not a size: give a whole number with an optional K, M, G or T suffix, for example 2G or 2560M"; return 1; }
	if ! [[ $memmap =~ ^([0-9]+[kKmMgGtT]?)\$(0x[0-9a-fA-F]{1,12})$ ]] || ! size=$(size_bytes "${BASH_REMATCH[1]}"); then
		echo "--memmap '$memmap' is not SIZE\$ADDR with SIZE like 256M and a hex ADDR (for example 256M\$0x40000000)"
		return 1
	fi
	base=$((BASH_REMATCH[2])) end=$((base + size))
	if [ "$size" = 0 ] || [ $((size % MEMMAP_ALIGN)) != 0 ] || [ $((base % MEMMAP_ALIGN)) != 0 ]; then
		echo "--memmap '$memmap': SIZE and ADDR must be non-zero multiples of 2 MiB, for example 256M\$0x40000000"
		return 1
	fi
	if [ "$ram" -lt "$Q35_SPLIT" ]; then low=$ram; else low=$Q35_LOW_MAX; fi
	high_end=$(((1 << 32) + ram - low))
	# Usable: [1 MiB, low RAM less the firmware's top) and, if any, RAM above 4 GiB.
	ok=$(((low - FW_TOP) / MEMMAP_ALIGN * MEMMAP_ALIGN))
	if { [ "$base" -ge $((1 << 20)) ] && [ "$end" -le "$ok" ]; } ||
		{ [ "$high_end" -gt $((1 << 32)) ] && [ "$base" -ge $((1 << 32)) ] && [ "$end" -le "$high_end" ]; }; then
		return 0
	fi
	printf -- "--memmap '%s' reserves %#x-%#x, which is not all guest RAM.\n" "$memmap" "$base" $((end - 1))
	printf "  With --memory %s the guest (QEMU q35) has RAM at 0-%#x" "$memory" $((low - 1))
	if [ "$high_end" -gt $((1 << 32)) ]; then
		printf " and 0x100000000-%#x:\n  q35 keeps only 2 GiB below 4 GiB once --memory reaches 2816M" $((high_end - 1))
	fi
	printf ".\n  Below 4 GiB a reservation must end by %#x: the firmware's tables take the top of low RAM.\n" "$ok"
	printf "  Past that it covers firmware tables, holes or PCI space, not free RAM, and\n  mock_pci finds its window busy.\n  Would work:"
	sep=" "
	if [ "$base" -ge $((1 << 20)) ] && [ "$base" -lt "$ok" ]; then
		max=$(((ok - base) / MEMMAP_ALIGN * MEMMAP_ALIGN))
		printf "%s--memmap '%s\$%#x' (the most at this address)" "$sep" "$(size_str "$max")" "$base"
		sep=", "
	fi
	# The same size elsewhere: at 1 GiB as by default, or as high as it fits,
	# aligned to the size's largest power of two up to 1 GiB (mock_pci aligns
	# its window to the largest BAR).
	align=$MEMMAP_ALIGN
	while [ $((align * 2)) -le "$size" ] && [ "$align" -lt $((1 << 30)) ]; do align=$((align * 2)); done
	new=$((1 << 30))
	[ $((new + size)) -le "$ok" ] || new=$(((ok - size) / align * align))
	if [ "$new" -gt 0 ] && [ $((new + size)) -le "$ok" ] && [ "$new" != "$base" ]; then
		printf "%s--memmap '%s\$%#x'" "$sep" "$(size_str "$size")" "$new"
		sep=", "
	fi
	# All RAM stays low while --memory is under 2816M: enough of it to hold
	# the reservation and the firmware's tables.
	need=$(((end + FW_TOP + (1 << 20) - 1) >> 20))
	if [ "$base" -ge $((1 << 20)) ] && [ "$need" -lt $((Q35_SPLIT >> 20)) ]; then
		if [ "$end" -le $((Q35_LOW_MAX - FW_TOP)) ]; then
			printf "%s--memory %sM or more with this --memmap" "$sep" "$need"
		else
			printf "%s--memory %sM to %sM with this --memmap" "$sep" "$need" $(((Q35_SPLIT >> 20) - 1))
		fi
	fi
	if [ "$sep" = " " ]; then
		if [ "$ok" -gt $(((1 << 30) + MEMMAP_ALIGN)) ]; then
			printf " a smaller reservation, for example --memmap '%s\$0x40000000'" "$(size_str $((ok - (1 << 30))))"
		else
			printf " more --memory"
		fi
	fi
	echo
	return 1
}
