// SPDX-License-Identifier: GPL-2.0

//! The DMA engine of a mock function (`dma=1`): memcpy between two IOVAs
//! through the function's IOMMU domain, with a completion interrupt.
//!
//! Its registers are the first bytes of BAR2 (plain BAR memory: software
//! writes them through its mapping, and the device thread, poller.rs,
//! polls every function's doorbell):
//!
//! | offset | register | |
//! |---|---|---|
//! | 0x00 | MAGIC | 0x4d444b4d ("MKDM"), set at power-on and every reset |
//! | 0x04 | VERSION | 1 |
//! | 0x08 | MAX_SIZE | largest SIZE: 1 MiB |
//! | 0x0c | MAX_COUNT | largest COUNT: 64 |
//! | 0x10 | SRC | source IOVA (64 bits) |
//! | 0x18 | DST | destination IOVA (64 bits) |
//! | 0x20 | SIZE | bytes per copy |
//! | 0x24 | COUNT | times the copy is done |
//! | 0x28 | CTRL | bit 0: raise MSI-X vector VECTOR when the job ends |
//! | 0x2c | VECTOR | MSI-X vector |
//! | 0x30 | DOORBELL | non-zero starts a job; the engine clears it |
//! | 0x34 | STATUS | 0 idle, 1 busy, 2 done, 3 error |
//! | 0x38 | ERROR | [`Error`] |
//! | 0x40 | FAULT_IOVA | the IOVA that faulted (64 bits) |
//! | 0x48 | DONE_COUNT | jobs ended since reset |
//!
//! The engine serves a function only while it decodes memory, is bus
//! master and in D0, and not held in reset. It translates every page
//! through the IOMMU domain the function is attached to (iommu.rs: the
//! fence makes unmaps wait for a copy in flight): an unmapped IOVA, a
//! source mapped without read permission or a destination mapped without
//! write permission (a read-only VFIO or iommufd mapping) ends the job with
//! a read or write fault, a function with no paging domain
//! (`iommu=0`, or blocked) cannot DMA at all. STATUS is written last, so a
//! driver that sees it done sees the rest.

use crate::{fabric::DmaStats, host::Host, iommu::Access, kthread, msi_domain::Kind, physmem};
use kernel::{bindings, prelude::*, time::Instant};

const MAGIC: u32 = 0x4d44_4b4d;
const VERSION: u32 = 1;
/// Largest SIZE.
pub(crate) const MAX_SIZE: u32 = 1 << 20;
/// Largest COUNT.
pub(crate) const MAX_COUNT: u32 = 64;

const R_MAGIC: u64 = 0x00;
const R_SRC: u64 = 0x10;
const R_DOORBELL: u64 = 0x30;
const R_STATUS: u64 = 0x34;
const R_ERROR: u64 = 0x38;
const R_DONE_COUNT: u64 = 0x48;
/// Bytes of the register block.
const REGS: usize = 0x50;

const STATUS_BUSY: u32 = 1;
const STATUS_DONE: u32 = 2;
const STATUS_ERROR: u32 = 3;
const CTRL_INT_EN: u32 = 1;

/// Bytes copied per hold of the IOMMU fence.
const CHUNK: usize = 64 << 10;

/// Why a job failed (register ERROR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Error {
    /// The source range is not mapped readable.
    ReadFault = 1,
    /// The destination range is not mapped writable.
    WriteFault = 2,
    /// An IOVA maps to something that is not RAM.
    NotRam = 3,
    /// The function is not attached to a paging domain.
    NoDomain = 4,
    /// SIZE, COUNT or VECTOR out of range.
    BadArgs = 5,
}

/// A job, as the registers describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Job {
    src: u64,
    dst: u64,
    size: u32,
    count: u32,
    ctrl: u32,
    vector: u32,
}

impl Job {
    /// The job in the register block `r` (from SRC on).
    fn parse(r: &[u8; REGS]) -> Self {
        let u32_at = |o: usize| u32::from_le_bytes([r[o], r[o + 1], r[o + 2], r[o + 3]]);
        let u64_at = |o: usize| u64::from(u32_at(o)) | u64::from(u32_at(o + 4)) << 32;
        Job {
            src: u64_at(R_SRC as usize),
            dst: u64_at(0x18),
            size: u32_at(0x20),
            count: u32_at(0x24),
            ctrl: u32_at(0x28),
            vector: u32_at(0x2c),
        }
    }

    /// Whether the arguments are in range for a function with `vectors`
    /// MSI-X vectors.
    fn valid(&self, vectors: u32) -> bool {
        (1..=MAX_SIZE).contains(&self.size)
            && (1..=MAX_COUNT).contains(&self.count)
            && (self.ctrl & CTRL_INT_EN == 0 || self.vector < vectors)
    }
}

/// Writes the register block's reset state at `bar2` (physical): identity
/// and limits, everything else zero.
pub(crate) fn reset(host: &Host, bar2: u64) -> Result {
    let mut r = [0u8; REGS];
    for (o, v) in [(0, MAGIC), (4, VERSION), (8, MAX_SIZE), (12, MAX_COUNT)] {
        r[o..o + 4].copy_from_slice(&v.to_le_bytes());
    }
    host.window.write(bar2 + R_MAGIC, &r)
}

impl Host {
    /// The DMA counters of the function in `slot`.
    pub(crate) fn dma_stats(&self, slot: usize) -> DmaStats {
        self.fabric.lock().dma_stats(slot)
    }

