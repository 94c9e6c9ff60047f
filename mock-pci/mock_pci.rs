// SPDX-License-Identifier: GPL-2.0

//! mock-pci: real PCI devices on a software PCI bus, with memory-backed BARs.
//!
//! The module creates a PCI host bridge in a PCI domain of its own with an
//! emulated PCI Express Root Port, and populates the port's secondary bus
//! with emulated functions whose BARs are carved out of a boot-time
//! `memmap=` reservation, so that the PCI core, `lspci`, sysfs and VFIO see
//! genuine `struct pci_dev`s without any hardware; a Secondary Bus Reset
//! through the port resets them all (VFIO hot reset). Module parameters
//! describe the devices created at load; configfs devices
//! (`/sys/kernel/config/mock_pci/NAME/`) are described at runtime. See
//! README.md.

use kernel::prelude::*;

mod accessors;
mod bridge;
#[cfg(CONFIG_KUNIT)]
mod bridge_tests;
mod config;
#[cfg(CONFIG_KUNIT)]
mod config_tests;
mod configfs;
mod control;
mod dma;
mod fabric;
mod host;
mod intx;
mod intx_domain;
#[cfg(CONFIG_KUNIT)]
mod intx_tests;
mod iommu;
mod irq;
mod kthread;
mod layout;
mod memmap;
mod message;
mod msi;
mod msi_domain;
#[cfg(CONFIG_KUNIT)]
mod msi_tests;
mod msix;
mod params;
mod physmem;
mod poller;
mod raw_lock;
mod sriov;
#[cfg(CONFIG_KUNIT)]
mod sriov_tests;
mod window;

module! {
    type: MockPci,
    name: "mock_pci",
    authors: ["vfio-revoke developers"],
    description: "Software PCI bus with memory-backed BARs for VFIO testing",
    license: "GPL",
    imports_ns: ["GENERIC_PT_IOMMU"],
    params: {
        num_devs: u32 {
            default: 2,
            description: "Devices created at load (slots 0..num_devs-1), at most as many as the window holds (max 32)",
        },
        domain: u32 {
            default: 0,
            description: "PCI domain of the mock bus: 0 (default) for the first free one from 0x10000 up, or 0x1 to 0xffff, which must be unused",
        },
        bar0_size: u64 {
            default: 0x200000,
            description: "Size of BAR0 (64-bit prefetchable): a power of two, at least 4096",
        },
        bar2_size: u64 {
            default: 0x10000,
            description: "Size of BAR2 (32-bit): a power of two from 4096 to 1 GiB",
        },
        window_base: u64 {
            default: 0x40000000,
            description: "Physical start of the bridge window: must lie in a memmap=SIZE$ADDR reservation",
        },
        window_size: u64 {
            default: 0x10000000,
            description: "Size of the bridge window (default 256 MiB, as memmap=256M$0x40000000)",
        },
        vendor: u16 {
            default: 0x1234,
            description: "Vendor ID",
        },
        device: u16 {
            default: 0xf00d,
            description: "Device ID",
        },
        subsys_vendor: u16 {
            default: 0x1234,
            description: "Subsystem vendor ID",
        },
        subsys_device: u16 {
            default: 0x0001,
            description: "Subsystem ID",
        },
        class: u32 {
            default: 0xff0000,
            description: "Class code (24 bits; default: unassigned class)",
        },
        revision: u8 {
            default: 1,
            description: "Revision ID",
        },
        iommu: bool {
            default: false,
            description: "Register a software IOMMU for the mock functions (one IOMMU group each; type1 and iommufd work as with hardware). The devices then pin the module: remove them (del_device) before rmmod",
        },
        dma: bool {
            default: false,
            description: "Give every device a DMA engine (registers at BAR2 offset 0, memcpy between IOVAs through the IOMMU, completion on an MSI-X vector); it needs iommu=1 to reach memory",
        },
        allow_any_reserved: bool {
            default: false,
            description: "Accept a window in a reserved range no memmap= option made (firmware's memory, which loading overwrites): only for memory known to be unused",
        },
        msi_vectors: u32 {
            default: 0,
            description: "MSI vectors of every device: 0 (default) for no MSI capability, or a power of two from 1 to 32 (64-bit, per-vector masking), delivered through the bus's isolated MSI domain (debugfs fire 'msi N' raises vector N)",
        },
        msix_vectors: u32 {
            default: 0,
            description: "MSI-X table entries of every device: 0 (default) for no MSI-X capability, or 1 to 2048; the table and PBA live in the upper half of BAR2; delivered through the bus's isolated MSI domain (debugfs fire 'msix N')",
        },
        sriov_vfs: u32 {
            default: 0,
            description: "SR-IOV Virtual Functions every device may enable (sysfs sriov_numvfs): 0 (default) for no SR-IOV capability, or 1 to 7 (functions 1..7 of the device's slot; no VF BARs)",
        },
        intx: bool {
            default: false,
            description: "Give every device Interrupt Pin INTA#, a level interrupt of its own on the bus's INTx domain (debugfs fire 'intx 1' asserts it)",
        },
    },
}

