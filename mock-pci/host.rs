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
//!
//! Lifetime, as in-tree host bridges (pci-hyperv, the generic host drivers)
//! handle it: the PCI domain number belongs to the bridge from the moment it
//! is set in `bridge->domain_nr` (the bridge's release function,
//! `pci_release_host_bridge_dev()`, frees it); unload stops and removes the
//! root bus (`pci_stop_root_bus()`, `pci_remove_root_bus()`), which drops
//! the bus's reference to the bridge, and then drops the reference
//! `pci_alloc_host_bridge()` gave (`pci_free_host_bridge()`), which frees
//! the bridge, its window list and the domain number.

use crate::{
    accessors, bridge,
    config::Template,
    dma,
    fabric::{Fabric, Templates},
    intx_domain::IntxDomain,
    iommu,
    layout::Layout,
    layout::MAX_SLOTS,
    msi_domain::MsiDomain,
    params::Settings,
    raw_lock::{new_raw_spinlock_irq, RawSpinLockIrq},
    sriov,
    window::Window,
};
use core::sync::atomic::{AtomicPtr, Ordering::Relaxed};
use kernel::{
    bindings, error::to_result, faux, fmt, new_mutex, prelude::*, sync::Mutex, types::Opaque,
};

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
    /// The registered bridge (null until registration succeeded); it owns
    /// the domain number.
    bridge: AtomicPtr<bindings::pci_host_bridge>,
    /// The software IOMMU (`iommu=1`), registered before the bus is scanned
    /// and unregistered after it is removed, before its sysfs parent.
    pub(crate) iommu: Option<Pin<KBox<iommu::Registration>>>,
    /// The functions the module parameters describe have a DMA engine
    /// (`dma=1`); configfs devices say so each.
    pub(crate) dma: bool,
    /// The device thread (DMA, pending interrupts), started with the
    /// first function that has a DMA engine, MSI or MSI-X, and stopped
    /// first thing in drop.
    #[pin]
    engine: Mutex<Option<crate::kthread::Thread>>,
    /// The MSI parent domain of the bus, removed after the bus.
    pub(crate) msi: MsiDomain,
    /// The INTx domain of the bus, removed after the bus.
    #[pin]
    pub(crate) intx: IntxDomain,
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

/// A PCI domain number from the PCI core's emulated-domain allocator (the
/// one vmd takes its numbers from), released when dropped unless handed to
/// a host bridge.
struct EmulDomain(i32);

impl EmulDomain {
    /// The first free number from 0x10000 up.
    fn alloc() -> Result<Self> {
        // SAFETY: allocates from the PCI core's emulated-domain IDA; the
        // number is released by `drop` or by the bridge it is handed to.
        let nr = unsafe { bindings::pci_bus_find_emul_domain_nr(0, 0x10000, i32::MAX as u32) };
        if nr < 0 {
            pr_err!("no free PCI domain for the mock bus ({})\n", nr);
            return Err(Error::from_errno(nr));
        }
        Ok(EmulDomain(nr))
    }

    /// Exactly `nr` (`domain=`), refused with `EBUSY` if a PCI bus of that
    /// domain exists (firmware's segments, ACPI's, are not in the
    /// allocator) or another emulated host bridge holds the number.
    fn reserve(nr: u16) -> Result<Self> {
        let n = u32::from(nr);
        // SAFETY: as in `alloc`, for the one number `nr`.
        let got = unsafe { bindings::pci_bus_find_emul_domain_nr(n, n, n) };
        if got == ENOSPC.to_errno() {
            pr_err!(
                "domain={:#x} is in use by another emulated PCI host bridge; pick another domain, or 0 for a free one\n",
                nr
            );
            return Err(EBUSY);
        }
        if got < 0 {
            pr_err!("cannot reserve PCI domain {:#x} ({})\n", nr, got);
            return Err(Error::from_errno(got));
        }
        // Held from here on (released on the error path below by `drop`),
        // so no emulated bridge can take the number while the buses are
        // looked at.
        let domain = EmulDomain(got);
        if let Some(bus) = (0..=255).find(|&b| {
            // SAFETY: a lookup in the PCI core's bus list, under its own
            // lock; the pointer is only compared with null.
            !unsafe { bindings::pci_find_bus(got, b) }.is_null()
        }) {
            pr_err!(
                "domain={:#x} is in use: PCI bus {:04x}:{:02x} exists; pick another domain, or 0 for a free one\n",
                nr,
                nr,
                bus
            );
            return Err(EBUSY);
        }
        Ok(domain)
    }

