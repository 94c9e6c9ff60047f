// SPDX-License-Identifier: GPL-2.0

//! The configuration accessors of the mock buses (the root bus and the
//! Root Port's secondary bus share them) and the bus notifier that claims a
//! new mock device's BARs.
//!
//! The accessors may run with interrupts off and, since x86 selects
//! `PCI_LOCKLESS_CONFIG`, concurrently with each other: they take the host's
//! raw spinlock, never sleep and never allocate. A write that resets
//! functions also resets their MSI-X tables, which are BAR memory, under
//! the same lock. A write that lets an asserted INTx line through again
//! (INTX_DISABLE cleared) only queues its re-delivery (intx.rs): the
//! interrupt handler may take `pci_lock`, which the caller may hold.

use crate::{
    fabric::{Event, Fabric},
    host::Host,
    layout::MAX_SLOTS,
};
use kernel::{bindings, ffi::c_void, prelude::*};

/// Operations of the mock buses.
pub(crate) static OPS: bindings::pci_ops = bindings::pci_ops {
    add_bus: None,
    remove_bus: None,
    map_bus: None,
    read: Some(read),
    write: Some(write),
};

/// The `Host` whose bus `bus` is.
///
/// # Safety
///
/// `bus` must be a mock bus, whose `sysdata` is `Host::sysdata` of a live
/// `Host` (child buses inherit it from the root bus).
pub(crate) unsafe fn host_of<'a>(bus: *mut bindings::pci_bus) -> &'a Host {
    // SAFETY: see the function's safety section.
    unsafe {
        let sysdata = (*bus)
            .sysdata
            .cast::<kernel::types::Opaque<bindings::pci_sysdata>>();
        &*kernel::container_of!(sysdata, Host, sysdata)
    }
}

fn valid_access(offset: i32, size: i32) -> bool {
    matches!(size, 1 | 2 | 4) && (0..4096).contains(&offset) && offset % size == 0
}

/// # Safety
///
/// Called by the PCI core on a mock bus, with `val` valid for writes.
unsafe extern "C" fn read(
    bus: *mut bindings::pci_bus,
    devfn: u32,
    offset: i32,
    size: i32,
    val: *mut u32,
) -> i32 {
    // SAFETY: see the function's safety section.
    let (host, nr) = unsafe { (host_of(bus), (*bus).number) };
    let value = valid_access(offset, size)
        .then(|| {
            host.fabric
                .lock()
                .read(nr, devfn, offset as usize, size as usize)
        })
        .flatten();
    // SAFETY: `val` is valid for writes.
    unsafe { *val = value.unwrap_or(!0) };
    match value {
        Some(_) => bindings::PCIBIOS_SUCCESSFUL as i32,
        None => bindings::PCIBIOS_DEVICE_NOT_FOUND as i32,
    }
}

/// # Safety
///
/// Called by the PCI core on a mock bus.
unsafe extern "C" fn write(
    bus: *mut bindings::pci_bus,
    devfn: u32,
    offset: i32,
    size: i32,
    val: u32,
) -> i32 {
    // SAFETY: see the function's safety section.
    let (host, nr) = unsafe { (host_of(bus), (*bus).number) };
    if !valid_access(offset, size) {
        return bindings::PCIBIOS_DEVICE_NOT_FOUND as i32;
    }
    let (event, unmasked) = {
        let mut fabric = host.fabric.lock();
        let (event, unmasked) = crate::intx::write(
            &mut fabric,
            &host.templates.port,
            nr,
            devfn,
            offset as usize,
            size as usize,
            val,
        );
        reset_bar_state(host, &fabric, event);
        (event, unmasked)
    };
    // An asserted INTx line software just let through (INTX_DISABLE
    // cleared): delivered from an irq_work, not under `pci_lock`.
    if let Some(slot) = unmasked {
        host.intx.recheck(slot);
    }
    let d = host.domain;
    match event {
        None => return bindings::PCIBIOS_DEVICE_NOT_FOUND as i32,
        Some(Event::None) => {}
        Some(Event::FunctionReset(slot)) => {
            pr_debug!("{:04x}:{:02x}:{:02x}.0: function reset\n", d, nr, slot);
        }
        Some(Event::VfReset(slot, f)) => {
            pr_debug!("{:04x}:{:02x}:{:02x}.{}: function reset\n", d, nr, slot, f);
        }
        Some(Event::BusResetAsserted) => {
            pr_debug!("{:04x}:{:02x}:00.0: secondary bus reset asserted\n", d, nr);
        }
        Some(Event::BusResetReleased) => {
            pr_debug!("{:04x}:{:02x}:00.0: secondary bus reset released\n", d, nr);
        }
    }
    bindings::PCIBIOS_SUCCESSFUL as i32
}

