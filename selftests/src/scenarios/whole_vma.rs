// SPDX-License-Identifier: GPL-2.0

//! Whole-vma insert: with the variant, touching every page of a fresh
//! mapping costs exactly what `checks::fill_cost` says: one fault, or one
//! per 2 MiB chunk that can take a PMD entry (plus one for a head before
//! the first chunk), with a PMD in every such chunk. The stock driver
//! inserts one page (or one PMD) per fault: the test reports its cost and
//! skips.

use super::checks::fill_cost;
use super::{Ctx, Verdict};
use crate::error::Result;
use crate::ktap::{diag, Outcome};
use crate::mapping::{Mapping, Place, PMD};
use crate::probe;
use crate::sysfs::Counters;
use crate::vfio::Path;

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
        let pte_only = counters
            .as_ref()
            .is_some_and(|d| d.pte_only().unwrap_or(false));
        let fill = fill_cost(map.pieces(), pte_only);
        let chunks = fill.pmds;
        let before = counters.as_ref().map(|d| d.counters()).transpose()?;
        let first = map.pass(any);
        let again = map.pass(any);
        let what = format!(
            "{} pages at {:#x} ({} PMD-capable chunk(s))",
            len / probe::PAGE,
            map.addr(),
            chunks
        );
        let delta = match (&counters, before) {
            (Some(d), Some(b)) => Some(d.counters()?.since(&b)),
            _ => None,
        };
        let moved = delta
            .as_ref()
            .map(|d| format!("; counters moved by: {d}"))
            .unwrap_or_default();
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
            v.check(first.faults == fill.faults as i64, || {
                format!(
                    "touching {what} took {} faults: a fault should insert the whole vma \
                     (expected {})",
                    first.faults, fill.faults
                )
            });
            let want = Counters {
                faults: fill.faults,
                ptes: fill.ptes,
                pmds: fill.pmds,
                ..Counters::default()
            };
            v.check(delta.is_none_or(|d| d == want), || {
                format!(
                    "the driver's counters for {what} moved by {}, expected {want}: one fault \
                     per PMD-capable chunk (each a PMD) plus one for the pages outside them",
                    delta.map(|d| d.to_string()).unwrap_or_default()
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
