// SPDX-License-Identifier: GPL-2.0

//! What the checks share: mock-pci's debugfs views, the device's config
//! space and BAR0 address as the PCI core sees them.

use std::fs;
use std::os::unix::fs::FileExt;
use vfio_revoke_selftests::err;
use vfio_revoke_selftests::error::{Context, Result};
use vfio_revoke_selftests::sysfs::MOCK_DEBUGFS;

/// mock-pci's count of resets of `bdf`'s function.
pub fn resets(bdf: &str) -> Result<u64> {
    let p = format!("{MOCK_DEBUGFS}/{bdf}/resets");
    let s = fs::read_to_string(&p).ctx(format!("read {p}"))?;
    s.trim()
        .parse()
        .map_err(|_| err!("{p}: '{}' is not a count", s.trim()))
}

/// mock-pci's debugfs view of `bdf`'s BAR0 memory.
pub fn bar0_view(bdf: &str, write: bool) -> Result<fs::File> {
    let p = format!("{MOCK_DEBUGFS}/{bdf}/bar0");
    fs::OpenOptions::new()
        .read(true)
        .write(write)
        .open(&p)
        .ctx(format!("open {p}"))
}

/// `size` bytes (at most 8) of `bdf`'s config space at `at`, as the device
/// holds them (sysfs `config`, not VFIO's virtualized view).
pub fn hw_config(bdf: &str, at: u64, size: usize) -> Result<u64> {
    let p = format!("/sys/bus/pci/devices/{bdf}/config");
    let mut b = [0u8; 8];
    fs::File::open(&p)
        .and_then(|f| f.read_exact_at(&mut b[..size], at))
        .ctx(format!("read {size} bytes at {at:#x} of {p}"))?;
    Ok(u64::from_le_bytes(b))
}

/// Writes `bytes` at `at` of `bdf`'s config space as the device holds it
/// (sysfs `config`: past VFIO's virtualization, as `setpci` does).
pub fn hw_config_write(bdf: &str, at: u64, bytes: &[u8]) -> Result<()> {
    let p = format!("/sys/bus/pci/devices/{bdf}/config");
    fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .and_then(|f| f.write_all_at(bytes, at))
        .ctx(format!("write {} bytes at {at:#x} of {p}", bytes.len()))
}

/// Where the PCI core put `bdf`'s BAR0 (first line of sysfs `resource`).
pub fn bar0_address(bdf: &str) -> Result<u64> {
    let p = format!("/sys/bus/pci/devices/{bdf}/resource");
    let s = fs::read_to_string(&p).ctx(format!("read {p}"))?;
    let first = s.split_whitespace().next().unwrap_or("");
    u64::from_str_radix(first.trim_start_matches("0x"), 16)
        .map_err(|_| err!("{p}: '{first}' is not an address"))
}

/// Fails with `msg` unless `ok`.
pub fn ensure(ok: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(err!("{}", msg()))
    }
}
