// SPDX-License-Identifier: GPL-2.0

//! Where the host-bridge window, the Root Port's two memory windows and
//! every device's BARs lie.
//!
//! The host-bridge window is a physical range inside the `memmap=`
//! reservation. The Root Port forwards two ranges of it to its secondary
//! bus, as firmware would program them: a prefetchable window that holds
//! BAR0 (64-bit, prefetchable) of every slot and a non-prefetchable one
//! that holds BAR2 (32-bit) of every slot. Bridge windows have a 1 MiB
//! granularity and must not overlap, so each is a contiguous region rounded
//! up to 1 MiB, the one with the larger BARs first. Inside a region, slot
//! `s` has its BAR at `s * size`: a device has the same BAR addresses
//! whenever it is (re-)added, each naturally aligned as PCI requires.

use crate::config::BarSizes;

/// Devices (slots) on the secondary bus: one function per slot, 32 slots.
pub(crate) const MAX_SLOTS: usize = 32;

/// Granularity and alignment of a bridge memory window.
pub(crate) const WINDOW_ALIGN: u64 = 1 << 20;

/// Why a window cannot hold the requested BARs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LayoutError {
    /// The window base is not aligned to the largest BAR (or to 1 MiB).
    Unaligned { align: u64 },
    /// Not even one device fits.
    TooSmall { need: u64 },
    /// The non-prefetchable bridge window (32-bit) would end above 4 GiB.
    Above4G,
}

/// A physical address range, `[start, start + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Range {
    /// First address.
    pub(crate) start: u64,
    /// Length in bytes.
    pub(crate) size: u64,
}

impl Range {
    /// Last address of the range.
    pub(crate) fn last(&self) -> u64 {
        self.start + self.size - 1
    }
}

/// The host-bridge window, the Root Port's windows and the BAR addresses of
/// every slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    base: u64,
    size: u64,
    bars: BarSizes,
    slots: usize,
    pref: Range,
    mem: Range,
}

/// The two bridge windows for `n` slots, from `base`: (prefetchable,
/// non-prefetchable).
fn windows(base: u64, bars: BarSizes, n: u64) -> (Range, Range) {
    let pref_size = (n * bars.bar0).next_multiple_of(WINDOW_ALIGN);
    let mem_size = (n * bars.bar2).next_multiple_of(WINDOW_ALIGN);
    // The region of the larger BARs goes first: its size is a multiple of
    // both its BAR size and 1 MiB, so the second region starts aligned to
    // its (smaller or equal) BARs too.
    let (pref_start, mem_start) = if bars.bar0 >= bars.bar2 {
        (base, base + pref_size)
    } else {
        (base + mem_size, base)
    };
    let pref = Range {
        start: pref_start,
        size: pref_size,
    };
    let mem = Range {
        start: mem_start,
        size: mem_size,
    };
    (pref, mem)
}

impl Layout {
    /// Lays `bars` out in the window `[base, base + size)`, for as many
    /// slots as fit (at most [`MAX_SLOTS`]). `base + size` must not
    /// overflow.
    pub(crate) fn new(base: u64, size: u64, bars: BarSizes) -> Result<Self, LayoutError> {
        let align = bars.bar0.max(bars.bar2).max(WINDOW_ALIGN);
        if base % align != 0 {
            return Err(LayoutError::Unaligned { align });
        }
        let fits = |n: u64| {
            let (pref, mem) = windows(base, bars, n);
            pref.size + mem.size <= size
        };
        // BAR2 is a 32-bit BAR and the non-prefetchable window a 32-bit
        // window: it must end at or below 4 GiB.
        let below_4g = |n: u64| {
            let (_, mem) = windows(base, bars, n);
            mem.start + mem.size <= 1 << 32
        };
        let Some(n) = (1..=MAX_SLOTS as u64)
            .rev()
            .find(|&n| fits(n) && below_4g(n))
        else {
            if !fits(1) {
                let (pref, mem) = windows(base, bars, 1);
                return Err(LayoutError::TooSmall {
                    need: pref.size + mem.size,
                });
            }
            return Err(LayoutError::Above4G);
        };
        let (pref, mem) = windows(base, bars, n);
        Ok(Layout {
            base,
            size,
            bars,
            slots: n as usize,
            pref,
            mem,
        })
    }

    /// Start of the host-bridge window.
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// Size of the host-bridge window.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// BAR sizes of every device.
    pub(crate) fn bars(&self) -> BarSizes {
        self.bars
    }

    /// How many slots the window holds (at most [`MAX_SLOTS`]).
    pub(crate) fn slots(&self) -> usize {
        self.slots
    }

    /// The Root Port's prefetchable window: BAR0 of every slot.
    pub(crate) fn pref_window(&self) -> Range {
        self.pref
    }

    /// The Root Port's non-prefetchable window: BAR2 of every slot.
    pub(crate) fn mem_window(&self) -> Range {
        self.mem
    }

    /// Physical address of BAR0 of `slot`.
    pub(crate) fn bar0(&self, slot: usize) -> u64 {
        self.pref.start + slot as u64 * self.bars.bar0
    }

    /// Physical address of BAR2 of `slot`.
    pub(crate) fn bar2(&self, slot: usize) -> u64 {
        self.mem.start + slot as u64 * self.bars.bar2
    }
}

#[kernel::prelude::kunit_tests(mock_pci_layout)]
mod tests {
    use super::*;
    use kernel::prelude::*;

    const MIB: u64 = 1 << 20;
    const DEFAULT: BarSizes = BarSizes {
        bar0: 2 * MIB,
        bar2: 64 * 1024,
    };

