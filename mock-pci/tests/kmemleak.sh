# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
# Shared by the mock-pci guest tests (source it): kmemleak, where the kernel
# has it (the DEBUG=1 kernel), and where the mock bus is.

# mock_domain: the domain of the mock bus (its Root Port, DDDD:00:00.0, in
# an emulated domain from 10000 up), empty if there is none.
mock_domain() {
	local d
	for d in /sys/bus/pci/devices/1????:00:00.0; do
		[ -e "$d" ] && { d=${d##*/}; echo "${d%%:*}"; return; }
	done
}

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
	grep -c '^unreferenced object' <<<"$rep"
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
