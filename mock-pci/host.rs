// SPDX-License-Identifier: GPL-2.0

//! The software PCI host bridge: a root bus in a PCI domain of its own,
//! parented on the module's faux device, with one function per occupied
//! slot.
//!
//! BAR addresses are programmed into the emulated config space before the
//! PCI core scans a slot, as firmware does, and claimed by a bus notifier
//! when the device is added. Letting the core assign them fails on x86:
//! `arch_remove_reservations()` cuts every E820 region, the `memmap=`
//! reservation included, out of the allocatable space.

use crate::{
    accessors,
    config::{ConfigSpace, Template},
    layout::{Layout, MAX_SLOTS},
    params::Settings,
    raw_lock::{new_raw_spinlock_irq, RawSpinLockIrq},
    window::Window,
};
use core::sync::atomic::{AtomicPtr, Ordering::Relaxed};
use kernel::{bindings, error::to_result, faux, prelude::*, types::Opaque};

/// Register state of every slot, guarded by the host's raw spinlock.
#[derive(Zeroable)]
pub(crate) struct Slots {
    pub(crate) present: [bool; MAX_SLOTS],
    pub(crate) cfg: [ConfigSpace; MAX_SLOTS],
}

/// The host bridge and everything it owns.
///
/// `sysdata` is what the root bus's `sysdata` points to (x86 reads the PCI
/// domain from it); the config accessors get back to the `Host` from it.
#[pin_data(PinnedDrop)]
pub(crate) struct Host {
    #[pin]
    pub(crate) sysdata: Opaque<bindings::pci_sysdata>,
    #[pin]
    pub(crate) slots: RawSpinLockIrq<Slots>,
    #[pin]
    busn: Opaque<bindings::resource>,
    #[pin]
    pub(crate) notifier: Opaque<bindings::notifier_block>,
    pub(crate) template: Template,
    pub(crate) layout: Layout,
    pub(crate) window: Window,
    pub(crate) domain: i32,
    bus: AtomicPtr<bindings::pci_bus>,
    faux: faux::Registration,
}

// SAFETY: the `Opaque` fields are only handed to the kernel, which
// serialises its own use of them (the bus, the resource tree, the notifier
// chain); the slots are behind a lock, `bus` is atomic, the rest immutable.
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
        let host = KBox::pin_init(
            pin_init!(Host {
                // SAFETY: all-zero is a valid `pci_sysdata`; the domain and
                // node are set below.
                sysdata: Opaque::new(bindings::pci_sysdata {
                    domain,
                    node: bindings::NUMA_NO_NODE,
                    ..Default::default()
                }),
                slots <- new_raw_spinlock_irq!(pin_init::zeroed::<Slots>(), "mock_pci_slots"),
                busn: Opaque::new(bindings::resource {
                    name: c"mock-pci bus".as_char_ptr(),
                    start: 0,
                    end: 0,
                    flags: bindings::IORESOURCE_BUS as usize,
                    ..Default::default()
                }),
                notifier: Opaque::new(bindings::notifier_block {
                    notifier_call: Some(accessors::claim_on_add),
                    ..Default::default()
                }),
                template: Template::new(&settings.identity, &layout.bars()),
                layout,
                window,
                domain,
                bus: AtomicPtr::new(core::ptr::null_mut()),
                faux,
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
        let mut slots = self.slots.lock();
        let cfg = &mut slots.cfg[slot];
        cfg.reset(&self.template);
        let bar0 = l.bar0(slot);
        let bar = bindings::PCI_BASE_ADDRESS_0 as usize;
        cfg.write(&self.template, bar, 4, bar0 as u32);
        cfg.write(&self.template, bar + 4, 4, (bar0 >> 32) as u32);
        cfg.write(&self.template, bar + 8, 4, l.bar2(slot) as u32);
        slots.present[slot] = true;
        Ok(())
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
        let _lock = RescanLock::take();
        if self.slots.lock().present[slot] {
            pr_err!(
                "new_device {}: slot {} is occupied: remove it first (del_device)\n",
                slot,
                slot
            );
            return Err(EEXIST);
        }
        self.power_on(slot)?;
        let bus = self.bus.load(Relaxed);
        // SAFETY: the bus is registered while `self` lives; the rescan lock
        // is held.
        let found = unsafe {
            let found = bindings::pci_scan_slot(bus, devfn(slot) as i32);
            bindings::pci_bus_add_devices(bus);
            found
        };
        if found == 0 {
            self.slots.lock().present[slot] = false;
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
        let _lock = RescanLock::take();
        if !self.slots.lock().present[slot] {
            pr_err!("del_device {}: slot {} is empty\n", slot, slot);
            return Err(ENODEV);
        }
        // SAFETY: the bus is registered; the rescan lock is held, so the
        // device cannot go away between lookup and removal.
        unsafe {
            let pdev = bindings::pci_get_slot(self.bus.load(Relaxed), devfn(slot));
            if !pdev.is_null() {
                bindings::pci_stop_and_remove_bus_device(pdev);
                bindings::pci_dev_put(pdev);
            }
        }
        self.slots.lock().present[slot] = false;
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
