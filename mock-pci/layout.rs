// SPDX-License-Identifier: GPL-2.0

//! Where the host-bridge window and every device's BARs lie.
//!
//! The window is a physical range inside the `memmap=` reservation. It is
//! cut into one fixed-size region per slot, so that a device has the same
//! BAR addresses whenever it is (re-)added: the larger BAR first, the
//! smaller right after it, each naturally aligned as PCI requires.

use crate::config::BarSizes;
#[cfg(CONFIG_KUNIT)]
use kernel::prelude::*;

/// Devices (slots) on the mock bus: one function per slot, 32 slots.
pub(crate) const MAX_SLOTS: usize = 32;

/// Why a window cannot hold the requested BARs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LayoutError {
    /// The window base is not aligned to the largest BAR.
    Unaligned { align: u64 },
    /// Not even one device fits.
    TooSmall { need: u64 },
    /// The 32-bit BAR of the first device would lie above 4 GiB.
    Above4G,
}

/// The window and the BAR addresses of every slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    base: u64,
    size: u64,
    bars: BarSizes,
    stride: u64,
    slots: usize,
}

impl Layout {
    /// Lays `bars` out in the window `[base, base + size)`.
    pub(crate) fn new(base: u64, size: u64, bars: BarSizes) -> Result<Self, LayoutError> {
        let align = bars.bar0.max(bars.bar2);
        if base % align != 0 {
            return Err(LayoutError::Unaligned { align });
        }
        // Both sizes are powers of two, so the smaller BAR placed right after
        // the larger one is naturally aligned too.
        let stride = (bars.bar0 + bars.bar2).next_multiple_of(align);
        let mut layout = Layout {
            base,
            size,
            bars,
            stride,
            slots: 0,
        };
        // The last slot needs only its two BARs, not a whole stride: a 1 GiB
        // BAR0 with a 64 KiB BAR2 fits in 1 GiB + 64 KiB, which a guest with
        // 2.5 GiB of low RAM can reserve (a 2 GiB stride could not).
        let span = bars.bar0 + bars.bar2;
        let fit = match size.checked_sub(span) {
            Some(rest) => (1 + rest / stride).min(MAX_SLOTS as u64) as usize,
            None => 0,
        };
        // BAR2 is a 32-bit BAR: only slots whose BAR2 ends below 4 GiB count.
        layout.slots = (0..fit)
            .take_while(|&s| layout.bar2(s) + bars.bar2 <= 1 << 32)
            .count();
        match layout.slots {
            0 if fit == 0 => Err(LayoutError::TooSmall { need: span }),
            0 => Err(LayoutError::Above4G),
            _ => Ok(layout),
        }
    }

    /// Start of the window.
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// Size of the window.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// BAR sizes of every device.
    pub(crate) fn bars(&self) -> BarSizes {
        self.bars
    }

    /// Bytes of window each slot takes.
    pub(crate) fn stride(&self) -> u64 {
        self.stride
    }

    /// How many slots the window holds (at most [`MAX_SLOTS`]).
    pub(crate) fn slots(&self) -> usize {
        self.slots
    }

    fn slot_base(&self, slot: usize) -> u64 {
        self.base + slot as u64 * self.stride
    }

    /// Physical address of BAR0 of `slot`.
    pub(crate) fn bar0(&self, slot: usize) -> u64 {
        if self.bars.bar0 >= self.bars.bar2 {
            self.slot_base(slot)
        } else {
            self.slot_base(slot) + self.bars.bar2
        }
    }

    /// Physical address of BAR2 of `slot`.
    pub(crate) fn bar2(&self, slot: usize) -> u64 {
        if self.bars.bar0 >= self.bars.bar2 {
            self.slot_base(slot) + self.bars.bar0
        } else {
            self.slot_base(slot)
        }
    }
}

#[kunit_tests(mock_pci_layout)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const DEFAULT: BarSizes = BarSizes {
        bar0: 2 * MIB,
        bar2: 64 * 1024,
    };

    #[test]
    fn default_layout_nests_and_aligns() -> Result<(), LayoutError> {
        let l = Layout::new(0x4000_0000, 256 * MIB, DEFAULT)?;
        assert_eq!(l.stride(), 4 * MIB);
        assert_eq!(l.slots(), MAX_SLOTS);
        for s in 0..l.slots() {
            assert_eq!(l.bar0(s) % (2 * MIB), 0);
            assert_eq!(l.bar2(s) % (64 * 1024), 0);
            assert!(l.bar0(s) >= l.base());
            assert!(l.bar2(s) + DEFAULT.bar2 <= l.base() + l.size());
            // BARs of one slot do not overlap; slots do not overlap.
            assert_eq!(l.bar2(s), l.bar0(s) + DEFAULT.bar0);
            assert!(l.bar2(s) + DEFAULT.bar2 <= l.bar0(s) + l.stride());
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
        assert_eq!(l.bar2(0), 0x4000_0000);
        assert_eq!(l.bar0(0), 0x4000_0000 + MIB);
        assert_eq!(l.stride(), 2 * MIB);
        assert_eq!(l.slots(), 4);
        Ok(())
    }

    #[test]
    fn rejects_windows_that_do_not_fit() {
        assert_eq!(
            Layout::new(0x4010_0000, 256 * MIB, DEFAULT),
            Err(LayoutError::Unaligned { align: 2 * MIB })
        );
        assert_eq!(
            Layout::new(0x4000_0000, 2 * MIB, DEFAULT),
            Err(LayoutError::TooSmall {
                need: 2 * MIB + 64 * 1024
            })
        );
        assert_eq!(
            Layout::new(0x1_0000_0000, 256 * MIB, DEFAULT),
            Err(LayoutError::Above4G)
        );
    }

    #[test]
    fn one_gib_bar_needs_no_whole_stride() -> Result<(), LayoutError> {
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
            Err(LayoutError::TooSmall {
                need: 1024 * MIB + 64 * 1024
            })
        );
        Ok(())
    }

    #[test]
    fn bar2_stays_below_4g() -> Result<(), LayoutError> {
        let l = Layout::new(0xff00_0000, 256 * MIB, DEFAULT)?;
        assert_eq!(l.slots(), 4);
        assert_eq!(l.bar2(3) + DEFAULT.bar2, 0xff00_0000 + 14 * MIB + 64 * 1024);
        Ok(())
    }
}
