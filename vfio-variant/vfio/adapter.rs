// SPDX-License-Identifier: GPL-2.0

//! The adapter between a [`Driver`] and the C side: [`Registration`] (a
//! registered `struct pci_driver`) and the `const` `vfio_device_ops` table
//! whose callbacks call the trait.

use super::{Device, Driver, OpenDevice};

use kernel::{
    bindings, container_of,
    error::{from_err_ptr, from_result, to_result},
    mm::virt::VmaNew,
    prelude::*,
    types::Opaque,
    uaccess::UserPtr,
    ThisModule,
};

/// `PCI_ANY_ID`.
const ANY: u32 = !0;

/// One entry of a PCI ID table: `vendor:device`, any subsystem.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub(crate) struct DeviceId(bindings::pci_device_id);

impl DeviceId {
    /// Matches `vendor:device`.
    pub(crate) const fn new(vendor: u16, device: u16) -> Self {
        Self(bindings::pci_device_id {
            vendor: vendor as u32,
            device: device as u32,
            subvendor: ANY,
            subdevice: ANY,
            ..pin_init::zeroed()
        })
    }

    /// The all-zero entry that ends a table.
    const END: Self = Self(pin_init::zeroed());
}

/// A registered vfio-pci variant driver: a `struct pci_driver` whose probe
/// allocates and registers a [`Device<T::Data>`], and `T` itself (the
/// driver-wide data). Unregistered (every device removed) when dropped.
///
/// # Invariants
///
/// `pci` is registered with the PCI core from the end of initialisation
/// until drop, and `ids` (ending with [`DeviceId::END`]) is its ID table.
#[pin_data(PinnedDrop)]
pub(crate) struct Registration<T: Driver> {
    ids: KVec<DeviceId>,
    driver: T,
    // Last: probe may run while registering and uses the fields above.
    #[pin]
    pci: Opaque<bindings::pci_driver>,
}

// SAFETY: the `pci_driver` is only touched by the PCI core under its own
// locking after registration; `T` is Sync and the ID table is never written.
unsafe impl<T: Driver> Sync for Registration<T> {}
// SAFETY: nothing in a registration is tied to a thread; `T` is Send.
unsafe impl<T: Driver> Send for Registration<T> {}

impl<T: Driver> Registration<T> {
    /// Registers `driver` for the devices `ids` names and any device whose
    /// `driver_override` names [`Driver::NAME`].
    pub(crate) fn new(
        module: &'static ThisModule,
        driver: T,
        ids: &[DeviceId],
    ) -> impl PinInit<Self, Error> {
        let table = (|| -> Result<KVec<DeviceId>> {
            let mut t = KVec::with_capacity(ids.len() + 1, GFP_KERNEL)?;
            for id in Iterator::chain(ids.iter(), [&DeviceId::END]) {
                t.push(*id, GFP_KERNEL)?;
            }
            Ok(t)
        })();
        try_pin_init!(&this in Self {
            ids: table?,
            driver,
            pci <- Opaque::try_ffi_init(move |slot: *mut bindings::pci_driver| {
                // SAFETY: `ids` is initialised (fields initialise in order)
                // and lives, pinned, as long as `Self`.
                let id_table = unsafe { <[DeviceId]>::as_ptr(&(*this.as_ptr()).ids) }.cast();
                // SAFETY: `slot` is valid for writes and pinned.
                unsafe {
                    slot.write(bindings::pci_driver {
                        name: T::NAME.as_char_ptr(),
                        id_table,
                        probe: Some(Self::probe),
                        remove: Some(Self::remove),
                        sriov_configure: Some(Self::sriov_configure),
                        err_handler: &raw const bindings::vfio_pci_core_err_handlers,
                        driver_managed_dma: true,
                        ..pin_init::zeroed()
                    })
                };
                // SAFETY: `slot` is a complete, pinned `pci_driver` that
                // outlives its registration (unregistered in drop).
                to_result(unsafe {
                    bindings::__pci_register_driver(slot, module.as_ptr(), T::NAME.as_char_ptr())
                })
            }),
        })
    }

    /// The driver-wide data of the driver `pdev` is bound to.
    ///
    /// # Safety
    ///
    /// `pdev` is being probed or removed by a `Registration<T>`.
    unsafe fn from_pdev<'a>(pdev: *mut bindings::pci_dev) -> &'a T {
        // SAFETY: the driver core set `dev.driver` to the `driver` field of
        // our `pci_driver`, which is the `pci` field of a live `Self`
        // (`Opaque` is transparent).
        unsafe {
            let pci = container_of!((*pdev).dev.driver, bindings::pci_driver, driver);
            &(*container_of!(pci.cast::<Opaque<bindings::pci_driver>>(), Self, pci)).driver
        }
    }

