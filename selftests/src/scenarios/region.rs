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
use crate::vfio::Path;

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

/// `bad_mmap_<path>`: MAP_PRIVATE, too long, past the end and the config
/// region are refused with EINVAL; a good mapping works.
pub fn bad_mmap(ctx: &Ctx, path: Path) -> Result<Outcome> {
    let (dev, bar) = ctx.open(path)?;
    let config = dev.region(uapi::VFIO_PCI_CONFIG_REGION_INDEX)?;
    let size = bar.size as usize;
    let cases: [(&str, usize, i32, u64); 4] = [
        ("MAP_PRIVATE", PAGE, sys::MAP_PRIVATE, bar.offset),
        ("BAR size + 4 KiB", size + PAGE, sys::MAP_SHARED, bar.offset),
        (
            "offset at BAR end",
            PAGE,
            sys::MAP_SHARED,
            bar.offset + bar.size,
        ),
        ("config region", PAGE, sys::MAP_SHARED, config.offset),
    ];
    let mut v = Verdict::default();
    for (what, len, flags, off) in cases {
        match raw_mmap(len, flags, dev.fd(), off) {
            Ok(addr) => {
                raw_munmap(addr, len);
                v.fail(format!("mmap {what} succeeded, expected EINVAL"));
            }
            Err(e) => {
                diag(&format!(
                    "mmap {what}: {}",
                    std::io::Error::from_raw_os_error(e)
                ));
                v.check(e == sys::EINVAL, || {
                    format!(
                        "mmap {what} failed with {}, expected EINVAL",
                        std::io::Error::from_raw_os_error(e)
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