    fn write_u32(&self, bar2: u64, reg: u64, v: u32) -> Result {
        self.window.write(bar2 + reg, &v.to_le_bytes())
    }

    /// Whether the function in `slot` has a DMA engine and may run DMA now.
    fn may_dma(&self, slot: usize) -> bool {
        let mut fabric = self.fabric.lock();
        if !fabric.has_dma(slot) {
            return false;
        }
        let Some(cfg) = fabric.function_mut(slot) else {
            return false;
        };
        let want = bindings::PCI_COMMAND_MEMORY | bindings::PCI_COMMAND_MASTER;
        cfg.read(bindings::PCI_COMMAND as usize, 2) & want == want && cfg.power_state() == 0
    }

    /// Looks at every function's doorbell once and runs the jobs it finds;
    /// says whether there was one.
    pub(crate) fn dma_poll(&self) -> bool {
        let mut busy = false;
        for slot in 0..self.layout.slots() {
            if !self.may_dma(slot) {
                continue;
            }
            let bar2 = self.layout.bar2(slot);
            // The doorbell first, alone: software writes the job before it
            // rings, so the job read after it (x86 keeps loads in order) is
            // the one the doorbell is for, never the previous one.
            let mut bell = [0u8; 4];
            if self.window.read(bar2 + R_DOORBELL, &mut bell).is_err() || bell == [0; 4] {
                continue;
            }
            let mut regs = [0u8; REGS];
            if self.window.read(bar2, &mut regs).is_err() {
                continue;
            }
            busy = true;
            if self.run(slot, bar2, Job::parse(&regs)).is_err() {
                pr_warn!("slot {}: DMA engine cannot reach its registers\n", slot);
            }
        }
        busy
    }

    /// Takes the job at the doorbell, runs it, and reports its end.
    fn run(&self, slot: usize, bar2: u64, job: Job) -> Result {
        self.write_u32(bar2, R_DOORBELL, 0)?;
        self.write_u32(bar2, R_STATUS, STATUS_BUSY)?;
        let start = Instant::<kernel::time::Monotonic>::now();
        let vectors = self
            .fabric
            .lock()
            .template(slot)
            .and_then(|t| t.msix())
            .map_or(0, |t| t.vectors());
        let result = if job.valid(vectors) {
            self.copy(slot, &job)
        } else {
            Err(Some((Error::BadArgs, 0)))
        };
        let (status, error, fault) = match result {
            Ok(()) => (STATUS_DONE, 0, 0),
            Err(Some((e, iova))) => (STATUS_ERROR, e as u32, iova),
            // Reset (which rewrote the registers), bus master off or
            // unplugged in the middle: the job just stops.
            Err(None) => return Ok(()),
        };
        let mut end = [0u8; REGS - R_ERROR as usize];
        let mut done = [0u8; 4];
        self.window.read(bar2 + R_DONE_COUNT, &mut done)?;
        end[0..4].copy_from_slice(&error.to_le_bytes());
        end[8..16].copy_from_slice(&fault.to_le_bytes());
        end[16..20].copy_from_slice(&u32::from_le_bytes(done).wrapping_add(1).to_le_bytes());
        self.window.write(bar2 + R_ERROR, &end)?;
        self.write_u32(bar2, R_STATUS, status)?;
        let ns = start.elapsed().as_nanos() as u64;
        self.fabric.lock().count_dma(slot, |s| {
            s.jobs += 1;
            if status == STATUS_ERROR {
                s.errors += 1;
            } else {
                s.bytes += u64::from(job.size) * u64::from(job.count);
            }
            s.busy_ns += ns;
        });
        if job.ctrl & CTRL_INT_EN != 0 {
            // A vector beyond the table made the job fail (BadArgs), and
            // `fire` refuses it: nothing to raise then.
            let _ = self.fire(slot, Kind::MsiX, job.vector);
        }
        Ok(())
    }

    /// Copies SIZE bytes from SRC to DST, COUNT times, page by page through
    /// the IOMMU; stops at the first fault (`Some`: the error and the IOVA)
    /// or when the function may no longer DMA (`None`: reset, bus master
    /// off, unplug).
    fn copy(&self, slot: usize, job: &Job) -> core::result::Result<(), Option<(Error, u64)>> {
        let fail = |e: Error, iova: u64| Some((e, iova));
        let Some(iommu) = self.iommu.as_deref() else {
            return Err(fail(Error::NoDomain, 0));
        };
        let size = u64::from(job.size);
        for _ in 0..job.count {
            let mut off = 0u64;
            while off < size {
                if !self.may_dma(slot) {
                    return Err(None);
                }
                let t = iommu.translation(slot).ok_or(fail(Error::NoDomain, 0))?;
                let budget = off + CHUNK as u64;
                while off < size.min(budget) {
                    let (s, d) = (job.src + off, job.dst + off);
                    let n = (size - off)
                        .min(physmem::PAGE_SIZE - (s & (physmem::PAGE_SIZE - 1)))
                        .min(physmem::PAGE_SIZE - (d & (physmem::PAGE_SIZE - 1)));
                    let sp = t.phys(s, Access::Read).ok_or(fail(Error::ReadFault, s))?;
                    let dp = t.phys(d, Access::Write).ok_or(fail(Error::WriteFault, d))?;
                    physmem::copy(dp, sp, n as usize)
                        .map_err(|p| fail(Error::NotRam, if p == sp { s } else { d }))?;
                    off += n;
                }
                drop(t);
                kthread::cond_resched();
            }
        }
        Ok(())
    }
}
