// SPDX-License-Identifier: GPL-2.0

//! Pure geometry of a BAR mapping: the vfio-pci file offset layout and which
//! pages of a vma a fault populates.
//!
//! Nothing here touches the kernel: it is the arithmetic the fault handlers
//! use, kept apart so that KUnit can check it without a device.

use crate::vfio;
use core::ops::Range;
use kernel::prelude::*;

/// Bits of a device file offset that address bytes within one region.
pub(crate) const OFFSET_SHIFT: u32 = vfio::OFFSET_SHIFT;
/// Page size shift.
pub(crate) const PAGE_SHIFT: u32 = kernel::page::PAGE_SHIFT as u32;
/// Page size in bytes.
pub(crate) const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
/// Order of a PMD-sized entry (512 pages on x86-64).
pub(crate) const PMD_ORDER: u32 = vfio::PMD_ORDER;
/// Bytes covered by one PMD entry.
pub(crate) const PMD_SIZE: usize = PAGE_SIZE << PMD_ORDER;

/// Splits a vma's `vm_pgoff` into (region index, page offset within the region).
pub(crate) fn split_pgoff(pgoff: u64) -> (u64, u64) {
    let shift = OFFSET_SHIFT - PAGE_SHIFT;
    (pgoff >> shift, pgoff & ((1 << shift) - 1))
}

/// A vma and the page frame its first page maps.
///
/// `huge` says whether PMD-sized entries are possible at all (architecture
/// support); alignment is checked per chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    /// First address of the vma.
    pub(crate) start: usize,
    /// End (exclusive) of the vma.
    pub(crate) end: usize,
    /// Page frame number mapped at `start`.
    pub(crate) pfn: usize,
    /// PMD entries are supported by the architecture and the kernel config.
    pub(crate) huge: bool,
}

impl Span {
    /// Page frame mapped at `addr` (which must lie inside the span).
    pub(crate) fn pfn_at(&self, addr: usize) -> usize {
        self.pfn + ((addr - self.start) >> PAGE_SHIFT)
    }

    /// The part of the span PMD entries can map, `[first, last)`: the
    /// 2 MiB-aligned chunks wholly inside the span, if there are any and if
    /// the architecture allows them. Either every such chunk qualifies or
    /// none does: a chunk's first page frame is PMD aligned exactly when the
    /// span's virtual address and page frame agree modulo the PMD size.
    pub(crate) fn pmd_range(&self) -> Option<Range<usize>> {
        if !self.huge {
            return None;
        }
        let lag = (self.start >> PAGE_SHIFT).wrapping_sub(self.pfn);
        if lag & ((1 << PMD_ORDER) - 1) != 0 {
            return None;
        }
        let first = self.start.checked_next_multiple_of(PMD_SIZE)?;
        let last = self.end & !(PMD_SIZE - 1);
        (first < last).then_some(first..last)
    }

    /// The PMD-sized chunk containing `addr`, if a single PMD entry can map
    /// it.
    pub(crate) fn pmd_chunk(&self, addr: usize) -> Option<usize> {
        let range = self.pmd_range()?;
        let base = addr & !(PMD_SIZE - 1);
        range.contains(&base).then_some(base)
    }

    /// The address ranges a fault at `fault` of order `order` fills with
    /// PTEs (the faulting page itself included; the caller skips it):
    ///
    /// * every page no PMD entry can cover: the whole span when none can,
    ///   else the head before the first chunk and the tail after the last;
    /// * for a page-order fault inside a PMD-capable chunk (the PMD insert
    ///   fell back), that chunk too.
    ///
    /// Computed, not searched: the cost of a fault is the pages it fills,
    /// never the size of the vma.
    pub(crate) fn fill_ranges(&self, fault: usize, order: u32) -> [Range<usize>; 3] {
        let Some(pmds) = self.pmd_range() else {
            return [self.start..self.end, 0..0, 0..0];
        };
        let chunk = match self.pmd_chunk(fault) {
            Some(base) if order == 0 => base..base + PMD_SIZE,
            _ => 0..0,
        };
        [self.start..pmds.start, chunk, pmds.end..self.end]
    }
}

/// The page addresses of `ranges`, in order.
pub(crate) fn pages(ranges: &[Range<usize>]) -> impl Iterator<Item = usize> + '_ {
    ranges.iter().flat_map(|r| r.clone().step_by(PAGE_SIZE))
}

/// Pages in `ranges` (each page aligned).
#[cfg(CONFIG_KUNIT)]
pub(crate) fn pages_in(ranges: &[Range<usize>]) -> usize {
    ranges.iter().map(|r| r.len() >> PAGE_SHIFT).sum()
}

