// SPDX-License-Identifier: GPL-2.0

//! The few C library bindings the test uses, written out by hand for
//! x86_64 Linux with glibc, so that the crate builds from the tree alone
//! (no crates.io, no vendored `libc`).
//!
//! Everything here mirrors glibc's headers on x86_64 (`<sys/mman.h>`,
//! `<signal.h>`, `<ucontext.h>`, `<sys/resource.h>`, `<poll.h>`, ...):
//! function prototypes, constant values, and the layouts of the structs
//! that cross the boundary. Every layout is pinned by a compile-time size
//! and offset check against the C values (`sizeof`/`offsetof` of the same
//! headers), so a mistake does not build. Only the fields the test reads
//! or writes are named; the rest is opaque padding of the right size.
//! The module exists on x86_64 only (see `lib.rs`).

#![allow(non_camel_case_types, non_snake_case)]

pub use core::ffi::{c_char, c_int, c_long, c_uint, c_ulong, c_void};

/// `pid_t`.
pub type pid_t = c_int;
/// `uid_t`.
pub type uid_t = c_uint;
/// `off_t` (64 bits on x86_64).
pub type off_t = i64;
/// `ssize_t`.
pub type ssize_t = isize;
/// `size_t`.
pub type size_t = usize;
/// `time_t`.
pub type time_t = i64;
/// `clockid_t`.
pub type clockid_t = c_int;
/// `nfds_t`.
pub type nfds_t = c_ulong;
/// `greg_t`: one saved general-purpose register in a `ucontext_t`.
pub type greg_t = i64;
/// `sighandler_t`: a handler address, or [`SIG_DFL`].
pub type sighandler_t = usize;

// <errno.h>
/// `EINTR`: interrupted system call.
pub const EINTR: c_int = 4;
/// `EIO`: I/O error (a BAR access through the region with memory off).
pub const EIO: c_int = 5;
/// `EAGAIN`: try again (a nonblocking read of an eventfd whose count is 0).
pub const EAGAIN: c_int = 11;
/// `EFAULT`: bad address (also: mremap growing a PFN map).
pub const EFAULT: c_int = 14;
/// `ENODEV`: no such device (also: no slot or bus reset for a hot reset).
pub const ENODEV: c_int = 19;
/// `EINVAL`: invalid argument.
pub const EINVAL: c_int = 22;
/// `ENOTTY`: inappropriate ioctl (an ioctl the device does not know).
pub const ENOTTY: c_int = 25;
/// `EPIPE`: broken pipe (`/dev/kmsg`: records were overwritten).
pub const EPIPE: c_int = 32;

// <sys/mman.h>: madvise advice
/// `MADV_DONTNEED`.
pub const MADV_DONTNEED: c_int = 4;
/// `MADV_FREE`.
pub const MADV_FREE: c_int = 8;
/// `MADV_DONTFORK`.
pub const MADV_DONTFORK: c_int = 10;
/// `MADV_DOFORK`.
pub const MADV_DOFORK: c_int = 11;
/// `MADV_WIPEONFORK`.
pub const MADV_WIPEONFORK: c_int = 18;
/// `MADV_COLD`.
pub const MADV_COLD: c_int = 20;
/// `MADV_PAGEOUT`.
pub const MADV_PAGEOUT: c_int = 21;

// <sys/mman.h>
/// `PROT_NONE`.
pub const PROT_NONE: c_int = 0;
/// `PROT_READ`.
pub const PROT_READ: c_int = 1;
/// `PROT_WRITE`.
pub const PROT_WRITE: c_int = 2;
/// `MAP_SHARED`.
pub const MAP_SHARED: c_int = 0x01;
/// `MAP_PRIVATE`.
pub const MAP_PRIVATE: c_int = 0x02;
/// `MAP_FIXED`.
pub const MAP_FIXED: c_int = 0x10;
/// `MAP_ANONYMOUS`.
pub const MAP_ANONYMOUS: c_int = 0x20;
/// `MAP_NORESERVE`.
pub const MAP_NORESERVE: c_int = 0x4000;
/// `MAP_FAILED`: `(void *)-1`.
pub const MAP_FAILED: *mut c_void = !0usize as *mut c_void;
/// `MREMAP_MAYMOVE`.
pub const MREMAP_MAYMOVE: c_int = 1;
/// `MREMAP_FIXED`.
pub const MREMAP_FIXED: c_int = 2;