    fn nr(&self) -> i32 {
        self.0
    }

    /// Makes the number `bridge`'s: freeing the bridge (its last
    /// reference, `pci_free_host_bridge()` or `pci_remove_root_bus()` plus
    /// that) releases it, through `pci_release_host_bridge_dev()`.
    ///
    /// # Safety
    ///
    /// `bridge` comes from `pci_alloc_host_bridge()` and is not yet
    /// registered.
    unsafe fn give_to(self, bridge: *mut bindings::pci_host_bridge) {
        // SAFETY: see the function's safety section.
        unsafe { (*bridge).domain_nr = self.0 };
        core::mem::forget(self);
    }
}

impl Drop for EmulDomain {
    fn drop(&mut self) {
        // SAFETY: allocated in `alloc` or `reserve` and owned by nobody else.
        unsafe { bindings::pci_bus_release_emul_domain_nr(self.0) };
    }
}

/// How many entries a resource list (`struct resource_entry`) holds.
///
/// # Safety
///
/// `head` is a valid, initialised list of resource entries that nobody
/// changes during the call.
unsafe fn list_len(head: *mut bindings::list_head) -> usize {
    let mut n = 0;
    // SAFETY: see the function's safety section.
    let mut pos = unsafe { (*head).next };
    while pos != head {
        n += 1;
        // SAFETY: `pos` is an entry of the list.
        pos = unsafe { (*pos).next };
    }
    n
}

/// Whether a function described by `t`, with a DMA engine if `dma`, needs
/// the device thread: to run DMA jobs, or to send the MSI or MSI-X vectors
/// software unmasks.
fn needs_thread(t: &Template, dma: bool) -> bool {
    dma || t.has_msi() || t.msix().is_some()
}

const fn devfn(slot: usize) -> u32 {
    (slot as u32) << 3
}

