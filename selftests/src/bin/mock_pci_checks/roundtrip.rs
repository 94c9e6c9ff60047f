// SPDX-License-Identifier: GPL-2.0

//! Data round trip through the stock vfio-pci driver (no-IOMMU group
//! path): what the VFIO mmap of BAR0 writes, VFIO pread, the sysfs
//! `resource0` mmap and mock-pci's debugfs view read (at the start, the
//! middle and the last page of the BAR); what VFIO pwrite and the debugfs
//! view write, the VFIO mmap reads.

use crate::common::{bar0_view, ensure};
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use vfio_revoke_selftests::error::{Context, Result};
use vfio_revoke_selftests::mapping::{raw_mmap, raw_munmap, Mapping, Place};
use vfio_revoke_selftests::probe::{self, PAGE};
use vfio_revoke_selftests::vfio::{Device, Path};
use vfio_revoke_selftests::{err, sys, sysfs};

/// The word at byte `off` of the BAR, for the pattern `seed`: differs
/// from page to page and word to word, so a misplaced page shows.
fn word(seed: u32, off: usize) -> u32 {
    (off as u32).wrapping_mul(0x9e37_79b1) ^ seed
}

/// The page at `at` of the pattern, as bytes.
fn page(seed: u32, at: usize) -> Vec<u8> {
    (at..at + PAGE)
        .step_by(4)
        .flat_map(|o| word(seed, o).to_le_bytes())
        .collect()
}

/// Reads the page at `at` through `read` (a SIGBUS-safe load of the word
/// at a BAR offset); `None` if a word got SIGBUS.
fn read_page(read: impl Fn(usize) -> Option<u32>, at: usize) -> Option<Vec<u8>> {
    let mut v = Vec::with_capacity(PAGE);
    for o in (at..at + PAGE).step_by(4) {
        v.extend(read(o)?.to_le_bytes());
    }
    Some(v)
}

/// Runs the round trip on `bdf`, which must be bound to vfio-pci.
pub fn run(bdf: &str) -> Result<()> {
    let drv = sysfs::driver(bdf);
    ensure(drv.as_deref() == Some("vfio-pci"), || {
        format!("{bdf} is bound to {drv:?}, not the stock vfio-pci")
    })?;
    let dev = Device::open(bdf, Path::Group)?;
    dev.set_memory(true)?;
    let bar = dev.bar(0)?;
    let size = bar.size as usize;
    println!("BAR0 region: size {size:#x} offset {:#x}", bar.offset);
    ensure(size >= 4 * PAGE, || {
        format!("BAR0 of {size:#x} bytes is too small")
    })?;
    let map = Mapping::new(dev.fd(), &bar, 0, size, Place::Any)?;
    let seed = 0x5a5a_0000 ^ std::process::id();
    let pages = [0, size / 2, size - PAGE];
    for &at in &pages {
        for o in (at..at + PAGE).step_by(4) {
            map.write_u32(o, word(seed, o));
        }
    }
    for &at in &pages {
        let mut got = vec![0u8; PAGE];
        dev.read(&bar, at as u64, &mut got)?;
        ensure(got == page(seed, at), || {
            format!("VFIO pread at {at:#x} differs from what the VFIO mmap wrote")
        })?;
    }
    println!(
        "ok: VFIO mmap write -> VFIO pread (pages at 0, {:#x}, {:#x})",
        size / 2,
        size - PAGE
    );

    let res = format!("/sys/bus/pci/devices/{bdf}/resource0");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&res)
        .ctx(format!("open {res}"))?;
    let addr = raw_mmap(size, sys::MAP_SHARED, f.as_raw_fd(), 0)
        .map_err(|e| err!("mmap {res}: {}", std::io::Error::from_raw_os_error(e)))?;
    // SAFETY (the loads): inside the `size` bytes just mapped, 4-byte aligned.
    let load = |o: usize| unsafe { probe::load((addr + o) as *const u32) };
    let views: Vec<_> = pages.iter().map(|&at| read_page(load, at)).collect();
    raw_munmap(addr, size);
    for (&at, got) in pages.iter().zip(views) {
        ensure(got.as_deref() == Some(&page(seed, at)[..]), || {
            format!("sysfs resource0 mmap at {at:#x} differs from what the VFIO mmap wrote (SIGBUS: {})", got.is_none())
        })?;
    }
    println!("ok: VFIO mmap write -> sysfs resource0 mmap");

    let view = bar0_view(bdf, true)?;
    for &at in &pages {
        let mut got = vec![0u8; PAGE];
        view.read_exact_at(&mut got, at as u64)
            .ctx(format!("read mock-pci debugfs bar0 at {at:#x}"))?;
        ensure(got == page(seed, at), || {
            format!("mock-pci debugfs bar0 at {at:#x} differs from what the VFIO mmap wrote")
        })?;
    }
    println!("ok: VFIO mmap write -> mock-pci debugfs view");

    let other = !seed;
    dev.write(&bar, 2 * PAGE as u64, &page(other, 2 * PAGE))?;
    ensure(
        read_page(|o| map.read_u32(o), 2 * PAGE) == Some(page(other, 2 * PAGE)),
        || "VFIO mmap differs from what VFIO pwrite wrote".into(),
    )?;
    println!("ok: VFIO pwrite -> VFIO mmap");
    view.write_all_at(&page(seed, 3 * PAGE), 3 * PAGE as u64)
        .ctx("write mock-pci debugfs bar0")?;
    ensure(
        read_page(|o| map.read_u32(o), 3 * PAGE) == Some(page(seed, 3 * PAGE)),
        || "VFIO mmap differs from what the debugfs view wrote".into(),
    )?;
    println!("ok: mock-pci debugfs write -> VFIO mmap");
    Ok(())
}
