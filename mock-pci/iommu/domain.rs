// SPDX-License-Identifier: GPL-2.0

//! The IOMMU domains of the software IOMMU.
//!
//! - [`BLOCKED`]: DMA is refused. It is also the default domain of every mock
//!   function (a static default domain always wins in the IOMMU core) and
//!   the release domain, so a function nobody owns can never DMA.
//! - [`IDENTITY`]: for the core's identity requests (`iommu.passthrough`,
//!   group `type`); the DMA engine refuses it.
//! - Paging domains ([`alloc_paging`]): a software I/O page table in the
//!   AMD v1 format of the kernel's generic page table library, the table
//!   iommufd's own no-IOMMU mode uses (drivers/iommu/iommufd/hwpt_noiommu.c).
//!   The IOMMU core maps and unmaps it itself (`is_iommupt`); this file only
//!   allocates, frees and attaches.
//!
//! A paging domain can outlive every device (an iommufd HWPT, a type1
//! container), so each one holds a reference on the module: its `free`
//! must not run after unload.

use kernel::{bindings, prelude::*, types::Opaque};

/// An `iommu_domain` in static memory, shared by every device: the core
/// compares it by address (`ops->blocked_domain`) and never writes it.
#[repr(transparent)]
pub(super) struct StaticDomain(Opaque<bindings::iommu_domain>);

// SAFETY: the core only reads a static domain (and passes it back to its
// ops); nothing here writes it after initialisation.
unsafe impl Sync for StaticDomain {}

impl StaticDomain {
    const fn new(type_: u32, ops: &'static DomainOps) -> Self {
        // SAFETY: all-zero is a valid `iommu_domain` (no ops, no geometry).
        let mut d: bindings::iommu_domain = unsafe { core::mem::zeroed() };
        d.type_ = type_;
        d.ops = &ops.0;
        StaticDomain(Opaque::new(d))
    }

    pub(super) const fn as_ptr(&'static self) -> *mut bindings::iommu_domain {
        self.0.get()
    }
}

/// `iommu_domain_ops` in static memory.
#[repr(transparent)]
pub(super) struct DomainOps(bindings::iommu_domain_ops);

// SAFETY: a table of function pointers, never written.
unsafe impl Sync for DomainOps {}

const fn static_ops() -> DomainOps {
    // SAFETY: all-zero is a valid `iommu_domain_ops` (every op absent).
    let mut ops: bindings::iommu_domain_ops = unsafe { core::mem::zeroed() };
    ops.attach_dev = Some(attach_static);
    DomainOps(ops)
}

static BLOCKED_OPS: DomainOps = static_ops();
static IDENTITY_OPS: DomainOps = static_ops();

/// The blocking domain.
pub(super) static BLOCKED: StaticDomain =
    StaticDomain::new(bindings::IOMMU_DOMAIN_BLOCKED, &BLOCKED_OPS);
/// The identity domain.
pub(super) static IDENTITY: StaticDomain =
    StaticDomain::new(bindings::IOMMU_DOMAIN_IDENTITY, &IDENTITY_OPS);

/// Attaching a static domain: the function's DMA has no translation.
///
/// # Safety
///
/// Called by the IOMMU core as `iommu_domain_ops.attach_dev` of a static domain.
unsafe extern "C" fn attach_static(
    _domain: *mut bindings::iommu_domain,
    dev: *mut bindings::device,
    _old: *mut bindings::iommu_domain,
) -> c_int {
    // SAFETY: the core attaches only devices this IOMMU probed.
    unsafe { super::attached(dev, core::ptr::null_mut()) };
    0
}

/// # Safety
///
/// Called by the IOMMU core as `iommu_domain_ops.attach_dev` of a paging
/// domain.
unsafe extern "C" fn attach_paging(
    domain: *mut bindings::iommu_domain,
    dev: *mut bindings::device,
    _old: *mut bindings::iommu_domain,
) -> c_int {
    // SAFETY: as in `attach_static`.
    unsafe { super::attached(dev, domain) };
    0
}

/// A paging domain: the generic page table (whose first member is the
/// `iommu_domain`, so a pointer to one is a pointer to the other) and the
/// lock the library holds while it grows the table's top.
#[repr(C)]
struct Paging {
    pt: bindings::pt_iommu_amdv1,
    top_lock: Opaque<bindings::spinlock_t>,
}

/// Lowest aperture bit the table does not decode: IOVAs below 2^48, as a
/// 4-level AMD v1 table (the last page of the aperture is what the VFIO
/// selftests map to probe the limit).
const VA_BITS: u32 = 48;
/// Widest physical address the table stores.
const PA_BITS: u32 = 52;

