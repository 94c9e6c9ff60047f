// SPDX-License-Identifier: GPL-2.0

//! The software PCI host bridge: a root bus in a PCI domain of its own,
//! parented on the module's faux device, with a PCI Express Root Port at
//! 00:00.0 and, on its secondary bus 01, one function per occupied slot.
//!
//! BAR addresses and the Root Port's bus numbers and windows are programmed
//! into the emulated config space before the PCI core scans, as firmware
//! does, and claimed by a bus notifier when a device is added. Letting the
//! core assign them fails on x86: `arch_remove_reservations()` cuts every
//! E820 region, the `memmap=` reservation included, out of the allocatable
//! space.

use crate::{
    accessors, bridge,
    config::Template,
    fabric::{Fabric, Templates},
    layout::Layout,
    params::Settings,
    raw_lock::{new_raw_spinlock_irq, RawSpinLockIrq},
    window::Window,
};
use core::sync::atomic::{AtomicPtr, Ordering::Relaxed};
use kernel::{bindings, error::to_result, faux, prelude::*, types::Opaque};

/// The host bridge and everything it owns.
///
/// `sysdata` is what the root bus's `sysdata` points to (x86 reads the PCI
/// domain from it; the secondary bus inherits it); the config accessors get
/// back to the `Host` from it.
#[pin_data(PinnedDrop)]
pub(crate) struct Host {
    #[pin]
    pub(crate) sysdata: Opaque<bindings::pci_sysdata>,
    #[pin]
    pub(crate) fabric: RawSpinLockIrq<Fabric>,
    #[pin]
    busn: Opaque<bindings::resource>,
    #[pin]
    pub(crate) notifier: Opaque<bindings::notifier_block>,
    pub(crate) templates: Templates,
    pub(crate) layout: Layout,
    pub(crate) window: Window,
    pub(crate) domain: i32,
    bus: AtomicPtr<bindings::pci_bus>,
    faux: faux::Registration,
    // Dropped after the bus is gone (`PinnedDrop` runs first).
    _scan_all: ScanAllDevices,
}

// SAFETY: the `Opaque` fields are only handed to the kernel, which
// serialises its own use of them (the bus, the resource tree, the notifier
// chain); the fabric is behind a lock, `bus` is atomic, the rest immutable.
unsafe impl Sync for Host {}
// SAFETY: see `Sync`; no field is tied to a thread.
unsafe impl Send for Host {}

/// Holds the PCI core's rescan/remove lock, which serialises bus scans
/// against device removal.
struct RescanLock;

impl RescanLock {
    fn take() -> Self {
        // SAFETY: a plain mutex of the PCI core; released in drop.
        unsafe { bindings::pci_lock_rescan_remove() };
        RescanLock
    }
}

impl Drop for RescanLock {
    fn drop(&mut self) {
        // SAFETY: taken in `take`.
        unsafe { bindings::pci_unlock_rescan_remove() };
    }
}

/// While alive, the PCI core scans every device number behind a PCI
/// Express downstream port, as with `pci=pcie_scan_all`.
///
/// A Root Port's link normally leads to device 0 only, so the core scans
/// no other device number there (`only_one_child()`); the mock functions
/// sit in slots 0 to 31 of the secondary bus, and every scan (the first
/// one, hot-add, `/sys/bus/pci/rescan`) must find them all. The flag is
/// global: it applies to every PCIe port of the machine while the module
/// is loaded, and is cleared again at unload unless it was set before.
struct ScanAllDevices {
    set_here: bool,
}

impl ScanAllDevices {
    fn enable() -> Self {
        let all = bindings::PCI_SCAN_ALL_PCIE_DEVS;
        // SAFETY: `pci_flags` is the PCI core's flag word. Only boot
        // parameters and platform set-up write it, before modules load, so
        // this read-modify-write from module init does not race with a
        // writer.
        let set_here = unsafe {
            let flags = &raw mut bindings::pci_flags;
            let was = *flags & all != 0;
            *flags |= all;
            !was
        };
        if set_here {
            pr_info!("scanning every device number behind PCIe ports while loaded (as pci=pcie_scan_all)\n");
        }
        ScanAllDevices { set_here }
    }
}

impl Drop for ScanAllDevices {
    fn drop(&mut self) {
        if self.set_here {
            let flags = &raw mut bindings::pci_flags;
            // SAFETY: see `enable`; the mock bus is gone by now.
            unsafe { *flags &= !bindings::PCI_SCAN_ALL_PCIE_DEVS };
        }
    }
}

