// SPDX-License-Identifier: GPL-2.0

//! The driver: binds the mock devices (`1234:f00d`), an optional extra
//! `vendor:device`, and any device whose `driver_override` names it, and
//! implements [`vfio::Driver`] by delegating to the modules that own each
//! job: [`device`] (state, revocation), [`mapping`] (mmap and mode
//! dispatch), [`ops`] (revocation hooks) and [`debugfs`].
//!
//! probe creates the device's debugfs directory; remove deletes it, marks
//! the device unplugged and revokes every mapping (from then on every fault
//! gets SIGBUS, even though COMMAND still enables memory); the adapter then
//! unregisters the device, which waits until every user has closed it.

use crate::{
    debugfs,
    device::{State, VariantDevice},
    mapping, module_parameters, ops,
    vfio::{self, CoreDevice, DeviceId, OpenDevice},
};
use kernel::{
    debugfs::Dir, mm::virt::VmaNew, prelude::*, sync::aref::ARef, uaccess::UserPtr, ThisModule,
};

/// Mock device vendor ID.
const VENDOR: u16 = 0x1234;
/// Mock device ID.
const DEVICE: u16 = 0xf00d;

/// The driver-wide data: the debugfs root `vfio_variant/`.
pub(crate) struct VariantDriver {
    root: Dir,
}

/// The registered driver.
pub(crate) type Driver = vfio::Registration<VariantDriver>;

impl VariantDriver {
    /// Registers the driver; `extra_id` (`0xVVVVDDDD`, or 0 for none) is
    /// bound too.
    pub(crate) fn register(
        module: &'static ThisModule,
        extra_id: u32,
    ) -> impl PinInit<Driver, Error> {
        let ids = [
            DeviceId::new(VENDOR, DEVICE),
            DeviceId::new((extra_id >> 16) as u16, extra_id as u16),
        ];
        let ids = if extra_id == 0 { &ids[..1] } else { &ids[..] };
        let root = Dir::new(c"vfio_variant");
        vfio::Registration::new(module, VariantDriver { root }, ids)
    }
}

impl vfio::Driver for VariantDriver {
    const NAME: &'static CStr = c"vfio_variant";
    type Data = State;

    fn sriov(&self) -> bool {
        module_parameters::enable_sriov.value()
    }

    fn init(_core: &CoreDevice) -> impl PinInit<State, Error> {
        State::new(module_parameters::legacy.value())
    }

    fn probe(&self, dev: &VariantDevice) -> Result {
        let name = dev.core().as_dev().name();
        match debugfs::create(&self.root, name, ARef::from(dev)) {
            Ok(dir) => dev.set_debugfs(Some(dir)),
            Err(e) => dev_warn!(dev.core().as_dev(), "no debugfs directory ({:?})\n", e),
        }
        Ok(())
    }

    fn remove(&self, dev: &VariantDevice) {
        dev.set_debugfs(None);
        // Unplug: revoke every mapping; later faults get SIGBUS.
        dev.unplug();
    }

    fn mmap(dev: &OpenDevice<'_, State>, vma: &VmaNew) -> Result {
        mapping::mmap(dev, vma)
    }

    fn write(
        dev: &OpenDevice<'_, State>,
        buf: UserPtr,
        count: usize,
        pos: &mut i64,
    ) -> Result<usize> {
        ops::write(dev, buf, count, pos)
    }

    fn ioctl(dev: &OpenDevice<'_, State>, cmd: u32, arg: usize) -> Result<isize> {
        ops::ioctl(dev, cmd, arg)
    }

    fn device_feature(
        dev: &OpenDevice<'_, State>,
        flags: u32,
        arg: UserPtr,
        argsz: usize,
    ) -> Result {
        ops::device_feature(dev, flags, arg, argsz)
    }
}
