// SPDX-License-Identifier: GPL-2.0

//! Bad input through the VFIO uAPI: mmaps, ioctls, preads and pwrites a
//! careless or hostile user could issue, each with the answer VFIO's own
//! code gives (vfio_main.c, vfio_pci_core.c, vfio_pci_rdwr.c,
//! vfio_pci_config.c). vfio_variant forwards all of them to the core, so
//! it must answer exactly as the stock vfio-pci driver does. Used by
//! `vfio_stress bad-input` (which also requires that no case writes to the
//! kernel log) and `mock_pci_checks bad-input-vs-stock` (which runs every
//! case with both drivers and compares).

use crate::error::Result;
use crate::mapping::{raw_mmap, raw_munmap};
use crate::probe::PAGE;
use crate::scenarios::region::refused_mmaps;
use crate::sys;
use crate::uapi::{self, argsz};
use crate::vfio::{Device, Region};
use std::os::unix::fs::FileExt;

/// What a call returned: a count (or 0), or an errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A count (or 0).
    Ok(usize),
    /// An errno.
    Err(i32),
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Ok(n) => write!(f, "success ({n})"),
            Answer::Err(e) => write!(f, "{}", errno_name(*e)),
        }
    }
}

/// `EINVAL` and the like, or the number and its text.
pub fn errno_name(e: i32) -> String {
    let name = match e {
        sys::EIO => "EIO",
        sys::EFAULT => "EFAULT",
        sys::ENODEV => "ENODEV",
        sys::EINVAL => "EINVAL",
        sys::ENOTTY => "ENOTTY",
        _ => return format!("errno {e} ({})", std::io::Error::from_raw_os_error(e)),
    };
    name.to_string()
}

fn io_answer(r: std::io::Result<usize>) -> Answer {
    match r {
        Ok(n) => Answer::Ok(n),
        Err(e) => Answer::Err(e.raw_os_error().unwrap_or(0)),
    }
}

/// `ioctl(fd, req, arg)` as an [`Answer`].
///
/// # Safety
///
/// `arg` must be what `req` expects to read or write, or a pointer the
/// kernel rejects without touching memory (NULL).
unsafe fn ioctl(fd: i32, req: u64, arg: usize) -> Answer {
    // SAFETY: per the caller.
    let r = unsafe { sys::ioctl(fd, req as _, arg) };
    if r < 0 {
        Answer::Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Answer::Ok(r as usize)
    }
}

/// Called once per case: class (`mmap`, `ioctl`, `pread`, ...), what was
/// done, the answer VFIO gives, the answer the driver gave.
pub type Judge<'a> = dyn FnMut(&str, &str, Answer, Answer) + 'a;

/// Runs every case against `dev` (memory enabled), whose BAR `bar` is
/// mappable, and hands each to `judge`. Leaves memory enabled.
pub fn run_cases(dev: &Device, bar: &Region, judge: &mut Judge<'_>) -> Result<()> {
    mmaps(dev, bar, judge)?;
    ioctls(dev, judge);
    rw(dev, bar, judge)?;
    config_writes(dev, judge)
}

fn mmaps(dev: &Device, bar: &Region, c: &mut Judge<'_>) -> Result<()> {
    for m in refused_mmaps(dev, bar)? {
        let got = match raw_mmap(m.len, m.flags, dev.fd(), m.offset) {
            Ok(addr) => {
                raw_munmap(addr, m.len.max(PAGE));
                Answer::Ok(0)
            }
            Err(e) => Answer::Err(e),
        };
        c("mmap", m.what, Answer::Err(m.errno), got);
    }
    Ok(())
}

