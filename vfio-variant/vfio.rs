// SPDX-License-Identifier: GPL-2.0

//! Thin safe wrappers over the vfio and vfio-pci core C API.
//!
//! [`CoreDevice`] is a `struct vfio_pci_core_device` owned by the vfio core.
//! Its `memory_lock` is exposed as RAII guards; the device inode's
//! `address_space` (shared by every device file since the 2024 fix) is
//! exposed as [`CoreDevice::unmap_all`].

use crate::{mm::Fault, mm::VmFault, region};
use kernel::{
    bindings,
    types::Opaque,
    uaccess::{UserPtr, UserSlice},
};

/// A vfio-pci core device (`struct vfio_pci_core_device`).
#[repr(transparent)]
pub(crate) struct CoreDevice(Opaque<bindings::vfio_pci_core_device>);

// SAFETY: the C object is designed for concurrent use; all mutable state this
// driver touches is protected by its own locks or by `memory_lock`.
unsafe impl Sync for CoreDevice {}
// SAFETY: see above; the object is not tied to a thread.
unsafe impl Send for CoreDevice {}

impl CoreDevice {
    /// The C pointer.
    pub(crate) fn as_ptr(&self) -> *mut bindings::vfio_pci_core_device {
        self.0.get()
    }

    /// The embedded `struct vfio_device`.
    pub(crate) fn vfio(&self) -> *mut bindings::vfio_device {
        // SAFETY: field projection inside a valid object.
        unsafe { &raw mut (*self.as_ptr()).vdev }
    }

    fn pdev(&self) -> *mut bindings::pci_dev {
        // SAFETY: `pdev` is set by `vfio_pci_core_init_dev()` and never changes.
        unsafe { (*self.as_ptr()).pdev }
    }

    fn memory_lock(&self) -> *mut bindings::rw_semaphore {
        // SAFETY: field projection inside a valid object.
        unsafe { &raw mut (*self.as_ptr()).memory_lock }
    }

    /// Offset of the power management capability (0 without one).
    pub(crate) fn pm_cap(&self) -> u8 {
        // SAFETY: set at enumeration, never changed while bound.
        unsafe { (*self.pdev()).pm_cap }
    }

    /// Takes `memory_lock` for reading (fault path).
    pub(crate) fn memory_read(&self) -> MemoryRead<'_> {
        // SAFETY: the rwsem was initialised by `vfio_pci_core_init_dev()`.
        unsafe { bindings::down_read(self.memory_lock()) };
        MemoryRead(self)
    }

    /// Takes `memory_lock` for writing (around zaps).
    pub(crate) fn memory_write(&self) -> MemoryWrite<'_> {
        // SAFETY: the rwsem was initialised by `vfio_pci_core_init_dev()`.
        unsafe { bindings::down_write(self.memory_lock()) };
        MemoryWrite(self)
    }

    /// First page frame of BAR `index`.
    pub(crate) fn bar_pfn(&self, index: usize) -> usize {
        // SAFETY: `pdev` is valid; `index` < PCI_STD_NUM_BARS is checked by
        // `vfio_pci_core_mmap()` before any vma reaches this driver.
        let start = unsafe { (*self.pdev()).resource[index].start };
        (start >> region::PAGE_SHIFT) as usize
    }

    /// Whether device memory is accessible, read as one consistent snapshot
    /// under `memory_lock` (taken for read and released before returning).
    ///
    /// The ops wrappers compare a snapshot before and after a core call to
    /// notice that the call revoked memory. The lock is held for each
    /// snapshot only, never across the core call (which takes it for write)
    /// and never while user memory is accessed (a user buffer may map this
    /// device's BAR, and its fault takes the lock for read, too).
    pub(crate) fn memory_enabled(&self) -> bool {
        self.memory_read().enabled()
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

    /// Calls `f`, under the dev_set's lock, on every device of this
    /// device's dev_set (the devices a hot reset resets together) that is
    /// bound through the same ops table, i.e. by the same driver: this one
    /// included.
    pub(crate) fn for_each_sibling(&self, mut f: impl FnMut(&CoreDevice)) {
        // SAFETY: `dev_set` is assigned at registration and outlives every
        // member; its list is only walked under its lock, every entry is
        // the `dev_set_list` of a live `vfio_device`, and one with this
        // device's ops was allocated by this driver, so it starts a
        // `vfio_pci_core_device` (`CoreDevice` is transparent over it).
        unsafe {
            let set = (*self.vfio()).dev_set;
            if set.is_null() {
                return;
            }
            let ops = (*self.vfio()).ops;
            bindings::mutex_lock(&raw mut (*set).lock);
            let head = &raw mut (*set).device_list;
            let mut pos = (*head).next;
            while pos != head {
                let vdev = kernel::container_of!(pos, bindings::vfio_device, dev_set_list);
                if (*vdev).ops == ops {
                    f(&*vdev.cast::<CoreDevice>());
                }
                pos = (*pos).next;
            }
            bindings::mutex_unlock(&raw mut (*set).lock);
        }
    }

    /// Zaps every mapping of the device: `unmap_mapping_range()` over the
    /// device inode's address_space, whatever file or process maps it.
    pub(crate) fn unmap_all(&self, _lock: &MemoryWrite<'_>) {
        // SAFETY: `inode` lives as long as the vfio device; holding the
        // memory_lock write guard proves the device is alive.
        unsafe {
            let inode = (*self.vfio()).inode;
            bindings::unmap_mapping_range((*inode).i_mapping, 0, 0, 1);
        }
    }

    /// The device inode's address_space (what every device file's
    /// `f_mapping` points to).
    pub(crate) fn mapping(&self) -> *mut bindings::address_space {
        // SAFETY: `inode` is set by `vfio_init_device()` before `init`.
        unsafe { (*(*self.vfio()).inode).i_mapping }
    }
}

