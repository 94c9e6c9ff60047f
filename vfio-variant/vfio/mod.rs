// SPDX-License-Identifier: GPL-2.0

//! VFIO PCI variant drivers.
//!
//! C headers: [`include/linux/vfio.h`](srctree/include/linux/vfio.h),
//! [`include/linux/vfio_pci_core.h`](srctree/include/linux/vfio_pci_core.h).
//!
//! A variant driver binds PCI devices, lets the vfio-pci core do almost
//! everything (config space emulation, interrupts, resets, the uAPI) and
//! overrides a few `vfio_device_ops`: here `mmap`, the fault path of BAR
//! mappings, and `write`/`ioctl`/`device_feature` hooks that run around the
//! core's own implementation. The shape follows `kernel::pci` and
//! `kernel::miscdevice`:
//!
//! * [`Driver`] is the trait a driver implements: per-device data
//!   initialisation, probe/remove, mmap and the hooks;
//! * [`Registration`] is the adapter: it registers a `struct pci_driver`
//!   (with `driver_managed_dma` and the core's error handlers, which
//!   `kernel::pci::Driver` cannot express, and with drvdata left to the
//!   core, which requires it to be the core device), and builds the
//!   `const` `vfio_device_ops` table whose callbacks call the trait;
//! * [`Device`] is one bound device: the `vfio_pci_core_device` and the
//!   driver's data in one allocation made by `_vfio_alloc_device()`,
//!   reference counted through the embedded `struct device`;
//! * [`CoreDevice`] wraps the core device: [`MemoryRead`]/[`MemoryWrite`]
//!   guards over `memory_lock`, the device inode's mapping
//!   ([`CoreDevice::unmap_all`]), memory-enable state, BAR frames;
//! * [`OpenDevice`] is a device with an open file, on which the core's own
//!   `mmap`, `write`, `ioctl` and `device_feature` may be called;
//! * [`VmOps`] builds `const` `vm_operations_struct` tables from a
//!   [`VmaHandler`], [`BarMapping`] is a vma the core has just set up for a
//!   BAR (on top of [`kernel::mm::virt::VmaNew`]) and [`Fault`] a page
//!   fault being handled.
//!
//! Every `unsafe` block of the vfio-variant module lives in this directory;
//! the driver built on it is safe Rust.
//!
//! # Examples
//!
//! A variant driver that maps BARs through its own fault handler, one page
//! per fault, and counts the core's resets (a sketch; see `driver.rs` for
//! the real one):
//!
//! ```ignore
//! struct MyDriver;
//! struct Data { resets: Atomic<u64> }
//! struct Pages;
//!
//! impl VmaHandler for Pages {
//!     type Data = Data;
//!     fn fault(dev: &Device<Data>, f: &Fault<'_>, _order: u32) -> VmFault {
//!         let mem = dev.core().memory_read();
//!         let pfn = dev.core().bar_pfn(0) + (f.address() - f.vma().start()) / PAGE_SIZE;
//!         mem.insert(f, pfn, 0)
//!     }
//! }
//! static PAGES: VmOps<Pages> = VmOps::new();
//!
//! impl Driver for MyDriver {
//!     const NAME: &'static CStr = c"my_variant";
//!     const OPS_NAME: &'static CStr = c"my-variant";
//!     type Data = Data;
//!     fn init(_core: &CoreDevice) -> impl PinInit<Data, Error> {
//!         Ok(Data { resets: Atomic::new(0) })
//!     }
//!     fn mmap(dev: &OpenDevice<'_, Data>, vma: &VmaNew) -> Result {
//!         dev.core_mmap(vma)?.set_ops(&PAGES);
//!         Ok(())
//!     }
//! }
//! ```

mod adapter;
mod device;
mod fault;
#[cfg(CONFIG_KUNIT)]
pub(crate) mod kunit;
mod memory;
mod pfnmap;
mod vma;

pub(crate) use adapter::{DeviceId, Registration};
pub(crate) use device::{CoreDevice, Device, OpenDevice};
pub(crate) use fault::{cond_resched, signal_pending, Fault, VmFault};
pub(crate) use memory::{MemoryRead, MemoryWrite};
pub(crate) use pfnmap::{lookup_pfn, VmaId, Vmas};
pub(crate) use vma::{file_holding, pgoff, BarMapping, VmOps, VmaHandler};

use kernel::{bindings, mm::virt::VmaNew, prelude::*, uaccess::UserPtr};

/// Bits of a device file offset that address bytes within one region
/// (`VFIO_PCI_OFFSET_SHIFT`): the region index is the offset shifted right
/// by this.
pub(crate) const OFFSET_SHIFT: u32 = bindings::VFIO_PCI_OFFSET_SHIFT;
/// Index of the PCI config space region (`VFIO_PCI_CONFIG_REGION_INDEX`).
pub(crate) const CONFIG_REGION_INDEX: u64 = bindings::VFIO_PCI_CONFIG_REGION_INDEX as u64;
/// Index of the expansion ROM region (`VFIO_PCI_ROM_REGION_INDEX`): regions
/// below it are the six BARs.
pub(crate) const ROM_REGION_INDEX: u64 = bindings::VFIO_PCI_ROM_REGION_INDEX as u64;

/// `ioctl` commands a variant driver may want to recognise.
pub(crate) mod ioctl {
    use kernel::{bindings, ioctl::_IO};

    /// `VFIO_DEVICE_RESET`.
    pub(crate) const DEVICE_RESET: u32 = _IO(bindings::VFIO_TYPE as u32, bindings::VFIO_BASE + 11);
    /// `VFIO_DEVICE_PCI_HOT_RESET`.
    pub(crate) const PCI_HOT_RESET: u32 = _IO(bindings::VFIO_TYPE as u32, bindings::VFIO_BASE + 13);
}

/// A VFIO PCI variant driver.
///
/// The implementing type is the driver-wide data (for example a debugfs
/// root), owned by its [`Registration`]. Every callback other than
/// [`Driver::init`] gets it as `self`.
///
/// Methods with a default implementation call the vfio-pci core, which is
/// what the stock vfio-pci driver does.
pub(crate) trait Driver: Send + Sync + Sized + 'static {
    /// Name of the PCI driver (`pci_driver.name`, the module's name in sysfs).
    const NAME: &'static CStr;
    /// Name of the `vfio_device_ops` (`vfio_device_ops.name`).
    const OPS_NAME: &'static CStr;
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
