#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""VFIO_DEVICE_PCI_HOT_RESET on the mock devices (no-IOMMU group path).

    vfio_hot_reset.py BDF_STOCK BDF_VARIANT

BDF_STOCK must be bound to the stock vfio-pci driver and BDF_VARIANT to
vfio_variant, and they must be the only devices on the Root Port's
secondary bus. Checks that VFIO_DEVICE_GET_PCI_HOT_RESET_INFO lists both
(one dev_set: the whole bus), that a hot reset without every affected
group is refused, and that one with all groups succeeds through either
driver: the Secondary Bus Reset reaches both functions (mock-pci's reset
counters), BAR memory reads back as after an FLR (VFIO_DEVICE_RESET: the
mock device keeps it), and memory decoding, BARs and the mapping are back
as vfio-pci restores them. Prints one line per check; exits 1 on the first
failure.
"""
import errno, os, signal, struct, sys

from vfio_user import PCI_COMMAND, PCI_COMMAND_MEMORY, Device, fail, group_id

DBG = "/sys/kernel/debug/mock_pci"
WORD = 0x100  # BAR0 offset of the word written before each reset


def resets(bdf):
    """mock-pci's count of resets of BDF's function."""
    with open(f"{DBG}/{bdf}/resets") as f:
        return int(f.read())


def hw_config(bdf, at, size):
    """A register as the device holds it (sysfs config), not VFIO's view."""
    with open(f"/sys/bus/pci/devices/{bdf}/config", "rb") as f:
        f.seek(at)
        return int.from_bytes(f.read(size), "little")


def bar0_address(bdf):
    with open(f"/sys/bus/pci/devices/{bdf}/resource") as f:
        return int(f.readline().split()[0], 16)


def mmap_read_ok(bar, at, want):
    """Reads the mapping in a child: True if it reads WANT (no SIGBUS)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0 if bar[at:at + 4] == want else 3)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        print(f"# mapping read died of {signal.Signals(os.WTERMSIG(status)).name}")
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def check_info(dev, bdfs):
    """Both devices, with their groups, in the hot reset's dependent list."""
    dom, bus = (int(x, 16) for x in dev.bdf.split(":")[:2])
    got = sorted(dev.hot_reset_info())
    want = []
    for b in bdfs:
        slot, fn = (int(x, 16) for x in b.split(":")[2].split("."))
        # The uAPI's segment is 16 bits: domain 0x10000 reads as 0.
        want.append((group_id(b), dom & 0xffff, bus, slot << 3 | fn))
    if got != sorted(want):
        fail(f"{dev.bdf}: hot reset info lists {got}, expected {sorted(want)}")
    print(f"ok: hot reset info from {dev.bdf}: {len(got)} devices on bus {bus:02x}, groups {[g[0] for g in got]}")


def hot_reset(dev, groups, devs, bdfs):
    """A hot reset through DEV with every group; checks what it did."""
    before = {b: resets(b) for b in bdfs}
    pattern = {d.bdf: struct.pack("<I", 0x5eed0000 | d.group_id) for d in devs}
    maps = {d.bdf: d.map_bar0() for d in devs}
    for d in devs:
        maps[d.bdf][WORD:WORD + 4] = pattern[d.bdf]
    err = dev.hot_reset(groups)
    if err:
        fail(f"VFIO_DEVICE_PCI_HOT_RESET through {dev.bdf}: {os.strerror(err)}")
    print(f"ok: VFIO_DEVICE_PCI_HOT_RESET through {dev.bdf} succeeded")
    for b in bdfs:
        if resets(b) != before[b] + 1:
            fail(f"{b}: {resets(b) - before[b]} resets during the hot reset, expected 1 (secondary bus reset)")
    print(f"ok: the secondary bus reset reached every function ({', '.join(bdfs)})")
    for d in devs:
        b = d.bdf
        cmd = hw_config(b, PCI_COMMAND, 2)
        if not cmd & PCI_COMMAND_MEMORY or not d.config_read16(PCI_COMMAND) & PCI_COMMAND_MEMORY:
            fail(f"{b}: COMMAND.MEM not restored after the hot reset (device {cmd:#06x})")
        bar = hw_config(b, 0x10, 4) & ~0xf | hw_config(b, 0x14, 4) << 32
        if bar != bar0_address(b):
            fail(f"{b}: BAR0 register {bar:#x} after the hot reset, expected {bar0_address(b):#x}")
        if d.read_bar0(WORD, 4) != pattern[b]:
            fail(f"{b}: BAR word {d.read_bar0(WORD, 4).hex()} after the hot reset, expected {pattern[b].hex()} (kept, as by an FLR)")
        if not mmap_read_ok(maps[b], WORD, pattern[b]):
            fail(f"{b}: the BAR mapping does not read back after the hot reset")
        maps[b].close()
    print("ok: COMMAND.MEM and BAR0 restored, BAR word kept as after an FLR, mappings refault")


def main(stock, variant):
    bdfs = [stock, variant]
    devs = [Device(b) for b in bdfs]
    a, b = devs
    for d in devs:
        check_info(d, bdfs)
    # A group opens once: the fds that prove ownership are the devices'.
    groups = [d.group for d in devs]

    # Every affected group must be passed: with only its own it is refused.
    err = a.hot_reset(groups[:1])
    if err != errno.EINVAL:
        fail(f"hot reset with one of two groups: expected EINVAL, got {os.strerror(err) if err else 'success'}")
    print("ok: a hot reset without every affected group is refused (EINVAL)")

    # What an FLR does to BAR memory, for comparison.
    bar = a.map_bar0()
    bar[WORD:WORD + 4] = b"flr!"
    n = resets(stock)
    a.reset()
    if resets(stock) != n + 1 or a.read_bar0(WORD, 4) != b"flr!":
        fail(f"VFIO_DEVICE_RESET: {resets(stock) - n} resets, BAR word {a.read_bar0(WORD, 4)!r} (expected 1, kept)")
    bar.close()
    print("ok: VFIO_DEVICE_RESET (FLR) keeps BAR memory: the reset value of a BAR word is what was written")

    hot_reset(a, groups, devs, bdfs)  # stock vfio-pci
    hot_reset(b, groups, devs, bdfs)  # vfio_variant
    for d in devs:
        d.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
