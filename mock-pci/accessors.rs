// SPDX-License-Identifier: GPL-2.0

//! The root bus's configuration accessors and the bus notifier that claims
//! a new mock device's BARs.
//!
//! The accessors may run with interrupts off and, since x86 selects
//! `PCI_LOCKLESS_CONFIG`, concurrently with each other: they take the host's
//! raw spinlock, never sleep and never allocate.

use crate::{config::Effect, host::Host, layout::MAX_SLOTS};
use kernel::{bindings, ffi::c_void, prelude::*};

/// Operations of the mock root bus.
pub(crate) static OPS: bindings::pci_ops = bindings::pci_ops {
    add_bus: None,
    remove_bus: None,
    map_bus: None,
    read: Some(read),
    write: Some(write),
};

/// The `Host` whose root bus `bus` is.
///
/// # Safety
///
/// `bus` must be the mock root bus, whose `sysdata` is `Host::sysdata` of a
/// live `Host`.
unsafe fn host_of<'a>(bus: *mut bindings::pci_bus) -> &'a Host {
    // SAFETY: see the function's safety section.
    unsafe {
        let sysdata = (*bus)
            .sysdata
            .cast::<kernel::types::Opaque<bindings::pci_sysdata>>();
        &*kernel::container_of!(sysdata, Host, sysdata)
    }
}

/// The slot a `devfn` addresses, if it is function 0 of a slot we emulate.
fn slot_of(devfn: u32) -> Option<usize> {
    let slot = (devfn >> 3) as usize;
    (devfn & 7 == 0 && slot < MAX_SLOTS).then_some(slot)
}

fn valid_access(offset: i32, size: i32) -> bool {
    matches!(size, 1 | 2 | 4) && (0..4096).contains(&offset) && offset % size == 0
}

/// # Safety
///
/// Called by the PCI core on the mock root bus, with `val` valid for writes.
unsafe extern "C" fn read(
    bus: *mut bindings::pci_bus,
    devfn: u32,
    offset: i32,
    size: i32,
    val: *mut u32,
) -> i32 {
    // SAFETY: see the function's safety section.
    let host = unsafe { host_of(bus) };
    let value = match slot_of(devfn) {
        Some(slot) if valid_access(offset, size) => {
            let slots = host.slots.lock();
            slots.present[slot].then(|| slots.cfg[slot].read(offset as usize, size as usize))
        }
        _ => None,
    };
    // SAFETY: `val` is valid for writes.
    unsafe { *val = value.unwrap_or(!0) };
    match value {
        Some(_) => bindings::PCIBIOS_SUCCESSFUL as i32,
        None => bindings::PCIBIOS_DEVICE_NOT_FOUND as i32,
    }
}

/// # Safety
///
/// Called by the PCI core on the mock root bus.
unsafe extern "C" fn write(
    bus: *mut bindings::pci_bus,
    devfn: u32,
    offset: i32,
    size: i32,
    val: u32,
) -> i32 {
    // SAFETY: see the function's safety section.
    let host = unsafe { host_of(bus) };
    let Some(slot) = slot_of(devfn).filter(|_| valid_access(offset, size)) else {
        return bindings::PCIBIOS_DEVICE_NOT_FOUND as i32;
    };
    let mut slots = host.slots.lock();
    if !slots.present[slot] {
        return bindings::PCIBIOS_DEVICE_NOT_FOUND as i32;
    }
    let effect = slots.cfg[slot].write(&host.template, offset as usize, size as usize, val);
    drop(slots);
    if effect == Effect::Reset {
        pr_debug!("{:04x}:00:{:02x}.0: function reset\n", host.domain, slot);
    }
    bindings::PCIBIOS_SUCCESSFUL as i32
}

/// Bus notifier: when the PCI core adds a device of the mock bus, claim its
/// BARs (already programmed) so that nothing tries to reassign them, not
/// even a later `/sys/bus/pci/rescan`.
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
    // SAFETY: see the function's safety section.
    unsafe {
        let host = &*kernel::container_of!(nb.cast::<kernel::types::Opaque<_>>(), Host, notifier);
        let pdev = kernel::container_of!(data.cast::<bindings::device>(), bindings::pci_dev, dev);
        if (*(*pdev).bus).sysdata != host.sysdata.get().cast() {
            return bindings::NOTIFY_DONE as i32;
        }
        for bar in 0..bindings::PCI_STD_NUM_BARS as usize {
            let r = &(*pdev).resource[bar];
            if r.flags == 0 || !r.parent.is_null() {
                continue;
            }
            let ret = bindings::pci_claim_resource(pdev, bar as i32);
            if ret != 0 {
                pr_err!(
                    "{:04x}:00:{:02x}.0: cannot claim BAR{} ({})\n",
                    host.domain,
                    (*pdev).devfn >> 3,
                    bar,
                    ret
                );
            }
        }
    }
    bindings::NOTIFY_OK as i32
}