/// Resets the device state in BAR memory (MSI-X table, DMA registers) of
/// every function `event` reset: the one that reset itself (FLR, D3hot to
/// D0), or each one on the bus that a Secondary Bus Reset reached.
fn reset_bar_state(host: &Host, fabric: &Fabric, event: Option<Event>) {
    let slots = match event {
        Some(Event::FunctionReset(slot)) => slot..slot + 1,
        Some(Event::BusResetAsserted) => 0..MAX_SLOTS,
        _ => return,
    };
    for slot in slots.filter(|&s| fabric.present(s)) {
        if let Err(e) = host.reset_bar_state(fabric, slot) {
            pr_err!(
                "slot {}: cannot reset the MSI-X table or DMA registers in BAR2 ({})\n",
                slot,
                e.to_errno()
            );
        }
    }
}

/// Whether the memory window of `bridge` is in the resource tree.
///
/// # Safety
///
/// `bridge` must be a valid `struct pci_dev`.
unsafe fn windows_claimed(bridge: *mut bindings::pci_dev) -> bool {
    let mem = bindings::PCI_BRIDGE_RESOURCES as usize + 1;
    // SAFETY: see the function's safety section.
    unsafe { !(*bridge).resource[mem].parent.is_null() }
}

/// Bus notifier: when the PCI core adds a device of a mock bus, claim its
/// BARs (already programmed) so that nothing tries to reassign them, not
/// even a later `/sys/bus/pci/rescan`.
///
/// The BARs of a device behind the Root Port nest in the port's windows,
/// but during a scan the PCI core reads those windows only after it has
/// added every device of the secondary bus. So when the first such device
/// arrives (at load, or when a removed Root Port is found again by a
/// rescan) the windows are claimed first, with `pci_bus_claim_resources()`
/// on the secondary bus, which reads them from the port and claims them and
/// the BARs of the devices already on the bus.
///
/// # Safety
///
/// Called by the driver core for `pci_bus_type` with `data` a `struct device`
/// embedded in a `struct pci_dev`, and `nb` the `Host`'s notifier block.
pub(crate) unsafe extern "C" fn claim_on_add(
    nb: *mut bindings::notifier_block,
    action: kernel::ffi::c_ulong,
    data: *mut c_void,
) -> i32 {
    if action != bindings::bus_notifier_event_BUS_NOTIFY_ADD_DEVICE as kernel::ffi::c_ulong {
        return bindings::NOTIFY_DONE as i32;
    }
    // SAFETY: see the function's safety section; the device's bus and that
    // bus's bridge live at least as long as the device being added, and the
    // caller of the scan holds the PCI rescan/remove lock.
    unsafe {
        let host = &*kernel::container_of!(nb.cast::<kernel::types::Opaque<_>>(), Host, notifier);
        let pdev = kernel::container_of!(data.cast::<bindings::device>(), bindings::pci_dev, dev);
        let bus = (*pdev).bus;
        if (*bus).sysdata != host.sysdata.get().cast() {
            return bindings::NOTIFY_DONE as i32;
        }
        // The bus routes INTx itself (the bridge's `map_irq`,
        // intx_domain.rs). `dev->pin` is the copy of the Interrupt Pin that
        // platform routing reads: ACPI, which has no `_PRT` for the mock
        // bus, would log "can't derive routing" and "no GSI" each time a
        // driver enables or disables the device. The PCI core and VFIO
        // read the register, which keeps the pin.
        (*pdev).pin = 0;
        let bridge = (*bus).self_;
        if !bridge.is_null() && !windows_claimed(bridge) {
            bindings::pci_bus_claim_resources(bus);
            if !windows_claimed(bridge) {
                pr_err!(
                    "{:04x}:00:00.0: cannot claim the Root Port's memory window: BARs behind it stay unclaimed\n",
                    host.domain
                );
            }
        }
        for bar in 0..bindings::PCI_STD_NUM_BARS as usize {
            let r = &(*pdev).resource[bar];
            if r.flags == 0 || !r.parent.is_null() {
                continue;
            }
            let ret = bindings::pci_claim_resource(pdev, bar as i32);
            if ret != 0 {
                pr_err!(
                    "{:04x}:{:02x}:{:02x}.0: cannot claim BAR{} ({})\n",
                    host.domain,
                    (*bus).number,
                    (*pdev).devfn >> 3,
                    bar,
                    ret
                );
            }
        }
    }
    bindings::NOTIFY_OK as i32
}