impl Host {
    /// Creates the bridge and its first `settings.num_devs` devices.
    pub(crate) fn create(settings: &Settings) -> Result<Pin<KBox<Self>>> {
        let layout = settings.layout;
        let window = Window::claim(layout.base(), layout.size(), settings.allow_any_reserved)?;
        let faux = faux::Registration::new(c"mock_pci", None)?;
        // Released when dropped, until `register` hands it to the bridge.
        let domain = match settings.domain {
            Some(nr) => EmulDomain::reserve(nr)?,
            None => EmulDomain::alloc()?,
        };
        let nr = domain.nr();
        let msi = MsiDomain::new(nr)?;
        let scan_all = ScanAllDevices::enable();
        let mut host = KBox::pin_init(
            pin_init!(Host {
                // SAFETY: all-zero is a valid `pci_sysdata`; the domain and
                // node are set below.
                sysdata: Opaque::new(bindings::pci_sysdata {
                    domain: nr,
                    node: bindings::NUMA_NO_NODE,
                    ..Default::default()
                }),
                fabric <- new_raw_spinlock_irq!(pin_init::init_zeroed::<Fabric>(), "mock_pci_fabric"),
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
                    func: sriov::with_cap(
                        Template::new(&settings.identity, &layout.bars(), &settings.irqs),
                        settings.sriov_vfs,
                        settings.identity.device,
                    ),
                },
                layout,
                window,
                domain: nr,
                bridge: AtomicPtr::new(core::ptr::null_mut()),
                iommu: None,
                dma: settings.dma,
                engine <- new_mutex!(None),
                msi,
                intx <- IntxDomain::new(),
                faux,
                _scan_all: scan_all,
            }),
            GFP_KERNEL,
        )?;
        host.intx.create(nr)?;
        if settings.iommu {
            let reg = iommu::Registration::new(host.faux_dev(), host.sysdata.get().cast(), nr)?;
            // SAFETY: `iommu` is not structurally pinned.
            unsafe { Pin::get_unchecked_mut(host.as_mut()) }.iommu = Some(reg);
        }
        host.fabric
            .lock()
            .power_on_port(&host.templates.port, &host.layout);
        for slot in 0..settings.num_devs {
            host.power_on(slot, &host.templates.func, host.dma)?;
        }
        host.register(domain)?;
        if host.iommu.is_some() {
            let lock = RescanLock::take();
            let bus = host.secondary_bus(&lock);
            for slot in 0..settings.num_devs {
                // SAFETY: the bus was just scanned and stays registered
                // while the rescan lock is held.
                unsafe { host.check_iommu(bus, slot) }?;
            }
        }
        if needs_thread(&host.templates.func, host.dma) {
            host.start_thread()?;
        }
        Ok(host)
    }

    /// Starts the device thread unless it runs.
    fn start_thread(&self) -> Result {
        let mut engine = self.engine.lock();
        if engine.is_none() {
            // SAFETY: drop stops the thread before anything else.
            *engine = Some(unsafe { crate::poller::start(self) }?);
        }
        Ok(())
    }

    /// Resets the device state that lives in BAR memory, as the function's
    /// reset does on hardware: the MSI-X table and PBA, the DMA engine's
    /// registers. `fabric` is the locked fabric. Does not sleep.
    pub(crate) fn reset_bar_state(&self, fabric: &Fabric, slot: usize) -> Result {
        let bar2 = self.layout.bar2(slot);
        if let Some(t) = fabric.template(slot) {
            crate::msix::reset(&self.window, t, bar2)?;
        }
        if fabric.has_dma(slot) {
            dma::reset(self, bar2)?;
        }
        Ok(())
    }

    /// The module's faux device, parent of the bridge and the IOMMU.
    fn faux_dev(&self) -> *mut bindings::device {
        let faux_dev: &kernel::device::Device<kernel::device::Bound> = self.faux.as_ref().as_ref();
        // `Device` is a transparent wrapper of `struct device`.
        core::ptr::from_ref(faux_dev)
            .cast_mut()
            .cast::<bindings::device>()
    }

    /// With `iommu=1`, checks that the function in `slot` of `bus` got its
    /// IOMMU group from the software IOMMU: a hardware IOMMU registered
    /// first would claim it, or leave it without one, and VFIO would then
    /// use that IOMMU or refuse the device.
    ///
    /// # Safety
    ///
    /// `bus` is registered, and the caller holds the rescan lock.
    unsafe fn check_iommu(&self, bus: *mut bindings::pci_bus, slot: usize) -> Result {
        let Some(reg) = &self.iommu else {
            return Ok(());
        };
        // SAFETY: see the function's safety section.
        let pdev = unsafe { bindings::pci_get_slot(bus, devfn(slot)) };
        if pdev.is_null() {
            return Ok(());
        }
        let ours = reg.serves(pdev);
        // SAFETY: taken by `pci_get_slot`.
        unsafe { bindings::pci_dev_put(pdev) };
        if !ours {
            pr_err!(
                "slot {}: another IOMMU (a hardware one?) claimed the device or gave it no group; the software IOMMU needs to be the only one: load with iommu=0\n",
                slot
            );
            return Err(ENODEV);
        }
        Ok(())
    }

    /// Puts a function described by `t` (with a DMA engine if `dma`) in
    /// `slot`, in its power-on state, with its BARs programmed by
    /// "firmware" at the slot's addresses and its BAR memory zeroed (its
    /// MSI-X table masked). A BAR smaller than the slot's size sits at its
    /// start.
    fn power_on(&self, slot: usize, t: &Template, dma: bool) -> Result {
        let l = &self.layout;
        self.window.zero(l.bar0(slot), l.bars().bar0 as usize)?;
        self.window.zero(l.bar2(slot), l.bars().bar2 as usize)?;
        let mut fabric = self.fabric.lock();
        fabric.power_on(t, slot, l.bar0(slot), l.bar2(slot));
        fabric.set_dma(slot, dma);
        let reset = self.reset_bar_state(&fabric, slot);
        if reset.is_err() {
            fabric.remove(slot);
        }
        reset
    }

    /// The Root Port's secondary bus, or null while the Root Port is
    /// removed (sysfs `remove` on it, until a rescan). The caller holds the
    /// rescan lock, which keeps the bus alive.
    fn secondary_bus(&self, _lock: &RescanLock) -> *mut bindings::pci_bus {
        // SAFETY: a lookup in the PCI core's bus list, under its own lock.
        unsafe { bindings::pci_find_bus(self.domain, bridge::SECONDARY_BUS.into()) }
    }

    /// Registers the bus notifier and the root bus, and scans it. The
    /// domain number goes to the bridge, which releases it when it is
    /// freed: here if registration fails, at unload otherwise.
    fn register(self: &Pin<KBox<Self>>, domain: EmulDomain) -> Result {
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
            pr_err!("cannot allocate the mock host bridge\n");
            return Err(ENOMEM);
        }
        // SAFETY: `bridge` is fresh and unregistered. From here on, freeing
        // it releases the domain number. The MSI domain is dropped after
        // the bus.
        unsafe {
            domain.give_to(bridge);
            self.msi.attach(bridge);
            self.intx.attach(bridge);
        }
        let parent = self.faux_dev();
        // SAFETY: `bridge` is a fresh, exclusively owned bridge; `sysdata`,
        // the ops and both resources outlive the bus (drop removes it first).
        let ret = unsafe {
            (*bridge).dev.parent = parent;
            (*bridge).sysdata = self.sysdata.get().cast();
            (*bridge).ops = (&raw const accessors::OPS).cast_mut();
            (*bridge).busnr = 0;
            let windows = &raw mut (*bridge).windows;
            bindings::pci_add_resource(windows, self.window.resource());
            bindings::pci_add_resource(windows, self.busn.get());
            // `pci_add_resource()` only logs when it cannot allocate.
            if list_len(windows) != 2 {
                ENOMEM.to_errno()
            } else {
                let _lock = RescanLock::take();
                let ret = bindings::pci_scan_root_bus_bridge(bridge);
                if ret == 0 {
                    self.bridge.store(bridge, Relaxed);
                    bindings::pci_bus_add_devices((*bridge).bus);
                }
                ret
            }
        };
        if ret != 0 {
            pr_err!(
                "registering the mock host bridge (domain {:04x}) failed ({}); nothing is left registered\n",
                self.domain,
                ret
            );
            // SAFETY: not registered: this drops the only reference, which
            // frees the bridge, its window list and the domain number.
            unsafe { bindings::pci_free_host_bridge(bridge) };
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }

    /// Hot-adds a device described by `t` (with a DMA engine if `dma`) in
    /// `slot`, or in the first free slot; returns the slot. `who` starts
    /// the log lines (`new_device`, a configfs device).
    pub(crate) fn plug(
        &self,
        slot: Option<usize>,
        t: &Template,
        dma: bool,
        who: fmt::Arguments<'_>,
    ) -> Result<usize> {
        let lock = RescanLock::take();
        let slots = self.layout.slots().min(MAX_SLOTS);
        let slot = match slot {
            Some(slot) => slot,
            None => {
                let free = {
                    let fabric = self.fabric.lock();
                    (0..slots).find(|&s| !fabric.present(s))
                };
                free.ok_or_else(|| {
                    pr_err!(
                        "{}: every slot (0 to {}) is occupied: remove a device first\n",
                        who,
                        slots - 1
                    );
                    ENOSPC
                })?
            }
        };
        if slot >= slots {
            pr_err!(
                "{} {}: slot {} is out of range: use 0 to {}\n",
                who,
                slot,
                slot,
                slots - 1
            );
            return Err(EINVAL);
        }
        if self.fabric.lock().present(slot) {
            pr_err!(
                "{} {}: slot {} is occupied: remove it first (del_device)\n",
                who,
                slot,
                slot
            );
            return Err(EEXIST);
        }
        let bus = self.secondary_bus(&lock);
        if bus.is_null() {
            pr_err!(
                "{} {}: the Root Port {:04x}:00:00.0 is removed: rescan first (/sys/bus/pci/rescan)\n",
                who,
                slot,
                self.domain
            );
            return Err(ENODEV);
        }
        if needs_thread(t, dma) {
            self.start_thread()?;
        }
        self.power_on(slot, t, dma)?;
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
                "{} {}: the PCI core found no device in the slot\n",
                who,
                slot
            );
            return Err(EIO);
        }
        // SAFETY: as above.
        if let Err(e) = unsafe { self.check_iommu(bus, slot) } {
            // SAFETY: as above.
            unsafe { self.remove_locked(bus, slot) };
            return Err(e);
        }
        Ok(slot)
    }

    /// Removes the function in `slot` of `bus`, if the PCI core has one
    /// there, and empties the slot.
    ///
    /// # Safety
    ///
    /// `bus` is null or registered, and the caller holds the rescan lock.
    unsafe fn remove_locked(&self, bus: *mut bindings::pci_bus, slot: usize) {
        if !bus.is_null() {
            // SAFETY: see the function's safety section: the device cannot
            // go away between lookup and removal.
            unsafe {
                let pdev = bindings::pci_get_slot(bus, devfn(slot));
                if !pdev.is_null() {
                    bindings::pci_stop_and_remove_bus_device(pdev);
                    bindings::pci_dev_put(pdev);
                }
            }
        }
        self.fabric.lock().remove(slot);
        self.intx.dispose(slot);
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
        // SAFETY: a bus `secondary_bus` found stays registered while the
        // rescan lock is held.
        unsafe { self.remove_locked(bus, slot) };
        Ok(())
    }
}

