// SPDX-License-Identifier: GPL-2.0

//! `dma-perm BDF`: the DMA engine of a mock function (`dma=1`) behind the
//! software IOMMU (`iommu=1`) honours the permissions of a VFIO mapping, as
//! an IOMMU does: through a type1 container, a copy into a read-only
//! mapping ends in a write fault and leaves it untouched, a copy out of a
//! write-only mapping ends in a read fault, and a copy from the read-only
//! to the write-only mapping (each used the way it permits) goes through.
//! The device is programmed through its VFIO BAR2 region (the registers of
//! mock-pci/dma.rs).

use crate::common::ensure;
use std::time::{Duration, Instant};
use vfio_revoke_selftests::error::Result;
use vfio_revoke_selftests::mapping::{raw_mmap, raw_munmap};
use vfio_revoke_selftests::probe::PAGE;
use vfio_revoke_selftests::uapi::{VFIO_DMA_MAP_FLAG_READ as READ, VFIO_DMA_MAP_FLAG_WRITE as WRITE};
use vfio_revoke_selftests::vfio::{Device, Path, Region};
use vfio_revoke_selftests::{err, sys};

const MAGIC: u32 = 0x4d44_4b4d;
const R_SRC: u64 = 0x10;
const R_DST: u64 = 0x18;
const R_SIZE: u64 = 0x20;
const R_COUNT: u64 = 0x24;
const R_CTRL: u64 = 0x28;
const R_DOORBELL: u64 = 0x30;
const R_STATUS: u64 = 0x34;
const R_ERROR: u64 = 0x38;
const R_FAULT_IOVA: u64 = 0x40;
const STATUS_DONE: u32 = 2;
const STATUS_ERROR: u32 = 3;
const READ_FAULT: u32 = 1;
const WRITE_FAULT: u32 = 2;

/// The four buffers, one page each, and where each is mapped.
const BUFFERS: [(&str, u64, u32); 4] = [
    ("rw", 0x10_0000, READ | WRITE),
    ("ro", 0x20_0000, READ),
    ("wo", 0x30_0000, WRITE),
    ("rw2", 0x40_0000, READ | WRITE),
];

/// How a job ended: STATUS, ERROR, FAULT_IOVA.
type Outcome = (u32, u32, u64);

struct Engine<'a> {
    dev: &'a Device,
    bar2: Region,
}

