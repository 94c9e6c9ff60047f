// SPDX-License-Identifier: GPL-2.0

//! Process families for the fork tests: forking children and grandchildren,
//! stepping them through phases together, and collecting what each saw.
//!
//! * A [`Gate`] is a pipe whose write end only the parent holds: closing it
//!   releases every waiting descendant at once (they read EOF).
//! * Reports go up one shared pipe as fixed-size records, each written
//!   atomically (smaller than `PIPE_BUF`).
//! * [`Shared`] is a `MAP_SHARED` anonymous array through which the parent
//!   tells descendants what they should read next.

use crate::err;
use crate::error::{last_os, Result};
use crate::probe::Seen;
use crate::sys;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    if unsafe { sys::pipe2(fds.as_mut_ptr(), sys::O_CLOEXEC) } != 0 {
        return Err(last_os("pipe2"));
    }
    // SAFETY: pipe2 returned two new descriptors that we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Forks; the child runs `f` and exits with its result (101 if it
/// panicked) without running the parent's destructors.
pub fn fork_run(f: impl FnOnce() -> i32) -> Result<sys::pid_t> {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: the child only runs `f` (glibc keeps malloc usable after
    // fork) and then `_exit`s; the test binary itself is single threaded.
    let pid = unsafe { sys::fork() };
    if pid < 0 {
        return Err(last_os("fork"));
    }
    if pid == 0 {
        // SAFETY: plain syscalls in the new child: die with the parent, and
        // never hang a test run.
        unsafe {
            sys::prctl(sys::PR_SET_PDEATHSIG, sys::SIGKILL as sys::c_ulong);
            sys::alarm(120);
        }
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        let _ = std::io::stdout().flush();
        // SAFETY: leaves the child without unwinding into the parent's code.
        unsafe { sys::_exit(code) };
    }
    Ok(pid)
}

/// Waits for `pid` and returns its wait status.
pub fn wait_status(pid: sys::pid_t) -> Result<sys::c_int> {
    let mut st = 0;
    // SAFETY: `st` is a valid out-parameter.
    if unsafe { sys::waitpid(pid, &mut st, 0) } < 0 {
        return Err(last_os(format!("waitpid {pid}")));
    }
    Ok(st)
}

/// Waits for `pid`; describes an abnormal end.
pub fn wait_ok(pid: sys::pid_t) -> Result<()> {
    let st = wait_status(pid)?;
    if sys::WIFEXITED(st) && sys::WEXITSTATUS(st) == 0 {
        Ok(())
    } else if sys::WIFEXITED(st) {
        Err(err!("process {pid} exited with {}", sys::WEXITSTATUS(st)))
    } else {
        Err(err!(
            "process {pid} was killed by signal {}",
            sys::WTERMSIG(st)
        ))
    }
}

/// A one-shot barrier: descendants [`Gate::wait`] until the parent
/// [`Gate::open`]s it.
#[derive(Debug)]
pub struct Gate {
    r: OwnedFd,
    w: Option<OwnedFd>,
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Result<Self> {
        let (r, w) = pipe()?;
        Ok(Self { r, w: Some(w) })
    }

    /// Releases every waiter (parent side).
    pub fn open(&mut self) {
        self.w = None;
    }

    /// Drops this process's copy of the write end (descendant side: a
    /// process that still holds it would never see the gate open).
    pub fn forget_write_end(&mut self) {
        self.w = None;
    }

    /// Blocks until the gate is open.
    pub fn wait(&self) {
        let mut b = [0u8; 1];
        loop {
            // SAFETY: reading into a local buffer.
            let n = unsafe { sys::read(self.r.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
            if n == 0
                || (n < 0 && std::io::Error::last_os_error().raw_os_error() != Some(sys::EINTR))
            {
                return;
            }
        }
    }
}

/// One record sent up the report pipe.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Which member (1-based; 0 is the parent).
    pub who: u32,
    /// Which phase.
    pub phase: u32,
    /// Pages whose read got SIGBUS.
    pub sigbus: u32,
    /// Pages read.
    pub pages: u32,
    /// Pages with unexpected data.
    pub bad: u32,
    /// First bad page.
    pub first_bad: u32,
    /// Value read (first bad page, else page 0).
    pub value: u32,
    /// Pages with a page table entry before the pass (`NOT_MEASURED`
    /// where the driver cannot say).
    pub present: u32,
    /// See [`Seen::fills`].
    pub fills: u32,
    /// Minor faults taken by the pass.
    pub faults: i64,
}

impl Report {
    /// The record of member `who` (0 for the parent) for `phase`.
    pub fn new(who: u32, phase: u32, s: &Seen) -> Self {
        Self {
            who,
            phase,
            sigbus: s.sigbus,
            pages: s.pages,
            bad: s.bad,
            first_bad: s.first_bad,
            value: s.value,
            present: s.present,
            fills: s.fills,
            faults: s.faults,
        }
    }

    /// Back to a [`Seen`].
    pub fn seen(&self) -> Seen {
        Seen {
            sigbus: self.sigbus,
            present: self.present,
            faults: self.faults,
            pages: self.pages,
            bad: self.bad,
            first_bad: self.first_bad,
            value: self.value,
            fills: self.fills,
        }
    }
}

const REPORT: usize = std::mem::size_of::<Report>();
const _: () = assert!(REPORT <= sys::PIPE_BUF);

/// A member of a family, as its body sees itself.
#[derive(Debug)]
pub struct Member<'a> {
    /// 1-based member number.
    pub who: u32,
    gates: &'a [Gate],
    report_fd: RawFd,
}

impl Member<'_> {
    /// Waits until the parent starts `phase` (phase 0 starts at once).
    pub fn wait(&self, phase: usize) {
        if phase > 0 {
            self.gates[phase - 1].wait();
        }
    }

    /// Reports what `phase` saw.
    pub fn report(&self, phase: usize, seen: &Seen) {
        let r = Report::new(self.who, phase as u32, seen);
        // SAFETY: writes the bytes of a plain `repr(C)` record.
        let n = unsafe { sys::write(self.report_fd, (&raw const r).cast(), REPORT) };
        assert_eq!(n, REPORT as isize, "report pipe write");
    }
}

