// SPDX-License-Identifier: GPL-2.0

//! sysfs and debugfs: finding the device, its driver, IOMMU group and VFIO
//! cdev; the vfio_variant counters; unplug (sysfs `remove`) and bringing
//! the device back (`rescan`, or mock-pci's `new_device`) with the binding
//! it had.

use crate::err;
use crate::error::{Context, Result};
use crate::poll::wait_for;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PCI_DEVICES: &str = "/sys/bus/pci/devices";
const VARIANT_DEBUGFS: &str = "/sys/kernel/debug/vfio_variant";
/// mock-pci's debugfs directory (control files, per-device views).
pub const MOCK_DEBUGFS: &str = "/sys/kernel/debug/mock_pci";

/// The name of the variant driver (what `driver` links to).
pub const VARIANT_DRIVER: &str = "vfio_variant";

fn dev_path(bdf: &str) -> PathBuf {
    Path::new(PCI_DEVICES).join(bdf)
}

fn write_file(path: impl AsRef<Path>, what: &str) -> Result<()> {
    let path = path.as_ref();
    fs::write(path, what).ctx(format!("write '{}' to {}", what.trim(), path.display()))
}

fn link_basename(path: &Path) -> Result<String> {
    let target = fs::read_link(path).ctx(format!("readlink {}", path.display()))?;
    target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| err!("{}: odd link target {}", path.display(), target.display()))
}

/// Whether the device exists.
pub fn exists(bdf: &str) -> bool {
    dev_path(bdf).exists()
}

/// The IOMMU group number of `bdf`.
pub fn iommu_group(bdf: &str) -> Result<String> {
    link_basename(&dev_path(bdf).join("iommu_group")).map_err(|e| {
        err!("{e} (is {bdf} bound to a VFIO driver, with vfio.enable_unsafe_noiommu_mode=1?)")
    })
}

/// The VFIO cdev name of `bdf` (`noiommu-vfio0`, `vfio3`, ...).
pub fn vfio_cdev(bdf: &str) -> Result<String> {
    let dir = dev_path(bdf).join("vfio-dev");
    let entries = fs::read_dir(&dir).ctx(format!(
        "read {} (no VFIO cdev: CONFIG_VFIO_DEVICE_CDEV, or not bound to VFIO?)",
        dir.display()
    ))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains("vfio") {
            return Ok(name);
        }
    }
    Err(err!("{} holds no vfio device", dir.display()))
}

/// The driver `bdf` is bound to, if any.
pub fn driver(bdf: &str) -> Option<String> {
    link_basename(&dev_path(bdf).join("driver")).ok()
}

/// Parses `VVVV:DDDD`.
pub fn parse_id(s: &str) -> Option<(u16, u16)> {
    let (v, d) = s.split_once(':')?;
    Some((
        u16::from_str_radix(v, 16).ok()?,
        u16::from_str_radix(d, 16).ok()?,
    ))
}

/// Whether `s` is a PCI address as sysfs spells it,
/// `segment:bus:device.function` in hex (`0000:00:03.0`; mock-pci's
/// segment is `10000`, so the segment may have up to 8 digits).
pub fn is_bdf(s: &str) -> bool {
    let hex = |p: &str, min: usize, max: usize| {
        (min..=max).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_hexdigit())
    };
    let mut parts = s.split(':');
    let (Some(seg), Some(bus), Some(devfn), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Some((dev, func)) = devfn.split_once('.') else {
        return false;
    };
    hex(seg, 4, 8) && hex(bus, 2, 2) && hex(dev, 2, 2) && matches!(func.as_bytes(), [b'0'..=b'7'])
}

fn read_hex(path: &Path) -> Option<u16> {
    let s = fs::read_to_string(path).ok()?;
    u16::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

/// The first device (in address order) with this vendor:device ID that is
/// bound to a VFIO driver, else the first with this ID.
pub fn find_device(id: (u16, u16)) -> Option<String> {
    let mut all: Vec<String> = fs::read_dir(PCI_DEVICES)
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|bdf| {
            let p = dev_path(bdf);
            read_hex(&p.join("vendor")) == Some(id.0) && read_hex(&p.join("device")) == Some(id.1)
        })
        .collect();
    all.sort();
    let vfio = all
        .iter()
        .find(|b| driver(b).is_some_and(|d| d.contains("vfio")));
    vfio.or(all.first()).cloned()
}

