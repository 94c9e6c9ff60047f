// SPDX-License-Identifier: GPL-2.0

//! Whole-vma insert: with the variant, touching every page of a fresh
//! mapping costs one fault, or one per 2 MiB chunk that can take a PMD
//! entry. The stock driver inserts one page (or one PMD) per fault: the
//! test reports its cost and skips.

use super::{Ctx, Verdict};
use crate::error::Result;
use crate::ktap::{diag, Outcome};
use crate::mapping::{Mapping, Place, PMD};
use crate::probe;
use crate::vfio::Path;

/// 2 MiB chunks of `[addr, addr + len)` that are aligned in both the
/// virtual address and the BAR offset (`bar_offset` maps `addr`).
pub fn pmd_chunks(addr: usize, len: usize, bar_offset: usize) -> usize {
    if (addr ^ bar_offset) & (PMD - 1) != 0 {
        return 0;
    }
    let first = (addr + PMD - 1) & !(PMD - 1);
    let end = (addr + len) & !(PMD - 1);
    end.saturating_sub(first) / PMD
}

/// Runs `whole_vma_<path>`.
pub fn run(ctx: &Ctx, path: Path) -> Result<Outcome> {
    let (dev, bar) = ctx.open(path)?;
    let len = ctx.map_len(&bar);
    let variant = ctx.is_variant();
    let counters = ctx.debugfs();
    let mut v = Verdict::default();
    let mut costs = Vec::new();
    let any: &dyn Fn(usize) -> u32 = &|_| 0;
    probe::warm_up();
    let _ = Mapping::scratch(any)?.pass(any);
    let places: &[Place] = if len >= PMD {
        &[Place::Misaligned, Place::PmdAligned]
    } else {
        &[Place::Any]
    };
    for &place in places {
        let map = Mapping::new(dev.fd(), &bar, 0, len, place)?;
        let chunks = pmd_chunks(map.addr(), len, 0);
        let before = counters.as_ref().map(|d| d.counters()).transpose()?;
        let first = map.pass(any);
        let again = map.pass(any);
        let what = format!(
            "{} pages at {:#x} ({} PMD-capable chunk(s))",
            len / probe::PAGE,
            map.addr(),
            chunks
        );
        let moved = match (&counters, before) {
            (Some(d), Some(b)) => format!("; counters moved by: {}", d.counters()?.since(&b)),
            _ => String::new(),
        };
        diag(&format!(
            "{}: touching {what} took {} fault(s), touching again {}{moved}",
            ctx.driver(),
            first.faults,
            again.faults
        ));
        costs.push(format!("{} faults for {what}", first.faults));
        v.check(first.sigbus == 0 && again.sigbus == 0, || {
            format!("SIGBUS while touching {what} with memory enabled")
        });
        if variant {
            let limit = chunks.max(1) as i64;
            v.check(first.faults >= 1 && first.faults <= limit, || {
                format!(
                    "touching {what} took {} faults: a fault should insert the whole vma \
                     (expected 1..={limit})",
                    first.faults
                )
            });
            v.check(again.faults == 0, || {
                format!("touching {what} a second time took {} faults", again.faults)
            });
        }
    }
    drop(dev);
    if !variant {
        return Ok(Outcome::Skip(format!(
            "whole-vma insert is the variant's; {} costs {}",
            ctx.driver(),
            costs.join(", ")
        )));
    }
    Ok(v.outcome())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks() {
        assert_eq!(pmd_chunks(0x4000_0000, PMD, 0), 1);
        assert_eq!(pmd_chunks(0x4000_1000, PMD, 0), 0);
        assert_eq!(pmd_chunks(0x4000_0000, 2 * PMD, 0), 2);
        assert_eq!(pmd_chunks(0x4000_0000, PMD - 4096, 0), 0);
        // A page misalignment between address and BAR offset: none.
        assert_eq!(pmd_chunks(0x4000_0000, 4 * PMD, 4096), 0);
        // Starts mid-chunk: only the chunks fully inside count.
        assert_eq!(pmd_chunks(0x4010_0000, 2 * PMD, 0x10_0000), 1);
    }
}
