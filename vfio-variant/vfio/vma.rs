// SPDX-License-Identifier: GPL-2.0

//! BAR mappings: [`BarMapping`] (a vma the core's mmap has just set up),
//! [`VmaHandler`] and the `const` `vm_operations_struct` tables
//! [`VmOps`] builds from it, and [`file_holding`] (an anon-inode file that
//! keeps another file alive, to move a vma off the device inode).

use super::{Device, Fault, OpenDevice, VmFault};
use core::{marker::PhantomData, ptr::NonNull};
use kernel::{
    bindings,
    error::{from_err_ptr, to_result},
    fs::File,
    mm::virt::{VmaNew, VmaRef},
    prelude::*,
    sync::aref::ARef,
};

/// The fault path of BAR mappings of devices whose data is `Self::Data`.
///
/// Each callback gets the device the vma maps: the adapter finds it in
/// `vm_private_data`, which `vfio_pci_core_mmap()` set, and it outlives the
/// call (the vma pins a file that holds the device open).
pub(crate) trait VmaHandler: Sized + 'static {
    /// The driver's data of the devices whose mappings this handles.
    type Data: Send + Sync + 'static;
    /// Whether [`VmaHandler::open`] is used.
    const HAS_OPEN: bool = false;
    /// Whether [`VmaHandler::close`] is used.
    const HAS_CLOSE: bool = false;
    /// Whether faults of order above 0 (`->huge_fault`) reach
    /// [`VmaHandler::fault`].
    const HAS_HUGE_FAULT: bool = false;

    /// `vm_ops->open`: a copy of a vma was made (fork, split); `vma` is the
    /// new one. Runs with its mm write-locked.
    fn open(_dev: &Device<Self::Data>, _vma: &VmaRef) {}

    /// `vm_ops->close`: `vma` goes away. Runs with its mm locked.
    fn close(_dev: &Device<Self::Data>, _vma: &VmaRef) {}

    /// A fault of `order` (0: a page) at `fault.address()`.
    fn fault(dev: &Device<Self::Data>, fault: &Fault<'_>, order: u32) -> VmFault;
}

/// A `vm_operations_struct` built from `H`, to be kept in a `static`: a
/// mapping belongs to a driver if its `vm_ops` is one of the driver's tables
/// (as nvgrace-gpu checks its own), so a table needs one address.
///
/// # Invariants
///
/// `self.0` is [`VmOps::TABLE`] for `H`, and is only installed on vmas whose
/// `vm_private_data` is the core device of a [`Device<H::Data>`] (see
/// [`BarMapping::set_ops`]).
pub(crate) struct VmOps<H: VmaHandler>(bindings::vm_operations_struct, PhantomData<fn() -> H>);

impl<H: VmaHandler> VmOps<H> {
    /// The C table.
    const TABLE: bindings::vm_operations_struct = bindings::vm_operations_struct {
        open: if H::HAS_OPEN { Some(Self::open) } else { None },
        close: if H::HAS_CLOSE {
            Some(Self::close)
        } else {
            None
        },
        fault: Some(Self::fault),
        huge_fault: if H::HAS_HUGE_FAULT {
            Some(Self::huge_fault)
        } else {
            None
        },
        ..pin_init::zeroed()
    };

    /// The table.
    pub(crate) const fn new() -> Self {
        // INVARIANT: `TABLE`; only `BarMapping::set_ops` installs it.
        Self(Self::TABLE, PhantomData)
    }

    /// The device `vma` maps if it is one of this table's mappings, `None`
    /// for any other vma. The borrow of the vma bounds the result: the vma
    /// pins a file that holds the device open.
    #[cfg_attr(not(CONFIG_KUNIT), allow(dead_code))]
    pub(crate) fn device_of<'a>(&'static self, vma: &'a VmaRef) -> Option<&'a Device<H::Data>> {
        // SAFETY: reading a field of a valid vma.
        let ops = unsafe { (*vma.as_ptr()).vm_ops };
        if !core::ptr::eq(ops, &self.0) {
            return None;
        }
        // SAFETY: the vma has this table, so its `vm_private_data` is the
        // core device of a `Device<H::Data>` (type invariant), alive while
        // the vma is.
        Some(unsafe { Self::device(vma.as_ptr()) })
    }