fn ioctls(dev: &Device, c: &mut Judge<'_>) {
    let fd = dev.fd();
    let einval = Answer::Err(sys::EINVAL);
    let enotty = Answer::Err(sys::ENOTTY);
    let vfio = |nr: u64| ((b';' as u64) << 8) | (100 + nr);
    // SAFETY (every call below): no argument, or a pointer to a live
    // struct of the size the request reads and writes (argsz never claims
    // more than the struct), or NULL.
    unsafe {
        c(
            "ioctl",
            "unknown VFIO request (VFIO_BASE + 60)",
            enotty,
            ioctl(fd, vfio(60), 0),
        );
        c(
            "ioctl",
            "unknown request 0xdeadbeef",
            enotty,
            ioctl(fd, 0xdead_beef, 0),
        );

        let mut info = uapi::DeviceInfo::default();
        c(
            "ioctl",
            "GET_INFO argsz 0",
            einval,
            ioctl(fd, uapi::VFIO_DEVICE_GET_INFO, &raw mut info as usize),
        );
        info.argsz = 15;
        c(
            "ioctl",
            "GET_INFO argsz below the minimum (15)",
            einval,
            ioctl(fd, uapi::VFIO_DEVICE_GET_INFO, &raw mut info as usize),
        );
        c(
            "ioctl",
            "GET_INFO NULL argument",
            Answer::Err(sys::EFAULT),
            ioctl(fd, uapi::VFIO_DEVICE_GET_INFO, 0),
        );

        let mut r = uapi::RegionInfo::default();
        c(
            "ioctl",
            "GET_REGION_INFO argsz 0",
            einval,
            ioctl(fd, uapi::VFIO_DEVICE_GET_REGION_INFO, &raw mut r as usize),
        );
        for (index, what) in [
            (
                uapi::VFIO_PCI_VGA_REGION_INDEX,
                "GET_REGION_INFO VGA region (no VGA)",
            ),
            (dev.info.num_regions, "GET_REGION_INFO index = num_regions"),
            (u32::MAX, "GET_REGION_INFO index 0xffffffff"),
        ] {
            r = uapi::RegionInfo {
                argsz: argsz::<uapi::RegionInfo>(),
                index,
                ..Default::default()
            };
            c(
                "ioctl",
                what,
                einval,
                ioctl(fd, uapi::VFIO_DEVICE_GET_REGION_INFO, &raw mut r as usize),
            );
        }

        let mut irq = uapi::IrqInfo::default();
        c(
            "ioctl",
            "GET_IRQ_INFO argsz 0",
            einval,
            ioctl(fd, uapi::VFIO_DEVICE_GET_IRQ_INFO, &raw mut irq as usize),
        );
        irq = uapi::IrqInfo {
            argsz: argsz::<uapi::IrqInfo>(),
            index: uapi::VFIO_PCI_NUM_IRQS,
            ..Default::default()
        };
        c(
            "ioctl",
            "GET_IRQ_INFO index = VFIO_PCI_NUM_IRQS",
            einval,
            ioctl(fd, uapi::VFIO_DEVICE_GET_IRQ_INFO, &raw mut irq as usize),
        );

        // DATA_NONE and DATA_BOOL at once: vfio_set_irqs_validate_and_prepare().
        let mut set = uapi::IrqSet {
            argsz: argsz::<uapi::IrqSet>(),
            flags: 0b11 | 1 << 5,
            ..Default::default()
        };
        c(
            "ioctl",
            "SET_IRQS two data types",
            einval,
            ioctl(fd, uapi::VFIO_DEVICE_SET_IRQS, &raw mut set as usize),
        );
        set = uapi::IrqSet {
            argsz: 8,
            ..Default::default()
        };
        c(
            "ioctl",
            "SET_IRQS argsz below the minimum",
            einval,
            ioctl(fd, uapi::VFIO_DEVICE_SET_IRQS, &raw mut set as usize),
        );

        let mut f = uapi::Feature {
            argsz: 4,
            flags: uapi::VFIO_DEVICE_FEATURE_GET,
        };
        c(
            "ioctl",
            "FEATURE argsz below the minimum",
            einval,
            ioctl(fd, uapi::VFIO_DEVICE_FEATURE, &raw mut f as usize),
        );
        f = uapi::Feature {
            argsz: argsz::<uapi::Feature>(),
            flags: uapi::VFIO_DEVICE_FEATURE_GET | 1 << 20,
        };
        c(
            "ioctl",
            "FEATURE unknown flag bit 20",
            einval,
            ioctl(fd, uapi::VFIO_DEVICE_FEATURE, &raw mut f as usize),
        );
        f.flags = uapi::VFIO_DEVICE_FEATURE_GET
            | uapi::VFIO_DEVICE_FEATURE_SET
            | uapi::VFIO_DEVICE_FEATURE_LOW_POWER_EXIT;
        c(
            "ioctl",
            "FEATURE GET and SET without PROBE",
            einval,
            ioctl(fd, uapi::VFIO_DEVICE_FEATURE, &raw mut f as usize),
        );
        f.flags = uapi::VFIO_DEVICE_FEATURE_GET | 0xfff0;
        c(
            "ioctl",
            "FEATURE unknown feature 0xfff0",
            enotty,
            ioctl(fd, uapi::VFIO_DEVICE_FEATURE, &raw mut f as usize),
        );

        let mut hr = uapi::HotReset {
            argsz: argsz::<uapi::HotReset>(),
            flags: 1,
            count: 0,
        };
        c(
            "ioctl",
            "PCI_HOT_RESET flags 1",
            einval,
            ioctl(fd, uapi::VFIO_DEVICE_PCI_HOT_RESET, &raw mut hr as usize),
        );
        let mut hri = uapi::HotResetInfo::default();
        c(
            "ioctl",
            "GET_PCI_HOT_RESET_INFO argsz 0",
            einval,
            ioctl(
                fd,
                uapi::VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
                &raw mut hri as usize,
            ),
        );

        let mut ev = uapi::Ioeventfd {
            argsz: argsz::<uapi::Ioeventfd>(),
            flags: 0x30,
            fd: -1,
            ..Default::default()
        };
        c(
            "ioctl",
            "IOEVENTFD unknown flags 0x30",
            einval,
            ioctl(fd, uapi::VFIO_DEVICE_IOEVENTFD, &raw mut ev as usize),
        );
        ev.flags = 0;
        c(
            "ioctl",
            "IOEVENTFD no access size",
            einval,
            ioctl(fd, uapi::VFIO_DEVICE_IOEVENTFD, &raw mut ev as usize),
        );
    }
}

