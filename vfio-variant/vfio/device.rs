// SPDX-License-Identifier: GPL-2.0

//! A bound device: [`Device`] (the core device and the driver's data in one
//! allocation), [`CoreDevice`] (`struct vfio_pci_core_device`) and
//! [`OpenDevice`] (a device some file has open, on which the core's own
//! file operations may run).

use core::{marker::PhantomData, ptr::NonNull};
use kernel::{
    bindings, container_of,
    error::to_result,
    prelude::*,
    sync::aref::AlwaysRefCounted,
    types::Opaque,
    uaccess::{UserPtr, UserSlice},
};

/// A vfio-pci core device (`struct vfio_pci_core_device`).
///
/// # Invariants
///
/// The object was initialised by `vfio_pci_core_init_dev()` and is not yet
/// released: `pdev`, `memory_lock` and the embedded `vfio_device` (with its
/// `inode`) are valid.
#[repr(transparent)]
pub(crate) struct CoreDevice(Opaque<bindings::vfio_pci_core_device>);

// SAFETY: the C object is designed for concurrent use: the fields this type
// reads are fixed while it exists or are read under `memory_lock`, and every
// function it calls takes the locks it needs.
unsafe impl Sync for CoreDevice {}
// SAFETY: as above; the object is not tied to a thread.
unsafe impl Send for CoreDevice {}

impl CoreDevice {
    /// The C pointer.
    pub(crate) fn as_ptr(&self) -> *mut bindings::vfio_pci_core_device {
        self.0.get()
    }

    /// The embedded `struct vfio_device`.
    pub(super) fn vfio(&self) -> *mut bindings::vfio_device {
        // SAFETY: field projection inside a valid object (type invariant).
        unsafe { &raw mut (*self.as_ptr()).vdev }
    }

    /// The PCI device.
    pub(super) fn pdev(&self) -> *mut bindings::pci_dev {
        // SAFETY: `pdev` is set by `vfio_pci_core_init_dev()` and never
        // changes (type invariant).
        unsafe { (*self.as_ptr()).pdev }
    }

    /// The PCI device's `struct device`, for `dev_*!` logging.
    pub(crate) fn as_dev(&self) -> &kernel::device::Device {
        // SAFETY: the PCI device outlives its vfio device (the core holds a
        // reference from init to release); `dev` is embedded in it.
        unsafe { kernel::device::Device::from_raw(&raw mut (*self.pdev()).dev) }
    }

    /// `memory_lock`.
    pub(super) fn memory_lock(&self) -> *mut bindings::rw_semaphore {
        // SAFETY: field projection inside a valid object (type invariant).
        unsafe { &raw mut (*self.as_ptr()).memory_lock }
    }

    /// Offset of the power management capability (0 without one).
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn pm_cap(&self) -> u8 {
        // SAFETY: set at enumeration, never changed while bound.
        unsafe { (*self.pdev()).pm_cap }
    }

    /// First page frame of BAR `index`; 0 for an index past the last BAR.
    pub(crate) fn bar_pfn(&self, index: usize) -> usize {
        if index >= bindings::PCI_STD_NUM_BARS as usize {
            return 0;
        }
        // SAFETY: `pdev` is valid (type invariant); `index` is in bounds;
        // resources are fixed while the device is bound.
        let start = unsafe { (*self.pdev()).resource[index].start };
        (start >> kernel::page::PAGE_SHIFT) as usize
    }

    /// Whether a write of `count` bytes from `buf` at config space offset
    /// `off` sets the Initiate Function Level Reset bit of PCIe Device
    /// Control on a function with FLR: the write on which the core zaps
    /// and resets the device (`vfio_exp_config_write()`).
    pub(crate) fn write_requests_flr(&self, off: u64, buf: UserPtr, count: usize) -> bool {
        // SAFETY: set at enumeration, never changed while bound.
        let (cap, devcap) = unsafe { ((*self.pdev()).pcie_cap, (*self.pdev()).devcap) };
        if cap == 0 || devcap & bindings::PCI_EXP_DEVCAP_FLR == 0 {
            return false;
        }
        // The FLR bit is bit 7 of Device Control's high byte.
        let byte = u64::from(cap) + u64::from(bindings::PCI_EXP_DEVCTL) + 1;
        let Some(skip) = byte.checked_sub(off).filter(|&k| k < count as u64) else {
            return false;
        };
        let mut r = UserSlice::new(buf, count).reader();
        let mut b = [0u8; 1];
        r.skip(skip as usize).is_ok()
            && r.read_slice(&mut b).is_ok()
            && u32::from(b[0]) << 8 & bindings::PCI_EXP_DEVCTL_BCR_FLR != 0
    }