    /// # Safety
    ///
    /// `vma` is a valid vma with this table, for `'a`.
    unsafe fn device<'a>(vma: *mut bindings::vm_area_struct) -> &'a Device<H::Data> {
        // SAFETY: per the caller and the type invariant, `vm_private_data`
        // is the core device of a live `Device<H::Data>`.
        unsafe { Device::from_core((*vma).vm_private_data.cast()) }
    }

    /// # Safety
    ///
    /// Called by the mm as `vm_ops->open` of a vma with this table, with
    /// its mm write-locked.
    unsafe extern "C" fn open(vma: *mut bindings::vm_area_struct) {
        // SAFETY: per the caller, the vma is valid and locked.
        let (dev, v) = unsafe { (Self::device(vma), VmaRef::from_raw(vma)) };
        H::open(dev, v);
    }

    /// # Safety
    ///
    /// Called by the mm as `vm_ops->close` of a vma with this table, with
    /// its mm locked.
    unsafe extern "C" fn close(vma: *mut bindings::vm_area_struct) {
        // SAFETY: per the caller, the vma is valid and locked.
        let (dev, v) = unsafe { (Self::device(vma), VmaRef::from_raw(vma)) };
        H::close(dev, v);
    }

    /// # Safety
    ///
    /// Called by the mm as `vm_ops->fault` of a vma with this table.
    unsafe extern "C" fn fault(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
        // SAFETY: per the caller, `vmf` is the fault being handled.
        let f = unsafe { Fault::from_raw(vmf) };
        // SAFETY: the faulting vma has this table and is locked.
        let dev = unsafe { Self::device(f.vma().as_ptr()) };
        H::fault(dev, &f, 0).0
    }

    /// # Safety
    ///
    /// Called by the mm as `vm_ops->huge_fault` of a vma with this table.
    unsafe extern "C" fn huge_fault(
        vmf: *mut bindings::vm_fault,
        order: c_uint,
    ) -> bindings::vm_fault_t {
        // SAFETY: per the caller, `vmf` is the fault being handled.
        let f = unsafe { Fault::from_raw(vmf) };
        // SAFETY: the faulting vma has this table and is locked.
        let dev = unsafe { Self::device(f.vma().as_ptr()) };
        H::fault(dev, &f, order).0
    }
}

/// A vma that `vfio_pci_core_mmap()` has just set up for a device whose
/// data is `D`, before the mm links it anywhere: the driver may take its
/// fault path over.
///
/// # Invariants
///
/// The vma is in `->mmap`, and its `vm_private_data` is the core device of
/// a `Device<D>`.
pub(crate) struct BarMapping<'a, D> {
    vma: &'a VmaNew,
    _data: PhantomData<fn() -> D>,
}

impl<'a, D> BarMapping<'a, D> {
    /// # Safety
    ///
    /// `vfio_pci_core_mmap()` just succeeded on `vma` for a `Device<D>`.
    pub(super) unsafe fn new(vma: &'a VmaNew) -> Self {
        // INVARIANT: per the caller.
        Self {
            vma,
            _data: PhantomData,
        }
    }

    /// The page offset (`vm_pgoff`): region index and page within it.
    pub(crate) fn pgoff(&self) -> u64 {
        pgoff(self.vma)
    }

