#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Load a module with the Nth fault-injectable call of the load failing.

    fail_nth.py N KO [PARAM=VALUE...]

Writes N to /proc/thread-self/fail-nth, so that the Nth call in this thread
that a fault-injection capability (failslab, ...) lets fail does fail
(Documentation/fault-injection/fault-injection.rst), then loads KO with
finit_module(2) from the same thread. Prints two words: the load's errno
(0 if it loaded) and "injected" or "not-injected".
"""
import ctypes
import os
import sys

SYS_FINIT_MODULE = 313  # x86_64


def main():
    nth, ko, params = int(sys.argv[1]), sys.argv[2], " ".join(sys.argv[3:])
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(ko, os.O_RDONLY)
    ctl = os.open("/proc/thread-self/fail-nth", os.O_RDWR)
    os.write(ctl, str(nth).encode())
    rc = libc.syscall(SYS_FINIT_MODULE, fd, params.encode(), 0)
    err = ctypes.get_errno() if rc != 0 else 0
    left = int(os.pread(ctl, 32, 0))
    os.write(ctl, b"0")
    print(err, "injected" if left == 0 else "not-injected")


if __name__ == "__main__":
    main()
