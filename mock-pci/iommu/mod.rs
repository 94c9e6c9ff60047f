// SPDX-License-Identifier: GPL-2.0

//! A software IOMMU for the mock bus only (`iommu=1`).
//!
//! It registers with the IOMMU core like a hardware IOMMU, with no firmware
//! node, before the mock host bridge scans, and accepts only the functions
//! on the mock bus's secondary bus (not the Root Port, not other devices of
//! the machine: `probe_device` answers `ENODEV` for those). Each function
//! (Virtual Functions included) gets an IOMMU group of its own
//! (`generic_device_group`), so VFIO sees
//! numeric, viable groups and iommufd a real IOMMU: type1 containers and
//! iommufd IOAS work with mock devices exactly as with hardware.
//!
//! Module lifetime: the IOMMU core pins the module once per probed device
//! (`iommu_init_device()`), so with `iommu=1` the mock devices must be
//! removed (`del_device`) before `rmmod`; paging domains pin it too
//! (domain.rs).
//!
//! DMA: the paging domain each function is attached to is recorded under a
//! lock, the fence. The DMA engine translates and copies under it, one
//! chunk at a time; an unmap's IOTLB flush and every attach take it, so
//! once they return no copy uses the old translation (the caller unpins
//! the pages only after the flush).
//!
//! Coexistence: a hardware IOMMU registered at boot with no firmware node
//! would be asked first for every PCI device; mock functions would then get
//! no group from us. Registration fails loudly in that case (see
//! [`Registration::new`]).

mod domain;

use crate::layout::MAX_SLOTS;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::{
    bindings,
    ffi::c_void,
    new_spinlock,
    prelude::*,
    sync::{
        lock::{spinlock::SpinLockBackend, Guard},
        SpinLock,
    },
    types::Opaque,
};

/// The registered IOMMU: the `iommu_device` the core lists and links
/// devices to, and which bus it serves.
#[pin_data(PinnedDrop)]
pub(crate) struct Registration {
    #[pin]
    dev: Opaque<bindings::iommu_device>,
    /// The mock root bus's `sysdata`: every bus of the mock hierarchy
    /// carries it, no other bus does.
    sysdata: *mut c_void,
    registered: bool,
    #[pin]
    fence: SpinLock<Fence>,
}

/// The paging domain each slot's function is attached to (its address),
/// or 0: blocked, identity, or not probed.
struct Fence([usize; MAX_SLOTS]);

/// A function's translation, valid while the fence is held.
pub(crate) struct Translation<'a> {
    domain: *mut bindings::iommu_domain,
    _fence: Guard<'a, Fence, SpinLockBackend>,
}

/// Which way a DMA access goes: what the mapping must permit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// The device reads memory (`IOMMU_READ`).
    Read,
    /// The device writes memory (`IOMMU_WRITE`).
    Write,
}

/// The bits of an AMD v1 page-table entry the walk reads
/// (drivers/iommu/generic_pt/fmt/amdv1.h).
mod pte {
    /// Present.
    pub(super) const PR: u64 = 1;
    /// Next level: 0 or 7 (a contiguous range) mark a leaf.
    pub(super) const NEXT_LEVEL_SHIFT: u32 = 9;
    pub(super) const NEXT_LEVEL_SIZE: u64 = 7;
    /// Output address, bits 51:12.
    pub(super) const OA: u64 = ((1 << 52) - 1) & !((1 << 12) - 1);
    /// Readable by the device.
    pub(super) const IR: u64 = 1 << 61;
    /// Writable by the device.
    pub(super) const IW: u64 = 1 << 62;
}

// The walk takes table addresses from the entries as they are: under SME
// the library would set the encryption bit in them (ENCRYPT_TABLES).
#[cfg(CONFIG_AMD_MEM_ENCRYPT)]
compile_error!("the DMA engine's page-table walk does not strip SME's encryption bit");