    /// The file being mapped (a device file).
    pub(crate) fn file(&self) -> &'a File {
        // SAFETY: a file mapping has `vm_file` during `->mmap`, and the vma
        // holds a reference to it.
        unsafe { File::from_raw_file((*self.vma.as_ptr()).vm_file) }
    }

    /// Replaces the vm_ops with `ops`, whose handler serves devices with
    /// data `D`.
    pub(crate) fn set_ops<H: VmaHandler<Data = D>>(&self, ops: &'static VmOps<H>) {
        // SAFETY: the vma is not yet visible to anyone else during
        // `->mmap`; `vm_private_data` is a `Device<D>` (type invariant), as
        // `ops` requires.
        unsafe { (*self.vma.as_ptr()).vm_ops = &ops.0 };
    }

    /// Moves the vma to `file` (`vma_set_file`): the mm links the vma into
    /// `file`'s `f_mapping` once `->mmap` returns, instead of the device
    /// inode's.
    pub(crate) fn set_file(&self, file: &File) {
        // SAFETY: the vma is being set up; `vma_set_file` takes its own
        // reference to `file` and drops the one to the old file.
        unsafe { bindings::vma_set_file(self.vma.as_ptr(), file.as_ptr()) };
    }
}

/// The page offset of `vma` (`vm_pgoff`): for a VFIO device file, the region
/// index and the page within the region.
pub(crate) fn pgoff(vma: &VmaRef) -> u64 {
    // SAFETY: reading a field of a valid vma.
    unsafe { (*vma.as_ptr()).vm_pgoff as u64 }
}

impl<D> OpenDevice<'_, D> {
    /// The core's mmap (`vfio_pci_core_mmap()`): validates the request
    /// exactly as the stock driver does (MAP_SHARED only, region index,
    /// range, mappable BAR) and sets the vma up for the core's fault path,
    /// with `vm_private_data` pointing at the core device. The returned
    /// [`BarMapping`] lets the caller take the fault path over.
    pub(crate) fn core_mmap<'v>(&self, vma: &'v VmaNew) -> Result<BarMapping<'v, D>> {
        // SAFETY: the device is open (type invariant) and `vma` is being
        // mmapped (`VmaNew` invariant).
        to_result(unsafe { bindings::vfio_pci_core_mmap(self.core().vfio(), vma.as_ptr()) })?;
        // SAFETY: the core set `vm_private_data` to this device's core.
        Ok(unsafe { BarMapping::new(vma) })
    }
}

/// `file_operations` of [`file_holding`]'s files: release drops the held
/// file.
const HOLDING_FOPS: bindings::file_operations = bindings::file_operations {
    release: Some(release_holding),
    ..pin_init::zeroed()
};

/// # Safety
///
/// Called by the VFS as `release` of a file made by [`file_holding`].
unsafe extern "C" fn release_holding(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: `private_data` is the reference `file_holding` handed over,
    // released exactly once, here.
    drop(unsafe { ARef::from_raw(NonNull::new_unchecked((*file).private_data.cast::<File>())) });
    0
}

/// A new anonymous-inode file named `name` (`anon_inode_getfile`) that holds
/// `held` until it is released. All anon-inode files share one inode, and
/// therefore one address_space, which no VFIO revocation zaps: a vma moved
/// to such a file is out of reach of the device inode's zaps, as device
/// files were before the 2024 fix.
pub(crate) fn file_holding(name: &'static CStr, held: ARef<File>) -> Result<ARef<File>> {
    let held = ARef::into_raw(held);
    // SAFETY: the fops are a promoted constant; their release consumes
    // `held`, passed as `private_data`.
    let f = unsafe {
        bindings::anon_inode_getfile(
            name.as_char_ptr(),
            &HOLDING_FOPS,
            held.as_ptr().cast(),
            bindings::O_RDWR as c_int,
        )
    };
    match from_err_ptr(f) {
        // SAFETY: `anon_inode_getfile` returned a new reference we now own.
        Ok(f) => Ok(unsafe { ARef::from_raw(NonNull::from(File::from_raw_file(f))) }),
        Err(e) => {
            // SAFETY: not handed to a file: drop our reference.
            drop(unsafe { ARef::from_raw(held) });
            Err(e)
        }
    }
}