static PAGING_OPS: DomainOps = {
    // SAFETY: all-zero is a valid `iommu_domain_ops` (every op absent).
    let mut ops: bindings::iommu_domain_ops = unsafe { core::mem::zeroed() };
    ops.attach_dev = Some(attach_paging);
    // IOMMU_PT_DOMAIN_OPS(amdv1).
    ops.iova_to_phys = Some(bindings::pt_iommu_amdv1_iova_to_phys);
    ops.iotlb_sync = Some(iotlb_sync);
    ops.flush_iotlb_all = Some(flush_iotlb_all);
    ops.free = Some(free_paging);
    DomainOps(ops)
};

static PT_DRIVER_OPS: PtDriverOps = PtDriverOps(bindings::pt_iommu_driver_ops {
    get_top_lock: Some(get_top_lock),
    change_top: Some(change_top),
});

#[repr(transparent)]
struct PtDriverOps(bindings::pt_iommu_driver_ops);

// SAFETY: a table of function pointers, never written.
unsafe impl Sync for PtDriverOps {}

/// `iommu_ops.domain_alloc_paging_flags`: a new, empty paging domain.
/// Flags (dirty tracking, nesting, PASID) and driver data are not
/// supported.
///
/// # Safety
///
/// Called by the IOMMU core (or iommufd) as `iommu_ops.domain_alloc_paging_flags`.
pub(super) unsafe extern "C" fn alloc_paging(
    _dev: *mut bindings::device,
    flags: u32,
    user_data: *const bindings::iommu_user_data,
) -> *mut bindings::iommu_domain {
    if flags != 0 || !user_data.is_null() {
        return EOPNOTSUPP.to_ptr();
    }
    match new_paging() {
        Ok(d) => d,
        Err(e) => e.to_ptr(),
    }
}

fn new_paging() -> Result<*mut bindings::iommu_domain> {
    let dom = KBox::new(
        Paging {
            // SAFETY: all-zero is the state `pt_iommu_amdv1_init()` expects
            // besides the fields set below.
            pt: unsafe { core::mem::zeroed() },
            // SAFETY: initialised below, before the library can take it.
            top_lock: Opaque::zeroed(),
        },
        GFP_KERNEL,
    )?;
    let dom = KBox::into_raw(dom);
    // SAFETY: zeroed `pt_iommu_amdv1_cfg` is "no features"; the fields the
    // table needs are set.
    let mut cfg: bindings::pt_iommu_amdv1_cfg = unsafe { core::mem::zeroed() };
    cfg.common.hw_max_vasz_lg2 = VA_BITS as u8;
    cfg.common.hw_max_oasz_lg2 = PA_BITS as u8;
    cfg.starting_level = 2;
    // The feature set the AMD v1 format insists on (PT_FORCE_ENABLED_FEATURES
    // of drivers/iommu/generic_pt/fmt/iommu_amdv1.c, as hwpt_noiommu.c asks):
    // a table whose top grows with the highest IOVA mapped, and whose
    // pages are encrypted memory under SME (a no-op elsewhere).
    cfg.common.features = (1 << bindings::pt_features_PT_FEAT_DYNAMIC_TOP)
        | (1 << bindings::PT_FEAT_AMDV1_ENCRYPT_TABLES)
        | (1 << bindings::PT_FEAT_AMDV1_FORCE_COHERENCE);
    // SAFETY: `dom` is a fresh, exclusively owned allocation. The lock gets
    // its class before the table can use it; the driver ops and the domain
    // ops are static.
    let ret = unsafe {
        bindings::__spin_lock_init(
            (*dom).top_lock.get(),
            c"mock_iommu_top".as_char_ptr(),
            kernel::static_lock_class!().as_ptr(),
        );
        (*dom).pt.iommu.nid = bindings::NUMA_NO_NODE;
        (*dom).pt.iommu.driver_ops = &PT_DRIVER_OPS.0;
        (*dom).pt.iommu.domain.ops = &PAGING_OPS.0;
        bindings::pt_iommu_amdv1_init(&raw mut (*dom).pt, &cfg, bindings::GFP_KERNEL)
    };
    if ret != 0 {
        // SAFETY: from `into_raw` above; the library holds nothing after a
        // failed init.
        drop(unsafe { KBox::from_raw(dom) });
        return Err(Error::from_errno(ret));
    }
    // SAFETY: a paging domain exists only through a device this driver
    // probed, which holds a module reference (`iommu_init_device()`), so
    // the module is live. Dropped in `free_paging`.
    unsafe { bindings::__module_get(crate::THIS_MODULE) };
    // SAFETY: `dom` is valid; `pt.iommu.domain` is its first field.
    Ok(unsafe { &raw mut (*dom).pt.iommu.domain })
}