/// `memory_lock` held for reading.
pub(crate) struct MemoryRead<'a>(&'a CoreDevice);

impl MemoryRead<'_> {
    /// Whether device memory may be mapped: the check of
    /// `vfio_pci_vmf_insert_pfn()` (runtime PM not engaged, and
    /// `__vfio_pci_memory_enabled()`: COMMAND.MEM set in the virtual config
    /// space, or no COMMAND memory bit, and the function in D0 to D2), and
    /// COMMAND.MEM set in the device itself.
    ///
    /// The core trusts its virtual COMMAND.MEM alone, but the two can
    /// disagree: leaving D3hot without No_Soft_Reset, the core restores the
    /// state it saved on entering D3hot, so a COMMAND.MEM set while in D3hot
    /// stays set in the virtual config space and is clear in the device.
    /// `false` while the device is not open (no virtual config space).
    pub(crate) fn enabled(&self) -> bool {
        let p = self.0.as_ptr();
        // SAFETY: `memory_lock` is held for read (type invariant), and the
        // core writes `pm_runtime_engaged`, the virtual COMMAND register and
        // the power state it sets only with the lock held for write.
        // `vconfig` is allocated by `open_device` and freed by
        // `close_device`, neither of which runs while a user of the open
        // device (a file operation, or a fault on a vma that pins the file)
        // holds the lock; check it first all the same.
        let core = unsafe {
            !(*p).vconfig.is_null()
                && !(*p).pm_runtime_engaged
                && bindings::__vfio_pci_memory_enabled(p)
        };
        core && self.device_memory_enabled()
    }

    /// COMMAND.MEM as the device has it (true for a function without the
    /// bit, a VF); a failed read counts as clear.
    pub(crate) fn device_memory_enabled(&self) -> bool {
        let pdev = self.0.pdev();
        // SAFETY: `pdev` is the bound device, valid while it is.
        if unsafe { (*pdev).no_command_memory() } != 0 {
            return true;
        }
        let mut cmd = 0u16;
        // SAFETY: as above; a config access takes its own lock and may be
        // made where sleeping is allowed, as it is under `memory_lock`.
        let err =
            unsafe { bindings::pci_read_config_word(pdev, bindings::PCI_COMMAND as i32, &mut cmd) };
        err == 0 && u32::from(cmd) & bindings::PCI_COMMAND_MEMORY != 0
    }

    /// Inserts `pfn` at the fault address with the given order through the
    /// core (`vfio_pci_vmf_insert_pfn`): SIGBUS while memory is disabled,
    /// FALLBACK for an unsupported order.
    pub(crate) fn insert(&self, fault: &Fault<'_>, pfn: usize, order: u32) -> VmFault {
        // SAFETY: the device is valid, `memory_lock` is held for read (type
        // invariant) and `fault` is the fault being handled.
        VmFault(unsafe {
            bindings::vfio_pci_vmf_insert_pfn(self.0.as_ptr(), fault.as_ptr(), pfn, order)
        })
    }
}

impl Drop for MemoryRead<'_> {
    fn drop(&mut self) {
        // SAFETY: taken for read in `memory_read()`.
        unsafe { bindings::up_read(self.0.memory_lock()) };
    }
}

/// `memory_lock` held for writing.
pub(crate) struct MemoryWrite<'a>(&'a CoreDevice);

impl Drop for MemoryWrite<'_> {
    fn drop(&mut self) {
        // SAFETY: taken for write in `memory_write()`.
        unsafe { bindings::up_write(self.0.memory_lock()) };
    }
}
