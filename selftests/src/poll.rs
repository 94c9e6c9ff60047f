// SPDX-License-Identifier: GPL-2.0

//! Bounded waits for another process, the kernel or a device: each has a
//! deadline, so that a hang becomes an error saying what did not happen.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// How [`poll_until`] waits between two looks.
#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// `sched_yield()`: for the phases of a race, where latency counts.
    Yield,
    /// Sleeping this long: for waits that may take long.
    Every(Duration),
}

/// Looks at `done` until it holds (`true`) or `deadline` passes (`false`).
pub fn poll_until(deadline: Instant, pace: Pace, mut done: impl FnMut() -> bool) -> bool {
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        match pace {
            Pace::Yield => std::thread::yield_now(),
            Pace::Every(d) => std::thread::sleep(d),
        }
    }
    true
}

/// Calls `done` every 20 ms until it holds (`true`) or `limit` passes
/// (`false`): for sysfs and devices appearing or going.
pub fn wait_for(limit: Duration, done: impl FnMut() -> bool) -> bool {
    poll_until(
        Instant::now() + limit,
        Pace::Every(Duration::from_millis(20)),
        done,
    )
}

/// Waits up to `limit` for `child` to exit: its status, `Ok(None)` if it
/// still runs (the caller decides whether to kill it).
pub fn wait_child(child: &mut Child, limit: Duration) -> std::io::Result<Option<ExitStatus>> {
    let mut answer = Ok(None);
    poll_until(
        Instant::now() + limit,
        Pace::Every(Duration::from_millis(5)),
        || {
            answer = child.try_wait();
            !matches!(answer, Ok(None))
        },
    );
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_until_stops_at_the_deadline_or_when_done() {
        let start = Instant::now();
        assert!(!poll_until(
            start + Duration::from_millis(30),
            Pace::Yield,
            || false
        ));
        assert!(start.elapsed() >= Duration::from_millis(30));
        let mut n = 0;
        let every = Pace::Every(Duration::from_millis(1));
        assert!(poll_until(start + Duration::from_secs(60), every, || {
            n += 1;
            n == 3
        }));
        assert_eq!(n, 3);
    }

    #[test]
    fn wait_child_reports_exit_and_running() {
        let mut quick = std::process::Command::new("true").spawn().unwrap();
        let st = wait_child(&mut quick, Duration::from_secs(30)).unwrap();
        assert!(st.is_some_and(|s| s.success()));
        let mut slow = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        assert!(wait_child(&mut slow, Duration::from_millis(20))
            .unwrap()
            .is_none());
        slow.kill().unwrap();
        slow.wait().unwrap();
    }
}