// <fcntl.h>, <limits.h>, <poll.h>, <sys/prctl.h>, <time.h>, <sys/resource.h>
/// `O_NONBLOCK`.
pub const O_NONBLOCK: c_int = 0o4000;
/// `O_CLOEXEC`.
pub const O_CLOEXEC: c_int = 0o2000000;
/// `EFD_NONBLOCK` (`<sys/eventfd.h>`): [`O_NONBLOCK`].
pub const EFD_NONBLOCK: c_int = O_NONBLOCK;
/// `EFD_CLOEXEC` (`<sys/eventfd.h>`): [`O_CLOEXEC`].
pub const EFD_CLOEXEC: c_int = O_CLOEXEC;
/// `PIPE_BUF`: writes up to this size are atomic on a pipe.
pub const PIPE_BUF: usize = 4096;
/// `POLLIN`.
pub const POLLIN: i16 = 0x1;
/// `PR_SET_PDEATHSIG`.
pub const PR_SET_PDEATHSIG: c_int = 1;
/// `CLOCK_MONOTONIC`.
pub const CLOCK_MONOTONIC: clockid_t = 1;
/// `RUSAGE_SELF`.
pub const RUSAGE_SELF: c_int = 0;
/// `SYS_finit_module` (x86_64).
pub const SYS_FINIT_MODULE: c_long = 313;

// <signal.h>, <ucontext.h>
/// `SIGKILL`.
pub const SIGKILL: c_int = 9;
/// `SIGBUS`.
pub const SIGBUS: c_int = 7;
/// `SIGSEGV`.
pub const SIGSEGV: c_int = 11;
/// `SIG_DFL`.
pub const SIG_DFL: sighandler_t = 0;
/// `SA_SIGINFO`: the handler takes `(int, siginfo_t *, void *)`.
pub const SA_SIGINFO: c_int = 4;
/// `SA_NODEFER`: do not block the signal while its handler runs.
pub const SA_NODEFER: c_int = 0x4000_0000;
/// `REG_RIP`: index of the instruction pointer in [`mcontext_t::gregs`].
pub const REG_RIP: c_int = 16;

/// `struct timespec`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct timespec {
    /// Seconds.
    pub tv_sec: time_t,
    /// Nanoseconds.
    pub tv_nsec: c_long,
}

/// `struct timeval`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct timeval {
    /// Seconds.
    pub tv_sec: time_t,
    /// Microseconds.
    pub tv_usec: c_long,
}

/// `struct rusage`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct rusage {
    /// User time.
    pub ru_utime: timeval,
    /// System time.
    pub ru_stime: timeval,
    /// `ru_maxrss`, `ru_ixrss`, `ru_idrss`, `ru_isrss`.
    _before_minflt: [c_long; 4],
    /// Minor faults (page faults served without I/O, PFNMAP faults too).
    pub ru_minflt: c_long,
    /// Major faults.
    pub ru_majflt: c_long,
    /// `ru_nswap` to `ru_nivcsw`.
    _after_majflt: [c_long; 8],
}

/// `struct pollfd`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct pollfd {
    /// The descriptor.
    pub fd: c_int,
    /// Requested events.
    pub events: i16,
    /// Returned events.
    pub revents: i16,
}

/// `sigset_t`: glibc's 1024-bit signal set.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sigset_t {
    __val: [c_ulong; 16],
}

/// `struct sigaction` (glibc's layout, which the C library converts to the
/// kernel's).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sigaction {
    /// `sa_handler` / `sa_sigaction` (a union in C): the handler address.
    pub sa_sigaction: sighandler_t,
    /// Signals blocked while the handler runs.
    pub sa_mask: sigset_t,
    /// `SA_*` flags.
    pub sa_flags: c_int,
    /// Set by the C library.
    pub sa_restorer: Option<extern "C" fn()>,
}

/// `siginfo_t`: only the header and, for SIGBUS/SIGSEGV, the address.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct siginfo_t {
    /// Signal number.
    pub si_signo: c_int,
    /// Errno value.
    pub si_errno: c_int,
    /// Signal code.
    pub si_code: c_int,
    _pad: c_int,
    /// The union `_sifields`: for SIGBUS its first word is `si_addr`.
    _sifields: [u64; 14],
}

impl siginfo_t {
    /// `si_addr`: the faulting address of a SIGBUS or SIGSEGV.
    pub fn si_addr(&self) -> *mut c_void {
        self._sifields[0] as usize as *mut c_void
    }
}

/// `stack_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct stack_t {
    /// Stack base.
    pub ss_sp: *mut c_void,
    /// Flags.
    pub ss_flags: c_int,
    /// Stack size.
    pub ss_size: size_t,
}

