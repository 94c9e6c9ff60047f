// SPDX-License-Identifier: GPL-2.0

//! `VFIO_DEVICE_PCI_HOT_RESET` on the mock devices (no-IOMMU group path):
//! one bound to stock vfio-pci, the other to vfio_variant, the only two
//! devices on the Root Port's secondary bus. The hot reset info of either
//! lists both with their groups (one dev_set: the whole bus); a hot reset
//! without every affected group is refused; one with all groups succeeds
//! through either driver, the Secondary Bus Reset reaches both functions
//! (mock-pci's reset counters), BAR memory reads back as after an FLR
//! (`VFIO_DEVICE_RESET`: the mock device keeps it), and memory decoding,
//! BAR0 and the mappings are back as vfio-pci restores them.

use crate::common::{bar0_address, ensure, hw_config, resets};
use vfio_revoke_selftests::error::Result;
use vfio_revoke_selftests::mapping::{Mapping, Place};
use vfio_revoke_selftests::probe::PAGE;
use vfio_revoke_selftests::uapi::{PCI_COMMAND, PCI_COMMAND_MEMORY};
use vfio_revoke_selftests::vfio::{Device, Path};
use vfio_revoke_selftests::{err, sys, sysfs};

/// BAR0 offset of the word written before each reset.
const WORD: usize = 0x100;

/// `(group, segment, bus, devfn)` of `bdf` as the hot reset info gives it.
fn dependent(bdf: &str) -> Result<(u32, u16, u8, u8)> {
    let bad = || err!("'{bdf}' is not a PCI address");
    let mut it = bdf.split(':');
    let (dom, bus, df) = (it.next(), it.next(), it.next());
    let (dom, bus, df) = (
        dom.ok_or_else(bad)?,
        bus.ok_or_else(bad)?,
        df.ok_or_else(bad)?,
    );
    let (slot, func) = df.split_once('.').ok_or_else(bad)?;
    let hex = |s: &str| u32::from_str_radix(s, 16).map_err(|_| bad());
    let group = sysfs::iommu_group(bdf)?;
    let group: u32 = group
        .parse()
        .map_err(|_| err!("{bdf}: IOMMU group '{group}' is not a number"))?;
    // The uAPI's segment is 16 bits: domain 0x10000 reads as 0.
    Ok((
        group,
        (hex(dom)? & 0xffff) as u16,
        hex(bus)? as u8,
        (hex(slot)? << 3 | hex(func)?) as u8,
    ))
}

/// The info of `dev` lists exactly `bdfs`, with their groups.
fn check_info(dev: &Device, bdfs: &[&str]) -> Result<()> {
    let mut got: Vec<_> = dev
        .hot_reset_dependents()?
        .ok_or_else(|| err!("{}: no slot or bus reset (ENODEV)", dev.bdf))?
        .iter()
        .map(|d| (d.id, d.segment, d.bus, d.devfn))
        .collect();
    got.sort();
    let mut want = bdfs
        .iter()
        .map(|b| dependent(b))
        .collect::<Result<Vec<_>>>()?;
    want.sort();
    ensure(got == want, || {
        format!(
            "{}: hot reset info lists {got:x?}, expected {want:x?}",
            dev.bdf
        )
    })?;
    println!(
        "ok: hot reset info from {}: {} devices, groups {:?}",
        dev.bdf,
        got.len(),
        got.iter().map(|g| g.0).collect::<Vec<_>>()
    );
    Ok(())
}