/// The vfio_variant counters of one device.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Faults handled.
    pub faults: u64,
    /// PTEs inserted.
    pub ptes: u64,
    /// PMDs inserted.
    pub pmds: u64,
    /// Revocations.
    pub zaps: u64,
    /// Faults answered with SIGBUS.
    pub sigbus: u64,
}

impl Counters {
    /// Parses the `counters` file (`name value` lines; unknown names are
    /// ignored, missing ones are an error).
    pub fn parse(text: &str) -> Result<Self> {
        let mut c = Counters::default();
        let mut seen = 0u32;
        for line in text.lines() {
            let mut w = line.split_whitespace();
            let (Some(name), Some(value)) = (w.next(), w.next()) else {
                continue;
            };
            let value: u64 = value
                .parse()
                .map_err(|_| err!("counters: bad value in '{line}'"))?;
            let (slot, bit) = match name.trim_end_matches(':') {
                "faults" => (&mut c.faults, 1),
                "ptes" => (&mut c.ptes, 2),
                "pmds" => (&mut c.pmds, 4),
                "zaps" => (&mut c.zaps, 8),
                "sigbus" => (&mut c.sigbus, 16),
                _ => continue,
            };
            *slot = value;
            seen |= bit;
        }
        if seen != 31 {
            return Err(err!("counters: missing fields in {text:?}"));
        }
        Ok(c)
    }

    /// Counter-wise `self - before`.
    pub fn since(&self, before: &Counters) -> Counters {
        Counters {
            faults: self.faults.wrapping_sub(before.faults),
            ptes: self.ptes.wrapping_sub(before.ptes),
            pmds: self.pmds.wrapping_sub(before.pmds),
            zaps: self.zaps.wrapping_sub(before.zaps),
            sigbus: self.sigbus.wrapping_sub(before.sigbus),
        }
    }
}

impl std::fmt::Display for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "faults {} ptes {} pmds {} zaps {} sigbus {}",
            self.faults, self.ptes, self.pmds, self.zaps, self.sigbus
        )
    }
}

/// The vfio_variant debugfs directory of one device.
#[derive(Debug, Clone)]
pub struct Debugfs {
    dir: PathBuf,
}

impl Debugfs {
    /// The directory for `bdf`, if the device is bound to vfio_variant and
    /// debugfs is mounted.
    pub fn find(bdf: &str) -> Option<Self> {
        let dir = Path::new(VARIANT_DEBUGFS).join(bdf);
        dir.join("counters").exists().then_some(Self { dir })
    }

    /// Reads the counters.
    pub fn counters(&self) -> Result<Counters> {
        let p = self.dir.join("counters");
        Counters::parse(&fs::read_to_string(&p).ctx(format!("read {}", p.display()))?)
    }

    /// Driver-initiated revoke of every mapping.
    pub fn revoke(&self) -> Result<()> {
        write_file(self.dir.join("revoke"), "1")
    }

    /// The mode new mappings get (`fixed` or `legacy`).
    pub fn mode(&self) -> Result<String> {
        let p = self.dir.join("mode");
        Ok(fs::read_to_string(&p)
            .ctx(format!("read {}", p.display()))?
            .trim()
            .to_string())
    }

    /// Whether fixed-mode faults insert no PMD entries (vfio_variant loaded
    /// with `pte_only=1`).
    pub fn pte_only(&self) -> Result<bool> {
        let p = self.dir.join("pte_only");
        Ok(fs::read_to_string(&p)
            .ctx(format!("read {}", p.display()))?
            .trim()
            == "1")
    }

