# SPDX-License-Identifier: GPL-2.0
"""Minimal VFIO user for the in-guest checks: no-IOMMU group path, BAR0."""
import ctypes, fcntl, mmap, os, struct, sys

VFIO = ord(';') << 8
SET_IOMMU, GROUP_SET_CONTAINER = VFIO | 102, VFIO | 104
GROUP_GET_DEVICE_FD, DEVICE_GET_REGION_INFO = VFIO | 106, VFIO | 108
NOIOMMU_IOMMU = 8
REGION_INFO = struct.Struct("=IIIIQQ")
CONFIG_REGION = 7  # VFIO_PCI_CONFIG_REGION_INDEX
PCI_COMMAND, PCI_COMMAND_MEMORY = 0x04, 0x02


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


class Device:
    """An open VFIO device with memory decoding enabled."""

    def __init__(self, bdf):
        group = os.path.basename(os.readlink(f"/sys/bus/pci/devices/{bdf}/iommu_group"))
        self.container = os.open("/dev/vfio/vfio", os.O_RDWR)
        self.group = os.open(f"/dev/vfio/noiommu-{group}", os.O_RDWR)
        fcntl.ioctl(self.group, GROUP_SET_CONTAINER, struct.pack("i", self.container))
        fcntl.ioctl(self.container, SET_IOMMU, NOIOMMU_IOMMU)
        # fcntl.ioctl() cannot return an fd together with a buffer argument.
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.ioctl(self.group, ctypes.c_ulong(GROUP_GET_DEVICE_FD),
                             ctypes.c_char_p(bdf.encode()))
        if self.fd < 0:
            fail(f"VFIO_GROUP_GET_DEVICE_FD: {os.strerror(ctypes.get_errno())}")
        _, self.size, self.offset = self.region(0)
        self.cfg = self.region(CONFIG_REGION)[2]
        # Like any VFIO user: enable memory decoding before touching the BAR.
        cmd = struct.unpack("<H", os.pread(self.fd, 2, self.cfg + PCI_COMMAND))[0]
        os.pwrite(self.fd, struct.pack("<H", cmd | PCI_COMMAND_MEMORY), self.cfg + PCI_COMMAND)

    def region(self, index):
        """(flags, size, offset) of VFIO region INDEX."""
        info = bytearray(REGION_INFO.pack(REGION_INFO.size, 0, index, 0, 0, 0))
        fcntl.ioctl(self.fd, DEVICE_GET_REGION_INFO, info)
        _, flags, _, _, size, offset = REGION_INFO.unpack(info)
        return flags, size, offset

    def map_bar0(self):
        return mmap.mmap(self.fd, self.size, mmap.MAP_SHARED,
                         mmap.PROT_READ | mmap.PROT_WRITE, offset=self.offset)

    def close(self):
        for fd in (self.fd, self.group, self.container):
            os.close(fd)
