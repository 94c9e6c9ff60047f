// SPDX-License-Identifier: GPL-2.0

//! `mock_pci_checks`: the VFIO and module-loading checks of
//! `make mock-pci-check` (mock-pci/tests/guest-checks runs them in the
//! guest). Each subcommand prints one `ok: ...` line per property it
//! checked and exits 0, or stops at the first property that does not hold
//! with a `FAIL: ...` line and exits 1:
//!
//! * `roundtrip BDF`: data written through one view of BAR0 of a device
//!   bound to stock vfio-pci reads back through every other (VFIO mmap,
//!   VFIO pread/pwrite, sysfs `resource0`, mock-pci's debugfs `bar0`);
//! * `hot-reset BDF_STOCK BDF_VARIANT`: `VFIO_DEVICE_PCI_HOT_RESET` of
//!   mock-pci's Root Port bus through either driver;
//! * `unplug-mapped BDF`: mock-pci `del_device` of a device a user has
//!   bound to vfio_variant, mapped and forked;
//! * `bad-input-vs-stock BDF`: every bad uAPI input of the library's
//!   `bad_input` through vfio_variant and through stock vfio-pci, on both
//!   VFIO open paths: both drivers must answer alike, as VFIO's code does;
//! * `fail-nth N KO [PARAM...]`: loads the module file KO with the Nth
//!   fault-injectable call of the load failing (for
//!   mock-pci/tests/fail-register); prints the load's errno (0 if it
//!   loaded) and `injected` or `not-injected`;
//! * `irq-info BDF`: not a check but a report: the count and flags
//!   `VFIO_DEVICE_GET_IRQ_INFO` gives for INTx, MSI and MSI-X of a device
//!   bound to a vfio-pci driver, one line each (`msi: count 16 flags 0x9`);
//! * `irq-fire BDF`: MSI and MSI-X delivery end to end through stock
//!   vfio-pci: mock-pci's debugfs `fire` sends a vector, exactly its
//!   eventfd fires; forged messages are dropped, masked vectors pending,
//!   disabled ones not sent (mock-pci's `irqs` counters);
//! * `dma-perm BDF`: the DMA engine (`dma=1`) behind the software IOMMU
//!   (`iommu=1`) faults a write into a read-only VFIO mapping and a read
//!   out of a write-only one, and copies where the mappings permit.
//!
//! Bad usage exits 1 with the usage on stderr. x86_64 only, like the
//! probe it uses.

vfio_revoke_selftests::x86_64_only! {
    mod bad_input;
    mod common;
    mod dma_perm;
    mod fail_nth;
    mod hot_reset;
    mod irq_fire;
    mod irq_info;
    mod roundtrip;
    mod unplug;
}

#[cfg(target_arch = "x86_64")]
const USAGE: &str = "usage: mock_pci_checks roundtrip BDF
       mock_pci_checks hot-reset BDF_STOCK BDF_VARIANT
       mock_pci_checks unplug-mapped BDF
       mock_pci_checks bad-input-vs-stock BDF
       mock_pci_checks fail-nth N KO [PARAM...]
       mock_pci_checks irq-info BDF
       mock_pci_checks irq-fire BDF
       mock_pci_checks dma-perm BDF";

#[cfg(target_arch = "x86_64")]
fn main() {
    use vfio_revoke_selftests::{probe, sysfs};
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bdf_ok = |a: &[String]| a.iter().all(|b| sysfs::is_bdf(b));
    // The checks read mappings that may be revoked: a SIGBUS there is an
    // answer, not the end of the process.
    probe::install();
    let run = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["roundtrip", _] if bdf_ok(&args[1..]) => roundtrip::run(&args[1]),
        ["hot-reset", _, _] if bdf_ok(&args[1..]) => hot_reset::run(&args[1], &args[2]),
        ["unplug-mapped", _] if bdf_ok(&args[1..]) => unplug::run(&args[1]),
        ["bad-input-vs-stock", _] if bdf_ok(&args[1..]) => bad_input::run(&args[1]),
        ["irq-info", _] if bdf_ok(&args[1..]) => irq_info::run(&args[1]),
        ["irq-fire", _] if bdf_ok(&args[1..]) => irq_fire::run(&args[1]),
        ["dma-perm", _] if bdf_ok(&args[1..]) => dma_perm::run(&args[1]),
        ["fail-nth", n, _, ..] if n.parse::<u32>().is_ok() => {
            fail_nth::run(n, &args[2], &args[3..])
        }
        ["--help"] | ["-h"] => {
            println!("{USAGE}");
            return;
        }
        _ => {
            eprintln!(
                "mock_pci_checks: bad arguments {args:?} (BDF: segment:bus:device.function)\n{USAGE}"
            );
            std::process::exit(1);
        }
    };
    if let Err(e) = run {
        println!("FAIL: {e}");
        std::process::exit(1);
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    eprintln!(
        "mock_pci_checks runs on x86_64 only (its SIGBUS probe is x86_64 assembly), not {}",
        std::env::consts::ARCH
    );
    std::process::exit(4);
}
