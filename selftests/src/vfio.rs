// SPDX-License-Identifier: GPL-2.0

//! A VFIO PCI device opened through the group/container path or the
//! cdev/iommufd path, with the few operations the tests need: region info,
//! config space access (COMMAND memory and bus master enable), interrupt
//! eventfds, reset and BAR pread/pwrite.

use crate::error::{last_os, Context, Result};
use crate::sys;
use crate::uapi::{self, argsz, BindIommufd, DeviceInfo, DmaMap, GroupStatus, RegionInfo};
use crate::{err, sysfs};
use std::ffi::CString;
use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;

/// How the device is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// `/dev/vfio/vfio` container + `/dev/vfio/[noiommu-]N` group.
    Group,
    /// `/dev/vfio/devices/[noiommu-]vfioX` + `VFIO_DEVICE_BIND_IOMMUFD` to a
    /// `/dev/iommu` fd.
    Cdev,
}

impl Path {
    /// Both paths, in test order.
    pub const ALL: [Path; 2] = [Path::Group, Path::Cdev];

    /// Short name used in test names and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Path::Group => "group",
            Path::Cdev => "cdev",
        }
    }
}

/// A region of the device file: where it lives and what it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// `VFIO_PCI_*_REGION_INDEX`.
    pub index: u32,
    /// Size in bytes.
    pub size: u64,
    /// Offset in the device file.
    pub offset: u64,
    /// `VFIO_REGION_INFO_FLAG_*`.
    pub flags: u32,
}

impl Region {
    /// Whether the region may be mmapped.
    pub fn mappable(&self) -> bool {
        self.flags & uapi::VFIO_REGION_INFO_FLAG_MMAP != 0
    }
}

/// An open VFIO device. Dropping it closes the device, group and
/// container (or iommufd) file descriptors.
#[derive(Debug)]
pub struct Device {
    // Field order is drop order: the device fd goes before its group.
    file: std::fs::File,
    _group: Option<OwnedFd>,
    /// The container (group path) or the iommufd (cdev path).
    _iommu: Option<OwnedFd>,
    /// The PCI address.
    pub bdf: String,
    /// How it was opened.
    pub path: Path,
    /// `VFIO_DEVICE_GET_INFO`.
    pub info: DeviceInfo,
    config: Region,
}

/// `ioctl(fd, req, arg)`, with the errno turned into an error naming `what`.
///
/// # Safety
///
/// `arg` must be what `req` expects: a value, or a pointer to a live object
/// of the right type.
unsafe fn ioctl(fd: RawFd, req: u64, arg: usize, what: &str) -> Result<i32> {
    // SAFETY: per the caller's contract for `arg`; `fd` is any integer.
    let r = unsafe { sys::ioctl(fd, req as _, arg) };
    if r < 0 {
        Err(last_os(what))
    } else {
        Ok(r)
    }
}

fn open_fd(path: &str) -> Result<OwnedFd> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .ctx(format!("open {path}"))?;
    Ok(f.into())
}

impl Device {
    /// Opens `bdf` through `path`.
    pub fn open(bdf: &str, path: Path) -> Result<Self> {
        Self::open_with(bdf, path, None)
    }

    /// Opens `bdf` the way `self` was opened; through the cdev bound to the
    /// same iommufd (a hot reset issued through a cdev must own every
    /// device it affects through its iommufd).
    pub fn open_sibling(&self, bdf: &str) -> Result<Self> {
        let iommufd = match self.path {
            Path::Cdev => Some(
                self._iommu
                    .as_ref()
                    .ok_or_else(|| err!("{}: no iommufd", self.bdf))?
                    .try_clone()
                    .ctx("dup the iommufd")?,
            ),
            Path::Group => None,
        };
        Self::open_with(bdf, self.path, iommufd)
    }