#[pinned_drop]
impl PinnedDrop for Host {
    fn drop(self: Pin<&mut Self>) {
        // Stopping the thread waits until it returned: nothing uses the
        // host from there.
        let engine = self.engine.lock().take();
        drop(engine);
        let bridge = self.bridge.swap(core::ptr::null_mut(), Relaxed);
        if !bridge.is_null() {
            let _lock = RescanLock::take();
            // SAFETY: registered in `register`, and the root bus is only
            // removed here. This removes every device (running their
            // drivers' remove), the bus and the bridge device; the bus's
            // reference to the bridge goes with the bus.
            unsafe {
                let bus = (*bridge).bus;
                if !bus.is_null() {
                    bindings::pci_stop_root_bus(bus);
                    bindings::pci_remove_root_bus(bus);
                }
            }
        }
        // No INTx re-delivery runs from here on (the domain itself goes
        // with the fields).
        self.intx.quiesce();
        // SAFETY: registered in `register` (unregistering a notifier that
        // never registered is harmless: it is not found).
        unsafe {
            bindings::bus_unregister_notifier(
                (&raw const bindings::pci_bus_type).cast_mut(),
                self.notifier.get(),
            );
        }
        if !bridge.is_null() {
            // SAFETY: drops the reference `pci_alloc_host_bridge()` gave
            // us. Once nothing else holds one, `pci_release_host_bridge_dev()`
            // frees the bridge and its window list and releases the domain
            // number (the core reads none of our memory there: no
            // `release_fn`).
            unsafe { bindings::pci_free_host_bridge(bridge) };
        }
    }
}

#[kunit_tests(mock_pci_domain)]
mod tests {
    use super::*;

    /// A domain with buses is refused: domain 0 has bus 0000:00 on every
    /// x86 machine (the guests are QEMU q35).
    #[test]
    fn reserve_refuses_a_domain_with_buses() {
        assert_eq!(EmulDomain::reserve(0).err(), Some(EBUSY));
    }

    /// `domain=` reserves exactly its number, once; dropping releases it.
    #[test]
    fn reserve_is_exact_and_exclusive() -> Result {
        let first = EmulDomain::reserve(0xfffe)?;
        assert_eq!(first.nr(), 0xfffe);
        assert_eq!(EmulDomain::reserve(0xfffe).err(), Some(EBUSY));
        drop(first);
        assert_eq!(EmulDomain::reserve(0xfffe)?.nr(), 0xfffe);
        Ok(())
    }
}
