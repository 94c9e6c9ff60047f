// SPDX-License-Identifier: GPL-2.0

//! The kernel log of this run: `/dev/kmsg` is opened at start-up and
//! positioned at its end; `kernel_log` reads what was logged since and
//! fails on a WARN, BUG, oops or PAT complaint (the 2024 thread's first
//! symptom was a WARN under `untrack_pfn()`).

use crate::ktap::{diag, Outcome};
use crate::sys;
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;

/// Messages that fail the run.
const BAD: &[&str] = &[
    "WARNING:",
    "BUG:",
    "kernel BUG",
    "Oops",
    "general protection fault",
    "Call Trace:",
    "x86/PAT:",
    "untrack_pfn",
    "track_pfn",
    "UBSAN:",
    "RIP:",
];

/// `/dev/kmsg`, positioned where this run started.
#[derive(Debug)]
pub struct Kmsg(File);

impl Kmsg {
    /// Opens the log and skips what is already there; `None` if it cannot
    /// be read (not root, no `/dev/kmsg`).
    pub fn open() -> Option<Self> {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(sys::O_NONBLOCK)
            .open("/dev/kmsg")
            .ok()?;
        f.seek(SeekFrom::End(0)).ok()?;
        Some(Self(f))
    }

    /// The message text of every record logged since the last call.
    pub fn read_new(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match self.0.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.push(message(&String::from_utf8_lossy(&buf[..n]))),
                // EPIPE: records were overwritten before we read them; go on.
                Err(e) if e.raw_os_error() == Some(sys::EPIPE) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        out
    }
}

/// The text of one `/dev/kmsg` record (`prio,seq,ts,flags;text\n KEY=..`).
pub fn message(record: &str) -> String {
    let text = record.split_once(';').map_or(record, |(_, t)| t);
    text.lines().next().unwrap_or("").to_string()
}

/// The lines among `lines` that fail the run.
pub fn complaints(lines: &[String]) -> Vec<&String> {
    lines
        .iter()
        .filter(|l| BAD.iter().any(|b| l.contains(b)))
        .collect()
}

/// Runs `kernel_log`.
pub fn check(kmsg: Option<&mut Kmsg>) -> Outcome {
    let Some(kmsg) = kmsg else {
        return Outcome::Skip("cannot read /dev/kmsg".into());
    };
    let lines = kmsg.read_new();
    let bad = complaints(&lines);
    diag(&format!(
        "{} kernel messages during the run, {} complaints",
        lines.len(),
        bad.len()
    ));
    if bad.is_empty() {
        return Outcome::Pass;
    }
    for l in bad.iter().take(20) {
        diag(&format!("kernel: {l}"));
    }
    Outcome::Fail(format!("kernel log: {}", bad[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_and_flags_complaints() {
        assert_eq!(
            message(
                "4,1234,5678,-;WARNING: CPU: 0 PID: 1 at mm/memory.c:1 untrack_pfn\n SUBSYSTEM=x\n"
            ),
            "WARNING: CPU: 0 PID: 1 at mm/memory.c:1 untrack_pfn"
        );
        let lines = vec![
            "vfio-pci 0000:00:03.0: Adding kernel taint for vfio-noiommu group on device"
                .to_string(),
            "x86/PAT: a.out:12 map pfn expected mapping type uncached-minus".to_string(),
            "BUG: Bad page map in process x".to_string(),
            "No device request channel registered, blocked until released by user".to_string(),
        ];
        let bad = complaints(&lines);
        assert_eq!(bad.len(), 2);
        assert!(bad[0].starts_with("x86/PAT"));
    }
}
