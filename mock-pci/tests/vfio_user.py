# SPDX-License-Identifier: GPL-2.0
"""Minimal VFIO user for the in-guest checks: no-IOMMU group path, BAR0,
the config region, device reset and PCI hot reset (include/uapi/linux/vfio.h)."""
import ctypes, errno, fcntl, mmap, os, struct, sys

VFIO = ord(';') << 8
SET_IOMMU, GROUP_SET_CONTAINER = VFIO | 102, VFIO | 104
GROUP_GET_DEVICE_FD, DEVICE_GET_REGION_INFO = VFIO | 106, VFIO | 108
DEVICE_RESET = VFIO | 111
DEVICE_GET_PCI_HOT_RESET_INFO, DEVICE_PCI_HOT_RESET = VFIO | 112, VFIO | 113
NOIOMMU_IOMMU = 8
REGION_INFO = struct.Struct("=IIIIQQ")
# struct vfio_pci_hot_reset_info / vfio_pci_hot_reset: argsz, flags, count
HOT_RESET_HDR = struct.Struct("=III")
# struct vfio_pci_dependent_device: group_id, segment (u16), bus, devfn
DEPENDENT_DEVICE = struct.Struct("=IHBB")
CONFIG_REGION = 7  # VFIO_PCI_CONFIG_REGION_INDEX
PCI_COMMAND, PCI_COMMAND_MEMORY = 0x04, 0x02

libc = ctypes.CDLL(None, use_errno=True)


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def ioctl_buf(fd, request, buf):
    """ioctl(fd, request, buf) on a bytearray, copied back even on error
    (fcntl.ioctl() raises before the caller sees what the kernel wrote).
    Returns 0 or the errno."""
    c = ctypes.create_string_buffer(bytes(buf), len(buf))
    ret = libc.ioctl(fd, ctypes.c_ulong(request), c)
    buf[:] = c.raw
    return 0 if ret >= 0 else ctypes.get_errno()


def group_id(bdf):
    """The IOMMU (no-IOMMU) group number of BDF."""
    return int(os.path.basename(os.readlink(f"/sys/bus/pci/devices/{bdf}/iommu_group")))


class Device:
    """An open VFIO device with memory decoding enabled."""

    def __init__(self, bdf):
        self.bdf = bdf
        self.group_id = group_id(bdf)
        self.container = os.open("/dev/vfio/vfio", os.O_RDWR)
        self.group = os.open(f"/dev/vfio/noiommu-{self.group_id}", os.O_RDWR)
        fcntl.ioctl(self.group, GROUP_SET_CONTAINER, struct.pack("i", self.container))
        fcntl.ioctl(self.container, SET_IOMMU, NOIOMMU_IOMMU)
        # fcntl.ioctl() cannot return an fd together with a buffer argument.
        self.fd = libc.ioctl(self.group, ctypes.c_ulong(GROUP_GET_DEVICE_FD),
                             ctypes.c_char_p(bdf.encode()))
        if self.fd < 0:
            fail(f"VFIO_GROUP_GET_DEVICE_FD: {os.strerror(ctypes.get_errno())}")
        _, self.size, self.offset = self.region(0)
        self.cfg = self.region(CONFIG_REGION)[2]
        # Like any VFIO user: enable memory decoding before touching the BAR.
        self.config_write16(PCI_COMMAND, self.config_read16(PCI_COMMAND) | PCI_COMMAND_MEMORY)

    def region(self, index):
        """(flags, size, offset) of VFIO region INDEX."""
        info = bytearray(REGION_INFO.pack(REGION_INFO.size, 0, index, 0, 0, 0))
        fcntl.ioctl(self.fd, DEVICE_GET_REGION_INFO, info)
        _, flags, _, _, size, offset = REGION_INFO.unpack(info)
        return flags, size, offset

    def config_read16(self, at):
        """A 16-bit register of the config space as VFIO presents it."""
        return struct.unpack("<H", os.pread(self.fd, 2, self.cfg + at))[0]

    def config_write16(self, at, value):
        os.pwrite(self.fd, struct.pack("<H", value), self.cfg + at)

    def map_bar0(self):
        return mmap.mmap(self.fd, self.size, mmap.MAP_SHARED,
                         mmap.PROT_READ | mmap.PROT_WRITE, offset=self.offset)

    def read_bar0(self, at, n):
        """N bytes of BAR0 at AT through VFIO pread (EIO, not SIGBUS, if
        memory decoding is off)."""
        return os.pread(self.fd, n, self.offset + at)

    def reset(self):
        """VFIO_DEVICE_RESET (a function reset: FLR on the mock devices)."""
        fcntl.ioctl(self.fd, DEVICE_RESET)

    def hot_reset_info(self):
        """VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: the devices a hot reset of
        this device affects, as (group_id, segment, bus, devfn) tuples. The
        first call asks for the count (ENOSPC), the second for the list."""
        hdr = bytearray(HOT_RESET_HDR.pack(HOT_RESET_HDR.size, 0, 0))
        err = ioctl_buf(self.fd, DEVICE_GET_PCI_HOT_RESET_INFO, hdr)
        if err != errno.ENOSPC:
            fail(f"VFIO_DEVICE_GET_PCI_HOT_RESET_INFO with no room: expected ENOSPC, got {os.strerror(err) if err else 'success'}")
        count = HOT_RESET_HDR.unpack(hdr)[2]
        argsz = HOT_RESET_HDR.size + count * DEPENDENT_DEVICE.size
        buf = bytearray(HOT_RESET_HDR.pack(argsz, 0, 0)) + bytes(count * DEPENDENT_DEVICE.size)
        err = ioctl_buf(self.fd, DEVICE_GET_PCI_HOT_RESET_INFO, buf)
        if err:
            fail(f"VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: {os.strerror(err)}")
        n = HOT_RESET_HDR.unpack_from(buf)[2]
        return [DEPENDENT_DEVICE.unpack_from(buf, HOT_RESET_HDR.size + i * DEPENDENT_DEVICE.size)
                for i in range(n)]

    def hot_reset(self, group_fds):
        """VFIO_DEVICE_PCI_HOT_RESET with the groups GROUP_FDS (every
        affected group must be among them). Returns 0 or the errno."""
        n = len(group_fds)
        buf = bytearray(HOT_RESET_HDR.pack(HOT_RESET_HDR.size + 4 * n, 0, n)
                        + struct.pack(f"={n}i", *group_fds))
        return ioctl_buf(self.fd, DEVICE_PCI_HOT_RESET, buf)

    def close(self):
        for fd in (self.fd, self.group, self.container):
            os.close(fd)