/// The `Paging` a domain of [`PAGING_OPS`] is embedded in.
///
/// # Safety
///
/// `domain` was returned by [`new_paging`] and not yet freed.
unsafe fn paging_of(domain: *mut bindings::iommu_domain) -> *mut Paging {
    // SAFETY: see the function's safety section.
    unsafe { kernel::container_of!(domain, Paging, pt.iommu.domain) }
}

/// # Safety
///
/// Called by the generic page table library as `pt_iommu_driver_ops.get_top_lock`.
unsafe extern "C" fn get_top_lock(table: *mut bindings::pt_iommu) -> *mut bindings::spinlock_t {
    // SAFETY: the library calls this only for tables this file set up,
    // which are the `pt.iommu` of a live `Paging`.
    unsafe {
        (*kernel::container_of!(table, Paging, pt.iommu))
            .top_lock
            .get()
    }
}

/// Nothing caches the top of the table: the DMA engine reads it (and walks
/// the table) for every page it translates.
///
/// # Safety
///
/// Called by the generic page table library as `pt_iommu_driver_ops.change_top`.
unsafe extern "C" fn change_top(_table: *mut bindings::pt_iommu, _top: u64, _level: u32) {}

extern "C" {
    /// Frees the table pages an unmap collected. Exported by the IOMMU core
    /// but declared only in its private drivers/iommu/iommu-pages.h.
    fn iommu_put_pages_list(list: *mut bindings::iommu_pages_list);
}

/// After an unmap: once no copy of the DMA engine translates through the
/// domain any more (it holds the fence per chunk), nothing uses the old
/// translations, and the table pages the unmap removed can be freed.
///
/// # Safety
///
/// Called by the IOMMU core as `iommu_domain_ops.iotlb_sync` of a paging domain.
unsafe extern "C" fn iotlb_sync(
    _domain: *mut bindings::iommu_domain,
    gather: *mut bindings::iommu_iotlb_gather,
) {
    super::quiesce();
    // SAFETY: the core passes the gather of the unmap that just finished.
    unsafe { iommu_put_pages_list(&raw mut (*gather).freelist) };
}

/// # Safety
///
/// Called by the IOMMU core as `iommu_domain_ops.flush_iotlb_all`.
unsafe extern "C" fn flush_iotlb_all(_domain: *mut bindings::iommu_domain) {
    super::quiesce();
}

/// # Safety
///
/// Called by the IOMMU core as `iommu_domain_ops.free` of a paging domain, once.
unsafe extern "C" fn free_paging(domain: *mut bindings::iommu_domain) {
    // SAFETY: the core frees a paging domain once, when nothing is attached
    // and nothing maps through it; it came from `new_paging`.
    unsafe {
        let dom = paging_of(domain);
        bindings::pt_iommu_deinit(&raw mut (*dom).pt.iommu);
        drop(KBox::from_raw(dom));
        // Taken in `new_paging`. Only `return` runs in the module after this.
        bindings::module_put(crate::THIS_MODULE);
    }
}

/// The top of a paging domain's table, as the DMA engine walks it: the
/// physical address of the top table and its level (0: a table of 4 KiB
/// pages).
///
/// # Safety
///
/// `domain` is a live paging domain of this IOMMU (the caller holds the
/// fence of a function attached to it).
pub(super) unsafe fn top(domain: *mut bindings::iommu_domain) -> (u64, u32) {
    // SAFETY: see the function's safety section. The library updates the
    // top (a table growing, DYNAMIC_TOP) with WRITE_ONCE, after the new top
    // table is filled in; the old top stays valid as its child.
    let top = unsafe {
        core::ptr::read_volatile(&raw const (*paging_of(domain)).pt.amdpt.common.top_of_table)
    };
    let mask = bindings::PT_TOP_LEVEL_MASK as usize;
    // SAFETY: reads a variable set once at boot. The table is a page of
    // the page allocator (iommu-pages), in the direct map, so its physical
    // address is its offset in that map.
    let direct_map = unsafe { bindings::page_offset_base };
    (
        (top & !mask).wrapping_sub(direct_map) as u64,
        (top & mask) as u32,
    )
}
