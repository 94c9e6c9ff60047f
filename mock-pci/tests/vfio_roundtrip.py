#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Data round trip through the stock vfio-pci driver (no-IOMMU group path).

    vfio_roundtrip.py BDF

BDF must be bound to vfio-pci. Writes through the VFIO mmap of BAR0 and
checks that VFIO pread, the sysfs resource0 mmap and mock-pci's debugfs view
read the same bytes; then writes with VFIO pwrite and reads back through the
mmap. Prints one line per check; exits 1 on the first mismatch.
"""
import ctypes, fcntl, mmap, os, struct, sys

VFIO = ord(';') << 8
GET_API_VERSION, SET_IOMMU = VFIO | 100, VFIO | 102
GROUP_SET_CONTAINER, GROUP_GET_DEVICE_FD = VFIO | 104, VFIO | 106
DEVICE_GET_REGION_INFO = VFIO | 108
NOIOMMU_IOMMU = 8
REGION_INFO = struct.Struct("=IIIIQQ")
CONFIG_REGION = 7  # VFIO_PCI_CONFIG_REGION_INDEX
PCI_COMMAND, PCI_COMMAND_MEMORY = 0x04, 0x02


def region(dev, index):
    """(flags, size, offset) of VFIO region INDEX."""
    info = bytearray(REGION_INFO.pack(REGION_INFO.size, 0, index, 0, 0, 0))
    fcntl.ioctl(dev, DEVICE_GET_REGION_INFO, info)
    _, flags, _, _, size, offset = REGION_INFO.unpack(info)
    return flags, size, offset


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def main(bdf):
    group = os.path.basename(os.readlink(f"/sys/bus/pci/devices/{bdf}/iommu_group"))
    container = os.open("/dev/vfio/vfio", os.O_RDWR)
    grp = os.open(f"/dev/vfio/noiommu-{group}", os.O_RDWR)
    fcntl.ioctl(grp, GROUP_SET_CONTAINER, struct.pack("i", container))
    fcntl.ioctl(container, SET_IOMMU, NOIOMMU_IOMMU)
    # fcntl.ioctl() cannot return an fd together with a buffer argument.
    libc = ctypes.CDLL(None, use_errno=True)
    dev = libc.ioctl(grp, ctypes.c_ulong(GROUP_GET_DEVICE_FD), ctypes.c_char_p(bdf.encode()))
    if dev < 0:
        fail(f"VFIO_GROUP_GET_DEVICE_FD: {os.strerror(ctypes.get_errno())}")
    _, size, offset = region(dev, 0)
    cfg = region(dev, CONFIG_REGION)[2]
    print(f"BAR0 region: size {size:#x} offset {offset:#x}")
    # Like any VFIO user: enable memory decoding before touching the BAR.
    cmd = struct.unpack("<H", os.pread(dev, 2, cfg + PCI_COMMAND))[0]
    os.pwrite(dev, struct.pack("<H", cmd | PCI_COMMAND_MEMORY), cfg + PCI_COMMAND)

    bar = mmap.mmap(dev, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=offset)
    pattern = bytes((i * 7 + 3) & 0xff for i in range(4096))
    for at in (0, size // 2, size - 4096):
        bar[at:at + 4096] = pattern
    for at in (0, size // 2, size - 4096):
        if os.pread(dev, 4096, offset + at) != pattern:
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
    os.pwrite(dev, other, offset + 8192)
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
    for fd in (dev, grp, container):
        os.close(fd)


if __name__ == "__main__":
    main(sys.argv[1])