/// `mcontext_t`: the registers saved at a signal.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct mcontext_t {
    /// General-purpose registers, indexed by `REG_*` ([`REG_RIP`]).
    pub gregs: [greg_t; 23],
    /// `fpregs` (a pointer to the FPU state).
    pub fpregs: *mut c_void,
    __reserved1: [u64; 8],
}

/// `ucontext_t`: the third argument of an `SA_SIGINFO` handler.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ucontext_t {
    /// Flags.
    pub uc_flags: c_ulong,
    /// Context resumed when this one returns.
    pub uc_link: *mut ucontext_t,
    /// Signal stack.
    pub uc_stack: stack_t,
    /// Saved registers; writing them changes where the handler returns to.
    pub uc_mcontext: mcontext_t,
    /// Signal mask to restore.
    pub uc_sigmask: sigset_t,
    /// `__fpregs_mem` (512 bytes) and `__ssp` (4 words).
    __rest: [u64; 68],
}

// The layouts above against glibc's headers on x86_64 (sizeof, offsetof).
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<timespec>() == 16);
    assert!(size_of::<timeval>() == 16);
    assert!(size_of::<rusage>() == 144);
    assert!(offset_of!(rusage, ru_stime) == 16);
    assert!(offset_of!(rusage, ru_minflt) == 64);
    assert!(offset_of!(rusage, ru_majflt) == 72);
    assert!(size_of::<pollfd>() == 8);
    assert!(offset_of!(pollfd, events) == 4);
    assert!(offset_of!(pollfd, revents) == 6);
    assert!(size_of::<sigset_t>() == 128);
    assert!(size_of::<sigaction>() == 152);
    assert!(offset_of!(sigaction, sa_mask) == 8);
    assert!(offset_of!(sigaction, sa_flags) == 136);
    assert!(offset_of!(sigaction, sa_restorer) == 144);
    assert!(size_of::<siginfo_t>() == 128);
    assert!(offset_of!(siginfo_t, si_code) == 8);
    assert!(offset_of!(siginfo_t, _sifields) == 16);
    assert!(size_of::<stack_t>() == 24);
    assert!(size_of::<mcontext_t>() == 256);
    assert!(offset_of!(mcontext_t, fpregs) == 184);
    assert!(size_of::<ucontext_t>() == 968);
    assert!(offset_of!(ucontext_t, uc_stack) == 16);
    assert!(offset_of!(ucontext_t, uc_mcontext) == 40);
    assert!(offset_of!(ucontext_t, uc_sigmask) == 296);
    assert!(size_of::<pid_t>() == 4 && size_of::<off_t>() == 8);
};

/// `WIFEXITED(status)`: the child exited normally.
pub const fn WIFEXITED(status: c_int) -> bool {
    status & 0x7f == 0
}

/// `WEXITSTATUS(status)`: its exit code.
pub const fn WEXITSTATUS(status: c_int) -> c_int {
    (status >> 8) & 0xff
}

/// `WTERMSIG(status)`: the signal that killed it.
pub const fn WTERMSIG(status: c_int) -> c_int {
    status & 0x7f
}