    /// The device inode's address_space (what every device file's
    /// `f_mapping` points to since the 2024 fix).
    pub(super) fn mapping(&self) -> *mut bindings::address_space {
        // SAFETY: `inode` is set by `vfio_init_device()` before `init` and
        // lives as long as the vfio device (type invariant).
        unsafe { (*(*self.vfio()).inode).i_mapping }
    }
}

/// One device bound by a [`super::Driver`] whose data is `D`: the core
/// device followed by the driver's data, in one allocation made by
/// `_vfio_alloc_device()` (the vfio core only knows the leading
/// `vfio_pci_core_device`, and its leading `vfio_device`).
///
/// Reference counted through the `struct device` of the `vfio_device`
/// ([`ARef<Device<D>>`](kernel::sync::aref::ARef)); the last reference runs
/// `vfio_device_ops.release`, which drops `data`.
///
/// # Invariants
///
/// `core` is a [`CoreDevice`] and `data` is initialised, from
/// `vfio_device_ops.init` until `vfio_device_ops.release`.
#[repr(C)]
pub(crate) struct Device<D> {
    core: CoreDevice,
    data: D,
}

impl<D> Device<D> {
    /// Bytes `_vfio_alloc_device()` must allocate.
    pub(super) const SIZE: usize = core::mem::size_of::<Self>();

    /// # Safety
    ///
    /// `vdev` is the `vfio_device` of a device allocated as a `Device<D>`,
    /// whose data is initialised and that outlives `'a`.
    pub(super) unsafe fn from_vfio<'a>(vdev: *mut bindings::vfio_device) -> &'a Self {
        // SAFETY: per the caller, `vdev` is the `vdev` field of the
        // `vfio_pci_core_device` that is the `core` field of a `Self`.
        unsafe {
            let core = container_of!(vdev, bindings::vfio_pci_core_device, vdev);
            Self::from_core(core)
        }
    }

    /// # Safety
    ///
    /// As [`Self::from_vfio`], for the core device pointer.
    pub(super) unsafe fn from_core<'a>(core: *mut bindings::vfio_pci_core_device) -> &'a Self {
        // SAFETY: per the caller, `core` is the `core` field of a live
        // `Self`; `CoreDevice` is transparent over the C struct.
        unsafe { &*container_of!(core.cast::<CoreDevice>(), Self, core) }
    }

    /// The core part of a device whose data is not initialised yet.
    ///
    /// # Safety
    ///
    /// `vdev` is the `vfio_device` of an allocation of [`Self::SIZE`] bytes
    /// whose core part is initialised, alive for `'a`.
    pub(super) unsafe fn core_of<'a>(vdev: *mut bindings::vfio_device) -> &'a CoreDevice {
        // SAFETY: per the caller; `CoreDevice` is transparent over the C
        // struct, whose first field is `vdev`.
        unsafe { &*container_of!(vdev, bindings::vfio_pci_core_device, vdev).cast::<CoreDevice>() }
    }

    /// The slot of the driver's data.
    ///
    /// # Safety
    ///
    /// As [`Self::core_of`].
    pub(super) unsafe fn data_slot(vdev: *mut bindings::vfio_device) -> *mut D {
        // SAFETY: per the caller, the allocation is a `Self`, whose `core`
        // field holds the `vfio_pci_core_device` that `vdev` starts.
        unsafe {
            let core = container_of!(vdev, bindings::vfio_pci_core_device, vdev);
            let this = container_of!(core.cast::<CoreDevice>(), Self, core);
            &raw mut (*this).data
        }
    }

    /// The vfio-pci core device.
    pub(crate) fn core(&self) -> &CoreDevice {
        &self.core
    }

    /// The driver's data.
    pub(crate) fn data(&self) -> &D {
        &self.data
    }

