// SPDX-License-Identifier: GPL-2.0

//! Copies between physical addresses, for the DMA engine: what a device's
//! DMA does to RAM, done by the CPU; and reads of the software IOMMU's page
//! table words, which the engine walks like an IOMMU. Only RAM the kernel manages can be a
//! target (`page_is_ram()` and an online `struct page`); anything else (a
//! BAR, a hole) is refused, as an IOMMU fault would be on hardware.

use kernel::bindings;

const PAGE_SHIFT: u32 = bindings::PAGE_SHIFT;
/// Bytes of a page.
pub(crate) const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

/// The online RAM page of `phys`, or `None`.
fn ram_page(phys: u64) -> Option<*mut bindings::page> {
    let pfn = (phys >> PAGE_SHIFT) as usize;
    // SAFETY: both only look the PFN up.
    unsafe {
        if bindings::page_is_ram(pfn) == 0 {
            return None;
        }
        let page = bindings::pfn_to_online_page(pfn);
        (!page.is_null()).then_some(page)
    }
}

/// Copies `len` bytes from physical address `src` to `dst`, neither range
/// crossing a page boundary. `Err(phys)` names an address that is not RAM.
///
/// The caller makes sure the pages stay allocated during the call (the DMA
/// engine holds the IOMMU fence, which unmapping waits for before the pages
/// are unpinned).
pub(crate) fn copy(dst: u64, src: u64, len: usize) -> core::result::Result<(), u64> {
    let in_page = |a: u64| (a & (PAGE_SIZE - 1)) + len as u64 <= PAGE_SIZE;
    if !in_page(src) || !in_page(dst) {
        return Err(if in_page(src) { dst } else { src });
    }
    let s = ram_page(src).ok_or(src)?;
    let d = ram_page(dst).ok_or(dst)?;
    let off = |a: u64| (a & (PAGE_SIZE - 1)) as usize;
    // SAFETY: both pages are online RAM, mapped for the duration of the
    // copy (in reverse order of mapping), and both ranges lie within their
    // page; `copy` (memmove) tolerates overlap.
    unsafe {
        let sp = bindings::kmap_local_page(s).cast::<u8>();
        let dp = bindings::kmap_local_page(d).cast::<u8>();
        core::ptr::copy(sp.add(off(src)), dp.add(off(dst)), len);
        bindings::kunmap_local(dp.cast());
        bindings::kunmap_local(sp.cast());
    }
    Ok(())
}

/// The 64-bit word at physical address `phys` (8-byte aligned), or `None`
/// if it is not RAM.
///
/// The caller makes sure the page stays allocated during the call (the
/// IOMMU's page-table pages are freed only after the fence the DMA engine
/// holds).
pub(crate) fn read_u64(phys: u64) -> Option<u64> {
    if phys % 8 != 0 {
        return None;
    }
    let page = ram_page(phys)?;
    // SAFETY: the page is online RAM, mapped for the duration of the read;
    // the word is aligned and within the page. Volatile: the IOMMU core may
    // update an entry at any time (the value is then either version).
    unsafe {
        let p = bindings::kmap_local_page(page).cast::<u8>();
        let v = core::ptr::read_volatile(p.add((phys & (PAGE_SIZE - 1)) as usize).cast::<u64>());
        bindings::kunmap_local(p.cast());
        Some(v)
    }
}