extern "C" {
    /// `_exit(2)`.
    pub fn _exit(status: c_int) -> !;
    /// `alarm(2)`.
    pub fn alarm(seconds: c_uint) -> c_uint;
    /// `eventfd(2)`.
    pub fn eventfd(initval: c_uint, flags: c_int) -> c_int;
    /// `clock_gettime(2)`.
    pub fn clock_gettime(clock: clockid_t, tp: *mut timespec) -> c_int;
    /// `fork(2)`.
    pub fn fork() -> pid_t;
    /// `geteuid(2)`.
    pub fn geteuid() -> uid_t;
    /// `getrusage(2)`.
    pub fn getrusage(who: c_int, usage: *mut rusage) -> c_int;
    /// `ioctl(2)`.
    pub fn ioctl(fd: c_int, request: c_ulong, ...) -> c_int;
    /// `kill(2)`.
    pub fn kill(pid: pid_t, sig: c_int) -> c_int;
    /// `mmap(2)`.
    pub fn mmap(
        addr: *mut c_void,
        len: size_t,
        prot: c_int,
        flags: c_int,
        fd: c_int,
        offset: off_t,
    ) -> *mut c_void;
    /// `mremap(2)`; with `MREMAP_FIXED` the new address follows `flags`.
    pub fn mremap(
        old: *mut c_void,
        old_len: size_t,
        new_len: size_t,
        flags: c_int,
        ...
    ) -> *mut c_void;
    /// `vfork(2)`: the child shares the parent's memory until it execs.
    pub fn vfork() -> pid_t;
    /// `execv(3)`.
    pub fn execv(path: *const c_char, argv: *const *const c_char) -> c_int;
    /// `madvise(2)`.
    pub fn madvise(addr: *mut c_void, len: size_t, advice: c_int) -> c_int;
    /// `munmap(2)`.
    pub fn munmap(addr: *mut c_void, len: size_t) -> c_int;
    /// `pipe2(2)`.
    pub fn pipe2(fds: *mut c_int, flags: c_int) -> c_int;
    /// `poll(2)`.
    pub fn poll(fds: *mut pollfd, nfds: nfds_t, timeout: c_int) -> c_int;
    /// `prctl(2)`; arguments after `option` are `unsigned long`.
    pub fn prctl(option: c_int, ...) -> c_int;
    /// `read(2)`.
    pub fn read(fd: c_int, buf: *mut c_void, count: size_t) -> ssize_t;
    /// `sigaction(2)`.
    pub fn sigaction(sig: c_int, act: *const sigaction, old: *mut sigaction) -> c_int;
    /// `sigemptyset(3)`.
    pub fn sigemptyset(set: *mut sigset_t) -> c_int;
    /// `signal(2)`.
    pub fn signal(sig: c_int, handler: sighandler_t) -> sighandler_t;
    /// `waitpid(2)`.
    pub fn waitpid(pid: pid_t, status: *mut c_int, options: c_int) -> pid_t;
    /// `syscall(2)`: a system call glibc has no wrapper for.
    pub fn syscall(number: c_long, ...) -> c_long;
    /// `write(2)`.
    pub fn write(fd: c_int, buf: *const c_void, count: size_t) -> ssize_t;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;

    #[test]
    fn wait_status_macros_match_glibc() {
        // Values of the C macros for the same statuses.
        assert!(WIFEXITED(0x100) && WEXITSTATUS(0x100) == 1);
        assert!(!WIFEXITED(9) && WTERMSIG(9) == 9);
        assert!(!WIFEXITED(0x89) && WTERMSIG(0x89) == 9); // core dumped
    }

    #[test]
    fn calls_work() {
        let mut ts = timespec::default();
        // SAFETY: valid out-parameters and descriptors this test owns.
        unsafe {
            assert_eq!(clock_gettime(CLOCK_MONOTONIC, &mut ts), 0);
            assert!(ts.tv_sec > 0 || ts.tv_nsec > 0);
            let mut ru = rusage::default();
            assert_eq!(getrusage(RUSAGE_SELF, &mut ru), 0);
            assert!(ru.ru_minflt > 0);
            let mut fds = [0; 2];
            assert_eq!(pipe2(fds.as_mut_ptr(), O_CLOEXEC), 0);
            assert_eq!(write(fds[1], b"x".as_ptr().cast(), 1), 1);
            let mut p = pollfd {
                fd: fds[0],
                events: POLLIN,
                revents: 0,
            };
            assert_eq!(poll(&mut p, 1, 1000), 1);
            assert_eq!(p.revents & POLLIN, POLLIN);
            let mut b = [0u8; 1];
            assert_eq!(read(fds[0], b.as_mut_ptr().cast(), 1), 1);
            assert_eq!(&b, b"x");
            let m = mmap(
                std::ptr::null_mut(),
                8192,
                PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(m, MAP_FAILED);
            assert_eq!(munmap(m, 8192), 0);
            // MAP_FIXED at an address that is not page aligned: EINVAL,
            // and the result compares equal to MAP_FAILED.
            let flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
            let bad = mmap(0x10_0001 as *mut c_void, 4096, PROT_READ, flags, -1, 0);
            assert_eq!(bad, MAP_FAILED);
            assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(EINVAL));
            for fd in fds {
                drop(std::os::fd::OwnedFd::from_raw_fd(fd));
            }
        }
    }

    #[test]
    fn eventfd_counts_and_does_not_block() {
        // SAFETY: a descriptor and buffers this test owns.
        unsafe {
            let fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
            assert!(fd >= 0);
            let mut n = 0u64;
            assert_eq!(read(fd, (&raw mut n).cast(), 8), -1);
            assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(EAGAIN));
            for _ in 0..2 {
                let one = 1u64;
                assert_eq!(write(fd, (&raw const one).cast(), 8), 8);
            }
            assert_eq!(read(fd, (&raw mut n).cast(), 8), 8);
            assert_eq!(n, 2);
            drop(std::os::fd::OwnedFd::from_raw_fd(fd));
        }
    }
}