impl Translation<'_> {
    /// The physical address IOVA `iova` maps to, if it is mapped with the
    /// permission `access` needs: an IOMMU faults a write through a
    /// read-only mapping (`IOMMU_READ` only), and a read through a
    /// write-only one.
    pub(crate) fn phys(&self, iova: u64, access: Access) -> Option<u64> {
        // SAFETY: the domain stays attached, hence allocated, while the
        // fence is held (attach and free wait for it); the lookup walks the
        // page table without sleeping.
        let p = unsafe { bindings::iommu_iova_to_phys(self.domain, iova) };
        let bit = match access {
            Access::Read => pte::IR,
            Access::Write => pte::IW,
        };
        (p != 0 && self.leaf(iova)? & bit != 0).then_some(p)
    }

    /// The leaf entry that maps `iova`, read the way the hardware would
    /// walk the table: from the top, 9 bits of IOVA per level above the
    /// 4 KiB page offset.
    fn leaf(&self, iova: u64) -> Option<u64> {
        // SAFETY: the fence is held (see `phys`).
        let (mut table, mut level) = unsafe { domain::top(self.domain) };
        // The top table covers 2^(12 + 9 * (level + 1)) bytes of IOVA.
        if iova.checked_shr(12 + 9 * (level + 1)).unwrap_or(0) != 0 {
            return None;
        }
        loop {
            let index = (iova >> (12 + 9 * level)) & 511;
            // Table pages are freed only after an IOTLB flush, which waits
            // for the fence.
            let entry = crate::physmem::read_u64(table + index * 8)?;
            if entry & pte::PR == 0 {
                return None;
            }
            let next = (entry >> pte::NEXT_LEVEL_SHIFT) & 7;
            if level == 0 || next == 0 || next == pte::NEXT_LEVEL_SIZE {
                return Some(entry);
            }
            table = entry & pte::OA;
            level -= 1;
        }
    }
}

// SAFETY: `dev` is only handed to the IOMMU core, which serialises its use;
// `sysdata` is an address that is only compared.
unsafe impl Sync for Registration {}
// SAFETY: see `Sync`.
unsafe impl Send for Registration {}

/// The one registration (the module has one host bridge): `probe_device`
/// gets only the device, and finds the `iommu_device` here.
static INSTANCE: AtomicPtr<Registration> = AtomicPtr::new(core::ptr::null_mut());

#[repr(transparent)]
struct Ops(bindings::iommu_ops);

// SAFETY: a table of function pointers and pointers to static domains,
// never written.
unsafe impl Sync for Ops {}

static OPS: Ops = {
    // SAFETY: all-zero is a valid `iommu_ops` (every op absent).
    let mut ops: bindings::iommu_ops = unsafe { core::mem::zeroed() };
    ops.owner = crate::THIS_MODULE;
    ops.capable = Some(capable);
    ops.domain_alloc_paging_flags = Some(domain::alloc_paging);
    ops.probe_device = Some(probe_device);
    ops.device_group = Some(bindings::generic_device_group);
    ops.blocked_domain = domain::BLOCKED.as_ptr();
    ops.identity_domain = domain::IDENTITY.as_ptr();
    ops.release_domain = domain::BLOCKED.as_ptr();
    ops.default_domain = domain::BLOCKED.as_ptr();
    Ops(ops)
};

impl Registration {
    /// Registers the IOMMU for the bus whose buses carry `sysdata`, with
    /// its sysfs entry `/sys/class/iommu/mock-iommu-DOMAIN` under `parent`.
    /// Call it before the bus is scanned, and drop it after the bus is
    /// removed.
    pub(crate) fn new(
        parent: *mut bindings::device,
        sysdata: *mut c_void,
        domain: i32,
    ) -> Result<Pin<KBox<Self>>> {
        let mut reg = KBox::pin_init(
            pin_init!(Registration {
                // All-zero is the state `iommu_device_sysfs_add()` starts from.
                dev: Opaque::zeroed(),
                sysdata,
                registered: false,
                fence <- new_spinlock!(Fence([0; MAX_SLOTS]), "mock_iommu_fence"),
            }),
            GFP_KERNEL,
        )?;
        let me = core::ptr::from_ref::<Registration>(&reg).cast_mut();
        if INSTANCE
            .compare_exchange(
                core::ptr::null_mut(),
                me,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            pr_err!("the software IOMMU is already registered\n");
            return Err(EBUSY);
        }
        // SAFETY: `dev` is pinned in `reg` and removed in drop; the format
        // takes one int.
        let ret = unsafe {
            bindings::iommu_device_sysfs_add(
                reg.dev.get(),
                parent,
                core::ptr::null_mut(),
                c"mock-iommu-%x".as_char_ptr(),
                domain,
            )
        };
        if ret != 0 {
            INSTANCE.store(core::ptr::null_mut(), Ordering::Release);
            pr_err!("cannot add the software IOMMU to sysfs ({})\n", ret);
            return Err(Error::from_errno(ret));
        }
        // SAFETY: as above; the ops are static. This probes every device
        // already on the PCI and platform buses (none of ours yet).
        let ret = unsafe {
            bindings::iommu_device_register(reg.dev.get(), &OPS.0, core::ptr::null_mut())
        };
        if ret != 0 {
            // SAFETY: added above.
            unsafe { bindings::iommu_device_sysfs_remove(reg.dev.get()) };
            INSTANCE.store(core::ptr::null_mut(), Ordering::Release);
            pr_err!("cannot register the software IOMMU ({})\n", ret);
            return Err(Error::from_errno(ret));
        }
        // SAFETY: `registered` is not structurally pinned.
        unsafe { Pin::get_unchecked_mut(reg.as_mut()) }.registered = true;
        Ok(reg)
    }