const fn devfn(slot: usize) -> u32 {
    (slot as u32) << 3
}

impl Host {
    /// Creates the bridge and its first `settings.num_devs` devices.
    pub(crate) fn create(settings: &Settings) -> Result<Pin<KBox<Self>>> {
        let layout = settings.layout;
        let window = Window::claim(layout.base(), layout.size())?;
        let faux = faux::Registration::new(c"mock_pci", None)?;
        // SAFETY: allocates a domain number from the emulated range; released
        // in drop (or below on error).
        let domain = unsafe { bindings::pci_bus_find_emul_domain_nr(0, 0x10000, i32::MAX as u32) };
        if domain < 0 {
            pr_err!("no free PCI domain for the mock bus ({})\n", domain);
            return Err(Error::from_errno(domain));
        }
        let scan_all = ScanAllDevices::enable();
        let host = KBox::pin_init(
            pin_init!(Host {
                // SAFETY: all-zero is a valid `pci_sysdata`; the domain and
                // node are set below.
                sysdata: Opaque::new(bindings::pci_sysdata {
                    domain,
                    node: bindings::NUMA_NO_NODE,
                    ..Default::default()
                }),
                fabric <- new_raw_spinlock_irq!(pin_init::zeroed::<Fabric>(), "mock_pci_fabric"),
                busn: Opaque::new(bindings::resource {
                    name: c"mock-pci bus".as_char_ptr(),
                    start: 0,
                    end: bridge::SECONDARY_BUS.into(),
                    flags: bindings::IORESOURCE_BUS as usize,
                    ..Default::default()
                }),
                notifier: Opaque::new(bindings::notifier_block {
                    notifier_call: Some(accessors::claim_on_add),
                    ..Default::default()
                }),
                templates: Templates {
                    port: bridge::template(),
                    func: Template::new(&settings.identity, &layout.bars()),
                },
                layout,
                window,
                domain,
                bus: AtomicPtr::new(core::ptr::null_mut()),
                faux,
                _scan_all: scan_all,
            }),
            GFP_KERNEL,
        );
        let host = match host {
            Ok(host) => host,
            Err(e) => {
                // SAFETY: allocated above and not used by anything.
                unsafe { bindings::pci_bus_release_emul_domain_nr(domain) };
                return Err(e);
            }
        };
        host.fabric
            .lock()
            .power_on_port(&host.templates.port, &host.layout);
        for slot in 0..settings.num_devs {
            host.power_on(slot)?;
        }
        host.register()?;
        Ok(host)
    }

    /// Puts a function in `slot` in its power-on state, with its BARs
    /// programmed by "firmware" and its BAR memory zeroed.
    fn power_on(&self, slot: usize) -> Result {
        let l = &self.layout;
        self.window.zero(l.bar0(slot), l.bars().bar0 as usize)?;
        self.window.zero(l.bar2(slot), l.bars().bar2 as usize)?;
        self.fabric
            .lock()
            .power_on(&self.templates.func, slot, l.bar0(slot), l.bar2(slot));
        Ok(())
    }

    /// The Root Port's secondary bus, or null while the Root Port is
    /// removed (sysfs `remove` on it, until a rescan). The caller holds the
    /// rescan lock, which keeps the bus alive.
    fn secondary_bus(&self, _lock: &RescanLock) -> *mut bindings::pci_bus {
        // SAFETY: a lookup in the PCI core's bus list, under its own lock.
        unsafe { bindings::pci_find_bus(self.domain, bridge::SECONDARY_BUS.into()) }
    }