    fn open_with(bdf: &str, path: Path, iommufd: Option<OwnedFd>) -> Result<Self> {
        let (file, group, container) = match path {
            Path::Group => open_group(bdf)?,
            Path::Cdev => {
                let (file, iommufd) = open_cdev(bdf, iommufd)?;
                (file, None, Some(iommufd))
            }
        };
        let mut info = DeviceInfo {
            argsz: argsz::<DeviceInfo>(),
            ..Default::default()
        };
        // SAFETY: `info` is a live `vfio_device_info` with argsz set.
        unsafe {
            ioctl(
                file.as_raw_fd(),
                uapi::VFIO_DEVICE_GET_INFO,
                &raw mut info as usize,
                "VFIO_DEVICE_GET_INFO",
            )?
        };
        if info.flags & uapi::VFIO_DEVICE_FLAGS_PCI == 0 {
            return Err(err!("{bdf} is not a VFIO PCI device"));
        }
        let mut dev = Device {
            file,
            _group: group,
            _iommu: container,
            bdf: bdf.to_string(),
            path,
            info,
            config: Region {
                index: 0,
                size: 0,
                offset: 0,
                flags: 0,
            },
        };
        dev.config = dev.region(uapi::VFIO_PCI_CONFIG_REGION_INDEX)?;
        Ok(dev)
    }

    /// The device file descriptor (for mmap).
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// The device file, for raw `pread`/`pwrite` at absolute offsets (the
    /// bad-input checks want the kernel's answer, short counts included).
    pub fn file(&self) -> &std::fs::File {
        &self.file
    }

    /// `VFIO_DEVICE_GET_REGION_INFO` for `index`.
    pub fn region(&self, index: u32) -> Result<Region> {
        let mut r = RegionInfo {
            argsz: argsz::<RegionInfo>(),
            index,
            ..Default::default()
        };
        // SAFETY: `r` is a live `vfio_region_info` with argsz and index set.
        unsafe {
            ioctl(
                self.fd(),
                uapi::VFIO_DEVICE_GET_REGION_INFO,
                &raw mut r as usize,
                &format!("VFIO_DEVICE_GET_REGION_INFO({index})"),
            )?
        };
        Ok(Region {
            index,
            size: r.size,
            offset: r.offset,
            flags: r.flags,
        })
    }

    /// `VFIO_DEVICE_GET_IRQ_INFO` for `index` (`VFIO_PCI_*_IRQ_INDEX`).
    pub fn irq_info(&self, index: u32) -> Result<uapi::IrqInfo> {
        let mut i = uapi::IrqInfo {
            argsz: argsz::<uapi::IrqInfo>(),
            index,
            ..Default::default()
        };
        // SAFETY: `i` is a live `vfio_irq_info` with argsz and index set.
        unsafe {
            ioctl(
                self.fd(),
                uapi::VFIO_DEVICE_GET_IRQ_INFO,
                &raw mut i as usize,
                &format!("VFIO_DEVICE_GET_IRQ_INFO({index})"),
            )?
        };
        Ok(i)
    }

    /// BAR `index`, which must exist and be mappable.
    pub fn bar(&self, index: u32) -> Result<Region> {
        if index >= uapi::VFIO_PCI_NUM_BARS {
            return Err(err!("BAR{index} does not exist (0..5)"));
        }
        let r = self.region(index)?;
        if r.size == 0 {
            return Err(err!("{}: BAR{index} is not implemented", self.bdf));
        }
        if !r.mappable() {
            return Err(err!(
                "{}: BAR{index} ({} bytes) cannot be mmapped (flags {:#x})",
                self.bdf,
                r.size,
                r.flags
            ));
        }
        Ok(r)
    }

    /// Whether `VFIO_DEVICE_RESET` is supported.
    pub fn has_reset(&self) -> bool {
        self.info.flags & uapi::VFIO_DEVICE_FLAGS_RESET != 0
    }

    /// Reads `buf.len()` bytes at `offset` of `region`.
    pub fn read(&self, region: &Region, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.file
            .read_exact_at(buf, region.offset + offset)
            .ctx(format!(
                "pread {} bytes at {offset:#x} of region {}",
                buf.len(),
                region.index
            ))
    }