/// This module, for the C tables that name their owner.
pub(crate) const THIS_MODULE: *mut kernel::bindings::module =
    <MockPci as kernel::ModuleMetadata>::THIS_MODULE.as_ptr();

/// The loaded module: the bus with its devices, the control files and the
/// configfs subsystem.
///
/// Fields drop in this order. The configfs subsystem goes first, as its
/// devices plug and unplug through the control files and the host; it can
/// only be unregistered with no device directory left, and configfs holds
/// a reference on the module while one exists, so `rmmod` waits for
/// `rmdir` (with `iommu=1`, every probed device pins the module too). Then
/// the control files, which refer to the host.
#[pin_data]
struct MockPci {
    #[pin]
    _configfs: kernel::configfs::Subsystem<configfs::Devices>,
    _control: control::Control,
    _host: Pin<KBox<host::Host>>,
}

fn raw_params() -> params::Raw {
    use module_parameters as p;
    params::Raw {
        num_devs: p::num_devs.value(),
        domain: p::domain.value(),
        bar0_size: p::bar0_size.value(),
        bar2_size: p::bar2_size.value(),
        window_base: p::window_base.value(),
        window_size: p::window_size.value(),
        allow_any_reserved: p::allow_any_reserved.value(),
        iommu: p::iommu.value(),
        dma: p::dma.value(),
        identity: config::Identity {
            vendor: p::vendor.value(),
            device: p::device.value(),
            subsys_vendor: p::subsys_vendor.value(),
            subsys_device: p::subsys_device.value(),
            class: p::class.value(),
            revision: p::revision.value(),
        },
        irqs: msi::Irqs {
            msi: p::msi_vectors.value(),
            msix: p::msix_vectors.value(),
            intx: p::intx.value(),
        },
        sriov_vfs: p::sriov_vfs.value(),
    }
}

/// Validates the parameters, creates the bus with its first devices and
/// the control files, and logs what it made; returns them with the
/// description configfs devices start from.
fn load() -> Result<(
    Pin<KBox<host::Host>>,
    control::Control,
    configfs::Description,
)> {
    let settings = params::validate(&raw_params())?;
    let host = host::Host::create(&settings)?;
    let control = control::Control::create(&host)?;
    let l = &host.layout;
    let (pref, mem) = (l.pref_window(), l.mem_window());
    pr_info!(
        "domain {:04x}: Root Port 00:00.0, {} devices on bus {:02x}, window {:#x}-{:#x} (prefetchable {:#x}-{:#x}, BAR0 {} KiB; non-prefetchable {:#x}-{:#x}, BAR2 {} KiB)\n",
        host.domain,
        settings.num_devs,
        bridge::SECONDARY_BUS,
        l.base(),
        l.base() + l.size() - 1,
        pref.start,
        pref.last(),
        l.bars().bar0 >> 10,
        mem.start,
        mem.last(),
        l.bars().bar2 >> 10
    );
    let defaults = configfs::Description {
        identity: settings.identity,
        bars: l.bars(),
        irqs: settings.irqs,
        dma: settings.dma,
        sriov_vfs: settings.sriov_vfs,
    };
    Ok((host, control, defaults))
}

impl kernel::InPlaceModule for MockPci {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pin_init::pin_init_scope(|| {
            let (host, control, defaults) = load()?;
            let handle = control.handle();
            Ok(try_pin_init!(MockPci {
                _configfs <- configfs::subsystem(handle, defaults),
                _control: control,
                _host: host,
            }))
        })
    }
}
