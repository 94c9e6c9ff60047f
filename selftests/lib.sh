# SPDX-License-Identifier: GPL-2.0
# Guest-side helpers for guest-run and demo-guest. Source it; do not run it.
# shellcheck shell=bash

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
# rescan or reprobe cannot hand the device to another driver).
bind() {
	local bdf=$1 drv=$2 dev=/sys/bus/pci/devices/$1 i
	if [ "$(driver_of "$bdf")" = "$drv" ]; then
		echo "$drv" >"$dev/driver_override"
		return 0
	fi
	echo "$drv" >"$dev/driver_override" || return 1
	[ -e "$dev/driver" ] && echo "$bdf" >"$dev/driver/unbind"
	echo "$bdf" >/sys/bus/pci/drivers_probe 2>/dev/null
	for i in $(seq 50); do
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