#[kunit_tests(vfio_variant_region)]
mod tests {
    use super::*;

    const MB2: usize = PMD_SIZE;

    #[test]
    fn split_pgoff_decodes_index_and_offset() {
        let bar2 = 2u64 << (OFFSET_SHIFT - PAGE_SHIFT);
        assert_eq!(split_pgoff(0), (0, 0));
        assert_eq!(split_pgoff(bar2 + 3), (2, 3));
    }

    /// Pages a fault at `fault` of `order` fills.
    fn filled(s: &Span, fault: usize, order: u32) -> usize {
        pages_in(&s.fill_ranges(fault, order))
    }

    #[test]
    fn small_vma_is_one_pte_fault() {
        // A 64 KiB BAR: no PMD possible, one fault fills all 16 pages.
        let s = Span {
            start: 0x7000_0000,
            end: 0x7001_0000,
            pfn: 0x40000,
            huge: true,
        };
        assert_eq!(s.pmd_chunk(0x7000_0000), None);
        assert_eq!(filled(&s, 0x7000_5000, 0), 16);
        assert_eq!(s.pfn_at(0x7000_5000), 0x40005);
    }

    #[test]
    fn aligned_2m_vma_is_one_pmd() {
        let s = Span {
            start: 4 * MB2,
            end: 5 * MB2,
            pfn: 0x40000,
            huge: true,
        };
        assert_eq!(s.pmd_chunk(4 * MB2 + 0x3000), Some(4 * MB2));
        assert_eq!(filled(&s, 4 * MB2, PMD_ORDER), 0);
        // A fallback page fault in the chunk fills the whole chunk.
        assert_eq!(filled(&s, 4 * MB2 + 0x3000, 0), 512);
    }

    #[test]
    fn misaligned_pfn_or_address_uses_ptes() {
        // Virtual address aligned, BAR offset not: no PMD.
        let s = Span {
            start: 4 * MB2,
            end: 5 * MB2,
            pfn: 0x40001,
            huge: true,
        };
        assert_eq!(s.pmd_chunk(4 * MB2), None);
        assert_eq!(filled(&s, 4 * MB2, 0), 512);
        // No architecture support (or pte_only=1): no PMD.
        let s = Span {
            start: 4 * MB2,
            end: 5 * MB2,
            pfn: 0x40000,
            huge: false,
        };
        assert_eq!(s.pmd_chunk(4 * MB2), None);
    }

    #[test]
    fn mixed_vma_splits_head_chunks_and_tail() {
        // 1 page head, two PMD chunks, 2 pages tail.
        let start = 4 * MB2 - PAGE_SIZE;
        let s = Span {
            start,
            end: 6 * MB2 + 2 * PAGE_SIZE,
            pfn: 0x40000 - 1,
            huge: true,
        };
        assert_eq!(s.pmd_range(), Some(4 * MB2..6 * MB2));
        // A PMD fault fills head and tail.
        assert_eq!(filled(&s, 5 * MB2, PMD_ORDER), 3);
        // A fault in the head fills head and tail only.
        assert_eq!(filled(&s, start, 0), 3);
        // A fallback fault inside chunk 2 fills head, tail and that chunk.
        assert_eq!(filled(&s, 5 * MB2 + PAGE_SIZE, 0), 3 + 512);
    }

    #[test]
    fn fill_cost_is_head_plus_tail_not_the_span() {
        // A 64 GiB vma whose address and BAR offset are both one page past
        // a 2 MiB boundary: 511 head pages, 32767 chunks, 1 tail page.
        const GIB: usize = 1 << 30;
        let start = 0x7f00_0000_0000 + PAGE_SIZE;
        let s = Span {
            start,
            end: start + 64 * GIB,
            pfn: 0x100_0001,
            huge: true,
        };
        let head = 511;
        let tail = 1;
        assert_eq!(filled(&s, start + 3 * MB2, PMD_ORDER), head + tail);
        assert_eq!(filled(&s, start, 0), head + tail);
        // The fill is computed from the ranges: each range is visited, page
        // by page, and nothing else.
        let ranges = s.fill_ranges(start + 3 * MB2, PMD_ORDER);
        assert_eq!(ranges.iter().filter(|r| !r.is_empty()).count(), 2);
        // Aligned, the same vma needs no PTE at all.
        let s = Span {
            start: start - PAGE_SIZE,
            end: start - PAGE_SIZE + 64 * GIB,
            pfn: 0x100_0000,
            huge: true,
        };
        assert_eq!(filled(&s, s.start, PMD_ORDER), 0);
    }
}
