// SPDX-License-Identifier: GPL-2.0

//! The PCI driver: a raw `struct pci_driver` (the kernel crate's
//! `pci::Driver` owns drvdata, but the vfio-pci core requires drvdata to be
//! the core device, and the driver must set `driver_managed_dma`).
//!
//! probe allocates the vfio device with room for [`VariantDevice`],
//! registers it with the vfio-pci core and creates its debugfs directory;
//! remove revokes every mapping and unregisters.

use crate::{
    debugfs,
    device::{DevRef, VariantDevice},
    ops::OPS,
};
use kernel::{
    bindings,
    debugfs::Dir,
    error::{from_err_ptr, from_result},
    new_mutex,
    prelude::*,
    sync::{
        atomic::{Acquire, Atomic, Release},
        Mutex,
    },
    types::Opaque,
};

/// Mock device vendor ID.
const VENDOR: u32 = 0x1234;
/// Mock device ID.
const DEVICE: u32 = 0xf00d;
/// `PCI_ANY_ID`.
const ANY: u32 = !0;

/// One ID table entry matching `vendor:device`, any subsystem.
const fn id(vendor: u32, device: u32) -> bindings::pci_device_id {
    bindings::pci_device_id {
        vendor,
        device,
        subvendor: ANY,
        subdevice: ANY,
        class: 0,
        class_mask: 0,
        driver_data: 0,
        override_only: 0,
    }
}

/// The ID table: the mock device, an optional extra `vendor:device` given
/// as a module parameter (for testing on other RAM-backed devices), and the
/// all-zero terminator.
fn ids(extra: u32) -> [bindings::pci_device_id; 3] {
    let zero = id(0, 0);
    let extra = if extra == 0 {
        zero
    } else {
        id(extra >> 16, extra & 0xffff)
    };
    [id(VENDOR, DEVICE), extra, zero]
}

/// The registered driver and the devices it has bound.
#[pin_data(PinnedDrop)]
pub(crate) struct Driver {
    ids: [bindings::pci_device_id; 3],
    root: Dir,
    #[pin]
    devices: Mutex<KVec<DevRef>>,
    // Last: probe may run while registering and uses the fields above.
    #[pin]
    pci: Opaque<bindings::pci_driver>,
}

// SAFETY: the `pci_driver` is only touched by the PCI core under its own
// locking after registration; the other fields are Sync.
unsafe impl Sync for Driver {}
// SAFETY: nothing in `Driver` is tied to a thread.
unsafe impl Send for Driver {}

/// The live driver, for the KUnit suites (set while the module is loaded).
static CURRENT: Atomic<*mut Driver> = Atomic::new(core::ptr::null_mut());

impl Driver {
    /// Registers the driver; it binds 1234:f00d devices and any device whose
    /// `driver_override` names it.
    pub(crate) fn register(
        module: &'static ThisModule,
        extra_id: u32,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(&this in Self {
            ids: ids(extra_id),
            root: Dir::new(c"vfio_variant"),
            devices <- new_mutex!(KVec::new()),
            pci <- Opaque::try_ffi_init(move |slot: *mut bindings::pci_driver| {
                // SAFETY: `slot` is valid for writes and pinned; every field
                // not set here is zero, as for a C static.
                unsafe {
                    slot.write(core::mem::zeroed());
                    (*slot).name = c"vfio_variant".as_char_ptr();
                    // `ids` is initialised (fields initialise in order) and
                    // pinned with the rest of `Self`.
                    (*slot).id_table = (&raw const (*this.as_ptr()).ids).cast();
                    (*slot).probe = Some(probe);
                    (*slot).remove = Some(remove);
                    (*slot).err_handler = &raw const bindings::vfio_pci_core_err_handlers;
                    (*slot).driver_managed_dma = true;
                    kernel::error::to_result(bindings::__pci_register_driver(
                        slot,
                        module.as_ptr(),
                        c"vfio_variant".as_char_ptr(),
                    ))
                }
            }),
        })
    }

    /// Publishes `this` for [`with_device`] (call once it is pinned).
    /// `this` is pinned (a `#[pin]` field of the pinned module).
    pub(crate) fn publish(this: &Self) {
        CURRENT.store(core::ptr::from_ref(this).cast_mut(), Release);
    }

    /// # Safety
    ///
    /// `pdev` is being probed or removed by this driver.
    unsafe fn from_pdev<'a>(pdev: *mut bindings::pci_dev) -> &'a Self {
        // SAFETY: the driver core set `dev.driver` to our `pci_driver.driver`
        // before probe; the `pci_driver` lives in a `Driver`.
        unsafe {
            let drv = (*pdev).dev.driver;
            let pci = drv
                .byte_sub(core::mem::offset_of!(bindings::pci_driver, driver))
                .cast::<bindings::pci_driver>();
            &*pci
                .byte_sub(core::mem::offset_of!(Self, pci))
                .cast::<Self>()
        }
    }
}

#[pinned_drop]
impl PinnedDrop for Driver {
    fn drop(self: Pin<&mut Self>) {
        CURRENT.store(core::ptr::null_mut(), Release);
        // SAFETY: registered in `register()`; unbinds every device.
        unsafe { bindings::pci_unregister_driver(self.pci.get()) };
    }
}

