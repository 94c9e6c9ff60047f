// SPDX-License-Identifier: GPL-2.0

//! Reading device memory while expecting SIGBUS, and counting faults.
//!
//! A load from a revoked BAR mapping faults into the driver, which answers
//! SIGBUS while memory is disabled. [`load`] performs the load in a small
//! piece of inline assembly whose address the SIGBUS handler knows: the
//! handler moves the instruction pointer to a recovery label and the load
//! reports "SIGBUS" instead of a value. Any other SIGBUS restores the
//! default action and kills the process, as it should.
//!
//! Faults are counted with `getrusage(RUSAGE_SELF).ru_minflt`, which counts
//! handled PFNMAP faults too. [`warm_up`] takes the copy-on-write faults a
//! freshly forked process would otherwise take on its stack and data while
//! measuring.

use crate::sys;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Address of the guarded load instruction.
static LOAD_IP: AtomicUsize = AtomicUsize::new(0);
/// Where the handler resumes after a SIGBUS at [`LOAD_IP`].
static RESUME_IP: AtomicUsize = AtomicUsize::new(0);
/// Address of the guarded store instruction.
static STORE_IP: AtomicUsize = AtomicUsize::new(0);
/// Where the handler resumes after a SIGBUS at [`STORE_IP`].
static STORE_RESUME_IP: AtomicUsize = AtomicUsize::new(0);
/// `si_addr` of the last SIGBUS caught.
static BUS_ADDR: AtomicU64 = AtomicU64::new(0);

/// Installs the SIGBUS handler (idempotent; inherited across fork).
pub fn install() {
    // SAFETY: a zeroed sigaction is valid; the handler is an
    // `extern "C" fn(c_int, *mut siginfo_t, *mut c_void)` as SA_SIGINFO wants.
    unsafe {
        let mut sa: sys::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as *const () as usize;
        sa.sa_flags = sys::SA_SIGINFO | sys::SA_NODEFER;
        sys::sigemptyset(&mut sa.sa_mask);
        if sys::sigaction(sys::SIGBUS, &sa, std::ptr::null_mut()) != 0 {
            panic!("sigaction(SIGBUS): {}", std::io::Error::last_os_error());
        }
    }
}

extern "C" fn on_sigbus(_sig: sys::c_int, info: *mut sys::siginfo_t, ctx: *mut sys::c_void) {
    // SAFETY: the kernel passes a valid ucontext and siginfo to an
    // SA_SIGINFO handler; only atomics and the saved registers are touched.
    unsafe {
        let uc = &mut *ctx.cast::<sys::ucontext_t>();
        let rip = &mut uc.uc_mcontext.gregs[sys::REG_RIP as usize];
        let at = *rip as usize;
        for (ip, resume) in [(&LOAD_IP, &RESUME_IP), (&STORE_IP, &STORE_RESUME_IP)] {
            let ip = ip.load(Relaxed);
            if ip != 0 && at == ip {
                BUS_ADDR.store((*info).si_addr() as u64, Relaxed);
                *rip = resume.load(Relaxed) as sys::greg_t;
                return;
            }
        }
        // Not ours: die of it once we return and the access repeats.
        sys::signal(sys::SIGBUS, sys::SIG_DFL);
    }
}

