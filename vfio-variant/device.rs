// SPDX-License-Identifier: GPL-2.0

//! The per-device object: a `vfio_pci_core_device` followed by this
//! driver's state, in one allocation made by `_vfio_alloc_device()`.
//!
//! Revocation lives here because it ties both paths together: the fixed
//! path revokes through the device inode's address_space, the legacy path
//! walks its vma list, and every revocation is counted.

use crate::{
    counters::Counters,
    debugfs::DeviceDir,
    legacy::VmaList,
    mm::NewVma,
    region,
    vfio::CoreDevice,
    {fixed, legacy},
};
use core::ptr::NonNull;
use kernel::{
    bindings, new_mutex,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Mutex,
    },
};

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
    debugfs: Mutex<Option<Pin<KBox<DeviceDir>>>>,
}

impl State {
    fn new(legacy: bool) -> impl PinInit<Self> {
        pin_init!(Self {
            counters: Counters::new(),
            legacy_mode: Atomic::new(legacy),
            unplugged: Atomic::new(false),
            legacy <- VmaList::new(),
            debugfs <- new_mutex!(None),
        })
    }
}

/// One bound device. `core` must stay the first field: the vfio core only
/// knows the `vfio_pci_core_device` (and its leading `vfio_device`).
#[repr(C)]
pub(crate) struct VariantDevice {
    core: CoreDevice,
    state: State,
}

impl VariantDevice {
    /// Bytes `_vfio_alloc_device()` must allocate.
    pub(crate) const SIZE: usize = core::mem::size_of::<Self>();

    /// Initialises the Rust part in place (`vfio_device_ops.init`, after
    /// `vfio_pci_core_init_dev()`).
    ///
    /// # Safety
    ///
    /// `this` points to a zeroed allocation of [`Self::SIZE`] bytes whose
    /// core part is initialised; the state is not initialised yet.
    pub(crate) unsafe fn init_state(this: *mut Self, legacy: bool) -> Result {
        // SAFETY: the slot is valid for writes and pinned (the allocation is
        // never moved until it is freed).
        unsafe { State::new(legacy).__init(&raw mut (*this).state) }
            .map_err(|e: core::convert::Infallible| match e {})
    }

    /// Drops the Rust part (`vfio_device_ops.release`, before
    /// `vfio_pci_core_release_dev()`).
    ///
    /// # Safety
    ///
    /// The state was initialised by [`Self::init_state`] and nothing uses
    /// it any more.
    pub(crate) unsafe fn drop_state(this: *mut Self) {
        // SAFETY: per the caller.
        unsafe { core::ptr::drop_in_place(&raw mut (*this).state) };
    }

    /// # Safety
    ///
    /// `vdev` is the `vfio_device` of a device allocated by this driver whose
    /// state is initialised and that outlives `'a`.
    pub(crate) unsafe fn from_vfio<'a>(vdev: *mut bindings::vfio_device) -> &'a Self {
        // SAFETY: `vfio_device` is the first field of `vfio_pci_core_device`,
        // which is the first field of `Self` (`repr(C)`).
        unsafe { &*vdev.cast::<Self>() }
    }

    /// # Safety
    ///
    /// As [`Self::from_vfio`], for the core device pointer.
    pub(crate) unsafe fn from_core<'a>(core: *mut bindings::vfio_pci_core_device) -> &'a Self {
        // SAFETY: `core` is the first field of `Self`.
        unsafe { &*core.cast::<Self>() }
    }

    /// Calls `f` on every device of this driver in this device's dev_set,
    /// this one included (see [`CoreDevice::for_each_sibling`]).
    pub(crate) fn for_each_sibling(&self, mut f: impl FnMut(&Self)) {
        self.core.for_each_sibling(|core| {
            // SAFETY: bound through this driver's ops, so allocated by it as
            // a `VariantDevice` with its state initialised before it joined
            // the set; alive while the walk holds the set's lock.
            f(unsafe { Self::from_core(core.as_ptr()) })
        });
    }

    /// The vfio-pci core device.
    pub(crate) fn core(&self) -> &CoreDevice {
        &self.core
    }

    /// The counters.
    pub(crate) fn counters(&self) -> &Counters {
        &self.state.counters
    }

