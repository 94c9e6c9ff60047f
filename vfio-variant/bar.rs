// SPDX-License-Identifier: GPL-2.0

//! What both fault paths need to know about a BAR mapping: the [`Span`] a
//! vma of a device covers, and whether PMD entries are allowed.

use crate::{
    device::VariantDevice,
    region::{self, Span},
    vfio,
};
use kernel::mm::virt::VmaRef;

/// Whether faults may insert PMD entries: the architecture maps PFNs with
/// PMDs and the module was not loaded with `pte_only=1` (the workaround
/// for kernels whose fork can leak a revoked PMD, see README.md).
pub(crate) fn pmds_allowed() -> bool {
    cfg!(CONFIG_ARCH_SUPPORTS_PMD_PFNMAP) && !crate::module_parameters::pte_only.value()
}

/// The span of `vma`, a BAR mapping of `dev` (either mode): its addresses
/// and the page frame its first page maps.
pub(crate) fn span_of(dev: &VariantDevice, vma: &VmaRef) -> Span {
    let (index, pgoff) = region::split_pgoff(vfio::pgoff(vma));
    Span {
        start: vma.start(),
        end: vma.end(),
        pfn: dev.core().bar_pfn(index as usize) + pgoff as usize,
        huge: pmds_allowed(),
    }
}