/// Loads a u32 from `p`; `None` if the load got SIGBUS.
///
/// # Safety
///
/// `p` must be 4-byte aligned and mapped readable (a SIGBUS from the mapping
/// is fine; any other fault is not).
#[inline(never)]
pub unsafe fn load(p: *const u32) -> Option<u32> {
    let value: u32;
    let bus: u32;
    // SAFETY: the caller guarantees `p`; the labels are local to this
    // (never inlined) function, and the handler only redirects a SIGBUS
    // raised by the instruction at label 2 to label 3.
    unsafe {
        core::arch::asm!(
            "lea {t}, [rip + 2f]",
            "mov qword ptr [{load_ip}], {t}",
            "lea {t}, [rip + 3f]",
            "mov qword ptr [{resume_ip}], {t}",
            "xor {bus:e}, {bus:e}",
            "2:",
            "mov {value:e}, dword ptr [{p}]",
            "jmp 4f",
            "3:",
            "mov {bus:e}, 1",
            "4:",
            p = in(reg) p,
            load_ip = in(reg) LOAD_IP.as_ptr(),
            resume_ip = in(reg) RESUME_IP.as_ptr(),
            t = out(reg) _,
            value = out(reg) value,
            bus = out(reg) bus,
            options(nostack),
        );
    }
    (bus == 0).then_some(value)
}

/// Stores `v` at `p`; `false` if the store got SIGBUS.
///
/// # Safety
///
/// As for [`load`], and the mapping must be writable.
#[inline(never)]
pub unsafe fn store(p: *mut u32, v: u32) -> bool {
    let bus: u32;
    // SAFETY: as in `load`: the labels are local to this function and the
    // handler only redirects a SIGBUS raised by the store at label 2.
    unsafe {
        core::arch::asm!(
            "lea {t}, [rip + 2f]",
            "mov qword ptr [{store_ip}], {t}",
            "lea {t}, [rip + 3f]",
            "mov qword ptr [{resume_ip}], {t}",
            "xor {bus:e}, {bus:e}",
            "2:",
            "mov dword ptr [{p}], {v:e}",
            "jmp 4f",
            "3:",
            "mov {bus:e}, 1",
            "4:",
            p = in(reg) p,
            v = in(reg) v,
            store_ip = in(reg) STORE_IP.as_ptr(),
            resume_ip = in(reg) STORE_RESUME_IP.as_ptr(),
            t = out(reg) _,
            bus = out(reg) bus,
            options(nostack),
        );
    }
    bus == 0
}

/// Address of the last SIGBUS caught by [`load`] or [`store`].
pub fn last_bus_addr() -> u64 {
    BUS_ADDR.load(Relaxed)
}

/// Minor faults of this process so far.
pub fn minflt() -> i64 {
    // SAFETY: `ru` is a valid out-parameter.
    unsafe {
        let mut ru: sys::rusage = std::mem::zeroed();
        sys::getrusage(sys::RUSAGE_SELF, &mut ru);
        ru.ru_minflt
    }
}

/// What a pass over a mapping saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    /// Pages whose load got SIGBUS (the pass goes on: every page is probed).
    pub sigbus: u32,
    /// Pages with a page table entry before the pass touched them, as the
    /// driver reports it ([`NOT_MEASURED`] where it cannot).
    pub present: u32,
    /// Minor faults taken during the pass.
    pub faults: i64,
    /// Pages read successfully.
    pub pages: u32,
    /// Pages whose first word was not the expected value.
    pub bad: u32,
    /// Index of the first bad page (valid if `bad > 0`).
    pub first_bad: u32,
    /// Value read from the first bad page, else from page 0.
    pub value: u32,
    /// Faults the fixed design promises for mapping this process's vmas
    /// back in ([`crate::scenarios::checks::fill_cost`]); 0 if not known.
    pub fills: u32,
}

/// Page size.
pub const PAGE: usize = 4096;

/// `present` of a pass whose page table entries were not looked at
/// (stock vfio-pci offers no way: pagemap and mincore() show PFN maps as
/// holes).
pub const NOT_MEASURED: u32 = u32::MAX;

