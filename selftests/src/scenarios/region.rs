// SPDX-License-Identifier: GPL-2.0

//! The BAR through the VFIO region: pread/pwrite agree with the mmap, and
//! mmaps the driver must refuse are refused with EINVAL.

use super::{new_seed, word, Ctx, Verdict};
use crate::error::Result;
use crate::ktap::{diag, Outcome};
use crate::mapping::{raw_mmap, raw_munmap, Mapping, Place};
use crate::probe::PAGE;
use crate::sys;
use crate::uapi;
use crate::vfio::{Device, Path, Region};

/// Offset of the word checked in page `i` (varies inside the page).
fn offset_in(i: usize) -> usize {
    i * PAGE + (((i * 68) % (PAGE - 4)) & !3)
}

/// Compares the word read back from every page with what was written
/// there; reports the first mismatch as a failure and the agreement count.
fn agree(
    v: &mut Verdict,
    what: &str,
    pages: usize,
    seed: u32,
    mut read: impl FnMut(usize) -> Result<Option<u32>>,
) -> Result<()> {
    let mut wrong = 0;
    for i in 0..pages {
        let got = read(offset_in(i))?;
        if got != Some(word(seed, i)) {
            if wrong == 0 {
                v.fail(format!(
                    "{what}: wrote {:#010x} at {:#x}, read {got:x?}",
                    word(seed, i),
                    offset_in(i)
                ));
            }
            wrong += 1;
        }
    }
    diag(&format!("{what}: {}/{pages} words agree", pages - wrong));
    Ok(())
}

/// `region_rw_<path>`: words written with pwrite read back through the
/// mapping, and words written through the mapping read back with pread.
pub fn rw(ctx: &Ctx, path: Path) -> Result<Outcome> {
    let (dev, bar) = ctx.open(path)?;
    let len = ctx.map_len(&bar);
    let map = Mapping::new(dev.fd(), &bar, 0, len, Place::Any)?;
    let pages = len / PAGE;
    let mut v = Verdict::default();

    let seed = new_seed();
    for i in 0..pages {
        dev.write_u32(&bar, offset_in(i) as u64, word(seed, i))?;
    }
    agree(&mut v, "pwrite -> mmap", pages, seed, |off| {
        Ok(map.read_u32(off))
    })?;

    let seed = new_seed();
    for i in 0..pages {
        map.write_u32(offset_in(i), word(seed, i));
    }
    agree(&mut v, "mmap -> pread", pages, seed, |off| {
        dev.read_u32(&bar, off as u64).map(Some)
    })?;
    Ok(v.outcome())
}

/// An mmap that must be refused, and the errno it must get.
#[derive(Debug, Clone)]
pub struct RefusedMmap {
    /// What is wrong with it.
    pub what: &'static str,
    /// Length.
    pub len: usize,
    /// `MAP_*` flags.
    pub flags: i32,
    /// Offset in the device file.
    pub offset: u64,
    /// The errno: VFIO's `vfio_pci_core_mmap()` answers EINVAL to every
    /// bad region, range or flag; the mm itself refuses a zero length and
    /// an offset that is not page aligned with EINVAL too.
    pub errno: i32,
}

/// The mmaps of `dev` that must be refused (`bar` is a mappable BAR):
/// used by `bad_mmap` and by `vfio_stress bad-input`.
pub fn refused_mmaps(dev: &Device, bar: &Region) -> Result<Vec<RefusedMmap>> {
    let config = dev.region(uapi::VFIO_PCI_CONFIG_REGION_INDEX)?;
    let rom = dev.region(uapi::VFIO_PCI_ROM_REGION_INDEX)?;
    let at = |index: u64| index << uapi::VFIO_PCI_OFFSET_SHIFT;
    let past_all = at(u64::from(dev.info.num_regions));
    let size = bar.size as usize;
    let case = |what, len, flags, offset| RefusedMmap {
        what,
        len,
        flags,
        offset,
        errno: sys::EINVAL,
    };
    let mut v = vec![
        case("MAP_PRIVATE", PAGE, sys::MAP_PRIVATE, bar.offset),
        case("BAR size + 4 KiB", size + PAGE, sys::MAP_SHARED, bar.offset),
        case(
            "offset at BAR end",
            PAGE,
            sys::MAP_SHARED,
            bar.offset + bar.size,
        ),
        case("config region", PAGE, sys::MAP_SHARED, config.offset),
        case(
            "ROM region (not mmappable)",
            PAGE,
            sys::MAP_SHARED,
            rom.offset,
        ),
        case("zero length", 0, sys::MAP_SHARED, bar.offset),
        case(
            "offset not page aligned",
            PAGE,
            sys::MAP_SHARED,
            bar.offset + 8,
        ),
        case("offset past every region", PAGE, sys::MAP_SHARED, past_all),
        case("huge offset (1 << 62)", PAGE, sys::MAP_SHARED, 1 << 62),
    ];
    // The upper half of a 64-bit BAR is a region of size 0.
    if bar.index + 1 < uapi::VFIO_PCI_NUM_BARS {
        let next = dev.region(bar.index + 1)?;
        if next.size == 0 {
            v.push(case("BAR of size 0", PAGE, sys::MAP_SHARED, next.offset));
        }
    }
    Ok(v)
}

/// `bad_mmap_<path>`: every mmap of [`refused_mmaps`] is refused with its
/// errno; a good mapping works.
pub fn bad_mmap(ctx: &Ctx, path: Path) -> Result<Outcome> {
    let (dev, bar) = ctx.open(path)?;
    let mut v = Verdict::default();
    for c in refused_mmaps(&dev, &bar)? {
        let what = c.what;
        match raw_mmap(c.len, c.flags, dev.fd(), c.offset) {
            Ok(addr) => {
                raw_munmap(addr, c.len);
                v.fail(format!(
                    "mmap {what} succeeded, expected {}",
                    std::io::Error::from_raw_os_error(c.errno)
                ));
            }
            Err(e) => {
                diag(&format!(
                    "mmap {what}: {}",
                    std::io::Error::from_raw_os_error(e)
                ));
                v.check(e == c.errno, || {
                    format!(
                        "mmap {what} failed with {}, expected {}",
                        std::io::Error::from_raw_os_error(e),
                        std::io::Error::from_raw_os_error(c.errno)
                    )
                });
            }
        }
    }
    match raw_mmap(PAGE, sys::MAP_SHARED, dev.fd(), bar.offset) {
        Ok(addr) => raw_munmap(addr, PAGE),
        Err(e) => v.fail(format!(
            "a valid one-page mmap of BAR{} failed: {}",
            bar.index,
            std::io::Error::from_raw_os_error(e)
        )),
    }
    Ok(v.outcome())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_stay_in_their_page_and_aligned() {
        for i in 0..2048 {
            let o = offset_in(i);
            assert_eq!(o / PAGE, i);
            assert_eq!(o % 4, 0);
            assert!(o % PAGE + 4 <= PAGE);
        }
    }
}
