// SPDX-License-Identifier: GPL-2.0

//! `memory_lock`: [`MemoryRead`] and [`MemoryWrite`] guards, what may be
//! done under them (read the memory-enable state, insert a PFN, zap the
//! device inode's mapping), and the [`CoreDevice`] methods that take them.
//!
//! The vfio-pci core serialises every change of device memory access
//! (COMMAND.MEM, power state, runtime PM, resets) with `memory_lock` held
//! for write, and zaps BAR mappings under it; faults take it for read.
//! Lock order: mmap_lock -> memory_lock.

use super::{CoreDevice, Fault, VmFault};
use kernel::bindings;

impl CoreDevice {
    /// Takes `memory_lock` for reading (fault path).
    pub(crate) fn memory_read(&self) -> MemoryRead<'_> {
        MemoryRead::new(self)
    }

    /// Takes `memory_lock` for writing (around zaps).
    pub(crate) fn memory_write(&self) -> MemoryWrite<'_> {
        MemoryWrite::new(self)
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

    /// Zaps every mapping of the device: `unmap_mapping_range()` over the
    /// device inode's address_space, whatever file or process maps it.
    /// Holding `memory_lock` for write (`_lock`) keeps faults out meanwhile.
    pub(crate) fn unmap_all(&self, _lock: &MemoryWrite<'_>) {
        // SAFETY: `inode` is set by `vfio_init_device()` and lives as long
        // as the vfio device (type invariant); zapping a whole mapping
        // takes its own locks.
        unsafe { bindings::unmap_mapping_range(self.mapping(), 0, 0, 1) };
    }
}

/// `memory_lock` held for reading.
///
/// # Invariants
///
/// The lock of `self.0` is held for read; the guard releases it.
pub(crate) struct MemoryRead<'a>(&'a CoreDevice);

impl<'a> MemoryRead<'a> {
    /// Takes the lock for reading; may sleep.
    fn new(dev: &'a CoreDevice) -> Self {
        // SAFETY: the rwsem was initialised by `vfio_pci_core_init_dev()`
        // (`CoreDevice` invariant).
        unsafe { bindings::down_read(dev.memory_lock()) };
        // INVARIANT: taken just above.
        Self(dev)
    }

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
        // SAFETY: held for read (type invariant).
        unsafe { bindings::up_read(self.0.memory_lock()) };
    }
}

/// `memory_lock` held for writing.
///
/// # Invariants
///
/// The lock of `self.0` is held for write; the guard releases it.
pub(crate) struct MemoryWrite<'a>(&'a CoreDevice);

impl<'a> MemoryWrite<'a> {
    /// Takes the lock for writing; may sleep.
    fn new(dev: &'a CoreDevice) -> Self {
        // SAFETY: the rwsem was initialised by `vfio_pci_core_init_dev()`
        // (`CoreDevice` invariant).
        unsafe { bindings::down_write(dev.memory_lock()) };
        // INVARIANT: taken just above.
        Self(dev)
    }
}

impl Drop for MemoryWrite<'_> {
    fn drop(&mut self) {
        // SAFETY: held for write (type invariant).
        unsafe { bindings::up_write(self.0.memory_lock()) };
    }
}
