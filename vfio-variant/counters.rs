// SPDX-License-Identifier: GPL-2.0

//! Per-device event counters, shown and reset through debugfs.
//!
//! All counters are relaxed atomics: they are statistics, not
//! synchronisation. See README.md for what each one counts.

use kernel::{
    fmt,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

/// The counters of one device.
pub(crate) struct Counters {
    /// Faults handled by this driver (any order, any mode, SIGBUS included).
    pub(crate) faults: Atomic<u64>,
    /// Page table entries inserted (`vmf_insert_pfn()` calls that succeeded).
    pub(crate) ptes: Atomic<u64>,
    /// PMD entries inserted (`vmf_insert_pfn_pmd()` calls that succeeded).
    pub(crate) pmds: Atomic<u64>,
    /// Revocations: driver-initiated revokes, unplug, and the core's
    /// revocations observed (memory disable, reset, D3).
    pub(crate) zaps: Atomic<u64>,
    /// Faults answered with SIGBUS because device memory was disabled.
    pub(crate) sigbus: Atomic<u64>,
}

/// A copy of the counters at one point in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// See [`Counters::faults`].
    pub(crate) faults: u64,
    /// See [`Counters::ptes`].
    pub(crate) ptes: u64,
    /// See [`Counters::pmds`].
    pub(crate) pmds: u64,
    /// See [`Counters::zaps`].
    pub(crate) zaps: u64,
    /// See [`Counters::sigbus`].
    pub(crate) sigbus: u64,
}

impl Counters {
    /// All counters at zero.
    pub(crate) const fn new() -> Self {
        Self {
            faults: Atomic::new(0),
            ptes: Atomic::new(0),
            pmds: Atomic::new(0),
            zaps: Atomic::new(0),
            sigbus: Atomic::new(0),
        }
    }

    /// Adds one to `counter`.
    pub(crate) fn bump(counter: &Atomic<u64>) {
        counter.fetch_add(1, Relaxed);
    }

    /// Reads all counters.
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot {
            faults: self.faults.load(Relaxed),
            ptes: self.ptes.load(Relaxed),
            pmds: self.pmds.load(Relaxed),
            zaps: self.zaps.load(Relaxed),
            sigbus: self.sigbus.load(Relaxed),
        }
    }

    /// Sets all counters back to zero.
    pub(crate) fn reset(&self) {
        for c in [
            &self.faults,
            &self.ptes,
            &self.pmds,
            &self.zaps,
            &self.sigbus,
        ] {
            c.store(0, Relaxed);
        }
    }
}

impl Snapshot {
    /// Counter-wise difference `self - earlier`.
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot {
            faults: self.faults.wrapping_sub(earlier.faults),
            ptes: self.ptes.wrapping_sub(earlier.ptes),
            pmds: self.pmds.wrapping_sub(earlier.pmds),
            zaps: self.zaps.wrapping_sub(earlier.zaps),
            sigbus: self.sigbus.wrapping_sub(earlier.sigbus),
        }
    }
}

impl core::fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "faults {}", self.faults)?;
        writeln!(f, "ptes {}", self.ptes)?;
        writeln!(f, "pmds {}", self.pmds)?;
        writeln!(f, "zaps {}", self.zaps)?;
        writeln!(f, "sigbus {}", self.sigbus)
    }
}

#[kunit_tests(vfio_variant_counters)]
mod tests {
    use super::*;

    #[test]
    fn bump_snapshot_reset() {
        let c = Counters::new();
        Counters::bump(&c.faults);
        Counters::bump(&c.ptes);
        Counters::bump(&c.ptes);
        let s = c.snapshot();
        assert_eq!(s.faults, 1);
        assert_eq!(s.ptes, 2);
        assert_eq!(s.since(&Snapshot::default()).ptes, 2);
        c.reset();
        assert_eq!(c.snapshot(), Snapshot::default());
    }
}