    /// The legacy vma list.
    pub(crate) fn legacy(&self) -> &VmaList {
        &self.state.legacy
    }

    /// Mode new mmaps get.
    pub(crate) fn mode(&self) -> Mode {
        if self.state.legacy_mode.load(Relaxed) {
            Mode::Legacy
        } else {
            Mode::Fixed
        }
    }

    /// Switches the mode for mmaps made from now on.
    pub(crate) fn set_mode(&self, mode: Mode) {
        self.state.legacy_mode.store(mode == Mode::Legacy, Relaxed);
    }

    /// Installs (or with `None` removes) the debugfs directory.
    pub(crate) fn set_debugfs(&self, dir: Option<Pin<KBox<DeviceDir>>>) {
        let old = core::mem::replace(&mut *self.state.debugfs.lock(), dir);
        drop(old);
    }

    /// `vfio_device_ops.mmap`: the core validates and sets up the vma exactly
    /// as for the stock driver (same errors), then this driver takes over
    /// the fault path of BAR mappings.
    pub(crate) fn mmap(&self, vma: &NewVma) -> Result {
        // SAFETY: the core device is valid and `vma` is being mmapped.
        let ret = unsafe { bindings::vfio_pci_core_mmap(self.core.vfio(), vma.as_ptr()) };
        kernel::error::to_result(ret)?;
        let (index, _) = region::split_pgoff(vma.pgoff());
        if index >= u64::from(bindings::VFIO_PCI_ROM_REGION_INDEX) {
            // A device-specific region with its own mmap: not ours.
            return Ok(());
        }
        match self.mode() {
            Mode::Fixed => {
                vma.set_ops(&fixed::VM_OPS);
                Ok(())
            }
            Mode::Legacy => legacy::attach(vma),
        }
    }

    /// Driver-initiated revoke (debugfs `revoke`, unplug): every mapping of
    /// the device loses its entries and faults again on next access.
    pub(crate) fn revoke(&self) {
        let list = self.legacy().zap_and_lock();
        let mem = self.core.memory_write();
        self.core.unmap_all(&mem);
        drop(mem);
        drop(list);
        Counters::bump(&self.counters().zaps);
    }

    /// Unplug (driver remove): revoke every mapping for good. Users keep
    /// the device open until they notice; their accesses get SIGBUS.
    pub(crate) fn unplug(&self) {
        let list = self.legacy().zap_and_lock();
        let mem = self.core.memory_write();
        self.state.unplugged.store(true, Relaxed);
        self.core.unmap_all(&mem);
        drop(mem);
        drop(list);
        Counters::bump(&self.counters().zaps);
    }

    /// Whether the device is being removed. Read with `memory_lock` held.
    pub(crate) fn unplugged(&self) -> bool {
        self.state.unplugged.load(Relaxed)
    }

    /// Called after the vfio-pci core revoked device memory (COMMAND.MEM
    /// cleared, reset, D3): the core has already zapped the inode
    /// address_space; legacy mappings live elsewhere and are zapped here.
    pub(crate) fn core_revoked(&self) {
        let list = self.legacy().zap_and_lock();
        // Serialise with faults in flight, as the core's own zap does.
        drop(self.core.memory_write());
        drop(list);
        Counters::bump(&self.counters().zaps);
    }
}

/// A reference to a bound device that debugfs files and the device registry
/// hold.
///
/// # Invariants
///
/// The device is alive while a `DevRef` is reachable: every holder is
/// dropped in `remove()` before the final `vfio_put_device()`.
#[derive(Clone, Copy)]
pub(crate) struct DevRef(NonNull<VariantDevice>);

// SAFETY: `VariantDevice` is Sync (atomics, locks, and the core's own
// locking); the pointer is only dereferenced while the device is alive.
unsafe impl Send for DevRef {}
// SAFETY: as above.
unsafe impl Sync for DevRef {}

impl DevRef {
    /// # Safety
    ///
    /// The caller guarantees the type invariant for every copy it makes.
    pub(crate) unsafe fn new(dev: &VariantDevice) -> Self {
        Self(NonNull::from(dev))
    }
}

impl core::ops::Deref for DevRef {
    type Target = VariantDevice;

    fn deref(&self) -> &VariantDevice {
        // SAFETY: type invariant.
        unsafe { self.0.as_ref() }
    }
}
