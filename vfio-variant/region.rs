// SPDX-License-Identifier: GPL-2.0

//! Pure geometry of a BAR mapping: the vfio-pci file offset layout and which
//! pages of a vma a fault populates.
//!
//! Nothing here touches the kernel: it is the arithmetic the fault handlers
//! use, kept apart so that KUnit can check it without a device.

use kernel::{bindings, prelude::*};

/// Bits of a device file offset that address bytes within one region.
pub(crate) const OFFSET_SHIFT: u32 = bindings::VFIO_PCI_OFFSET_SHIFT;
/// Page size shift.
pub(crate) const PAGE_SHIFT: u32 = kernel::page::PAGE_SHIFT as u32;
/// Page size in bytes.
pub(crate) const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
/// Order of a PMD-sized entry (512 pages on x86-64).
pub(crate) const PMD_ORDER: u32 = bindings::PMD_ORDER;
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

    /// The PMD-sized chunk containing `addr`, if a single PMD entry can map
    /// it: the chunk lies wholly inside the vma and its first page frame is
    /// PMD aligned (the BAR offset and the virtual address agree).
    pub(crate) fn pmd_chunk(&self, addr: usize) -> Option<usize> {
        if !self.huge {
            return None;
        }
        let base = addr & !(PMD_SIZE - 1);
        let end = base.checked_add(PMD_SIZE)?;
        if base < self.start || end > self.end {
            return None;
        }
        let pfn = self.pfn_at(base);
        (pfn & ((1 << PMD_ORDER) - 1) == 0).then_some(base)
    }

    /// Whether `addr` must be filled with a PTE when the fault at `fault`
    /// populates the vma: every page that no PMD entry can cover, plus the
    /// whole chunk of the faulting page when that chunk had to fall back to
    /// PTEs.
    pub(crate) fn wants_pte(&self, fault: usize, addr: usize) -> bool {
        match self.pmd_chunk(addr) {
            None => true,
            Some(base) => self.pmd_chunk(fault) == Some(base),
        }
    }

    /// Page addresses a page-sized fault at `fault` fills with PTEs.
    pub(crate) fn pte_pages(&self, fault: usize) -> impl Iterator<Item = usize> + '_ {
        (self.start..self.end)
            .step_by(PAGE_SIZE)
            .filter(move |&a| self.wants_pte(fault, a))
    }

    /// Page addresses a PMD fault at `fault` fills with PTEs besides its PMD:
    /// the pages no PMD entry can cover.
    pub(crate) fn pte_only_pages(&self) -> impl Iterator<Item = usize> + '_ {
        (self.start..self.end)
            .step_by(PAGE_SIZE)
            .filter(move |&a| self.pmd_chunk(a).is_none())
    }
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
        assert_eq!(s.pte_pages(0x7000_5000).count(), 16);
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
        assert_eq!(s.pte_only_pages().count(), 0);
        // A fallback page fault in the chunk fills the whole chunk.
        assert_eq!(s.pte_pages(4 * MB2 + 0x3000).count(), 512);
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
        assert_eq!(s.pte_pages(4 * MB2).count(), 512);
        // No architecture support: no PMD.
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
        assert_eq!(s.pte_only_pages().count(), 3);
        // A fault in the head fills head and tail only.
        assert_eq!(s.pte_pages(start).count(), 3);
        // A fallback fault inside chunk 2 fills head, tail and that chunk.
        assert_eq!(s.pte_pages(5 * MB2 + PAGE_SIZE).count(), 3 + 512);
        assert!(!s.wants_pte(start, 4 * MB2));
    }
}
