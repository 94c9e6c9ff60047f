#!/bin/bash
# runs in guest
set -x
T=/nonexistent
[ -x $T ] || { gcc -O1 -w -o /tmp/vfr /work/main/vfio-variant/tools/vfio_fork_revoke.c; T=/tmp/vfr; }
BDF=$(lspci -Dn -d 1af4:1110 | awk '{print $1}')
echo BDF=$BDF
echo vfio_variant > /sys/bus/pci/devices/$BDF/driver_override
echo $BDF > /sys/bus/pci/drivers_probe
readlink /sys/bus/pci/devices/$BDF/driver
ls /sys/kernel/debug/vfio_variant/$BDF/
cat /sys/kernel/debug/vfio_variant/$BDF/counters
$T $BDF 2 group touch
cat /sys/kernel/debug/vfio_variant/$BDF/counters
$T $BDF 2 group fork mem expect-fixed; echo rc=$?
cat /sys/kernel/debug/vfio_variant/$BDF/counters
dmesg | tail -20
echo $BDF > /sys/bus/pci/devices/$BDF/driver/unbind
