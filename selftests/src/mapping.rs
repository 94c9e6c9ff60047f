// SPDX-License-Identifier: GPL-2.0

//! mmap of a BAR region, placed where a test needs it (anywhere, PMD
//! aligned, deliberately misaligned), and the vma surgery the tests do
//! before forking: punching a page out (a split) and moving it (mremap).

use crate::err;
use crate::error::{last_os, Error, Result};
use crate::probe::{self, Seen, PAGE};
use crate::sys;
use crate::vfio::Region;
use std::os::fd::RawFd;

/// PMD size on x86_64.
pub const PMD: usize = 2 << 20;

/// Where to put a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Wherever the kernel chooses.
    Any,
    /// At a 2 MiB aligned address (PMD entries possible).
    PmdAligned,
    /// One page past a 2 MiB aligned address (no PMD entry possible).
    Misaligned,
}

/// A contiguous part of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Virtual address.
    pub addr: usize,
    /// Length in bytes.
    pub len: usize,
    /// Offset inside the BAR that `addr` maps.
    pub bar_offset: usize,
}

/// A mapping of (part of) a BAR, in one or more pieces; unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    pieces: Vec<Piece>,
    /// Ranges to munmap on drop (reservations included).
    owned: Vec<(usize, usize)>,
}

/// Reserves `len` bytes of address space (PROT_NONE, unmapped on drop of
/// the owning mapping).
fn reserve(len: usize) -> Result<usize> {
    // SAFETY: an anonymous PROT_NONE mapping has no effect on other memory.
    let p = unsafe {
        sys::mmap(
            std::ptr::null_mut(),
            len,
            sys::PROT_NONE,
            sys::MAP_PRIVATE | sys::MAP_ANONYMOUS | sys::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == sys::MAP_FAILED {
        return Err(last_os(format!("reserve {len} bytes of address space")));
    }
    Ok(p as usize)
}

/// Plain `mmap()`; returns the address or the errno.
pub fn raw_mmap(len: usize, flags: i32, fd: RawFd, offset: u64) -> std::result::Result<usize, i32> {
    raw_mmap_at(0, len, flags, fd, offset)
}

/// `mmap()` at `addr` (a hint, or the place for `MAP_FIXED`, which callers
/// only use over a reservation of their own); returns the address or the
/// errno.
fn raw_mmap_at(
    addr: usize,
    len: usize,
    flags: i32,
    fd: RawFd,
    offset: u64,
) -> std::result::Result<usize, i32> {
    // SAFETY: without MAP_FIXED the kernel picks an unused address; with it,
    // the caller owns the range it replaces.
    let p = unsafe {
        sys::mmap(
            addr as *mut sys::c_void,
            len,
            sys::PROT_READ | sys::PROT_WRITE,
            flags,
            fd,
            offset as sys::off_t,
        )
    };
    if p == sys::MAP_FAILED {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(p as usize)
    }
}

/// `munmap()`, errors ignored (used on ranges this process owns).
pub fn raw_munmap(addr: usize, len: usize) {
    // SAFETY: callers pass ranges they mapped and no longer use.
    unsafe { sys::munmap(addr as *mut sys::c_void, len) };
}

impl Mapping {
    /// Maps `len` bytes of `bar` starting at `bar_offset`, shared, RW.
    pub fn new(
        fd: RawFd,
        bar: &Region,
        bar_offset: usize,
        len: usize,
        place: Place,
    ) -> Result<Self> {
        let file_off = bar.offset + bar_offset as u64;
        let mut owned = Vec::new();
        let fixed = match place {
            Place::Any => None,
            Place::PmdAligned | Place::Misaligned => {
                let span = len + 2 * PMD;
                let res = reserve(span)?;
                owned.push((res, span));
                let aligned = (res + PMD - 1) & !(PMD - 1);
                Some(if place == Place::Misaligned {
                    aligned + PAGE
                } else {
                    aligned
                })
            }
        };
        let (addr_hint, flags) = match fixed {
            Some(a) => (a, sys::MAP_SHARED | sys::MAP_FIXED),
            None => (0, sys::MAP_SHARED),
        };
        let addr = match raw_mmap_at(addr_hint, len, flags, fd, file_off) {
            Ok(addr) => addr,
            Err(errno) => {
                for (a, l) in owned {
                    raw_munmap(a, l);
                }
                return Err(Error(format!(
                    "mmap {len:#x} bytes of BAR{} at offset {bar_offset:#x}: {}",
                    bar.index,
                    std::io::Error::from_raw_os_error(errno)
                )));
            }
        };
        owned.push((addr, len));
        Ok(Self {
            pieces: vec![Piece {
                addr,
                len,
                bar_offset,
            }],
            owned,
        })
    }

    /// The pieces, in address order.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// Total bytes mapped.
    pub fn len(&self) -> usize {
        self.pieces.iter().map(|p| p.len).sum()
    }

    /// Whether nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Address of the first piece.
    pub fn addr(&self) -> usize {
        self.pieces[0].addr
    }

    /// Writes `v` at byte `offset` of the first piece.
    pub fn write_u32(&self, offset: usize, v: u32) {
        assert!(offset + 4 <= self.pieces[0].len && offset.is_multiple_of(4));
        // SAFETY: inside the first piece, aligned, mapped RW.
        unsafe { std::ptr::write_volatile((self.pieces[0].addr + offset) as *mut u32, v) };
    }

    /// Reads byte `offset` of the first piece; `None` on SIGBUS.
    pub fn read_u32(&self, offset: usize) -> Option<u32> {
        assert!(offset + 4 <= self.pieces[0].len && offset.is_multiple_of(4));
        // SAFETY: inside the first piece, aligned, mapped readable.
        unsafe { probe::load((self.pieces[0].addr + offset) as *const u32) }
    }

    /// A two-page shared anonymous mapping for warming up a forked process:
    /// page 0 holds a word `expect` does not, page 1 the word it does, so a
    /// [`Mapping::pass`] over it runs through every branch a real pass can
    /// take short of SIGBUS.
    pub fn scratch(expect: &dyn Fn(usize) -> u32) -> Result<Self> {
        let len = 2 * PAGE;
        let addr = raw_mmap(len, sys::MAP_SHARED | sys::MAP_ANONYMOUS, -1, 0).map_err(|e| {
            err!(
                "mmap scratch pages: {}",
                std::io::Error::from_raw_os_error(e)
            )
        })?;
        let m = Self {
            pieces: vec![Piece {
                addr,
                len,
                bar_offset: 0,
            }],
            owned: vec![(addr, len)],
        };
        m.write_u32(0, !expect(0));
        m.write_u32(PAGE, expect(1));
        Ok(m)
    }

    /// Reads the first word of every page of every piece; `expect` gets the
    /// page's index in the BAR.
    pub fn pass(&self, expect: &dyn Fn(usize) -> u32) -> Seen {
        let f0 = probe::minflt();
        let mut all = Seen {
            present: probe::NOT_MEASURED,
            ..Seen::default()
        };
        for p in &self.pieces {
            let first = p.bar_offset / PAGE;
            // SAFETY: each piece is mapped readable and page aligned.
            let s = unsafe { probe::pass(p.addr as *const u8, p.len, &|i| expect(first + i)) };
            if s.bad > 0 && all.bad == 0 {
                all.first_bad = first as u32 + s.first_bad;
                all.value = s.value;
            } else if all.pages == 0 && all.bad == 0 {
                all.value = s.value;
            }
            all.pages += s.pages;
            all.bad += s.bad;
            all.sigbus += s.sigbus;
        }
        all.faults = probe::minflt() - f0;
        all
    }

    /// Unmaps page `page` of a single-piece mapping, splitting its vma.
    pub fn punch(&mut self, page: usize) -> Result<()> {
        let [p] = self.pieces[..] else {
            return Err(err!("punch: mapping already split"));
        };
        if page == 0 || (page + 1) * PAGE >= p.len {
            return Err(err!(
                "punch: page {page} is not in the middle of {:#x} bytes",
                p.len
            ));
        }
        let hole = p.addr + page * PAGE;
        // SAFETY: a page inside our own mapping, which nothing references.
        if unsafe { sys::munmap(hole as *mut sys::c_void, PAGE) } != 0 {
            return Err(last_os("munmap of a middle page"));
        }
        self.pieces = vec![
            Piece {
                addr: p.addr,
                len: page * PAGE,
                bar_offset: p.bar_offset,
            },
            Piece {
                addr: hole + PAGE,
                len: p.len - (page + 1) * PAGE,
                bar_offset: p.bar_offset + (page + 1) * PAGE,
            },
        ];
        Ok(())
    }

    /// Maps `len` more bytes of `bar` from `bar_offset` as a further piece
    /// (a second mmap of the same BAR).
    pub fn add(&mut self, fd: RawFd, bar: &Region, bar_offset: usize, len: usize) -> Result<()> {
        let mut more = Self::new(fd, bar, bar_offset, len, Place::Any)?;
        self.pieces.append(&mut more.pieces);
        self.owned.append(&mut more.owned);
        Ok(())
    }

    /// The same pieces, owning nothing: a forked process's handle on the
    /// mapping it inherited, to reshape without touching the original's
    /// bookkeeping.
    pub fn view(&self) -> Self {
        Self {
            pieces: self.pieces.clone(),
            owned: Vec::new(),
        }
    }

    /// Shrinks a single-piece mapping in place to its first `len` bytes
    /// with mremap.
    pub fn shrink(&mut self, len: usize) -> Result<()> {
        let [p] = self.pieces[..] else {
            return Err(err!("shrink: mapping is split"));
        };
        // SAFETY: shrinks our own mapping; the tail is no longer used.
        let r = unsafe { sys::mremap(p.addr as *mut sys::c_void, p.len, len, 0) };
        if r == sys::MAP_FAILED {
            return Err(last_os("mremap shrink of the BAR mapping"));
        }
        self.pieces[0].len = len;
        Ok(())
    }

    /// Tries to grow the first piece in place by a page with mremap, which
    /// the kernel must refuse for a PFN map: the errno it failed with, or
    /// `None` if it grew.
    pub fn try_expand(&self) -> Option<i32> {
        let p = self.pieces[0];
        // SAFETY: a failed mremap changes nothing; a successful one grows
        // our own mapping, which the caller reports as a failure (the
        // extra page is unmapped with the reservation-less piece at drop).
        let r = unsafe { sys::mremap(p.addr as *mut sys::c_void, p.len, p.len + PAGE, 0) };
        if r == sys::MAP_FAILED {
            Some(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            None
        }
    }

    /// `madvise(advice)` over every piece: the first errno, if any failed.
    pub fn madvise(&self, advice: i32) -> Option<i32> {
        self.pieces.iter().find_map(|p| {
            // SAFETY: advice over our own mapping.
            let r = unsafe { sys::madvise(p.addr as *mut sys::c_void, p.len, advice) };
            (r != 0).then(|| std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        })
    }

    /// Moves a single-piece mapping to a new address with mremap.
    pub fn remap(&mut self) -> Result<()> {
        let [p] = self.pieces[..] else {
            return Err(err!("remap: mapping is split"));
        };
        let dest = reserve(p.len)?;
        self.owned.push((dest, p.len));
        // SAFETY: moves our own mapping onto our own reservation.
        let r = unsafe {
            sys::mremap(
                p.addr as *mut sys::c_void,
                p.len,
                p.len,
                sys::MREMAP_MAYMOVE | sys::MREMAP_FIXED,
                dest as *mut sys::c_void,
            )
        };
        if r == sys::MAP_FAILED {
            return Err(last_os("mremap of the BAR mapping"));
        }
        self.pieces[0].addr = r as usize;
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        for &(a, l) in &self.owned {
            raw_munmap(a, l);
        }
    }
}