impl Engine<'_> {
    fn write_u64(&self, at: u64, v: u64) -> Result<()> {
        self.dev.write_u32(&self.bar2, at, v as u32)?;
        self.dev.write_u32(&self.bar2, at + 4, (v >> 32) as u32)
    }

    /// Copies one page from IOVA `src` to IOVA `dst` and waits for the end.
    fn copy(&self, src: u64, dst: u64) -> Result<Outcome> {
        self.write_u64(R_SRC, src)?;
        self.write_u64(R_DST, dst)?;
        for (reg, v) in [(R_SIZE, PAGE as u32), (R_COUNT, 1), (R_CTRL, 0), (R_DOORBELL, 1)] {
            self.dev.write_u32(&self.bar2, reg, v)?;
        }
        let start = Instant::now();
        loop {
            let status = self.dev.read_u32(&self.bar2, R_STATUS)?;
            let doorbell = self.dev.read_u32(&self.bar2, R_DOORBELL)?;
            if doorbell == 0 && (status == STATUS_DONE || status == STATUS_ERROR) {
                let error = self.dev.read_u32(&self.bar2, R_ERROR)?;
                let lo = self.dev.read_u32(&self.bar2, R_FAULT_IOVA)?;
                let hi = self.dev.read_u32(&self.bar2, R_FAULT_IOVA + 4)?;
                return Ok((status, error, u64::from(hi) << 32 | u64::from(lo)));
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err(err!("copy {src:#x} -> {dst:#x}: no end after 10 s (STATUS {status})"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A copy of page `i` of the buffers at `base`, read volatile: the device
/// writes them behind the compiler's back.
fn snapshot(base: usize, i: usize) -> Vec<u8> {
    let p = (base + i * PAGE) as *const u8;
    // SAFETY: `run` mapped BUFFERS.len() pages at `base` and unmaps them
    // only after the last use.
    (0..PAGE).map(|o| unsafe { p.add(o).read_volatile() }).collect()
}

/// Fills page `i` of the buffers at `base` with `v`.
fn fill(base: usize, i: usize, v: u8) {
    // SAFETY: as in `snapshot`.
    unsafe { std::ptr::write_bytes((base + i * PAGE) as *mut u8, v, PAGE) };
}

pub fn run(bdf: &str) -> Result<()> {
    let dev = Device::open(bdf, Path::Group)?;
    let bar2 = dev.region(2)?;
    let magic = dev.read_u32(&bar2, 0)?;
    ensure(magic == MAGIC, || {
        format!("{bdf}: BAR2 MAGIC {magic:#x}, not the DMA engine's {MAGIC:#x} (dma=1?)")
    })?;
    dev.set_memory(true)?;
    dev.set_master(true)?;
    let len = BUFFERS.len() * PAGE;
    let base = raw_mmap(len, sys::MAP_PRIVATE | sys::MAP_ANONYMOUS, -1, 0)
        .map_err(|e| err!("mmap of {len} bytes: errno {e}"))?;
    let result = (|| {
        for (i, (name, iova, flags)) in BUFFERS.iter().enumerate() {
            fill(base, i, 0x11 * (i as u8 + 1));
            dev.map_dma(base + i * PAGE, *iova, PAGE as u64, *flags)?;
            println!("ok: {name} page mapped at IOVA {iova:#x} with flags {flags:#x}");
        }
        checks(&Engine { dev: &dev, bar2 }, base)
    })();
    raw_munmap(base, len);
    result
}

fn checks(engine: &Engine<'_>, base: usize) -> Result<()> {
    let iova = |name: &str| BUFFERS.iter().position(|b| b.0 == name).map(|i| (i, BUFFERS[i].1));
    let (rw, rw2, ro, wo) = match (iova("rw"), iova("rw2"), iova("ro"), iova("wo")) {
        (Some(a), Some(b), Some(c), Some(d)) => (a, b, c, d),
        _ => return Err(err!("a buffer is missing from BUFFERS")),
    };
    let expect = |what: &str, got: Outcome, want: Outcome| {
        ensure(got == want, || {
            format!("{what}: STATUS {}, ERROR {}, FAULT_IOVA {:#x}; expected {}, {}, {:#x}", got.0, got.1, got.2, want.0, want.1, want.2)
        })
    };
    let same = |a: usize, b: usize| snapshot(base, a) == snapshot(base, b);

    expect("rw -> rw2", engine.copy(rw.1, rw2.1)?, (STATUS_DONE, 0, 0))?;
    ensure(same(rw.0, rw2.0), || "rw -> rw2: the copy differs from its source".into())?;
    println!("ok: a copy between read-write mappings goes through");

    let before = snapshot(base, ro.0);
    expect("rw -> ro", engine.copy(rw.1, ro.1)?, (STATUS_ERROR, WRITE_FAULT, ro.1))?;
    ensure(snapshot(base, ro.0) == before, || "rw -> ro: the read-only page was written".into())?;
    println!("ok: a copy into a read-only mapping ends in WRITE_FAULT at its IOVA, the page untouched");

    expect("wo -> rw2", engine.copy(wo.1, rw2.1)?, (STATUS_ERROR, READ_FAULT, wo.1))?;
    println!("ok: a copy out of a write-only mapping ends in READ_FAULT at its IOVA");

    expect("ro -> wo", engine.copy(ro.1, wo.1)?, (STATUS_DONE, 0, 0))?;
    ensure(same(ro.0, wo.0), || "ro -> wo: the copy differs from its source".into())?;
    println!("ok: a copy from the read-only to the write-only mapping goes through");
    Ok(())
}