/// Forked children and grandchildren, stepped through phases.
#[derive(Debug)]
pub struct Family {
    gates: Vec<Gate>,
    reports: OwnedFd,
    pids: Vec<sys::pid_t>,
    /// Number of members (children and grandchildren).
    pub members: usize,
}

impl Family {
    /// Forks `children` children, each of which forks `grandchildren`
    /// grandchildren; every member runs `body` (which waits for and reports
    /// its phases). Phases 1..`phases` start when the parent calls
    /// [`Family::start`].
    pub fn spawn(
        children: usize,
        grandchildren: usize,
        phases: usize,
        body: impl Fn(&Member<'_>),
    ) -> Result<Self> {
        let mut gates = (1..phases)
            .map(|_| Gate::new())
            .collect::<Result<Vec<_>>>()?;
        let (r, w) = pipe()?;
        let mut pids = Vec::new();
        for c in 0..children {
            let who = (1 + c * (1 + grandchildren)) as u32;
            let run = |gates: &mut Vec<Gate>| -> i32 {
                for g in gates.iter_mut() {
                    g.forget_write_end();
                }
                let gates = &gates[..];
                let mut kids = Vec::new();
                for k in 0..grandchildren {
                    let m = Member {
                        who: who + 1 + k as u32,
                        gates,
                        report_fd: w.as_raw_fd(),
                    };
                    match fork_run(|| {
                        body(&m);
                        0
                    }) {
                        Ok(pid) => kids.push(pid),
                        Err(e) => {
                            eprintln!("member {who}: {e}");
                            return 3;
                        }
                    }
                }
                body(&Member {
                    who,
                    gates,
                    report_fd: w.as_raw_fd(),
                });
                let mut code = 0;
                for pid in kids {
                    if let Err(e) = wait_ok(pid) {
                        eprintln!("member {who}: grandchild: {e}");
                        code = 4;
                    }
                }
                code
            };
            match fork_run(|| run(&mut gates)) {
                Ok(pid) => pids.push(pid),
                Err(e) => {
                    let mut f = Family {
                        gates,
                        reports: r,
                        pids,
                        members: 0,
                    };
                    f.release();
                    return Err(e);
                }
            }
        }
        drop(w);
        Ok(Family {
            gates,
            reports: r,
            pids,
            members: children * (1 + grandchildren),
        })
    }

    /// Starts `phase` (>= 1) in every member.
    pub fn start(&mut self, phase: usize) {
        self.gates[phase - 1].open();
    }

    /// Collects one report per member for `phase`, in member order.
    pub fn collect(&mut self, phase: usize, limit: Duration) -> Result<Vec<Report>> {
        let mut got: Vec<Report> = Vec::with_capacity(self.members);
        let start = Instant::now();
        while got.len() < self.members {
            let left = limit.saturating_sub(start.elapsed());
            let mut pfd = sys::pollfd {
                fd: self.reports.as_raw_fd(),
                events: sys::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { sys::poll(&mut pfd, 1, left.as_millis() as i32) };
            if n == 0 {
                return Err(err!(
                    "phase {phase}: only {} of {} processes reported within {:?}",
                    got.len(),
                    self.members,
                    limit
                ));
            }
            let mut r = Report::default();
            // SAFETY: reads one record into a plain `repr(C)` struct; every
            // bit pattern is valid for it.
            let n = unsafe { sys::read(self.reports.as_raw_fd(), (&raw mut r).cast(), REPORT) };
            if n == 0 {
                return Err(err!(
                    "phase {phase}: {} of {} processes died before reporting",
                    self.members - got.len(),
                    self.members
                ));
            }
            if n != REPORT as isize {
                return Err(last_os(format!("phase {phase}: short report read ({n})")));
            }
            if r.phase as usize != phase {
                return Err(err!(
                    "member {} reported phase {} during phase {phase}",
                    r.who,
                    r.phase
                ));
            }
            got.push(r);
        }
        got.sort_by_key(|r| r.who);
        Ok(got)
    }

    /// Opens every gate and waits for every child; errors name the first
    /// abnormal exit.
    pub fn finish(mut self) -> Result<()> {
        for g in &mut self.gates {
            g.open();
        }
        let mut first = Ok(());
        for pid in std::mem::take(&mut self.pids) {
            let r = wait_ok(pid);
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    fn release(&mut self) {
        for g in &mut self.gates {
            g.open();
        }
        for pid in std::mem::take(&mut self.pids) {
            // SAFETY: our own child; then reap it.
            unsafe {
                sys::kill(pid, sys::SIGKILL);
                sys::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

impl Drop for Family {
    fn drop(&mut self) {
        self.release();
    }
}

/// A `MAP_SHARED` anonymous array of words, visible to all descendants.
#[derive(Debug)]
pub struct Shared {
    ptr: *mut u32,
    len: usize,
}

impl Shared {
    /// `len` zeroed words.
    pub fn new(len: usize) -> Result<Self> {
        let bytes = (len * 4).max(1);
        // SAFETY: a new anonymous shared mapping.
        let p = unsafe {
            sys::mmap(
                std::ptr::null_mut(),
                bytes,
                sys::PROT_READ | sys::PROT_WRITE,
                sys::MAP_SHARED | sys::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == sys::MAP_FAILED {
            return Err(last_os("mmap shared words"));
        }
        Ok(Self { ptr: p.cast(), len })
    }

    /// Word `i`.
    pub fn get(&self, i: usize) -> u32 {
        self.atomic(i).load(Relaxed)
    }

    /// Sets word `i`.
    pub fn set(&self, i: usize, v: u32) {
        self.atomic(i).store(v, Relaxed)
    }

    /// Word `i` as an atomic, for protocols between processes that need
    /// ordering (`SeqCst` on x86_64 is the same instruction for every
    /// process mapping the page).
    pub fn atomic(&self, i: usize) -> &AtomicU32 {
        assert!(i < self.len);
        // SAFETY: inside the mapping, 4-byte aligned (page aligned base),
        // and only ever accessed as whole words; `AtomicU32` has the layout
        // of `u32`. The borrow of `self` keeps the mapping alive.
        unsafe { AtomicU32::from_ptr(self.ptr.add(i)) }
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no words.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads every word, so that a freshly forked process takes its page
    /// faults on them now rather than while counting faults.
    pub fn touch(&self) {
        for i in 0..self.len {
            std::hint::black_box(self.get(i));
        }
    }
}

// SAFETY: every access to the words goes through atomics; the mapping
// lives as long as the value.
unsafe impl Sync for Shared {}

impl Drop for Shared {
    fn drop(&mut self) {
        crate::mapping::raw_munmap(self.ptr as usize, (self.len * 4).max(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Seen;

    #[test]
    fn family_phases_and_reports() {
        let shared = Shared::new(1).unwrap();
        let mut fam = Family::spawn(2, 2, 2, |m| {
            m.wait(0);
            m.report(
                0,
                &Seen {
                    pages: m.who,
                    ..Seen::default()
                },
            );
            m.wait(1);
            let v = shared.get(0);
            m.report(
                1,
                &Seen {
                    value: v,
                    ..Seen::default()
                },
            );
        })
        .unwrap();
        assert_eq!(fam.members, 6);
        let r0 = fam.collect(0, Duration::from_secs(10)).unwrap();
        let who: Vec<u32> = r0.iter().map(|r| r.who).collect();
        assert_eq!(who, vec![1, 2, 3, 4, 5, 6]);
        assert!(r0.iter().all(|r| r.pages == r.who));
        shared.set(0, 77);
        fam.start(1);
        let r1 = fam.collect(1, Duration::from_secs(10)).unwrap();
        assert!(r1.iter().all(|r| r.value == 77));
        fam.finish().unwrap();
    }

    #[test]
    fn dead_member_is_reported() {
        let mut fam = Family::spawn(1, 0, 1, |_| {
            // SAFETY: ends this test child at once.
            unsafe { sys::_exit(9) }
        })
        .unwrap();
        let e = fam.collect(0, Duration::from_secs(10)).unwrap_err();
        assert!(e.0.contains("died"), "{e}");
        assert!(fam.finish().unwrap_err().0.contains("exited with 9"));
    }
}
