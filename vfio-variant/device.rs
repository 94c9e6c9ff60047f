// SPDX-License-Identifier: GPL-2.0

//! The per-device state ([`State`], stored after the vfio-pci core device in
//! a [`VariantDevice`]) and the revocation entry points.
//!
//! The state knows neither fault path: it holds the counters, the mode new
//! mmaps get, the unplugged flag and the list of tracked (legacy) vmas.
//! Every revocation zaps through the device inode's address_space (which
//! reaches fixed-mode mappings) and the tracked list (which holds the
//! legacy ones), and is counted.

use crate::{counters::Counters, tracked::VmaList, vfio};
use kernel::{
    debugfs::Scope,
    new_mutex,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Mutex,
    },
};

/// One bound device: the vfio-pci core device and this driver's [`State`].
pub(crate) type VariantDevice = vfio::Device<State>;

/// A counted reference to a bound device, as the debugfs files hold it.
pub(crate) type DevRef = ARef<VariantDevice>;

/// Which mmap/fault design new mappings of a device use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The 2024 fix: inode address_space, unmap_mapping_range, whole-vma faults.
    Fixed,
    /// The pre-2024 design, kept only as a negative control for the tests.
    Legacy,
}

/// This driver's part of a device.
#[pin_data]
pub(crate) struct State {
    /// Event counters (debugfs `counters`).
    pub(crate) counters: Counters,
    /// Per-device mode switch: `true` means [`Mode::Legacy`] for new mmaps.
    legacy_mode: Atomic<bool>,
    /// Set (under `memory_lock` for write) when the device is being
    /// removed: from then on every fault gets SIGBUS, whatever COMMAND says.
    unplugged: Atomic<bool>,
    /// Legacy mode's list of faulted vmas (unused by the fixed path).
    #[pin]
    pub(crate) legacy: VmaList,
    /// debugfs directory, present between probe and remove.
    #[pin]
    debugfs: Mutex<Option<Pin<KBox<Scope<DevRef>>>>>,
}

impl State {
    /// A device's initial state: no events, `legacy` selects the mode.
    pub(crate) fn new(legacy: bool) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            counters: Counters::new(),
            legacy_mode: Atomic::new(legacy),
            unplugged: Atomic::new(false),
            legacy <- VmaList::new(),
            debugfs <- new_mutex!(None),
        }? Error)
    }
}

impl VariantDevice {
    /// The counters.
    pub(crate) fn counters(&self) -> &Counters {
        &self.data().counters
    }

    /// The legacy vma list.
    pub(crate) fn legacy(&self) -> &VmaList {
        &self.data().legacy
    }

    /// Mode new mmaps get.
    pub(crate) fn mode(&self) -> Mode {
        if self.data().legacy_mode.load(Relaxed) {
            Mode::Legacy
        } else {
            Mode::Fixed
        }
    }

    /// Switches the mode for mmaps made from now on.
    pub(crate) fn set_mode(&self, mode: Mode) {
        self.data().legacy_mode.store(mode == Mode::Legacy, Relaxed);
    }

    /// Installs (or with `None` removes) the debugfs directory.
    pub(crate) fn set_debugfs(&self, dir: Option<Pin<KBox<Scope<DevRef>>>>) {
        let old = core::mem::replace(&mut *self.data().debugfs.lock(), dir);
        drop(old);
    }

    /// Driver-initiated revoke (debugfs `revoke`, unplug): every mapping of
    /// the device loses its entries and faults again on next access.
    pub(crate) fn revoke(&self) {
        let list = self.legacy().zap_and_lock();
        let mem = self.core().memory_write();
        self.core().unmap_all(&mem);
        drop(mem);
        drop(list);
        Counters::bump(&self.counters().zaps);
    }

    /// Unplug (driver remove): revoke every mapping for good. Users keep
    /// the device open until they notice; their accesses get SIGBUS.
    pub(crate) fn unplug(&self) {
        let list = self.legacy().zap_and_lock();
        let mem = self.core().memory_write();
        self.data().unplugged.store(true, Relaxed);
        self.core().unmap_all(&mem);
        drop(mem);
        drop(list);
        Counters::bump(&self.counters().zaps);
    }

    /// Whether the device is being removed. Read with `memory_lock` held.
    pub(crate) fn unplugged(&self) -> bool {
        self.data().unplugged.load(Relaxed)
    }

    /// Called after the vfio-pci core revoked device memory (COMMAND.MEM
    /// cleared, reset, D3): the core has already zapped the inode
    /// address_space; legacy mappings live elsewhere and are zapped here.
    pub(crate) fn core_revoked(&self) {
        let list = self.legacy().zap_and_lock();
        // Serialise with faults in flight, as the core's own zap does.
        drop(self.core().memory_write());
        drop(list);
        Counters::bump(&self.counters().zaps);
    }
}
