// SPDX-License-Identifier: GPL-2.0

//! The `vfio_device_ops` table: the vfio-pci core does everything except
//! mmap; thin read/write/ioctl wrappers observe the core's revocations so
//! that they are counted and reach legacy mappings too.
//!
//! A wrapper reads whether memory is enabled before and after the core
//! call, each time under `memory_lock` held for read
//! ([`CoreDevice::memory_enabled`]), as the core itself reads that state:
//! a snapshot never sees a transition the core is making under the lock
//! held for write. The lock is not held across the core call, which takes
//! it for write, nor while user memory is read (a fault on a user buffer
//! that maps this device's BAR takes it for read). Two snapshots do not
//! make the pair atomic with the core call: a revocation made by a
//! concurrent caller between them can be seen by both callers (counted
//! twice), or undone by one before the other looks (not seen).
//!
//! [`CoreDevice::memory_enabled`]: crate::vfio::CoreDevice::memory_enabled

use crate::{device::VariantDevice, mm::NewVma, module_parameters, region};
use kernel::{bindings, ioctl::_IO, prelude::*, uaccess::UserPtr};

/// A `vfio_device_ops` table in a static.
pub(crate) struct DeviceOps(bindings::vfio_device_ops);

// SAFETY: a table of function pointers and a static name, never written.
unsafe impl Sync for DeviceOps {}

impl DeviceOps {
    /// The C pointer.
    pub(crate) fn as_ptr(&'static self) -> *const bindings::vfio_device_ops {
        &self.0
    }
}

/// The ops of every device this driver binds.
pub(crate) static OPS: DeviceOps = DeviceOps(bindings::vfio_device_ops {
    name: kernel::str::as_char_ptr_in_const_context(c"vfio-variant").cast_mut(),
    init: Some(init),
    release: Some(release),
    open_device: Some(open_device),
    close_device: Some(bindings::vfio_pci_core_close_device),
    ioctl: Some(ioctl),
    get_region_info_caps: Some(bindings::vfio_pci_ioctl_get_region_info),
    device_feature: Some(device_feature),
    read: Some(bindings::vfio_pci_core_read),
    write: Some(write),
    mmap: Some(mmap),
    request: Some(bindings::vfio_pci_core_request),
    match_: Some(bindings::vfio_pci_core_match),
    match_token_uuid: Some(bindings::vfio_pci_core_match_token_uuid),
    bind_iommufd: Some(bindings::vfio_iommufd_physical_bind),
    unbind_iommufd: Some(bindings::vfio_iommufd_physical_unbind),
    attach_ioas: Some(bindings::vfio_iommufd_physical_attach_ioas),
    detach_ioas: Some(bindings::vfio_iommufd_physical_detach_ioas),
    pasid_attach_ioas: Some(bindings::vfio_iommufd_physical_pasid_attach_ioas),
    pasid_detach_ioas: Some(bindings::vfio_iommufd_physical_pasid_detach_ioas),
    // SAFETY: all-zero is a valid `vfio_device_ops` (no callback).
    ..unsafe { core::mem::zeroed() }
});

/// `VFIO_DEVICE_RESET`.
const DEVICE_RESET: u32 = _IO(bindings::VFIO_TYPE as u32, bindings::VFIO_BASE + 11);
/// `VFIO_DEVICE_PCI_HOT_RESET`.
const PCI_HOT_RESET: u32 = _IO(bindings::VFIO_TYPE as u32, bindings::VFIO_BASE + 13);

/// # Safety
///
/// Only called by the kernel through the ops table it is registered in,
/// with the arguments that callback's C contract guarantees.
unsafe extern "C" fn init(vdev: *mut bindings::vfio_device) -> c_int {
    // SAFETY: `vdev` is being initialised by `_vfio_alloc_device()`.
    let ret = unsafe { bindings::vfio_pci_core_init_dev(vdev) };
    if ret != 0 {
        return ret;
    }
    let legacy = module_parameters::legacy.value();
    // SAFETY: the allocation is `VariantDevice::SIZE` bytes (probe asked for
    // it), zeroed, core part initialised just above.
    match unsafe { VariantDevice::init_state(vdev.cast(), legacy) } {
        Ok(()) => 0,
        Err(e) => {
            // SAFETY: undo `vfio_pci_core_init_dev()`.
            unsafe { bindings::vfio_pci_core_release_dev(vdev) };
            e.to_errno()
        }
    }
}