    /// Whether `pdev`'s IOMMU group is one this IOMMU made (a hardware
    /// IOMMU asked first would have made it or none).
    pub(crate) fn serves(&self, pdev: *mut bindings::pci_dev) -> bool {
        // SAFETY: the caller passes a live device.
        let iommu = unsafe { (*pdev).dev.iommu };
        // SAFETY: `dev.iommu` is set while the device is probed by an IOMMU.
        !iommu.is_null() && unsafe { (*iommu).iommu_dev } == self.dev.get()
    }

    /// The translation of the function in `slot`, holding the fence until
    /// it is dropped; `None` unless the function is attached to a paging
    /// domain.
    pub(crate) fn translation(&self, slot: usize) -> Option<Translation<'_>> {
        let fence = self.fence.lock();
        let domain = *fence.0.get(slot)? as *mut bindings::iommu_domain;
        (!domain.is_null()).then_some(Translation {
            domain,
            _fence: fence,
        })
    }
}

/// Records that `dev` is now attached to `paging` (null: a static domain),
/// after any copy under the old translation finished.
///
/// # Safety
///
/// `dev` is a device this IOMMU probed.
pub(super) unsafe fn attached(dev: *mut bindings::device, paging: *mut bindings::iommu_domain) {
    let reg = INSTANCE.load(Ordering::Acquire);
    if reg.is_null() {
        return;
    }
    // SAFETY: a probed device is a mock function, a `pci_dev`; the
    // registration outlives its devices.
    let devfn = unsafe { (*kernel::container_of!(dev, bindings::pci_dev, dev)).devfn };
    // Only function 0 of a slot has a DMA engine; a Virtual Function
    // (functions 1 to 7, sriov.rs) does no DMA and must not change the
    // translation of its PF, which shares its slot number.
    if devfn & 7 != 0 {
        return;
    }
    let slot = (devfn >> 3) as usize;
    // SAFETY: as above.
    if let Some(d) = unsafe { &*reg }.fence.lock().0.get_mut(slot) {
        *d = paging as usize;
    }
}

/// Waits until no copy of the DMA engine translates through a domain
/// (whichever: one lock covers every function).
pub(super) fn quiesce() {
    let reg = INSTANCE.load(Ordering::Acquire);
    if !reg.is_null() {
        // SAFETY: domains exist only while the IOMMU is registered.
        drop(unsafe { &*reg }.fence.lock());
    }
}

#[pinned_drop]
impl PinnedDrop for Registration {
    fn drop(self: Pin<&mut Self>) {
        if self.registered {
            // SAFETY: registered in `new`. This releases every device still
            // probed by it (none: the bus is gone).
            unsafe {
                bindings::iommu_device_unregister(self.dev.get());
                bindings::iommu_device_sysfs_remove(self.dev.get());
            }
            INSTANCE.store(core::ptr::null_mut(), Ordering::Release);
        }
    }
}

/// Whether `dev` is a function of the mock bus behind the Root Port.
///
/// # Safety
///
/// `dev` is a live device.
unsafe fn is_mock_function(reg: &Registration, dev: *mut bindings::device) -> bool {
    // SAFETY: see the function's safety section; a device on the PCI bus
    // type is the `dev` of a `pci_dev`, whose bus is live while it is.
    unsafe {
        if (*dev).bus != (&raw const bindings::pci_bus_type).cast_mut() {
            return false;
        }
        let pdev = kernel::container_of!(dev, bindings::pci_dev, dev);
        let bus = (*pdev).bus;
        !(*bus).parent.is_null() && (*bus).sysdata == reg.sysdata
    }
}

/// # Safety
///
/// Called by the IOMMU core as `iommu_ops.probe_device`, under its probe lock.
unsafe extern "C" fn probe_device(dev: *mut bindings::device) -> *mut bindings::iommu_device {
    let reg = INSTANCE.load(Ordering::Acquire);
    // SAFETY: the core calls this only while the IOMMU is registered, so
    // `reg` is live; `dev` is the device being probed.
    if reg.is_null() || !unsafe { is_mock_function(&*reg, dev) } {
        return ENODEV.to_ptr();
    }
    // SAFETY: as above.
    unsafe { (*reg).dev.get() }
}

/// The engine's accesses snoop the CPU caches (it copies with the CPU), so
/// DMA is cache coherent, which VFIO and iommufd require. No other
/// capability: no enforced coherency, no dirty tracking, no interrupt
/// remapping (isolated MSI is a property of the MSI domain, not of this).
///
/// # Safety
///
/// Called by the IOMMU core as `iommu_ops.capable`.
unsafe extern "C" fn capable(_dev: *mut bindings::device, cap: bindings::iommu_cap) -> bool {
    cap == bindings::iommu_cap_IOMMU_CAP_CACHE_COHERENCY
}
