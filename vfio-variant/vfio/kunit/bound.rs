// SPDX-License-Identifier: GPL-2.0

//! Finding the device a driver has bound, for a test: through the PCI
//! core's driver list, with a vfio registration reference and a reference
//! on the module held meanwhile.

use super::super::{Device, Driver};
use kernel::{bindings, prelude::*, ThisModule};

/// A reference on a module (`try_module_get()`), put when dropped.
struct ModuleRef(&'static ThisModule);

impl ModuleRef {
    /// `None` once the module is being unloaded.
    fn get(module: &'static ThisModule) -> Option<Self> {
        // SAFETY: the module is loaded while its code runs.
        unsafe { bindings::try_module_get(module.as_ptr()) }.then_some(Self(module))
    }
}

impl Drop for ModuleRef {
    fn drop(&mut self) {
        // SAFETY: taken in `get()`.
        unsafe { bindings::module_put(self.0.as_ptr()) };
    }
}

/// References held on `module` (`module_refcount()`): while there is one,
/// `rmmod` fails instead of unloading it.
pub(crate) fn module_refs(module: &'static ThisModule) -> i32 {
    // SAFETY: the module is loaded while its code runs.
    unsafe { bindings::module_refcount(module.as_ptr()) }
}

/// `driver_for_each_device()` callback: takes a registration reference on
/// the first device of the driver in `data` (a `*mut FindBound`) that is
/// still bound to it, and stops.
///
/// # Safety
///
/// `dev` is a device on the driver's list; `data` is a `FindBound`.
unsafe extern "C" fn find_bound(dev: *mut bindings::device, data: *mut c_void) -> c_int {
    let find = data.cast::<FindBound>();
    // SAFETY: `dev` is valid during the callback; its lock serialises us
    // with probe and remove, which set and clear drvdata and the binding.
    unsafe { bindings::mutex_lock(&raw mut (*dev).mutex) };
    // SAFETY: under the device lock: bound to our driver means drvdata is
    // the core device set by probe, registered until remove, which cannot
    // start meanwhile; a registration reference keeps it registered (and
    // alive) after we unlock, until put.
    let found = unsafe {
        if (*dev).driver == (*find).driver {
            let core = bindings::dev_get_drvdata(dev).cast::<bindings::vfio_pci_core_device>();
            if bindings::vfio_device_try_get_registration(&raw mut (*core).vdev) {
                (*find).core = core;
            }
        }
        !(*find).core.is_null()
    };
    // SAFETY: taken above.
    unsafe { bindings::mutex_unlock(&raw mut (*dev).mutex) };
    c_int::from(found)
}

/// What [`find_bound`] looks for and found.
struct FindBound {
    driver: *mut bindings::device_driver,
    core: *mut bindings::vfio_pci_core_device,
}

/// Runs `f` on the first device bound to `T`'s PCI driver (registered by
/// `module` with a [`super::Registration<T>`]), holding a reference on `module` and a registration
/// reference on the device for the whole call (so that neither rmmod nor
/// an unbind can remove it meanwhile: they wait). `None` if no device is
/// bound or the module is being unloaded.
///
/// The KUnit suites call this, and not only at load: a suite can be run
/// again through KUnit's debugfs `run` file, which holds no reference on
/// the module, so `rmmod` may run the module's exit at any time. While the
/// module reference is held rmmod fails (EWOULDBLOCK, "in use") unless
/// forced, and once rmmod is past that check, `try_module_get()` fails.
pub(crate) fn with_bound_device<T: Driver, R>(
    module: &'static ThisModule,
    f: impl FnOnce(&Device<T::Data>) -> R,
) -> Option<R> {
    let _module = ModuleRef::get(module)?;
    // SAFETY: `NAME` is a C string; `pci_bus_type` is a static of the PCI
    // core.
    let driver =
        unsafe { bindings::driver_find(T::NAME.as_char_ptr(), &raw const bindings::pci_bus_type) };
    // SAFETY: a driver found on the bus is registered, and stays so while
    // its module is loaded. Driver names are unique on a bus, so one of
    // `module`'s named `T::NAME` is the `pci_driver` of a `Registration<T>`.
    if driver.is_null() || unsafe { (*driver).owner } != module.as_ptr() {
        return None;
    }
    let mut find = FindBound {
        driver,
        core: core::ptr::null_mut(),
    };
    // SAFETY: `driver` is registered while `module` is loaded (held above);
    // `find_bound` gets `find` back as its data. Its result is what
    // `find_bound` last returned, which `find` holds too.
    let _ = unsafe {
        bindings::driver_for_each_device(
            driver,
            core::ptr::null_mut(),
            (&raw mut find).cast(),
            Some(find_bound),
        )
    };
    if find.core.is_null() {
        return None;
    }
    // SAFETY: bound to `T`'s driver, so probed by it as a `Device<T::Data>`,
    // kept registered by the reference `find_bound` took.
    let r = f(unsafe { Device::<T::Data>::from_core(find.core) });
    // SAFETY: taken by `find_bound`.
    unsafe { bindings::vfio_device_put_registration(&raw mut (*find.core).vdev) };
    Some(r)
}