/// # Safety
///
/// Only called by the kernel through the ops table it is registered in,
/// with the arguments that callback's C contract guarantees.
unsafe extern "C" fn release(vdev: *mut bindings::vfio_device) {
    // SAFETY: last reference gone; `init` succeeded for this device.
    unsafe {
        VariantDevice::drop_state(vdev.cast());
        bindings::vfio_pci_core_release_dev(vdev);
    }
}

/// # Safety
///
/// Only called by the kernel through the ops table it is registered in,
/// with the arguments that callback's C contract guarantees.
unsafe extern "C" fn open_device(vdev: *mut bindings::vfio_device) -> c_int {
    // SAFETY: `vdev` is a registered vfio-pci core device being opened; the
    // same sequence as the stock driver.
    unsafe {
        let core = vdev.cast::<bindings::vfio_pci_core_device>();
        let ret = bindings::vfio_pci_core_enable(core);
        if ret != 0 {
            return ret;
        }
        bindings::vfio_pci_core_finish_enable(core);
    }
    0
}

/// # Safety
///
/// Only called by the kernel through the ops table it is registered in,
/// with the arguments that callback's C contract guarantees.
unsafe extern "C" fn mmap(
    vdev: *mut bindings::vfio_device,
    vma: *mut bindings::vm_area_struct,
) -> c_int {
    // SAFETY: the device is open (vfio only calls mmap on an open file).
    let dev = unsafe { VariantDevice::from_vfio(vdev) };
    // SAFETY: `vma` is the vma being mmapped.
    let vma = unsafe { NewVma::from_raw(vma) };
    match dev.mmap(&vma) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// Only called by the kernel through the ops table it is registered in,
/// with the arguments that callback's C contract guarantees.
unsafe extern "C" fn write(
    vdev: *mut bindings::vfio_device,
    buf: *const c_char,
    count: usize,
    ppos: *mut bindings::loff_t,
) -> isize {
    // SAFETY: the device is open; `ppos` is valid for the call.
    let dev = unsafe { VariantDevice::from_vfio(vdev) };
    // SAFETY: as above.
    let pos = unsafe { *ppos } as u64;
    let config = (pos >> region::OFFSET_SHIFT) == u64::from(bindings::VFIO_PCI_CONFIG_REGION_INDEX);
    let off = pos & ((1 << region::OFFSET_SHIFT) - 1);
    let before = config && dev.core().memory_enabled();
    // Reads the user buffer: with `memory_lock` not held (see the module doc).
    let flr = config
        && dev
            .core()
            .write_requests_flr(off, UserPtr::from_ptr(buf.cast_mut().cast()), count);
    // SAFETY: forwarding the caller's arguments unchanged.
    let ret = unsafe { bindings::vfio_pci_core_write(vdev, buf, count, ppos) };
    // COMMAND.MEM clear and D3hot leave memory off; an FLR through Device
    // Control zaps, resets and leaves it on.
    if (before && !dev.core().memory_enabled()) || (flr && ret > 0) {
        dev.core_revoked();
    }
    ret
}

/// # Safety
///
/// Only called by the kernel through the ops table it is registered in,
/// with the arguments that callback's C contract guarantees.
unsafe extern "C" fn ioctl(vdev: *mut bindings::vfio_device, cmd: c_uint, arg: c_ulong) -> c_long {
    // SAFETY: the device is open.
    let dev = unsafe { VariantDevice::from_vfio(vdev) };
    let before = dev.core().memory_enabled();
    // SAFETY: forwarding the caller's arguments unchanged.
    let ret = unsafe { bindings::vfio_pci_core_ioctl(vdev, cmd, arg) };
    if ret == 0 && cmd == PCI_HOT_RESET {
        // The core zapped every device of the dev_set, this one included.
        dev.for_each_sibling(VariantDevice::core_revoked);
    } else if (ret == 0 && cmd == DEVICE_RESET) || (before && !dev.core().memory_enabled()) {
        dev.core_revoked();
    }
    ret
}

/// # Safety
///
/// Only called by the kernel through the ops table it is registered in,
/// with the arguments that callback's C contract guarantees.
unsafe extern "C" fn device_feature(
    vdev: *mut bindings::vfio_device,
    flags: u32,
    arg: *mut c_void,
    argsz: usize,
) -> c_int {
    // SAFETY: the device is open.
    let dev = unsafe { VariantDevice::from_vfio(vdev) };
    let before = dev.core().memory_enabled();
    // SAFETY: forwarding the caller's arguments unchanged.
    let ret = unsafe { bindings::vfio_pci_core_ioctl_feature(vdev, flags, arg, argsz) };
    // Low-power entry zaps and engages runtime PM: memory is off.
    if before && !dev.core().memory_enabled() {
        dev.core_revoked();
    }
    ret
}