fn rw(dev: &Device, bar: &Region, c: &mut Judge<'_>) -> Result<()> {
    let file = dev.file();
    let cfg = dev.region(uapi::VFIO_PCI_CONFIG_REGION_INDEX)?;
    let at = |index: u32| u64::from(index) << uapi::VFIO_PCI_OFFSET_SHIFT;
    let (einval, efault) = (Answer::Err(sys::EINVAL), Answer::Err(sys::EFAULT));
    let end = bar.offset + bar.size;
    let mut b8 = [0u8; 8];
    let read = |off: u64, buf: &mut [u8]| io_answer(file.read_at(buf, off));
    let write = |off: u64, buf: &[u8]| io_answer(file.write_at(buf, off));

    c("pread", "BAR0 at its end", einval, read(end, &mut b8));
    c("pwrite", "BAR0 at its end", einval, write(end, &b8));
    // vfio_pci_bar_rw() shortens an access that crosses the end.
    c(
        "pread",
        "BAR0 8 bytes crossing its end",
        Answer::Ok(4),
        read(end - 4, &mut b8),
    );
    c(
        "pwrite",
        "BAR0 8 bytes crossing its end",
        Answer::Ok(4),
        write(end - 4, &b8),
    );
    c(
        "pread",
        "BAR0 zero length",
        Answer::Ok(0),
        read(bar.offset, &mut []),
    );
    c(
        "pwrite",
        "BAR0 zero length",
        Answer::Ok(0),
        write(bar.offset, &[]),
    );
    c(
        "pread",
        "huge offset (1 << 62)",
        einval,
        read(1 << 62, &mut b8),
    );
    c(
        "pwrite",
        "huge offset (1 << 62)",
        einval,
        write(1 << 62, &b8),
    );
    // pread(2) itself refuses a negative offset.
    c("pread", "offset -1", einval, read(u64::MAX, &mut b8));
    c(
        "pread",
        "past every region",
        einval,
        read(at(dev.info.num_regions), &mut b8),
    );
    c(
        "pread",
        "VGA region (no VGA)",
        einval,
        read(at(uapi::VFIO_PCI_VGA_REGION_INDEX), &mut b8),
    );
    c(
        "pread",
        "ROM region (no ROM)",
        einval,
        read(at(uapi::VFIO_PCI_ROM_REGION_INDEX), &mut b8),
    );
    c(
        "pwrite",
        "ROM region",
        einval,
        write(at(uapi::VFIO_PCI_ROM_REGION_INDEX), &b8),
    );
    if bar.index + 1 < uapi::VFIO_PCI_NUM_BARS && dev.region(bar.index + 1)?.size == 0 {
        c(
            "pread",
            "BAR of size 0",
            einval,
            read(at(bar.index + 1), &mut b8),
        );
    }
    // vfio_pci_config_rw_single() refuses any part outside config space
    // with EFAULT, before doing any of it.
    let cend = cfg.offset + cfg.size;
    c(
        "pread",
        "config at its end",
        efault,
        read(cend, &mut b8[..4]),
    );
    c(
        "pread",
        "config 4 bytes crossing its end",
        efault,
        read(cend - 2, &mut b8[..4]),
    );
    c(
        "pwrite",
        "config 4 bytes crossing its end",
        efault,
        write(cend - 2, &b8[..4]),
    );
    c(
        "pread",
        "config zero length",
        Answer::Ok(0),
        read(cfg.offset, &mut []),
    );
    // With memory off the region refuses BAR accesses.
    dev.set_memory(false)?;
    let off_read = read(bar.offset, &mut b8[..4]);
    let off_write = write(bar.offset, &b8[..4]);
    dev.set_memory(true)?;
    c(
        "pread",
        "BAR0 with COMMAND.MEM clear",
        Answer::Err(sys::EIO),
        off_read,
    );
    c(
        "pwrite",
        "BAR0 with COMMAND.MEM clear",
        Answer::Err(sys::EIO),
        off_write,
    );
    Ok(())
}