    /// The `vfio_device_ops` of every device this driver binds: the
    /// vfio-pci core's functions, and the [`Driver`]'s where it has them.
    const VTABLE: bindings::vfio_device_ops = bindings::vfio_device_ops {
        name: kernel::str::as_char_ptr_in_const_context(T::NAME).cast_mut(),
        init: Some(Self::init),
        release: Some(Self::release),
        open_device: Some(Self::open_device),
        close_device: Some(bindings::vfio_pci_core_close_device),
        ioctl: Some(Self::ioctl),
        get_region_info_caps: Some(bindings::vfio_pci_ioctl_get_region_info),
        device_feature: Some(Self::device_feature),
        read: Some(bindings::vfio_pci_core_read),
        write: Some(Self::write),
        mmap: Some(Self::mmap),
        request: Some(bindings::vfio_pci_core_request),
        match_: Some(bindings::vfio_pci_core_match),
        match_token_uuid: Some(bindings::vfio_pci_core_match_token_uuid),
        bind_iommufd: Some(bindings::vfio_iommufd_physical_bind),
        unbind_iommufd: Some(bindings::vfio_iommufd_physical_unbind),
        attach_ioas: Some(bindings::vfio_iommufd_physical_attach_ioas),
        detach_ioas: Some(bindings::vfio_iommufd_physical_detach_ioas),
        pasid_attach_ioas: Some(bindings::vfio_iommufd_physical_pasid_attach_ioas),
        pasid_detach_ioas: Some(bindings::vfio_iommufd_physical_pasid_detach_ioas),
        ..pin_init::zeroed()
    };

