// SPDX-License-Identifier: GPL-2.0

//! The vfio-pci file offset layout: region index in the high bits, offset
//! within the region in the low [`OFFSET_SHIFT`] bits.

use kernel::{bindings, prelude::*};

/// Bits of a device file offset that address bytes within one region.
pub(crate) const OFFSET_SHIFT: u32 = bindings::VFIO_PCI_OFFSET_SHIFT;
const PAGE_SHIFT: u32 = kernel::page::PAGE_SHIFT as u32;

/// Splits a vma's `vm_pgoff` into (region index, page offset within the region).
pub(crate) fn split_pgoff(pgoff: u64) -> (u64, u64) {
    let shift = OFFSET_SHIFT - PAGE_SHIFT;
    (pgoff >> shift, pgoff & ((1 << shift) - 1))
}

#[kunit_tests(vfio_variant_region)]
mod tests {
    use super::*;

    #[test]
    fn split_pgoff_decodes_index_and_offset() {
        let bar2 = 2u64 << (OFFSET_SHIFT - PAGE_SHIFT);
        assert_eq!(split_pgoff(0), (0, 0));
        assert_eq!(split_pgoff(bar2 + 3), (2, 3));
    }
}
