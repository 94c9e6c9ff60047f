// SPDX-License-Identifier: GPL-2.0

//! The [`Driver`] trait a VFIO PCI variant driver implements.

use super::{CoreDevice, Device, OpenDevice};
use kernel::{mm::virt::VmaNew, prelude::*, uaccess::UserPtr};

/// A VFIO PCI variant driver.
///
/// The implementing type is the driver-wide data (for example a debugfs
/// root), owned by its [`Registration`]. Every callback other than
/// [`Driver::init`] gets it as `self`.
///
/// Methods with a default implementation call the vfio-pci core, which is
/// what the stock vfio-pci driver does.
pub(crate) trait Driver: Send + Sync + Sized + 'static {
    /// Name of the PCI driver (`pci_driver.name`, the module's name in
    /// sysfs), and of its `vfio_device_ops`: the vfio-pci core sets a new
    /// Virtual Function's `driver_override` to the ops' name, so the two
    /// must be the same for the VFs of a PF bound here to bind here too.
    const NAME: &'static CStr;
    /// The driver's data of each device, stored after the core device.
    type Data: Send + Sync + 'static;

    /// Initialises a device's data (`vfio_device_ops.init`, called by
    /// `_vfio_alloc_device()` after `vfio_pci_core_init_dev()`). It is
    /// dropped in `vfio_device_ops.release`, before the core releases its
    /// part.
    fn init(core: &CoreDevice) -> impl PinInit<Self::Data, Error>;

    /// Called at the end of PCI probe, once the device is registered with
    /// the vfio core (userspace may open it from now on). An error
    /// unregisters it again and fails the probe.
    fn probe(&self, _dev: &Device<Self::Data>) -> Result {
        Ok(())
    }

    /// Called at the start of PCI remove, before the device is
    /// unregistered from the vfio core (which waits until every user has
    /// closed it).
    fn remove(&self, _dev: &Device<Self::Data>) {}

    /// Whether `sriov_numvfs` may create Virtual Functions of a PF bound to
    /// this driver (`pci_driver.sriov_configure`, the vfio-pci core's
    /// `vfio_pci_core_sriov_configure()`); vfio-pci's `enable_sriov`.
    /// Without it the write fails with `ENOENT`, as on vfio-pci.
    fn sriov(&self) -> bool {
        false
    }

    /// `vfio_device_ops.mmap`.
    fn mmap(dev: &OpenDevice<'_, Self::Data>, vma: &VmaNew) -> Result {
        dev.core_mmap(vma).map(|_| ())
    }

    /// `vfio_device_ops.write`: `count` bytes from `buf` at `*pos`.
    fn write(
        dev: &OpenDevice<'_, Self::Data>,
        buf: UserPtr,
        count: usize,
        pos: &mut i64,
    ) -> Result<usize> {
        dev.core_write(buf, count, pos)
    }

    /// `vfio_device_ops.ioctl`.
    fn ioctl(dev: &OpenDevice<'_, Self::Data>, cmd: u32, arg: usize) -> Result<isize> {
        dev.core_ioctl(cmd, arg)
    }

    /// `vfio_device_ops.device_feature` (`VFIO_DEVICE_FEATURE`).
    fn device_feature(
        dev: &OpenDevice<'_, Self::Data>,
        flags: u32,
        arg: UserPtr,
        argsz: usize,
    ) -> Result {
        dev.core_device_feature(flags, arg, argsz)
    }
}