/// Writes to read-only config fields (what `vfio_fork_revoke.c badinput`
/// compared between the drivers): vfio-pci's config emulation takes the
/// write (the whole count) and changes nothing; a write at the end of
/// config space is refused with EFAULT like a read there.
fn config_writes(dev: &Device, c: &mut Judge<'_>) -> Result<()> {
    let cfg = dev.region(uapi::VFIO_PCI_CONFIG_REGION_INDEX)?;
    let file = dev.file();
    for (what, at, value) in [
        (
            "config vendor ID (read-only)",
            0u64,
            &0xbeefu16.to_le_bytes()[..],
        ),
        (
            "config class and revision (read-only)",
            8,
            &0x1234_5678u32.to_le_bytes()[..],
        ),
    ] {
        let mut before = [0u8; 4];
        let mut after = [0u8; 4];
        let n = value.len();
        dev.read(&cfg, at, &mut before[..n])?;
        c(
            "pwrite",
            what,
            Answer::Ok(n),
            io_answer(file.write_at(value, cfg.offset + at)),
        );
        dev.read(&cfg, at, &mut after[..n])?;
        // The value read back, as an answer: it must be the one before.
        c(
            "pread",
            &format!("{what} after the write"),
            Answer::Ok(u32::from_le_bytes(before) as usize),
            Answer::Ok(u32::from_le_bytes(after) as usize),
        );
    }
    c(
        "pwrite",
        "config at its end",
        Answer::Err(sys::EFAULT),
        io_answer(file.write_at(&[0u8; 2], cfg.offset + cfg.size)),
    );
    Ok(())
}
