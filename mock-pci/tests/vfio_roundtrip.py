#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Data round trip through the stock vfio-pci driver (no-IOMMU group path).

    vfio_roundtrip.py BDF

BDF must be bound to vfio-pci. Writes through the VFIO mmap of BAR0 and
checks that VFIO pread, the sysfs resource0 mmap and mock-pci's debugfs view
read the same bytes; then writes with VFIO pwrite and reads back through the
mmap. Prints one line per check; exits 1 on the first mismatch.
"""
import mmap, os, sys

from vfio_user import Device, fail


def main(bdf):
    dev = Device(bdf)
    size, offset = dev.size, dev.offset
    print(f"BAR0 region: size {size:#x} offset {offset:#x}")
    bar = dev.map_bar0()
    pattern = bytes((i * 7 + 3) & 0xff for i in range(4096))
    for at in (0, size // 2, size - 4096):
        bar[at:at + 4096] = pattern
    for at in (0, size // 2, size - 4096):
        if os.pread(dev.fd, 4096, offset + at) != pattern:
            fail(f"VFIO pread at {at:#x} differs from what the VFIO mmap wrote")
    print("ok: VFIO mmap write -> VFIO pread")

    with open(f"/sys/bus/pci/devices/{bdf}/resource0", "r+b") as f:
        res = mmap.mmap(f.fileno(), size, mmap.MAP_SHARED)
        if res[size // 2:size // 2 + 4096] != pattern:
            fail("sysfs resource0 mmap differs from what the VFIO mmap wrote")
        res.close()
    print("ok: VFIO mmap write -> sysfs resource0 mmap")

    with open(f"/sys/kernel/debug/mock_pci/{bdf}/bar0", "rb") as f:
        f.seek(size - 4096)
        if f.read(4096) != pattern:
            fail("mock-pci debugfs bar0 differs from what the VFIO mmap wrote")
    print("ok: VFIO mmap write -> mock-pci debugfs view")

    other = bytes(reversed(pattern))
    os.pwrite(dev.fd, other, offset + 8192)
    if bar[8192:8192 + 4096] != other:
        fail("VFIO mmap differs from what VFIO pwrite wrote")
    print("ok: VFIO pwrite -> VFIO mmap")
    with open(f"/sys/kernel/debug/mock_pci/{bdf}/bar0", "r+b") as f:
        f.seek(12288)
        f.write(pattern)
    if bar[12288:12288 + 4096] != pattern:
        fail("VFIO mmap differs from what the debugfs view wrote")
    print("ok: mock-pci debugfs write -> VFIO mmap")
    bar.close()
    dev.close()


if __name__ == "__main__":
    main(sys.argv[1])