/// Runs `f` on the first bound device, with the device list locked (so the
/// device cannot be removed meanwhile). `None` if no device is bound or the
/// module is being unloaded.
///
/// The KUnit suites call this, and not only at load: a suite can be run
/// again through KUnit's debugfs `run` file, which holds no reference on
/// this module, so `rmmod` may run the module's exit (which drops the
/// driver, its device list included) at any time. A reference on the
/// module for the whole call rules that out: while it is held, rmmod fails
/// (EWOULDBLOCK, "in use") unless forced, and once rmmod is past that
/// check, `try_module_get()` fails.
/// (The module's code outlives the run either way: at load the loader
/// holds a reference, and on unload KUnit's removal of the `run` file
/// waits for a run in progress before the module is freed.)
pub(crate) fn with_device<R>(f: impl FnOnce(&VariantDevice) -> R) -> Option<R> {
    let _module = ModuleRef::get()?;
    let drv = CURRENT.load(Acquire);
    if drv.is_null() {
        return None;
    }
    // SAFETY: `CURRENT` is only set, by `publish()`, to the pinned driver of
    // the loaded module, and is cleared by the driver's drop, which only the
    // module's exit runs; `_module` keeps exit from running until we return.
    let drv = unsafe { &*drv };
    let devices = drv.devices.lock();
    devices.first().map(|d| f(d))
}

/// A reference on this module (`try_module_get()`), put when dropped.
struct ModuleRef(());

impl ModuleRef {
    /// `None` once the module is being unloaded.
    fn get() -> Option<Self> {
        // SAFETY: this module is loaded while its code runs.
        unsafe { bindings::try_module_get(this_module()) }.then_some(Self(()))
    }
}

impl Drop for ModuleRef {
    fn drop(&mut self) {
        // SAFETY: taken in `get()`.
        unsafe { bindings::module_put(this_module()) };
    }
}

/// References held on this module (`module_refcount()`): while there is
/// one, `rmmod` fails instead of unloading it. For the KUnit suites.
pub(crate) fn module_refs() -> i32 {
    // SAFETY: this module is loaded while its code runs.
    unsafe { bindings::module_refcount(this_module()) }
}

/// This module's `struct module`.
fn this_module() -> *mut bindings::module {
    <crate::VfioVariant as kernel::ModuleMetadata>::THIS_MODULE.as_ptr()
}

/// # Safety
///
/// Only called by the kernel through the ops table it is registered in,
/// with the arguments that callback's C contract guarantees.
unsafe extern "C" fn probe(
    pdev: *mut bindings::pci_dev,
    _id: *const bindings::pci_device_id,
) -> c_int {
    from_result(|| {
        // SAFETY: `pdev` is being probed by this driver.
        let drv = unsafe { Driver::from_pdev(pdev) };
        // SAFETY: `pdev` is valid; `OPS` is static; the size covers our struct.
        let vdev = from_err_ptr(unsafe {
            bindings::_vfio_alloc_device(VariantDevice::SIZE, &raw mut (*pdev).dev, OPS.as_ptr())
        })?;
        let core = vdev.cast::<bindings::vfio_pci_core_device>();
        // SAFETY: the core requires drvdata to be the core device.
        unsafe { bindings::dev_set_drvdata(&raw mut (*pdev).dev, core.cast()) };
        // SAFETY: `core` was allocated and initialised above.
        let ret = unsafe { bindings::vfio_pci_core_register_device(core) };
        if ret != 0 {
            // SAFETY: drop the allocation reference.
            unsafe { bindings::vfio_put_device(vdev) };
            return Err(Error::from_errno(ret));
        }
        // SAFETY: `init` ran; the device lives until `remove()`.
        let dev = unsafe { VariantDevice::from_vfio(vdev) };
        // SAFETY: both copies are dropped in `remove()`, before the put.
        let devref = unsafe { DevRef::new(dev) };
        // SAFETY: `dev_name` of a live device is a valid C string.
        let name = unsafe { CStr::from_char_ptr(bindings::dev_name(&raw const (*pdev).dev)) };
        match debugfs::create(&drv.root, name, devref) {
            Ok(dir) => dev.set_debugfs(Some(dir)),
            Err(e) => pr_warn!("{}: no debugfs directory ({:?})\n", name, e),
        }
        if drv.devices.lock().push(devref, GFP_KERNEL).is_err() {
            pr_warn!("{}: not listed for KUnit (out of memory)\n", name);
        }
        Ok(0)
    })
}

/// # Safety
///
/// Only called by the kernel through the ops table it is registered in,
/// with the arguments that callback's C contract guarantees.
unsafe extern "C" fn remove(pdev: *mut bindings::pci_dev) {
    // SAFETY: `pdev` is bound to this driver.
    let drv = unsafe { Driver::from_pdev(pdev) };
    // SAFETY: drvdata is the core device set in probe.
    let core = unsafe { bindings::dev_get_drvdata(&raw const (*pdev).dev) }
        .cast::<bindings::vfio_pci_core_device>();
    // SAFETY: the device is alive until the put below.
    let dev = unsafe { VariantDevice::from_core(core) };
    let me = core::ptr::from_ref(dev);
    drv.devices
        .lock()
        .retain(|d| !core::ptr::eq(core::ptr::from_ref::<VariantDevice>(d), me));
    dev.set_debugfs(None);
    // Unplug: revoke every mapping; later faults get SIGBUS.
    dev.unplug();
    // SAFETY: registered in probe; then drop the allocation reference.
    unsafe {
        bindings::vfio_pci_core_unregister_device(core);
        bindings::vfio_put_device(&raw mut (*core).vdev);
    }
}