    /// Pages of the calling process's mappings of the device that have a
    /// page table entry now (vfio_variant's `present`: it looks them up
    /// without faulting).
    pub fn present(&self) -> Result<u32> {
        let p = self.dir.join("present");
        let s = fs::read_to_string(&p).ctx(format!("read {}", p.display()))?;
        s.trim()
            .parse()
            .map_err(|_| err!("{}: '{}' is not a count", p.display(), s.trim()))
    }

    /// Sets the mode for new mappings.
    pub fn set_mode(&self, mode: &str) -> Result<()> {
        write_file(self.dir.join("mode"), mode)
    }
}

/// What to give a device back after it was unplugged and rediscovered.
#[derive(Debug, Clone)]
pub struct Binding {
    bdf: String,
    driver: Option<String>,
    mode: Option<String>,
}

impl Binding {
    /// Records `bdf`'s driver and (for vfio_variant) its mode.
    pub fn capture(bdf: &str) -> Self {
        Self {
            bdf: bdf.to_string(),
            driver: driver(bdf),
            mode: Debugfs::find(bdf).and_then(|d| d.mode().ok()),
        }
    }

    /// The driver name recorded.
    pub fn driver(&self) -> Option<&str> {
        self.driver.as_deref()
    }

    /// Brings the device back after an unplug (PCI rescan, or mock-pci's
    /// `new_device` if the rescan did not find it), binds it to the
    /// recorded driver and restores its mode.
    pub fn restore(&self) -> Result<()> {
        let bdf = &self.bdf;
        if !exists(bdf) {
            write_file("/sys/bus/pci/rescan", "1")?;
            if !wait_for(Duration::from_secs(5), || exists(bdf)) {
                if let Some(slot) = mock_slot(bdf) {
                    write_file(Path::new(MOCK_DEBUGFS).join("new_device"), &slot)?;
                }
            }
            if !wait_for(Duration::from_secs(10), || exists(bdf)) {
                return Err(err!("{bdf} did not come back after a PCI rescan"));
            }
        }
        if let Some(want) = &self.driver {
            bind(bdf, want)?;
        }
        if let Some(mode) = &self.mode {
            let dfs = Debugfs::find(bdf)
                .ok_or_else(|| err!("{bdf}: no vfio_variant debugfs after rebinding"))?;
            dfs.set_mode(mode)?;
        }
        Ok(())
    }
}

/// The mock-pci slot of `bdf` (`10000:01:05.0` -> `5`), if it looks like
/// one and mock-pci's control interface exists.
pub fn mock_slot(bdf: &str) -> Option<String> {
    if !Path::new(MOCK_DEBUGFS).join("new_device").exists() {
        return None;
    }
    let dev = bdf.rsplit(':').next()?.split('.').next()?;
    u8::from_str_radix(dev, 16).ok().map(|s| s.to_string())
}

/// Binds `bdf` to `drv` through `driver_override` (unbinding it first if
/// another driver has it); the override is left in place so a later probe
/// cannot pick another driver.
pub fn bind(bdf: &str, drv: &str) -> Result<()> {
    if driver(bdf).as_deref() == Some(drv) {
        return Ok(());
    }
    let p = dev_path(bdf);
    if driver(bdf).is_some() {
        write_file(p.join("driver/unbind"), bdf)?;
    }
    write_file(p.join("driver_override"), drv)?;
    // drivers_probe fails with an error when no driver takes the device:
    // the check below reports that more clearly.
    let _ = fs::write("/sys/bus/pci/drivers_probe", bdf);
    if !wait_for(Duration::from_secs(5), || {
        driver(bdf).as_deref() == Some(drv)
    }) {
        return Err(err!(
            "{bdf}: could not bind to {drv} (now: {:?})",
            driver(bdf)
        ));
    }
    Ok(())
}

/// Starts `echo 1 > /sys/bus/pci/devices/BDF/remove` in another process.
/// It blocks until every VFIO user of the device has closed it.
pub fn start_remove(bdf: &str) -> Result<Child> {
    let path = dev_path(bdf).join("remove");
    Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("echo 1 > {}", path.display()))
        .stdin(Stdio::null())
        .spawn()
        .ctx("start the sysfs remove")
}

