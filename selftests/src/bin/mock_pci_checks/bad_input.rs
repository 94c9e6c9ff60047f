// SPDX-License-Identifier: GPL-2.0

//! Bad uAPI input, vfio_variant against stock vfio-pci: every case of the
//! library's `bad_input` (mmaps, ioctls, preads, pwrites, writes to
//! read-only config fields) runs with the device bound to each driver, on
//! the group and the cdev path. vfio_variant must answer every case as
//! stock vfio-pci does, and both as VFIO's code does (a stock answer that
//! differs from the expectation means the expectation is wrong). The
//! device is bound back to the driver and mode it had.

use crate::common::ensure;
use std::process::Command;
use vfio_revoke_selftests::bad_input::{run_cases, Answer};
use vfio_revoke_selftests::error::Result;
use vfio_revoke_selftests::vfio::{Device, Path};
use vfio_revoke_selftests::{err, sysfs};

const STOCK: &str = "vfio-pci";

/// `(case, expected answer, answer)` of every case, with `bdf` bound to `drv`.
fn answers(bdf: &str, drv: &str, path: Path) -> Result<Vec<(String, Answer, Answer)>> {
    sysfs::bind(bdf, drv)?;
    let dev = Device::open(bdf, path)?;
    dev.set_memory(true)?;
    let bar = dev.bar(0)?;
    let mut v = Vec::new();
    run_cases(&dev, &bar, &mut |class, what, want, got| {
        v.push((format!("{class} {what}"), want, got))
    })?;
    Ok(v)
}

/// Compares the drivers on `bdf`.
pub fn run(bdf: &str) -> Result<()> {
    if !std::path::Path::new("/sys/bus/pci/drivers/vfio-pci").exists() {
        let st = Command::new("modprobe")
            .arg(STOCK)
            .status()
            .map_err(|e| err!("run modprobe {STOCK}: {e}"))?;
        ensure(st.success(), || format!("modprobe {STOCK} failed ({st})"))?;
    }
    let saved = sysfs::Binding::capture(bdf);
    let result = compare(bdf);
    let back = saved.restore();
    result?;
    back
}

fn compare(bdf: &str) -> Result<()> {
    for path in Path::ALL {
        let variant = answers(bdf, sysfs::VARIANT_DRIVER, path)?;
        let stock = answers(bdf, STOCK, path)?;
        ensure(variant.len() == stock.len(), || {
            format!(
                "{} path: {} cases with vfio_variant, {} with {STOCK}",
                path.name(),
                variant.len(),
                stock.len()
            )
        })?;
        let mut bad = Vec::new();
        for ((what, want, v), (swhat, _, s)) in variant.iter().zip(&stock) {
            if what != swhat {
                return Err(err!(
                    "{} path: case '{what}' against '{swhat}'",
                    path.name()
                ));
            }
            if v != s {
                bad.push(format!("{what}: vfio_variant {v}, {STOCK} {s}"));
            } else if v != want {
                bad.push(format!(
                    "{what}: both drivers {v}, VFIO's code gives {want} (the expectation is wrong?)"
                ));
            }
        }
        for b in &bad {
            println!("# {} path: {b}", path.name());
        }
        ensure(bad.is_empty(), || {
            format!(
                "{} path: {} of {} bad inputs answered differently (above)",
                path.name(),
                bad.len(),
                variant.len()
            )
        })?;
        println!(
            "ok: {} path: vfio_variant and {STOCK} answer all {} bad inputs alike, as VFIO's code does",
            path.name(),
            variant.len()
        );
    }
    Ok(())
}
