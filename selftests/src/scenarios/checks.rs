// SPDX-License-Identifier: GPL-2.0

//! What a process should have seen in each phase of a fork test, and the
//! judgement of what it did see (pure logic, unit tested).

use crate::family::Report;
use crate::mapping::Piece;
use crate::probe::PAGE;

/// Size of a PMD mapping.
const PMD: usize = 512 * PAGE;

/// Faults and entries that mapping vmas back in costs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fill {
    /// Faults.
    pub faults: u64,
    /// PTEs inserted.
    pub ptes: u64,
    /// PMDs inserted.
    pub pmds: u64,
}

/// What the fixed design costs to map `pieces` back into one process, its
/// pages read in order: every 2 MiB of a vma whose virtual address and BAR
/// offset are both 2 MiB aligned is a PMD-capable chunk (none with
/// `pte_only`) and costs one fault of its own, which also fills the pages
/// outside the chunks; a vma whose first page is outside a chunk (or that
/// has none) costs one more fault for them. A chunk
/// gets a PMD, or, where a PTE table is left over (mremap moves them), 512
/// PTEs: `pmds` is an upper bound.
pub fn fill_cost(pieces: &[Piece], pte_only: bool) -> Fill {
    let mut f = Fill::default();
    for p in pieces {
        let pages = (p.len / PAGE) as u64;
        let end = p.addr + p.len;
        let mut pmds = 0;
        let aligned = (p.addr % PMD) == (p.bar_offset % PMD);
        if aligned && !pte_only {
            let mut a = p.addr.next_multiple_of(PMD);
            while a + PMD <= end {
                pmds += 1;
                a += PMD;
            }
        }
        // The first page is read first: below the first chunk it takes an
        // order-0 fault that fills head and tail; in a chunk, the chunk's
        // PMD fault fills them.
        let head = p.addr.next_multiple_of(PMD) > p.addr;
        f.faults += pmds + u64::from(pmds == 0 || head);
        f.pmds += pmds;
        f.ptes += pages - 512 * pmds;
    }
    f
}

/// Expected result of one pass over the mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Right after fork: the pattern, with no fault (PTEs are inherited,
    /// `VM_PFNMAP` is in `VM_COPY_ON_FORK`).
    Inherited,
    /// First touch of an unpopulated mapping: the pattern, after faulting.
    Faulted,
    /// Device memory revoked and disabled: the first access gets SIGBUS.
    Sigbus,
    /// Mapping revoked but memory available: the access faults again and
    /// sees the data.
    Refaulted,
    /// The data, without SIGBUS, however many faults it took (a process
    /// that kept reading while the device came back).
    Readable,
}

impl Want {
    /// Phrase for summaries.
    pub fn describe(self) -> &'static str {
        match self {
            Want::Inherited => "read the pattern with 0 faults (inherited PTEs)",
            Want::Faulted => "faulted in and read the pattern",
            Want::Sigbus => "got SIGBUS",
            Want::Refaulted => "faulted again and read the data",
            Want::Readable => "read the data",
        }
    }
}

/// Why `r` does not match `want`, if it does not. `expect(page)` is the
/// word page `page` should hold.
pub fn mismatch(want: Want, r: &Report, expect: &dyn Fn(usize) -> u32) -> Option<String> {
    let bad_data = || {
        format!(
            "page {} read {:#010x}, expected {:#010x} ({} bad pages)",
            r.first_bad,
            r.value,
            expect(r.first_bad as usize),
            r.bad
        )
    };
    let measured = r.present != crate::probe::NOT_MEASURED;
    let revoked = matches!(want, Want::Sigbus | Want::Refaulted);
    if measured && revoked && r.present != 0 {
        return Some(format!(
            "still had {} pages mapped right after the revoke, before touching them \
             (driver's page table lookup): the revoke missed them, stale PTEs",
            r.present
        ));
    }
    if measured && want == Want::Inherited && r.present < r.pages {
        return Some(format!(
            "had only {} of {} pages mapped right after fork: expected every entry inherited",
            r.present, r.pages
        ));
    }
    match want {
        Want::Sigbus => {
            if r.pages == 0 && r.sigbus != 0 {
                None
            } else if r.sigbus != 0 {
                Some(format!(
                    "read {} pages of device memory although {} got SIGBUS: the revoke \
                     missed part of the mapping, which kept stale PTEs",
                    r.pages, r.sigbus
                ))
            } else if r.faults == 0 {
                Some(format!(
                    "read {} pages of device memory with 0 faults instead of SIGBUS: \
                     it kept access through stale PTEs (the fork bug)",
                    r.pages
                ))
            } else {
                Some(format!(
                    "took {} faults and read {} pages instead of SIGBUS: the driver \
                     re-inserted PFNs after the revoke",
                    r.faults, r.pages
                ))
            }
        }
        _ if r.sigbus != 0 => Some(format!(
            "got SIGBUS on {} pages (read {})",
            r.sigbus, r.pages
        )),
        _ if r.bad != 0 => Some(bad_data()),
        Want::Inherited if r.faults != 0 => Some(format!(
            "took {} faults: expected 0, the PTEs should be inherited at fork",
            r.faults
        )),
        Want::Faulted if r.faults == 0 => {
            Some("took 0 faults on an untouched mapping (expected at least one)".into())
        }
        Want::Refaulted if r.faults == 0 => Some(format!(
            "read {} pages with 0 faults: its PTEs survived the revoke (stale access)",
            r.pages
        )),
        _ => None,
    }
}