/// How a device is unplugged (and then brought back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unplug {
    /// `echo 1 > /sys/bus/pci/devices/BDF/remove`; back with a PCI rescan
    /// (the mock slot stays occupied).
    SysfsRemove,
    /// mock-pci's `echo SLOT > del_device`; back with `new_device` (the
    /// slot is emptied: a rescan would not find it).
    MockDelDevice,
}

impl Unplug {
    /// How it is done, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Unplug::SysfsRemove => "sysfs remove",
            Unplug::MockDelDevice => "mock-pci del_device",
        }
    }
}

/// Starts unplugging `bdf` `how` in another process. Like
/// [`start_remove`], it blocks until every VFIO user has closed the device.
pub fn start_unplug(bdf: &str, how: Unplug) -> Result<Child> {
    let (what, path) = match how {
        Unplug::SysfsRemove => ("1".to_string(), dev_path(bdf).join("remove")),
        Unplug::MockDelDevice => (
            mock_slot(bdf).ok_or_else(|| {
                err!("{bdf} is not a mock-pci device (or mock_pci has no control files)")
            })?,
            Path::new(MOCK_DEBUGFS).join("del_device"),
        ),
    };
    Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("echo {what} > {}", path.display()))
        .stdin(Stdio::null())
        .spawn()
        .ctx(format!("start the {}", how.describe()))
}

/// Brings `bdf` back after an unplug done `how` (a PCI rescan, or mock-pci's
/// `new_device`) and waits until it exists; it then has whatever driver
/// probing gave it ([`Binding::restore`] rebinds).
pub fn replug(bdf: &str, how: Unplug) -> Result<()> {
    match how {
        Unplug::SysfsRemove => write_file("/sys/bus/pci/rescan", "1")?,
        Unplug::MockDelDevice => {
            let slot = mock_slot(bdf).ok_or_else(|| err!("{bdf}: no mock-pci slot"))?;
            write_file(Path::new(MOCK_DEBUGFS).join("new_device"), &slot)?;
        }
    }
    if !wait_for(Duration::from_secs(10), || exists(bdf)) {
        return Err(err!("{bdf} did not come back after {}", how.describe()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_parse() {
        let c = Counters::parse("faults 3\nptes 512\npmds 1\nzaps 2\nsigbus 4\n").unwrap();
        assert_eq!(
            c,
            Counters {
                faults: 3,
                ptes: 512,
                pmds: 1,
                zaps: 2,
                sigbus: 4
            }
        );
        let d =
            Counters::parse("faults: 5\nptes: 512\npmds: 1\nzaps: 3\nsigbus: 4\nnew 9\n").unwrap();
        assert_eq!(d.since(&c).faults, 2);
        assert_eq!(d.since(&c).zaps, 1);
        assert!(Counters::parse("faults 1\n").is_err());
        assert!(Counters::parse("faults x\nptes 1\npmds 1\nzaps 1\nsigbus 1").is_err());
    }

    #[test]
    fn ids_and_slots() {
        assert_eq!(parse_id("1234:f00d"), Some((0x1234, 0xf00d)));
        assert_eq!(parse_id("1af4:1110"), Some((0x1af4, 0x1110)));
        assert_eq!(parse_id("1234"), None);
        assert_eq!(parse_id("zz:1"), None);
    }

    #[test]
    fn bdfs() {
        for ok in [
            "0000:00:03.0",
            "10000:00:00.0",
            "0000:af:1f.7",
            "ABCD:0a:00.1",
        ] {
            assert!(is_bdf(ok), "{ok}");
        }
        for bad in [
            "",
            "00:03.0",
            "0000:00:03",
            "0000:00:03.8",
            "0000:00:03.10",
            "0000:0:03.0",
            "000:00:03.0",
            "123456789:00:00.0",
            "0000:00:03.0:1",
            "0000:g0:03.0",
            "1234:f00d",
            "--bar",
        ] {
            assert!(!is_bdf(bad), "{bad}");
        }
    }
}
