# SPDX-License-Identifier: GPL-2.0
# The one shell library of the project: helpers for the host scripts and
# for the guest scripts (device lookup, binding, vfio_variant's debugfs,
# kmemleak, the kernel log pattern). Source it; do not run it.
# shellcheck shell=bash

# The top of the repository (the guest sees the same path).
VFR_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

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

# selftests_build WHO: build the selftest crate's binaries (release,
# offline, from the tree alone), or die saying what WHO lacks.
selftests_build() {
	command -v cargo >/dev/null || die "$1: cargo not found: install Rust with rustup"
	(cd "$VFR_TOP/selftests" && cargo build --release --locked --offline --quiet) ||
		die "$1: cargo build of selftests/ failed"
}

# select_device WHO: the device the selftests run on, from VFR_DEVICE:
# mock (default; mock-pci's 1234:f00d, BAR0) or ivshmem (QEMU's
# ivshmem-plain behind a PCIe Root Port, so that a hot reset works; 1af4:1110,
# 4 MiB RAM BAR2, bound by vfio_variant's extra_id). Sets vm_args (for
# vm-run), guest_env (an env command line for the guest) and device_kind
# (mock or other, for ktap_expect).
# shellcheck disable=SC2034 # the caller's variables
select_device() {
	vm_args=()
	guest_env=(env)
	case ${VFR_DEVICE:-mock} in
	mock)
		guest_env+=(VFR_ID=1234:f00d VFR_BAR=0)
		device_kind=mock
		;;
	ivshmem)
		vm_args+=(--param vfio_variant.extra_id=0x1af41110
			--qemu-opts '-object memory-backend-ram,id=shm,size=4M -device pcie-root-port,id=rp1,chassis=1 -device ivshmem-plain,memdev=shm,bus=rp1')
		guest_env+=(VFR_ID=1af4:1110 VFR_BAR=2)
		device_kind=other
		;;
	*) die "$1: VFR_DEVICE='$VFR_DEVICE': use mock or ivshmem" ;;
	esac
}

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

# --- In the guest ---

VFR_DEBUGFS=/sys/kernel/debug/vfio_variant

debugfs_mount() {
	mountpoint -q /sys/kernel/debug 2>/dev/null || mount -t debugfs none /sys/kernel/debug
}

# find_device VVVV:DDDD: the first PCI device with that ID, in address order.
find_device() {
	local want_v=0x${1%%:*} want_d=0x${1##*:} d
	for d in /sys/bus/pci/devices/*; do
		if [ "$(cat "$d/vendor")" = "$want_v" ] && [ "$(cat "$d/device")" = "$want_d" ]; then
			basename "$d"
			return 0
		fi
	done
	return 1
}

# driver_of BDF: the bound driver's name, or nothing.
driver_of() {
	local l=/sys/bus/pci/devices/$1/driver
	[ -e "$l" ] && basename "$(readlink -f "$l")"
}

# bind BDF DRIVER: bind through driver_override (left in place, so that a
# rescan or reprobe cannot hand the device to another driver). Says so on
# stdout when it rebinds.
bind() {
	local bdf=$1 drv=$2 dev=/sys/bus/pci/devices/$1
	if [ "$(driver_of "$bdf")" = "$drv" ]; then
		echo "$drv" >"$dev/driver_override"
		return 0
	fi
	echo "$drv" >"$dev/driver_override" || return 1
	[ ! -e "$dev/driver" ] || echo "$bdf" >"$dev/driver/unbind"
	echo "$bdf" >/sys/bus/pci/drivers_probe 2>/dev/null
	for _ in $(seq 50); do
		[ "$(driver_of "$bdf")" = "$drv" ] && { echo "$bdf bound to $drv"; return 0; }
		sleep 0.1
	done
	echo "could not bind $bdf to $drv (bound to: $(driver_of "$bdf"))" >&2
	return 1
}

set_mode() { echo "$2" >"$VFR_DEBUGFS/$1/mode"; }
reset_counters() { [ ! -e "$VFR_DEBUGFS/$1/counters" ] || echo 1 >"$VFR_DEBUGFS/$1/counters"; }

# counters BDF: the variant's counters on one line, or nothing.
counters() {
	[ -e "$VFR_DEBUGFS/$1/counters" ] && tr '\n' ' ' <"$VFR_DEBUGFS/$1/counters" | sed 's/ *$//'
}

# show_counters BDF PREFIX: a KTAP diagnostic line with the counters.
show_counters() {
	local c
	c=$(counters "$1") && echo "# $2 $c"
	return 0
}

# mock_domain: the domain of the mock bus (its Root Port, DDDD:00:00.0, in
# an emulated domain from 10000 up), empty if there is none.
mock_domain() {
	local d
	for d in /sys/bus/pci/devices/1????:00:00.0; do
		[ -e "$d" ] && { d=${d##*/}; echo "${d%%:*}"; return 0; }
	done
	return 0
}

# mock_release_devices: with its software IOMMU (iommu=1) every mock device
# holds a reference on mock_pci (the IOMMU core's, per probed device), so
# rmmod needs them removed first: delete each (debugfs del_device). Does
# nothing without the IOMMU. Says on stderr what failed.
mock_release_devices() {
	local ctl=/sys/kernel/debug/mock_pci slot slots rc=0
	compgen -G "/sys/class/iommu/mock-iommu-*" >/dev/null || return 0
	mapfile -t slots < <(awk '{print $3}' "$ctl/devices")
	for slot in "${slots[@]}"; do
		echo "$slot" >"$ctl/del_device" || { echo "del_device $slot failed" >&2; rc=1; }
	done
	return "$rc"
}

# kmemleak, where the kernel has it (the DEBUG=1 kernel).
KMEMLEAK=/sys/kernel/debug/kmemleak

kmemleak_on() {
	[ -w "$KMEMLEAK" ]
}

# kmemleak_forget: leaks found so far are not reported again.
kmemleak_forget() {
	kmemleak_on || return 0
	echo scan >"$KMEMLEAK" && echo clear >"$KMEMLEAK"
}

# kmemleak_leaks: prints the number of unreferenced objects now, and as
# '# ' lines a summary of them (size and the allocating call chain). Waits
# first: kmemleak reports nothing younger than 5 s.
kmemleak_leaks() {
	local rep
	sleep 6
	echo scan >"$KMEMLEAK" && echo scan >"$KMEMLEAK" || return 1
	rep=$(cat "$KMEMLEAK")
	grep -c '^unreferenced object' <<<"$rep" || true
	# One line per object: its size and the first frames above the
	# allocator, then how many objects share that line.
	awk '
	/^unreferenced object/ { if (line) print line; match($0, /size [0-9]+/); line = substr($0, RSTART, RLENGTH) ":"; n = 0; bt = 0; next }
	/backtrace/ { bt = 1; next }
	bt && NF && n < 3 {
		f = $1; sub(/\+0x.*/, "", f)
		if (f ~ /^(kmemleak_|__kmalloc|kmalloc|__kvmalloc|kvmalloc|kmem_cache_alloc|__kmem_cache|slab_|kzalloc|kstrdup|kvasprintf|kasprintf|__alloc|alloc_pages|__do_kmalloc|krealloc)/) next
		line = line " " f; n++
	}
	END { if (line) print line }' <<<"$rep" | sort | uniq -c | sed 's/^ */# /'
}