/// Reads the first word of every page of `[base, base + len)`, comparing
/// page `i` with `expect(i)`. A page that gets SIGBUS is counted and the
/// pass goes on, so that a revocation that missed part of a mapping shows.
///
/// Not generic on purpose: a forked child that warmed up with the same
/// `expect` has then executed every instruction a measured pass executes,
/// so the pass takes no fault on a code page the child has not touched yet
/// (text PTEs are not copied at fork).
///
/// # Safety
///
/// `[base, base + len)` must be mapped readable, page aligned.
pub unsafe fn pass(base: *const u8, len: usize, expect: &dyn Fn(usize) -> u32) -> Seen {
    let mut seen = Seen {
        present: NOT_MEASURED,
        ..Seen::default()
    };
    let f0 = minflt();
    for i in 0..len / PAGE {
        // SAFETY: inside the mapping per the caller; page aligned.
        let v = unsafe { load(base.add(i * PAGE).cast()) };
        match v {
            None => seen.sigbus += 1,
            Some(v) => {
                seen.pages += 1;
                if i == 0 {
                    seen.value = v;
                }
                if v != expect(i) {
                    if seen.bad == 0 {
                        seen.first_bad = i as u32;
                        seen.value = v;
                    }
                    seen.bad += 1;
                }
            }
        }
    }
    seen.faults = minflt() - f0;
    seen
}

/// Takes the faults a new process would take on its first writes to the
/// stack and to the statics [`pass`] uses, so that a following [`pass`]
/// counts only its own. Callers also run their measured pass once over a
/// scratch mapping first (see `Mapping::scratch`), for the code pages.
pub fn warm_up() {
    let mut stack = [0u8; 128 * 1024];
    for i in (0..stack.len()).step_by(PAGE) {
        stack[i] = 1;
    }
    std::hint::black_box(&mut stack);
    let page = [0u32; PAGE / 4];
    // SAFETY: a local array, readable; its first word is 0.
    let _ = unsafe { pass(page.as_ptr().cast(), PAGE, &|_| 0) };
    // The handler writes this one; make its page private now.
    BUS_ADDR.store(BUS_ADDR.load(Relaxed), Relaxed);
    let _ = minflt();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_reads_and_catches_sigbus() {
        install();
        let x = 0x1234_5678u32;
        // SAFETY: a local, aligned.
        assert_eq!(unsafe { load(&x) }, Some(x));
        // A file mapping beyond EOF gives SIGBUS.
        let path = std::env::temp_dir().join(format!("vfr-probe-{}", std::process::id()));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh shared mapping of an empty file: any access is
        // SIGBUS, which `load` catches.
        unsafe {
            let m = sys::mmap(
                std::ptr::null_mut(),
                PAGE,
                sys::PROT_READ | sys::PROT_WRITE,
                sys::MAP_SHARED,
                f.as_raw_fd(),
                0,
            );
            assert_ne!(m, sys::MAP_FAILED);
            assert_eq!(load(m.cast()), None);
            assert!(!store(m.cast(), 1), "a store beyond EOF is SIGBUS too");
            assert_eq!(last_bus_addr(), m as u64);
            let s = pass(m.cast(), PAGE, &|_| 0);
            assert_eq!(s.sigbus, 1);
            assert_eq!(s.pages, 0);
            sys::munmap(m, PAGE);
        }
    }

    #[test]
    fn pass_counts_mismatches() {
        let mut buf = vec![0u32; 4 * PAGE / 4 + PAGE / 4];
        let base = (buf.as_mut_ptr() as usize + PAGE - 1) & !(PAGE - 1);
        for i in 0..4 {
            // SAFETY: inside `buf`, aligned.
            unsafe { *((base + i * PAGE) as *mut u32) = i as u32 * 7 };
        }
        // SAFETY: four readable pages inside `buf`.
        let s = unsafe { pass(base as *const u8, 4 * PAGE, &|i| i as u32 * 7) };
        assert_eq!((s.sigbus, s.pages, s.bad), (0, 4, 0));
        // SAFETY: as above.
        let s = unsafe {
            pass(base as *const u8, 4 * PAGE, &|i| {
                if i == 2 {
                    1
                } else {
                    i as u32 * 7
                }
            })
        };
        assert_eq!((s.bad, s.first_bad, s.value), (1, 2, 14));
    }
}