    /// Calls `f` on every device of this device's dev_set (the devices a
    /// hot reset resets together) that is bound by the same PCI driver as
    /// this one, so has the same data type: this one included. Runs under
    /// the dev_set's lock.
    pub(crate) fn for_each_sibling(&self, mut f: impl FnMut(&Self)) {
        let me = self.core.vfio();
        // SAFETY: `dev_set` is assigned at registration and outlives every
        // member; `me` is registered while a file of it is open (callers
        // run in file operations).
        let set = unsafe { (*me).dev_set };
        if set.is_null() {
            return;
        }
        // SAFETY: `me->dev` is the bound PCI device (type invariant).
        let driver = unsafe { (*(*me).dev).driver };
        // SAFETY: `set` is valid (above); its lock guards `device_list`.
        unsafe { bindings::mutex_lock(&raw mut (*set).lock) };
        // SAFETY: `set` is valid; its list is walked under its lock.
        let head = unsafe { &raw mut (*set).device_list };
        // SAFETY: as above.
        let mut pos = unsafe { (*head).next };
        while pos != head {
            // SAFETY: under the set's lock every entry of `device_list` is
            // the `dev_set_list` of a registered vfio device.
            let vdev = unsafe { container_of!(pos, bindings::vfio_device, dev_set_list) };
            // SAFETY: a registered device's parent is bound, so valid.
            if unsafe { (*(*vdev).dev).driver } == driver {
                // SAFETY: bound by our PCI driver, so allocated by its probe
                // as a `Self` with its data initialised; alive while it is
                // registered, which the set's lock guarantees meanwhile.
                f(unsafe { Self::from_vfio(vdev) });
            }
            // SAFETY: as for `head`.
            pos = unsafe { (*pos).next };
        }
        // SAFETY: taken above.
        unsafe { bindings::mutex_unlock(&raw mut (*set).lock) };
    }
}

impl<D> core::ops::Deref for Device<D> {
    type Target = D;

    fn deref(&self) -> &D {
        &self.data
    }
}

// SAFETY: the core device is Sync (see `CoreDevice`) and so is `D`.
unsafe impl<D: Sync> Sync for Device<D> {}
// SAFETY: as above; the last reference may be dropped on any thread.
unsafe impl<D: Send + Sync> Send for Device<D> {}

// SAFETY: `get_device()`/`put_device()` on the `struct device` of the
// `vfio_device` keep the allocation alive: it is freed by the device's
// release, after `vfio_device_ops.release`.
unsafe impl<D> AlwaysRefCounted for Device<D> {
    fn inc_ref(&self) {
        // SAFETY: the device is alive (we have a reference to it).
        unsafe { bindings::get_device(&raw mut (*self.core.vfio()).device) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: per the caller, we own a reference, which this drops.
        unsafe { bindings::put_device(&raw mut (*obj.as_ref().core.vfio()).device) };
    }
}

/// A device that a file has open, handed to the [`super::Driver`] file
/// operation callbacks: the core's own file operations may be called on it.
///
/// # Invariants
///
/// The vfio core has opened the device (`open_device` succeeded and
/// `close_device` has not run).
pub(crate) struct OpenDevice<'a, D> {
    dev: &'a Device<D>,
    _not_send: PhantomData<*mut ()>,
}

impl<'a, D> OpenDevice<'a, D> {
    /// # Safety
    ///
    /// `dev` is open for `'a`.
    pub(super) unsafe fn new(dev: &'a Device<D>) -> Self {
        Self {
            dev,
            _not_send: PhantomData,
        }
    }

    /// The core's write (`vfio_pci_core_write()`).
    pub(crate) fn core_write(&self, buf: UserPtr, count: usize, pos: &mut i64) -> Result<usize> {
        // SAFETY: the device is open (type invariant); `buf` is a user
        // pointer, which the core accesses with the uaccess functions.
        let ret = unsafe {
            bindings::vfio_pci_core_write(
                self.dev.core.vfio(),
                buf.as_const_ptr().cast(),
                count,
                pos,
            )
        };
        if ret < 0 {
            return Err(Error::from_errno(ret as i32));
        }
        Ok(ret as usize)
    }

    /// The core's ioctl (`vfio_pci_core_ioctl()`).
    pub(crate) fn core_ioctl(&self, cmd: u32, arg: usize) -> Result<isize> {
        // SAFETY: the device is open (type invariant); `arg` is the user's
        // argument, which the core accesses with the uaccess functions.
        let ret = unsafe { bindings::vfio_pci_core_ioctl(self.dev.core.vfio(), cmd, arg) };
        if ret < 0 {
            return Err(Error::from_errno(ret as i32));
        }
        Ok(ret)
    }

    /// The core's `VFIO_DEVICE_FEATURE` (`vfio_pci_core_ioctl_feature()`).
    pub(crate) fn core_device_feature(&self, flags: u32, arg: UserPtr, argsz: usize) -> Result {
        // SAFETY: as for `core_ioctl`.
        to_result(unsafe {
            bindings::vfio_pci_core_ioctl_feature(
                self.dev.core.vfio(),
                flags,
                arg.as_mut_ptr(),
                argsz,
            )
        })
    }
}

impl<D> core::ops::Deref for OpenDevice<'_, D> {
    type Target = Device<D>;

    fn deref(&self) -> &Device<D> {
        self.dev
    }
}
