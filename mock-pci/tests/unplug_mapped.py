#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Hot-remove a mock device that a user has bound, mapped and forked.

    unplug_mapped.py BDF SLOT

BDF (in SLOT) must be bound to vfio_variant. The parent maps BAR0, writes a
pattern and forks a child that reads it. Then `del_device SLOT` runs in the
background: the driver's remove revokes every mapping and waits for the
users. A probe process confirms the revocation; the child's next read must
die of SIGBUS. Once parent and child have closed the device, the removal
completes; `new_device SLOT` brings the slot back, zeroed.
"""
import os, signal, subprocess, sys, time

from vfio_user import Device, fail

DBG = "/sys/kernel/debug/mock_pci"


def read_dies_of_sigbus(bar):
    """Reads BAR0 in a new child; True if that child died of SIGBUS."""
    pid = os.fork()
    if pid == 0:
        bar[0:8]
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGBUS


def main(bdf, slot):
    dev = Device(bdf)
    bar = dev.map_bar0()
    bar[0:8] = b"mockdata"
    go_r, go_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(go_w)
        ok = bar[0:8] == b"mockdata"
        os.read(go_r, 1)  # wait until the device is being removed
        bar[0:8]  # must die of SIGBUS here
        os._exit(0 if ok else 3)
    os.close(go_r)

    unplug = subprocess.Popen(["sh", "-c", f"echo {slot} > {DBG}/del_device"])
    deadline = time.monotonic() + 20
    while not read_dies_of_sigbus(bar):
        if time.monotonic() > deadline:
            fail("mappings were not revoked within 20 s of del_device")
        time.sleep(0.1)
    print("ok: del_device revoked the parent's mapping (probe got SIGBUS)")
    if unplug.poll() is not None:
        fail("del_device finished while the device was still open")
    os.write(go_w, b"x")
    _, status = os.waitpid(child, 0)
    if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGBUS):
        fail(f"forked child was not killed by SIGBUS (wait status {status:#x})")
    print("ok: the forked child's next access got SIGBUS")

    bar.close()
    dev.close()
    if unplug.wait(timeout=20) != 0:
        fail("del_device failed")
    if os.path.exists(f"/sys/bus/pci/devices/{bdf}"):
        fail("the device is still there after del_device")
    print("ok: del_device completed once the user closed the device")

    with open(f"{DBG}/new_device", "w") as f:
        f.write(slot)
    with open(f"{DBG}/{bdf}/bar0", "rb") as f:
        if f.read(8) != bytes(8):
            fail("a re-added device does not start with zeroed memory")
    print("ok: new_device re-added the slot with zeroed BAR memory")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