    /// Registers the bus notifier and the root bus, and scans it.
    fn register(self: &Pin<KBox<Self>>) -> Result {
        // SAFETY: the notifier block lives in the pinned `Host` and is
        // unregistered in drop.
        to_result(unsafe {
            bindings::bus_register_notifier(
                (&raw const bindings::pci_bus_type).cast_mut(),
                self.notifier.get(),
            )
        })?;
        // SAFETY: allocates a bridge without private data.
        let bridge = unsafe { bindings::pci_alloc_host_bridge(0) };
        if bridge.is_null() {
            return Err(ENOMEM);
        }
        let faux_dev: &kernel::device::Device<kernel::device::Bound> = self.faux.as_ref().as_ref();
        // `Device` is a transparent wrapper of `struct device`.
        let parent = core::ptr::from_ref(faux_dev)
            .cast_mut()
            .cast::<bindings::device>();
        // SAFETY: `bridge` is a fresh, exclusively owned bridge; `sysdata`,
        // the ops and both resources outlive the bus (drop removes it first).
        let ret = unsafe {
            (*bridge).dev.parent = parent;
            (*bridge).sysdata = self.sysdata.get().cast();
            (*bridge).ops = (&raw const accessors::OPS).cast_mut();
            (*bridge).busnr = 0;
            (*bridge).domain_nr = self.domain;
            bindings::pci_add_resource(&raw mut (*bridge).windows, self.window.resource());
            bindings::pci_add_resource(&raw mut (*bridge).windows, self.busn.get());
            let _lock = RescanLock::take();
            let ret = bindings::pci_scan_root_bus_bridge(bridge);
            if ret == 0 {
                self.bus.store((*bridge).bus, Relaxed);
                bindings::pci_bus_add_devices((*bridge).bus);
            }
            ret
        };
        if ret != 0 {
            pr_err!("scanning the mock root bus failed ({})\n", ret);
            // SAFETY: not registered; frees the bridge and its window list.
            unsafe { bindings::pci_free_host_bridge(bridge) };
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }

    /// Hot-adds a device in `slot`.
    pub(crate) fn plug(&self, slot: usize) -> Result {
        let lock = RescanLock::take();
        if self.fabric.lock().present(slot) {
            pr_err!(
                "new_device {}: slot {} is occupied: remove it first (del_device)\n",
                slot,
                slot
            );
            return Err(EEXIST);
        }
        let bus = self.secondary_bus(&lock);
        if bus.is_null() {
            pr_err!(
                "new_device {}: the Root Port {:04x}:00:00.0 is removed: rescan first (/sys/bus/pci/rescan)\n",
                slot,
                self.domain
            );
            return Err(ENODEV);
        }
        self.power_on(slot)?;
        // SAFETY: the secondary bus stays registered while the rescan lock
        // is held.
        let found = unsafe {
            let found = bindings::pci_scan_slot(bus, devfn(slot) as i32);
            bindings::pci_bus_add_devices(bus);
            found
        };
        if found == 0 {
            self.fabric.lock().remove(slot);
            pr_err!(
                "new_device {}: the PCI core found no device in the slot\n",
                slot
            );
            return Err(EIO);
        }
        Ok(())
    }

    /// Hot-removes the device in `slot`, as surprise-free as `sysfs remove`:
    /// the bound driver's remove runs first (for VFIO that waits until every
    /// user closed the device).
    pub(crate) fn unplug(&self, slot: usize) -> Result {
        let lock = RescanLock::take();
        if !self.fabric.lock().present(slot) {
            pr_err!("del_device {}: slot {} is empty\n", slot, slot);
            return Err(ENODEV);
        }
        let bus = self.secondary_bus(&lock);
        if !bus.is_null() {
            // SAFETY: the bus is registered; the rescan lock is held, so the
            // device cannot go away between lookup and removal.
            unsafe {
                let pdev = bindings::pci_get_slot(bus, devfn(slot));
                if !pdev.is_null() {
                    bindings::pci_stop_and_remove_bus_device(pdev);
                    bindings::pci_dev_put(pdev);
                }
            }
        }
        self.fabric.lock().remove(slot);
        Ok(())
    }
}

#[pinned_drop]
impl PinnedDrop for Host {
    fn drop(self: Pin<&mut Self>) {
        let bus = self.bus.load(Relaxed);
        if !bus.is_null() {
            let _lock = RescanLock::take();
            // SAFETY: registered in `register`; this removes every device
            // (running their drivers' remove) and frees the bridge.
            unsafe {
                bindings::pci_stop_root_bus(bus);
                bindings::pci_remove_root_bus(bus);
            }
            self.bus.store(core::ptr::null_mut(), Relaxed);
        }
        // SAFETY: registered in `register` (unregistering a notifier that
        // never registered is harmless: it is not found).
        unsafe {
            bindings::bus_unregister_notifier(
                (&raw const bindings::pci_bus_type).cast_mut(),
                self.notifier.get(),
            );
            bindings::pci_bus_release_emul_domain_nr(self.domain);
        }
    }
}