/// What one process saw, in a few words (`SIGBUS`, `read 512 pages, 0
/// faults, data ok`).
pub fn describe(r: &Report) -> String {
    if r.sigbus != 0 && r.pages == 0 {
        return "SIGBUS".into();
    }
    let data = if r.bad == 0 {
        "data ok".to_string()
    } else {
        format!("{} pages differ (e.g. {:#x})", r.bad, r.value)
    };
    let end = if r.sigbus != 0 {
        format!(", SIGBUS on {} pages", r.sigbus)
    } else {
        String::new()
    };
    format!(
        "read {} pages, {} fault{}, {data}{end}",
        r.pages,
        r.faults,
        if r.faults == 1 { "" } else { "s" }
    )
}

/// Name of a process in messages.
pub fn who(r: &Report) -> String {
    if r.who == 0 {
        "parent".into()
    } else {
        format!("process {}", r.who)
    }
}

/// Judges a phase: a one-line summary and one failure line per process
/// that did not see what it should have (at most `max_lines`, then a count).
pub fn judge(
    phase: &str,
    want: Want,
    reports: &[Report],
    expect: &dyn Fn(usize) -> u32,
) -> (String, Vec<String>) {
    const MAX_LINES: usize = 4;
    let mut fails = Vec::new();
    let mut bad = 0;
    for r in reports {
        if let Some(why) = mismatch(want, r, expect) {
            bad += 1;
            if fails.len() < MAX_LINES {
                fails.push(format!("{phase}: {} {why}", who(r)));
            }
        }
    }
    if bad > MAX_LINES {
        fails.push(format!("{phase}: ... {} more", bad - MAX_LINES));
    }
    let faults: Vec<i64> = reports.iter().map(|r| r.faults).collect();
    let summary = format!(
        "{phase}: {}/{} {} (faults per process: {}..{})",
        reports.len() - bad,
        reports.len(),
        want.describe(),
        faults.iter().min().unwrap_or(&0),
        faults.iter().max().unwrap_or(&0),
    );
    (summary, fails)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pass over 512 pages: all SIGBUS, or all read.
    fn rep(sigbus: bool, faults: i64, bad: u32) -> Report {
        Report {
            who: 1,
            sigbus: if sigbus { 512 } else { 0 },
            faults,
            pages: if sigbus { 0 } else { 512 },
            bad,
            present: crate::probe::NOT_MEASURED,
            ..Report::default()
        }
    }

    const E: &dyn Fn(usize) -> u32 = &|i| i as u32;

    #[test]
    fn inherited() {
        assert_eq!(mismatch(Want::Inherited, &rep(false, 0, 0), E), None);
        assert!(mismatch(Want::Inherited, &rep(false, 1, 0), E)
            .unwrap()
            .contains("inherited"));
        assert!(mismatch(Want::Inherited, &rep(true, 0, 0), E)
            .unwrap()
            .contains("SIGBUS"));
        assert!(mismatch(Want::Inherited, &rep(false, 0, 3), E)
            .unwrap()
            .contains("3 bad pages"));
    }

    #[test]
    fn sigbus_tells_stale_from_refault() {
        assert_eq!(mismatch(Want::Sigbus, &rep(true, 0, 0), E), None);
        assert!(mismatch(Want::Sigbus, &rep(false, 0, 0), E)
            .unwrap()
            .contains("stale PTEs"));
        assert!(mismatch(Want::Sigbus, &rep(false, 1, 0), E)
            .unwrap()
            .contains("re-inserted"));
    }

    #[test]
    fn entries_left_after_a_revoke_fail() {
        let r = Report {
            present: 256,
            ..rep(false, 1, 0)
        };
        let why = mismatch(Want::Refaulted, &r, E).unwrap();
        assert!(why.contains("256 pages") && why.contains("stale"), "{why}");
        assert!(mismatch(Want::Refaulted, &Report { present: 0, ..r }, E).is_none());
        let inh = Report {
            present: 100,
            ..rep(false, 0, 0)
        };
        assert!(mismatch(Want::Inherited, &inh, E)
            .unwrap()
            .contains("only 100 of 512"));
    }

    #[test]
    fn sigbus_on_every_page_or_partial_revoke() {
        // Half the pages read, half SIGBUS: the revoke missed a part.
        let r = Report {
            sigbus: 256,
            pages: 256,
            ..rep(true, 256, 0)
        };
        let why = mismatch(Want::Sigbus, &r, E).unwrap();
        assert!(
            why.contains("missed part") && why.contains("stale"),
            "{why}"
        );
        let r = Report {
            sigbus: 512,
            pages: 0,
            ..rep(true, 512, 0)
        };
        assert_eq!(mismatch(Want::Sigbus, &r, E), None);
    }

    #[test]
    fn refaulted_and_faulted() {
        assert_eq!(mismatch(Want::Refaulted, &rep(false, 1, 0), E), None);
        assert!(mismatch(Want::Refaulted, &rep(false, 0, 0), E)
            .unwrap()
            .contains("survived"));
        assert_eq!(mismatch(Want::Faulted, &rep(false, 2, 0), E), None);
        assert!(mismatch(Want::Faulted, &rep(false, 0, 0), E).is_some());
    }

    #[test]
    fn describes() {
        assert_eq!(describe(&rep(true, 0, 0).with_pages(0)), "SIGBUS");
        assert_eq!(
            describe(&rep(false, 1, 0)),
            "read 512 pages, 1 fault, data ok"
        );
        assert_eq!(
            describe(&rep(false, 0, 2)),
            "read 512 pages, 0 faults, 2 pages differ (e.g. 0x0)"
        );
    }

    impl Report {
        fn with_pages(mut self, n: u32) -> Self {
            self.pages = n;
            self
        }
    }

    #[test]
    fn fill_costs() {
        let p = |addr, len, bar_offset| Piece {
            addr,
            len,
            bar_offset,
        };
        let f = |pieces: &[Piece], pte_only| {
            let c = fill_cost(pieces, pte_only);
            (c.faults, c.ptes, c.pmds)
        };
        // 2 MiB at an aligned address: one PMD; unaligned: 512 PTEs.
        assert_eq!(f(&[p(4 * PMD, PMD, 0)], false), (1, 0, 1));
        assert_eq!(f(&[p(4 * PMD, 2 * PMD, 0)], false), (2, 0, 2));
        // Aligned start, a tail: the chunk's fault fills the tail.
        assert_eq!(f(&[p(4 * PMD, PMD + PAGE, 0)], false), (1, 1, 1));
        assert_eq!(f(&[p(4 * PMD, PMD, 0)], true), (1, 512, 0));
        assert_eq!(f(&[p(4 * PMD + PAGE, PMD, 0)], false), (1, 512, 0));
        // Virtual address aligned, BAR offset not: no PMD.
        assert_eq!(f(&[p(4 * PMD, PMD, PAGE)], false), (1, 512, 0));
        // 4 MiB starting half-way into a PMD: head and tail PTEs, one PMD.
        assert_eq!(
            f(&[p(4 * PMD + PMD / 2, 2 * PMD, PMD / 2)], false),
            (2, 512, 1)
        );
        // Two vmas: two faults.
        assert_eq!(
            f(&[p(0, 4 * PAGE, 0), p(8 * PAGE, 4 * PAGE, 8 * PAGE)], false),
            (2, 8, 0)
        );
    }

    #[test]
    fn judge_summarises_and_caps() {
        let rs: Vec<Report> = (0..10)
            .map(|i| Report {
                who: i,
                ..rep(false, 0, 0)
            })
            .collect();
        let (sum, fails) = judge("after revoke", Want::Sigbus, &rs, E);
        assert!(sum.starts_with("after revoke: 0/10 got SIGBUS"), "{sum}");
        assert_eq!(fails.len(), 5);
        assert!(fails[0].contains("parent"));
        assert!(fails[4].contains("6 more"));
        let (sum, fails) = judge("after fork", Want::Inherited, &rs, E);
        assert!(sum.starts_with("after fork: 10/10"), "{sum}");
        assert!(fails.is_empty());
    }
}