    fn inside(r: Range, start: u64, size: u64) -> bool {
        start >= r.start && start + size <= r.start + r.size
    }

    #[test]
    fn default_layout_nests_and_aligns() -> Result<(), LayoutError> {
        let l = Layout::new(0x4000_0000, 256 * MIB, DEFAULT)?;
        assert_eq!(l.slots(), MAX_SLOTS);
        let (pref, mem) = (l.pref_window(), l.mem_window());
        assert_eq!(
            pref,
            Range {
                start: 0x4000_0000,
                size: 64 * MIB
            }
        );
        assert_eq!(
            mem,
            Range {
                start: 0x4400_0000,
                size: 2 * MIB
            }
        );
        for s in 0..l.slots() {
            assert_eq!(l.bar0(s), 0x4000_0000 + s as u64 * 2 * MIB);
            assert_eq!(l.bar2(s), 0x4400_0000 + s as u64 * 64 * 1024);
            assert_eq!(l.bar0(s) % DEFAULT.bar0, 0);
            assert_eq!(l.bar2(s) % DEFAULT.bar2, 0);
            assert!(inside(pref, l.bar0(s), DEFAULT.bar0));
            assert!(inside(mem, l.bar2(s), DEFAULT.bar2));
        }
        Ok(())
    }

    #[test]
    fn windows_are_aligned_disjoint_and_inside() -> Result<(), LayoutError> {
        let cases = [
            (0x4000_0000, 256 * MIB, DEFAULT),
            (
                0x4000_0000,
                8 * MIB,
                BarSizes {
                    bar0: 4096,
                    bar2: MIB,
                },
            ),
            (
                0x4000_0000,
                3 * MIB,
                BarSizes {
                    bar0: 4096,
                    bar2: 4096,
                },
            ),
            (
                0x4000_0000,
                1088 * MIB,
                BarSizes {
                    bar0: 1024 * MIB,
                    bar2: 64 * 1024,
                },
            ),
        ];
        for (base, size, bars) in cases {
            let l = Layout::new(base, size, bars)?;
            for w in [l.pref_window(), l.mem_window()] {
                assert_eq!(w.start % WINDOW_ALIGN, 0);
                assert_eq!(w.size % WINDOW_ALIGN, 0);
                assert!(w.size > 0);
                assert!(inside(Range { start: base, size }, w.start, w.size));
            }
            let (p, m) = (l.pref_window(), l.mem_window());
            assert!(p.last() < m.start || m.last() < p.start);
            let last = l.slots() - 1;
            assert!(inside(p, l.bar0(last), bars.bar0));
            assert!(inside(m, l.bar2(last), bars.bar2));
        }
        Ok(())
    }

    #[test]
    fn larger_bar2_goes_first() -> Result<(), LayoutError> {
        let bars = BarSizes {
            bar0: 4096,
            bar2: MIB,
        };
        let l = Layout::new(0x4000_0000, 8 * MIB, bars)?;
        // Seven 1 MiB BAR2s, then 1 MiB of prefetchable window for BAR0s.
        assert_eq!(l.slots(), 7);
        assert_eq!(l.bar2(0), 0x4000_0000);
        assert_eq!(l.bar2(6), 0x4000_0000 + 6 * MIB);
        assert_eq!(l.bar0(0), 0x4000_0000 + 7 * MIB);
        assert_eq!(l.bar0(1), 0x4000_0000 + 7 * MIB + 4096);
        Ok(())
    }

    #[test]
    fn rejects_windows_that_do_not_fit() {
        assert_eq!(
            Layout::new(0x4010_0000, 256 * MIB, DEFAULT),
            Err(LayoutError::Unaligned { align: 2 * MIB })
        );
        let small = BarSizes {
            bar0: 4096,
            bar2: 4096,
        };
        assert_eq!(
            Layout::new(0x4008_0000, 256 * MIB, small),
            Err(LayoutError::Unaligned { align: MIB })
        );
        assert_eq!(
            Layout::new(0x4000_0000, 2 * MIB, DEFAULT),
            Err(LayoutError::TooSmall { need: 3 * MIB })
        );
        assert_eq!(
            Layout::new(0x1_0000_0000, 256 * MIB, DEFAULT),
            Err(LayoutError::Above4G)
        );
    }

    #[test]
    fn one_gib_bar_fits_with_one_mib_to_spare() -> Result<(), LayoutError> {
        let bars = BarSizes {
            bar0: 1024 * MIB,
            bar2: 64 * 1024,
        };
        let l = Layout::new(0x4000_0000, 1088 * MIB, bars)?;
        assert_eq!(l.slots(), 1);
        assert_eq!(l.bar0(0), 0x4000_0000);
        assert_eq!(l.bar2(0), 0x8000_0000);
        assert_eq!(
            Layout::new(0x4000_0000, 1024 * MIB, bars),
            Err(LayoutError::TooSmall { need: 1025 * MIB })
        );
        Ok(())
    }

    #[test]
    fn mem_window_stays_below_4g() -> Result<(), LayoutError> {
        let l = Layout::new(0xff00_0000, 256 * MIB, DEFAULT)?;
        // 7 slots: 14 MiB of BAR0s, then 1 MiB for the BAR2s, ending
        // 1 MiB below 4 GiB; 8 would end 1 MiB above it.
        assert_eq!(l.slots(), 7);
        let mem = l.mem_window();
        assert_eq!(mem.start + mem.size, 0xff00_0000 + 15 * MIB);
        Ok(())
    }
}