    /// # Safety
    ///
    /// Called by the PCI core as `pci_driver.probe` of this registration.
    unsafe extern "C" fn probe(
        pdev: *mut bindings::pci_dev,
        _id: *const bindings::pci_device_id,
    ) -> c_int {
        from_result(|| {
            // SAFETY: `pdev` is being probed by this registration.
            let driver = unsafe { Self::from_pdev(pdev) };
            // SAFETY: `pdev` is valid; the ops are a promoted constant; the
            // size covers a `Device<T::Data>`, whose `init` runs in here.
            let vdev = from_err_ptr(unsafe {
                bindings::_vfio_alloc_device(
                    Device::<T::Data>::SIZE,
                    &raw mut (*pdev).dev,
                    &Self::VTABLE,
                )
            })?;
            // SAFETY: `vdev` is the `vdev` field of a core device.
            let core = unsafe { container_of!(vdev, bindings::vfio_pci_core_device, vdev) };
            // SAFETY: `pdev` is valid; the core requires drvdata to be the
            // core device.
            unsafe { bindings::dev_set_drvdata(&raw mut (*pdev).dev, core.cast()) };
            // SAFETY: `core` was allocated and initialised above.
            let ret = to_result(unsafe { bindings::vfio_pci_core_register_device(core) });
            // SAFETY: `init` succeeded, so the device's data is initialised;
            // we hold the allocation reference until remove (or below).
            let dev = unsafe { Device::<T::Data>::from_core(core) };
            let ret = ret.and_then(|()| {
                driver.probe(dev).inspect_err(|_| {
                    // SAFETY: registered just above.
                    unsafe { bindings::vfio_pci_core_unregister_device(core) };
                })
            });
            if let Err(e) = ret {
                // SAFETY: drop the allocation reference.
                unsafe { bindings::vfio_put_device(vdev) };
                return Err(e);
            }
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the PCI core as `pci_driver.remove` of this registration.
    unsafe extern "C" fn remove(pdev: *mut bindings::pci_dev) {
        // SAFETY: `pdev` is bound to this registration.
        let driver = unsafe { Self::from_pdev(pdev) };
        // SAFETY: drvdata is the core device set in probe.
        let core = unsafe { bindings::dev_get_drvdata(&raw const (*pdev).dev) }
            .cast::<bindings::vfio_pci_core_device>();
        // SAFETY: probed by us; alive until the put below.
        let dev = unsafe { Device::<T::Data>::from_core(core) };
        driver.remove(dev);
        // SAFETY: registered in probe; unregistering waits for every user
        // to close the device; then drop the allocation reference.
        unsafe {
            bindings::vfio_pci_core_unregister_device(core);
            bindings::vfio_put_device(&raw mut (*core).vdev);
        }
    }

    /// `pci_driver.sriov_configure`: `nr_virtfn` Virtual Functions (0:
    /// none) through the vfio-pci core, which captures them for this
    /// driver and asks for the PF's VF token; `ENOENT` unless
    /// [`Driver::sriov`].
    ///
    /// # Safety
    ///
    /// Called by the PCI core for a device bound to this registration
    /// (sysfs `sriov_numvfs`, under the device lock).
    unsafe extern "C" fn sriov_configure(pdev: *mut bindings::pci_dev, nr_virtfn: c_int) -> c_int {
        // SAFETY: `pdev` is bound to this registration.
        let driver = unsafe { Self::from_pdev(pdev) };
        if !driver.sriov() {
            return ENOENT.to_errno();
        }
        // SAFETY: drvdata is the core device set in probe, registered
        // until remove, which the device lock keeps away.
        unsafe {
            let core = bindings::dev_get_drvdata(&raw const (*pdev).dev)
                .cast::<bindings::vfio_pci_core_device>();
            bindings::vfio_pci_core_sriov_configure(core, nr_virtfn)
        }
    }

    /// # Safety
    ///
    /// Called by `_vfio_alloc_device()` as `vfio_device_ops.init`, on an
    /// allocation of [`Device::SIZE`] bytes.
    unsafe extern "C" fn init(vdev: *mut bindings::vfio_device) -> c_int {
        // SAFETY: `vdev` is being initialised by `_vfio_alloc_device()`.
        let ret = unsafe { bindings::vfio_pci_core_init_dev(vdev) };
        if ret != 0 {
            return ret;
        }
        // SAFETY: the allocation is a `Device<T::Data>` (probe asked for its
        // size) whose core part was initialised just above.
        let core = unsafe { Device::<T::Data>::core_of(vdev) };
        let init = T::init(core);
        // SAFETY: the data slot is valid for writes and pinned (the
        // allocation never moves until it is freed).
        match unsafe { init.__init(Device::<T::Data>::data_slot(vdev)) } {
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
    /// Called by the vfio core as `vfio_device_ops.release` once the last
    /// reference is gone; `init` succeeded for this device.
    unsafe extern "C" fn release(vdev: *mut bindings::vfio_device) {
        // SAFETY: the data was initialised by `init` and nothing uses it
        // any more; the core part is released after it.
        unsafe {
            core::ptr::drop_in_place(Device::<T::Data>::data_slot(vdev));
            bindings::vfio_pci_core_release_dev(vdev);
        }
    }

    /// # Safety
    ///
    /// Called by the vfio core as `vfio_device_ops.open_device`.
    unsafe extern "C" fn open_device(vdev: *mut bindings::vfio_device) -> c_int {
        // SAFETY: `vdev` is a registered vfio-pci core device being opened;
        // the same sequence as the stock driver.
        unsafe {
            let core = container_of!(vdev, bindings::vfio_pci_core_device, vdev);
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
    /// Called by the vfio core with an open device, as a file operation.
    unsafe fn open<'a>(vdev: *mut bindings::vfio_device) -> OpenDevice<'a, T::Data> {
        // SAFETY: the device is ours and open for the call.
        unsafe { OpenDevice::new(Device::from_vfio(vdev)) }
    }

    /// # Safety
    ///
    /// Called by the vfio core as `vfio_device_ops.mmap` of an open device.
    unsafe extern "C" fn mmap(
        vdev: *mut bindings::vfio_device,
        vma: *mut bindings::vm_area_struct,
    ) -> c_int {
        // SAFETY: per the caller.
        let dev = unsafe { Self::open(vdev) };
        // SAFETY: `vma` is the vma being mmapped.
        let vma = unsafe { VmaNew::from_raw(vma) };
        from_result(|| T::mmap(&dev, vma).map(|()| 0))
    }

    /// # Safety
    ///
    /// Called by the vfio core as `vfio_device_ops.write` of an open device.
    unsafe extern "C" fn write(
        vdev: *mut bindings::vfio_device,
        buf: *const c_char,
        count: usize,
        ppos: *mut bindings::loff_t,
    ) -> isize {
        // SAFETY: per the caller.
        let dev = unsafe { Self::open(vdev) };
        // SAFETY: `ppos` is valid and ours for the call.
        let pos = unsafe { &mut *ppos };
        match T::write(&dev, UserPtr::from_ptr(buf.cast_mut().cast()), count, pos) {
            Ok(n) => n as isize,
            Err(e) => e.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// Called by the vfio core as `vfio_device_ops.ioctl` of an open device.
    unsafe extern "C" fn ioctl(
        vdev: *mut bindings::vfio_device,
        cmd: c_uint,
        arg: c_ulong,
    ) -> c_long {
        // SAFETY: per the caller.
        let dev = unsafe { Self::open(vdev) };
        match T::ioctl(&dev, cmd, arg) {
            Ok(n) => n,
            Err(e) => e.to_errno() as c_long,
        }
    }

    /// # Safety
    ///
    /// Called by the vfio core as `vfio_device_ops.device_feature` of an
    /// open device.
    unsafe extern "C" fn device_feature(
        vdev: *mut bindings::vfio_device,
        flags: u32,
        arg: *mut c_void,
        argsz: usize,
    ) -> c_int {
        // SAFETY: per the caller.
        let dev = unsafe { Self::open(vdev) };
        from_result(|| T::device_feature(&dev, flags, UserPtr::from_ptr(arg), argsz).map(|()| 0))
    }
}

#[pinned_drop]
impl<T: Driver> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: registered since initialisation (type invariant); this
        // removes every bound device.
        unsafe { bindings::pci_unregister_driver(self.pci.get()) };
    }
}