/// A hot reset through `devs[through]`, with every group; checks what it did.
fn hot_reset(devs: &[Device; 2], through: usize) -> Result<()> {
    let dev = &devs[through];
    let other = &devs[1 - through];
    let mut before = Vec::new();
    let mut maps = Vec::new();
    for d in devs {
        before.push(resets(&d.bdf)?);
        let bar = d.bar(0)?;
        let map = Mapping::new(d.fd(), &bar, 0, PAGE, Place::Any)?;
        let pattern = 0x5eed_0000 | dependent(&d.bdf)?.0;
        map.write_u32(WORD, pattern);
        maps.push((bar, map, pattern));
    }
    dev.hot_reset(&[other])?;
    let drv = sysfs::driver(&dev.bdf).unwrap_or_default();
    println!(
        "ok: VFIO_DEVICE_PCI_HOT_RESET through {} ({drv}) succeeded",
        dev.bdf
    );
    for (d, n) in devs.iter().zip(&before) {
        let now = resets(&d.bdf)?;
        ensure(now == n + 1, || {
            format!(
                "{}: {} resets during the hot reset, expected 1 (secondary bus reset)",
                d.bdf,
                now - n
            )
        })?;
    }
    println!(
        "ok: the secondary bus reset reached every function ({}, {})",
        devs[0].bdf, devs[1].bdf
    );
    for (d, (bar, map, pattern)) in devs.iter().zip(&maps) {
        let b = &d.bdf;
        let cmd = hw_config(b, PCI_COMMAND, 2)? as u16;
        ensure(
            cmd & PCI_COMMAND_MEMORY != 0 && d.command()? & PCI_COMMAND_MEMORY != 0,
            || format!("{b}: COMMAND.MEM not restored after the hot reset (device {cmd:#06x})"),
        )?;
        let reg = hw_config(b, 0x10, 4)? & !0xf | hw_config(b, 0x14, 4)? << 32;
        let addr = bar0_address(b)?;
        ensure(reg == addr, || {
            format!("{b}: BAR0 register {reg:#x} after the hot reset, expected {addr:#x}")
        })?;
        let w = d.read_u32(bar, WORD as u64)?;
        ensure(w == *pattern, || {
            format!("{b}: BAR word {w:#x} after the hot reset, expected {pattern:#x} (kept, as by an FLR)")
        })?;
        let m = map.read_u32(WORD);
        ensure(m == Some(*pattern), || {
            format!("{b}: the BAR mapping reads {m:x?} after the hot reset, expected {pattern:#x}")
        })?;
    }
    println!("ok: COMMAND.MEM and BAR0 restored, BAR word kept as after an FLR, mappings refault");
    Ok(())
}

/// Runs the checks on `stock` (bound to vfio-pci) and `variant` (bound to
/// vfio_variant).
pub fn run(stock: &str, variant: &str) -> Result<()> {
    for (b, want) in [(stock, "vfio-pci"), (variant, sysfs::VARIANT_DRIVER)] {
        let drv = sysfs::driver(b);
        ensure(drv.as_deref() == Some(want), || {
            format!("{b} is bound to {drv:?}, not {want}")
        })?;
    }
    let devs = [
        Device::open(stock, Path::Group)?,
        Device::open(variant, Path::Group)?,
    ];
    for d in &devs {
        d.set_memory(true)?;
        check_info(d, &[stock, variant])?;
    }

    // Every affected group must be passed: with only its own it is refused.
    let e = devs[0].try_hot_reset(&[])?;
    ensure(e == sys::EINVAL, || {
        format!(
            "hot reset with one of two groups: expected EINVAL, got {}",
            if e == 0 {
                "success".into()
            } else {
                std::io::Error::from_raw_os_error(e).to_string()
            }
        )
    })?;
    println!("ok: a hot reset without every affected group is refused (EINVAL)");

    // What an FLR does to BAR memory, for comparison.
    let bar = devs[0].bar(0)?;
    let map = Mapping::new(devs[0].fd(), &bar, 0, PAGE, Place::Any)?;
    let flr = u32::from_le_bytes(*b"flr!");
    map.write_u32(WORD, flr);
    let n = resets(stock)?;
    devs[0].reset()?;
    let (now, w) = (resets(stock)?, devs[0].read_u32(&bar, WORD as u64)?);
    ensure(now == n + 1 && w == flr, || {
        format!(
            "VFIO_DEVICE_RESET: {} resets, BAR word {w:#x} (expected 1, kept {flr:#x})",
            now - n
        )
    })?;
    drop(map);
    println!("ok: VFIO_DEVICE_RESET (FLR) keeps BAR memory: a BAR word reads what was written");

    hot_reset(&devs, 0)?; // stock vfio-pci
    hot_reset(&devs, 1) // vfio_variant
}
