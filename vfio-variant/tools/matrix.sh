#!/bin/bash
# In the guest (scripts/vm-run ... -- bash vfio-variant/tools/matrix.sh VENDOR:DEVICE BAR):
# bind the first matching device to vfio_variant and run fork+revoke for
# both modes, every revocation kind and both open paths; then compare bad
# input errors with the stock vfio-pci driver.
ID=${1:-1af4:1110}
BARNO=${2:-2}
T=/tmp/vfr
gcc -O1 -w -o $T "$(dirname "$0")/vfio_fork_revoke.c" || exit 2
BDF=$(lspci -Dn -d "$ID" | awk 'NR==1{print $1}')
[ -n "$BDF" ] || { echo "no $ID device"; exit 2; }
D=/sys/kernel/debug/vfio_variant/$BDF
bind() {
	[ -e /sys/bus/pci/devices/$BDF/driver ] && echo $BDF > /sys/bus/pci/devices/$BDF/driver/unbind
	echo $1 > /sys/bus/pci/devices/$BDF/driver_override
	echo $BDF > /sys/bus/pci/drivers_probe
	echo "bound $BDF to $(basename $(readlink /sys/bus/pci/devices/$BDF/driver))"
}
bind vfio_variant
fail=0
for mode in fixed legacy; do
	echo $mode > $D/mode
	for how in mem reset debugfs; do
		for path in group cdev; do
			echo 1 > $D/counters
			echo "=== mode=$mode revoke=$how path=$path"
			$T $BDF $BARNO $path fork $how expect-$mode 2>&1 | grep -v '^BAR'
			rc=${PIPESTATUS[0]}
			case $rc in
			0) echo "as expected for $mode" ;;
			4) echo "SKIP: no reset method on this device" ;;
			*) echo "UNEXPECTED (rc $rc)"; fail=1 ;;
			esac
			tr '\n' ' ' < $D/counters; echo
		done
	done
done
echo fixed > $D/mode
echo 1 > $D/counters
echo "=== whole-vma faults (fixed)"
$T $BDF $BARNO group touch
tr '\n' ' ' < $D/counters; echo
echo "=== bad input: vfio_variant"
$T $BDF $BARNO group badinput | grep -v '^BAR' > /tmp/bad.variant; cat /tmp/bad.variant
modprobe vfio-pci
bind vfio-pci
echo "=== bad input: vfio-pci"
$T $BDF $BARNO group badinput | grep -v '^BAR' > /tmp/bad.stock; cat /tmp/bad.stock
if diff /tmp/bad.variant /tmp/bad.stock; then echo "bad input: identical"; else echo "bad input: DIFFERENT"; fail=1; fi
echo "=== stock vfio-pci fork (reference)"
$T $BDF $BARNO group fork mem expect-fixed | grep -v '^BAR'
bind vfio_variant
echo $BDF > /sys/bus/pci/devices/$BDF/driver/unbind
exit $fail
