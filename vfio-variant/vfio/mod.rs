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
mod driver;
mod fault;
#[cfg(CONFIG_KUNIT)]
pub(crate) mod kunit;
mod memory;
mod pfnmap;
mod uapi;
mod vma;

pub(crate) use adapter::{DeviceId, Registration};
pub(crate) use device::{CoreDevice, Device, OpenDevice};
pub(crate) use driver::Driver;
pub(crate) use fault::{cond_resched, signal_pending, Fault, VmFault, PMD_ORDER};
pub(crate) use memory::MemoryRead;
pub(crate) use pfnmap::{VmaId, Vmas};
#[cfg(CONFIG_KUNIT)]
pub(crate) use uapi::pci;
pub(crate) use uapi::{ioctl, CONFIG_REGION_INDEX, OFFSET_SHIFT, ROM_REGION_INDEX};
pub(crate) use vma::{file_holding, pgoff, BarMapping, VmOps, VmaHandler};