    /// Writes `buf` at `offset` of `region`.
    pub fn write(&self, region: &Region, offset: u64, buf: &[u8]) -> Result<()> {
        self.file
            .write_all_at(buf, region.offset + offset)
            .ctx(format!(
                "pwrite {} bytes at {offset:#x} of region {}",
                buf.len(),
                region.index
            ))
    }

    /// Reads a little-endian u32 from `region`.
    pub fn read_u32(&self, region: &Region, offset: u64) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read(region, offset, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Writes a little-endian u32 to `region`.
    pub fn write_u32(&self, region: &Region, offset: u64, v: u32) -> Result<()> {
        self.write(region, offset, &v.to_le_bytes())
    }

    /// The COMMAND register, read through the VFIO config region.
    pub fn command(&self) -> Result<u16> {
        let mut b = [0u8; 2];
        self.read(&self.config, uapi::PCI_COMMAND, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Sets or clears COMMAND memory enable through the VFIO config region
    /// (clearing it is a revocation: the driver must zap every mapping).
    pub fn set_memory(&self, on: bool) -> Result<()> {
        self.set_command_bit(uapi::PCI_COMMAND_MEMORY, "memory enable", on)
    }

    /// Sets or clears COMMAND bus master enable through the VFIO config
    /// region (vfio-pci passes the bit to the device): without it a
    /// function sends no MSI or MSI-X message.
    pub fn set_master(&self, on: bool) -> Result<()> {
        self.set_command_bit(uapi::PCI_COMMAND_MASTER, "bus master", on)
    }

    /// Sets or clears `bit` of COMMAND and checks that it took.
    fn set_command_bit(&self, bit: u16, name: &str, on: bool) -> Result<()> {
        let cmd = self.command()?;
        let new = if on { cmd | bit } else { cmd & !bit };
        self.write(&self.config, uapi::PCI_COMMAND, &new.to_le_bytes())?;
        let now = self.command()?;
        if (now & bit != 0) != on {
            return Err(err!(
                "COMMAND {name} did not change: wrote {new:#06x}, read back {now:#06x}"
            ));
        }
        Ok(())
    }

    /// Reads `N` little-endian bytes of config space through the VFIO
    /// config region.
    fn config_read<const N: usize>(&self, offset: u64) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.read(&self.config, offset, &mut b)?;
        Ok(b)
    }

    /// The 16-bit config register at `offset`, as the VFIO config region
    /// shows it (vfio-pci virtualizes some registers).
    pub fn config_u16(&self, offset: u64) -> Result<u16> {
        Ok(u16::from_le_bytes(self.config_read(offset)?))
    }

    /// The 32-bit config register at `offset`, as the VFIO config region
    /// shows it.
    pub fn config_u32(&self, offset: u64) -> Result<u32> {
        Ok(u32::from_le_bytes(self.config_read(offset)?))
    }

    /// `VFIO_DEVICE_SET_IRQS` with `ACTION_TRIGGER | DATA_EVENTFD`: the
    /// interrupts `start..start + fds.len()` of `index`
    /// (`VFIO_PCI_*_IRQ_INDEX`) signal `fds` (-1: that one is released).
    /// For MSI and MSI-X this enables the index with that many vectors.
    pub fn set_irq_eventfds(&self, index: u32, start: u32, fds: &[RawFd]) -> Result<()> {
        const MAX: usize = 64;
        #[repr(C)]
        struct Set {
            head: uapi::IrqSet,
            fds: [i32; MAX],
        }
        if fds.len() > MAX {
            return Err(err!("SET_IRQS with more than {MAX} eventfds"));
        }
        let mut set = Set {
            head: uapi::IrqSet {
                argsz: (std::mem::size_of::<uapi::IrqSet>() + 4 * fds.len()) as u32,
                flags: uapi::VFIO_IRQ_SET_ACTION_TRIGGER | uapi::VFIO_IRQ_SET_DATA_EVENTFD,
                index,
                start,
                count: fds.len() as u32,
            },
            fds: [-1; MAX],
        };
        set.fds[..fds.len()].copy_from_slice(fds);
        // SAFETY: `set` is a live `vfio_irq_set` header followed by `count`
        // eventfds (at offset 20, where the C struct's data starts), as its
        // argsz says.
        unsafe {
            ioctl(
                self.fd(),
                uapi::VFIO_DEVICE_SET_IRQS,
                &raw mut set as usize,
                &format!(
                    "VFIO_DEVICE_SET_IRQS(index {index}, start {start}, {} eventfds)",
                    fds.len()
                ),
            )?
        };
        Ok(())
    }

    /// `VFIO_DEVICE_SET_IRQS` with `ACTION_TRIGGER | DATA_NONE` and count
    /// 0: disables the interrupts of `index` (MSI, MSI-X: the capability's
    /// enable bit goes off, the vectors are freed).
    pub fn disable_irqs(&self, index: u32) -> Result<()> {
        let mut set = uapi::IrqSet {
            argsz: argsz::<uapi::IrqSet>(),
            flags: uapi::VFIO_IRQ_SET_ACTION_TRIGGER | uapi::VFIO_IRQ_SET_DATA_NONE,
            index,
            start: 0,
            count: 0,
        };
        // SAFETY: `set` is a live `vfio_irq_set` without data, as its argsz
        // and DATA_NONE say.
        unsafe {
            ioctl(
                self.fd(),
                uapi::VFIO_DEVICE_SET_IRQS,
                &raw mut set as usize,
                &format!("VFIO_DEVICE_SET_IRQS(index {index}, disable)"),
            )?
        };
        Ok(())
    }

    /// Offset of the standard capability `id`, if the function has it (as
    /// the VFIO config region shows it).
    pub fn find_cap(&self, id: u8) -> Result<Option<u64>> {
        let status = u16::from_le_bytes(self.config_read(uapi::PCI_STATUS)?);
        if status & uapi::PCI_STATUS_CAP_LIST == 0 {
            return Ok(None);
        }
        let mut at = u64::from(self.config_read::<1>(uapi::PCI_CAPABILITY_LIST)?[0] & !3);
        // At most 48 capabilities fit in the 192 bytes after the header.
        for _ in 0..48 {
            if at < 0x40 {
                return Ok(None);
            }
            let [cap_id, next] = self.config_read::<2>(at)?;
            if cap_id == id {
                return Ok(Some(at));
            }
            at = u64::from(next & !3);
        }
        Err(err!("{}: capability list loops", self.bdf))
    }

    /// Puts the function into D3hot (`true`) or back to D0 through PMCSR,
    /// as a guest driver would. D3hot is a revocation: the driver must zap
    /// every mapping, and accesses get SIGBUS until D0.
    pub fn set_d3hot(&self, d3: bool) -> Result<()> {
        let pm = self
            .find_cap(uapi::PCI_CAP_ID_PM)?
            .ok_or_else(|| err!("{}: no power management capability", self.bdf))?;
        let at = pm + uapi::PCI_PM_CTRL;
        let old = u16::from_le_bytes(self.config_read(at)?);
        let state = if d3 { 3 } else { 0 };
        let new = (old & !uapi::PCI_PM_CTRL_STATE_MASK) | state;
        self.write(&self.config, at, &new.to_le_bytes())?;
        let now = u16::from_le_bytes(self.config_read(at)?) & uapi::PCI_PM_CTRL_STATE_MASK;
        if now != state {
            return Err(err!("PMCSR power state is D{now} after writing D{state}"));
        }
        Ok(())
    }

    /// Whether the function advertises Function Level Reset.
    pub fn has_flr(&self) -> Result<bool> {
        let Some(exp) = self.find_cap(uapi::PCI_CAP_ID_EXP)? else {
            return Ok(false);
        };
        let devcap = u32::from_le_bytes(self.config_read(exp + uapi::PCI_EXP_DEVCAP)?);
        Ok(devcap & uapi::PCI_EXP_DEVCAP_FLR != 0)
    }

    /// Initiates a Function Level Reset by writing Device Control, as a
    /// guest driver would (the core zaps, resets, restores).
    pub fn flr(&self) -> Result<()> {
        let exp = self
            .find_cap(uapi::PCI_CAP_ID_EXP)?
            .ok_or_else(|| err!("{}: no PCI Express capability", self.bdf))?;
        let at = exp + uapi::PCI_EXP_DEVCTL;
        let devctl = u16::from_le_bytes(self.config_read(at)?);
        self.write(
            &self.config,
            at,
            &(devctl | uapi::PCI_EXP_DEVCTL_BCR_FLR).to_le_bytes(),
        )
    }

    /// `VFIO_DEVICE_FEATURE` low-power entry (`true`) or exit: entry
    /// revokes every mapping until exit.
    pub fn low_power(&self, enter: bool) -> Result<()> {
        let feature = if enter {
            uapi::VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY
        } else {
            uapi::VFIO_DEVICE_FEATURE_LOW_POWER_EXIT
        };
        let mut f = uapi::Feature {
            argsz: argsz::<uapi::Feature>(),
            flags: uapi::VFIO_DEVICE_FEATURE_SET | feature,
        };
        let what = if enter {
            "LOW_POWER_ENTRY"
        } else {
            "LOW_POWER_EXIT"
        };
        // SAFETY: `f` is a live `vfio_device_feature` header with argsz set;
        // these features carry no data.
        unsafe {
            ioctl(
                self.fd(),
                uapi::VFIO_DEVICE_FEATURE,
                &raw mut f as usize,
                &format!("VFIO_DEVICE_FEATURE({what})"),
            )?
        };
        Ok(())
    }

    /// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`: the devices a hot reset of
    /// this device would reset (this one included), with their group (group
    /// path) or iommufd device id (cdev path) in `id`; `None` when the
    /// device has no slot or bus reset (the core answers ENODEV).
    pub fn hot_reset_dependents(&self) -> Result<Option<Vec<uapi::DependentDevice>>> {
        const MAX: usize = 32;
        #[repr(C)]
        struct Info {
            head: uapi::HotResetInfo,
            devices: [uapi::DependentDevice; MAX],
        }
        let mut info = Info {
            head: uapi::HotResetInfo {
                argsz: argsz::<Info>(),
                ..Default::default()
            },
            devices: [uapi::DependentDevice::default(); MAX],
        };
        // SAFETY: `info` is a live header followed by room for MAX devices,
        // as its argsz says.
        let r = unsafe {
            sys::ioctl(
                self.fd(),
                uapi::VFIO_DEVICE_GET_PCI_HOT_RESET_INFO as _,
                &raw mut info as usize,
            )
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(sys::ENODEV) {
                return Ok(None);
            }
            return Err(err!("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: {e}"));
        }
        let n = (info.head.count as usize).min(MAX);
        Ok(Some(info.devices[..n].to_vec()))
    }

    /// The PCI addresses of the devices a hot reset of this device would
    /// reset (this one included), in this device's domain; `None` when the
    /// device has no slot or bus reset (the core answers ENODEV).
    pub fn hot_reset_affected(&self) -> Result<Option<Vec<String>>> {
        let domain = self.bdf.rsplitn(3, ':').nth(2).unwrap_or("0000");
        Ok(self.hot_reset_dependents()?.map(|devs| {
            devs.iter()
                .map(|d| {
                    format!(
                        "{domain}:{:02x}:{:02x}.{}",
                        d.bus,
                        d.devfn >> 3,
                        d.devfn & 7
                    )
                })
                .collect()
        }))
    }

    /// `VFIO_DEVICE_PCI_HOT_RESET` through this device, owning the other
    /// affected devices through `others` (their groups on the group path;
    /// on the cdev path they share this device's iommufd).
    pub fn hot_reset(&self, others: &[&Device]) -> Result<()> {
        match self.try_hot_reset(others)? {
            0 => Ok(()),
            e => Err(err!(
                "VFIO_DEVICE_PCI_HOT_RESET: {}",
                std::io::Error::from_raw_os_error(e)
            )),
        }
    }

    /// As [`Device::hot_reset`], but a refusal is its errno (0: done).
    pub fn try_hot_reset(&self, others: &[&Device]) -> Result<i32> {
        const MAX: usize = 32;
        #[repr(C)]
        struct Reset {
            head: uapi::HotReset,
            fds: [i32; MAX],
        }
        let mut fds: Vec<i32> = Vec::new();
        if self.path == Path::Group {
            for d in std::iter::once(self).chain(others.iter().copied()) {
                let g = d
                    ._group
                    .as_ref()
                    .ok_or_else(|| err!("{}: no group fd", d.bdf))?;
                fds.push(g.as_raw_fd());
            }
        }
        if fds.len() > MAX {
            return Err(err!("hot reset of more than {MAX} groups"));
        }
        let mut r = Reset {
            head: uapi::HotReset {
                argsz: (std::mem::size_of::<uapi::HotReset>() + 4 * fds.len()) as u32,
                flags: 0,
                count: fds.len() as u32,
            },
            fds: [-1; MAX],
        };
        r.fds[..fds.len()].copy_from_slice(&fds);
        // SAFETY: `r` is a live header followed by `count` group fds, as
        // its argsz says.
        let ret = unsafe {
            sys::ioctl(
                self.fd(),
                uapi::VFIO_DEVICE_PCI_HOT_RESET as _,
                &raw mut r as usize,
            )
        };
        if ret < 0 {
            return Ok(std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(sys::EINVAL));
        }
        Ok(0)
    }

    /// `VFIO_IOMMU_MAP_DMA` on the device's type1 container (group path,
    /// real IOMMU): `size` bytes at `vaddr` to `iova`, with `flags`
    /// ([`uapi::VFIO_DMA_MAP_FLAG_READ`], [`uapi::VFIO_DMA_MAP_FLAG_WRITE`]).
    pub fn map_dma(&self, vaddr: usize, iova: u64, size: u64, flags: u32) -> Result<()> {
        let container = match (self.path, &self._iommu) {
            (Path::Group, Some(c)) => c.as_raw_fd(),
            _ => return Err(err!("{}: no type1 container (opened by cdev)", self.bdf)),
        };
        let mut map = DmaMap {
            argsz: argsz::<DmaMap>(),
            flags,
            vaddr: vaddr as u64,
            iova,
            size,
        };
        // SAFETY: `map` is a live `vfio_iommu_type1_dma_map` with argsz
        // set; the kernel pins the memory it names, which the caller keeps
        // mapped.
        unsafe {
            ioctl(
                container,
                uapi::VFIO_IOMMU_MAP_DMA,
                &raw mut map as usize,
                &format!("VFIO_IOMMU_MAP_DMA(iova {iova:#x}, flags {flags:#x})"),
            )?
        };
        Ok(())
    }

    /// `VFIO_DEVICE_RESET`.
    pub fn reset(&self) -> Result<()> {
        // SAFETY: VFIO_DEVICE_RESET takes no argument.
        unsafe { ioctl(self.fd(), uapi::VFIO_DEVICE_RESET, 0, "VFIO_DEVICE_RESET")? };
        Ok(())
    }
}

/// Opens container, group and device (no-IOMMU or a real IOMMU group).
fn open_group(bdf: &str) -> Result<(std::fs::File, Option<OwnedFd>, Option<OwnedFd>)> {
    let group = sysfs::iommu_group(bdf)?;
    let noiommu = format!("/dev/vfio/noiommu-{group}");
    let (group_path, iommu_type) = if std::path::Path::new(&noiommu).exists() {
        (noiommu, uapi::VFIO_NOIOMMU_IOMMU)
    } else {
        // VFIO_TYPE1v2_IOMMU, for machines with a real IOMMU.
        (format!("/dev/vfio/{group}"), 3)
    };
    let container = open_fd("/dev/vfio/vfio")?;
    // SAFETY: VFIO_GET_API_VERSION takes no argument.
    let version = unsafe {
        ioctl(
            container.as_raw_fd(),
            uapi::VFIO_GET_API_VERSION,
            0,
            "VFIO_GET_API_VERSION",
        )?
    };
    if version != uapi::VFIO_API_VERSION {
        return Err(err!("unknown VFIO API version {version}"));
    }
    let group_fd = open_fd(&group_path)?;
    let mut status = GroupStatus {
        argsz: argsz::<GroupStatus>(),
        flags: 0,
    };
    // SAFETY: `status` is a live `vfio_group_status` with argsz set.
    unsafe {
        ioctl(
            group_fd.as_raw_fd(),
            uapi::VFIO_GROUP_GET_STATUS,
            &raw mut status as usize,
            "VFIO_GROUP_GET_STATUS",
        )?
    };
    if status.flags & uapi::VFIO_GROUP_FLAGS_VIABLE == 0 {
        return Err(err!(
            "{group_path} is not viable: bind every device of the group to a VFIO driver"
        ));
    }
    let cfd: RawFd = container.as_raw_fd();
    // SAFETY: the argument points to the container fd, as the ioctl wants.
    unsafe {
        ioctl(
            group_fd.as_raw_fd(),
            uapi::VFIO_GROUP_SET_CONTAINER,
            &raw const cfd as usize,
            "VFIO_GROUP_SET_CONTAINER",
        )?
    };
    // SAFETY: VFIO_SET_IOMMU takes the IOMMU type by value.
    unsafe {
        ioctl(
            container.as_raw_fd(),
            uapi::VFIO_SET_IOMMU,
            iommu_type as usize,
            &format!("VFIO_SET_IOMMU({iommu_type})"),
        )?
    };
    let name = CString::new(bdf).map_err(|_| err!("bad device name {bdf:?}"))?;
    // SAFETY: the argument is a NUL-terminated device name that outlives
    // the call.
    let fd = unsafe {
        ioctl(
            group_fd.as_raw_fd(),
            uapi::VFIO_GROUP_GET_DEVICE_FD,
            name.as_ptr() as usize,
            &format!("VFIO_GROUP_GET_DEVICE_FD({bdf})"),
        )?
    };
    // SAFETY: the ioctl returned a new file descriptor that we now own.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    Ok((file, Some(group_fd), Some(container)))
}

/// Opens the device's character device and binds it to a fresh iommufd.
///
/// No-IOMMU devices (`noiommu-vfioX`) need a real iommufd too: 7.3's
/// `vfio_df_ioctl_bind_iommufd()` (drivers/vfio/device_cdev.c) refuses a
/// negative `iommufd` with EINVAL, and with `CONFIG_IOMMUFD_NOIOMMU` the
/// iommufd core handles the no-IOMMU binding itself. The iommufd is kept
/// open for as long as the device.
fn open_cdev(bdf: &str, iommufd: Option<OwnedFd>) -> Result<(std::fs::File, OwnedFd)> {
    let name = sysfs::vfio_cdev(bdf)?;
    let path = format!("/dev/vfio/devices/{name}");
    let file = std::fs::File::from(open_fd(&path)?);
    let iommufd = match iommufd {
        Some(fd) => fd,
        None => open_fd("/dev/iommu")?,
    };
    let mut bind = BindIommufd {
        argsz: argsz::<BindIommufd>(),
        flags: 0,
        iommufd: iommufd.as_raw_fd(),
        out_devid: 0,
    };
    // SAFETY: `bind` is a live `vfio_device_bind_iommufd` with argsz set.
    unsafe {
        ioctl(
            file.as_raw_fd(),
            uapi::VFIO_DEVICE_BIND_IOMMUFD,
            &raw mut bind as usize,
            &format!("VFIO_DEVICE_BIND_IOMMUFD({path})"),
        )?
    };
    Ok((file, iommufd))
}
