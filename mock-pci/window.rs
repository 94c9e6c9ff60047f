// SPDX-License-Identifier: GPL-2.0

//! The host-bridge window: a physical range inside a boot-time `memmap=`
//! reservation, claimed in `/proc/iomem` and mapped for the module's own
//! access to BAR memory.
//!
//! Why a reservation: vfio-pci maps BARs with `pci_request_selected_regions()`
//! and `pci_iomap()`, which refuse System RAM. A `memmap=SIZE$ADDR` range is
//! E820-reserved: not in the direct map, published as a non-busy "Reserved"
//! resource, and still real memory (`memmap=SIZE!ADDR`, legacy persistent
//! memory, works the same way). The window nests inside it, the BARs
//! nest inside the window. It is mapped uncached (`ioremap`), the memory
//! type vfio-pci uses for its own mappings, so PAT sees no conflict.
//!
//! Firmware reserves ranges too, and they look the same in `/proc/iomem`;
//! the module zeroes BAR memory, so it only takes a range the kernel
//! command line's `memmap=` reserved (see [`crate::memmap`]), unless the
//! `allow_any_reserved` parameter says otherwise.
//!
//! The window is a non-busy resource of its own, inserted under the
//! reservation with `insert_resource()` (which takes the resource lock),
//! as x86 inserts host bridge windows: the bridge windows and BARs the PCI
//! core claims nest inside it.

use crate::memmap::{self, Kind};
use kernel::{bindings, ffi::c_void, prelude::*, types::Opaque};

/// Name of the window in `/proc/iomem`.
const NAME: &CStr = c"mock-pci window";

/// The claimed and mapped window. Released when dropped.
pub(crate) struct Window {
    /// In the resource tree until dropped.
    res: KBox<Opaque<bindings::resource>>,
    virt: *mut c_void,
    base: u64,
    size: u64,
}

// SAFETY: the resource and the mapping are plain kernel objects usable from
// any thread; `Window` only hands out copies of data through `&self`
// methods that use the I/O accessors.
unsafe impl Send for Window {}
// SAFETY: see `Send`; concurrent I/O accesses to the memory are allowed.
unsafe impl Sync for Window {}

/// What `covered_from_base` looks for and finds.
struct Coverage {
    base: u64,
    covered: u64,
}

/// Records how much of the range the first matching resource covers, if
/// it starts at the range's base, and stops the walk.
///
/// # Safety
///
/// Called by `walk_iomem_res_desc()` with `res` a valid copy of a matching
/// resource (clipped to the range) and `arg` the `Coverage` passed to it.
unsafe extern "C" fn covered_from_base(res: *mut bindings::resource, arg: *mut c_void) -> i32 {
    // SAFETY: see the function's safety section.
    let (res, cov) = unsafe { (&*res, &mut *arg.cast::<Coverage>()) };
    if res.start == cov.base {
        cov.covered = res.end - res.start + 1;
    }
    1
}

/// How many bytes from `base` one resource of kind `kind` covers.
fn covered_from(base: u64, size: u64, kind: Kind) -> u64 {
    let mut cov = Coverage { base, covered: 0 };
    // SAFETY: the callback matches the C signature and reads `arg` as the
    // `Coverage` we pass, which outlives the walk.
    unsafe {
        bindings::walk_iomem_res_desc(
            kind.desc(),
            bindings::IORESOURCE_MEM as usize,
            base,
            base + size - 1,
            (&raw mut cov).cast(),
            Some(covered_from_base),
        );
    }
    cov.covered
}

/// Checks that `[base, base + size)` is a `memmap=` reservation (or, with
/// `allow_any_reserved`, any reserved range) and says which kind.
fn check_reserved(base: u64, size: u64, allow_any_reserved: bool) -> Result<Kind> {
    let end = base + size - 1;
    let cmdline = memmap::kernel_cmdline();
    let found = cmdline
        .as_ref()
        .ok()
        .and_then(|line| memmap::find(line, base, size));
    if let Some(r) = found {
        let covered = covered_from(base, size, r.kind);
        if covered < size {
            pr_err!(
                "window {:#x}-{:#x}: the command line reserves {:#x}-{:#x} with memmap=, but only {:#x} bytes of the window are a \"{}\" range in /proc/iomem: keep memmap= inside RAM\n",
                base,
                end,
                r.start,
                r.start.saturating_add(r.size - 1),
                covered,
                r.kind.name()
            );
            return Err(ENXIO);
        }
        return Ok(r.kind);
    }
    let Some(kind) = [Kind::Reserved, Kind::Protected]
        .into_iter()
        .find(|&k| covered_from(base, size, k) >= size)
    else {
        let covered = covered_from(base, size, Kind::Reserved);
        pr_err!(
            "window {:#x}-{:#x} is not inside one memmap= reservation ({:#x} bytes of it are): boot with memmap={}M${:#x} or set window_base/window_size\n",
            base,
            end,
            covered,
            size >> 20,
            base
        );
        return Err(ENXIO);
    };
    if allow_any_reserved {
        pr_notice!(
            "window {:#x}-{:#x}: using a \"{}\" range that no memmap= option reserved, as allow_any_reserved=1 asks: its contents are overwritten\n",
            base,
            end,
            kind.name()
        );
        return Ok(kind);
    }
    match cmdline {
        Ok(_) => pr_err!(
            "window {:#x}-{:#x} is in a \"{}\" range that no memmap= option reserved (firmware's, which loading would overwrite): boot with memmap={}M${:#x}, or load with allow_any_reserved=1 if that memory is known to be unused\n",
            base,
            end,
            kind.name(),
            size >> 20,
            base
        ),
        Err(e) => pr_err!(
            "window {:#x}-{:#x}: cannot read the kernel command line from /proc/cmdline ({}) to check that memmap= reserved it: mount /proc, or load with allow_any_reserved=1 if that memory is known to be unused\n",
            base,
            end,
            e.to_errno()
        ),
    }
    Err(EPERM)
}

/// Inserts `res` right under the reservation of kind `kind`, empty.
///
/// The resource tree's lock is the kernel's own, so the reservation is
/// found by `__request_region()`: it nests a busy "probe" region over the
/// window in the deepest non-busy resource that holds it, which must be the
/// reservation itself (anything else there, another mock_pci window or a
/// bridge window, means the range is taken). `insert_resource()` then puts
/// the window in the reservation around the probe (a resource of the same
/// range becomes the new one's child), and the probe goes: the range is
/// never unclaimed in between. (`insert_resource()` on the root alone would
/// put a window the size of the reservation *around* the reservation.)
fn insert(res: &Opaque<bindings::resource>, kind: Kind) -> Result {
    let (base, end) = {
        // SAFETY: not in the tree yet: ours alone.
        let r = unsafe { &*res.get() };
        (r.start, r.end)
    };
    let size = end - base + 1;
    let root = &raw mut bindings::iomem_resource;
    // SAFETY: `iomem_resource` is the root of the I/O memory tree;
    // `__request_region()` takes the resource lock.
    let probe = unsafe { bindings::__request_region(root, base, size, NAME.as_char_ptr(), 0) };
    if probe.is_null() {
        pr_err!(
            "window {:#x}-{:#x} is busy (part of it is claimed): is another mock_pci instance or driver using it?\n",
            base,
            end
        );
        return Err(EBUSY);
    }
    // SAFETY: `probe` is our busy region; only a resource inserted around
    // it could change its parent, and nothing inserts around a range that
    // nobody else knows of. The reservation, an E820 resource, is never
    // freed and its fields do not change.
    let parent = unsafe { (*probe).parent };
    // SAFETY: as above; `parent` is null or a resource of the tree.
    let in_reservation = !parent.is_null() && unsafe { (*parent).desc } == kind.desc();
    let ret = if in_reservation {
        // SAFETY: `parent` is in the tree; `res` is pinned in its box and
        // stays in the tree until `Window` is dropped.
        unsafe { bindings::insert_resource(parent, res.get()) }
    } else {
        EBUSY.to_errno()
    };
    // SAFETY: the probe region requested above, now in `res` or still in
    // the reservation: `__release_region()` finds it through non-busy
    // resources.
    unsafe { bindings::__release_region(root, base, size) };
    // SAFETY: a read of our own resource's link, as above.
    let empty = ret == 0 && unsafe { (*res.get()).child.is_null() };
    if ret == 0 && !empty {
        // SAFETY: inserted above; puts what it took in back where it was.
        unsafe { bindings::remove_resource(res.get()) };
    }
    if !empty {
        pr_err!(
            "window {:#x}-{:#x} is busy (it is inside another resource in the reservation, or holds one): is another mock_pci instance or driver using it?\n",
            base,
            end
        );
        return Err(EBUSY);
    }
    Ok(())
}

impl Window {
    /// Checks that `[base, base + size)` lies inside one `memmap=`
    /// reservation (or any reserved range, with `allow_any_reserved`),
    /// claims it in `/proc/iomem` and maps it.
    pub(crate) fn claim(base: u64, size: u64, allow_any_reserved: bool) -> Result<Self> {
        let end = base + size - 1;
        // SAFETY: a read-only query of the resource tree.
        let ram = unsafe {
            bindings::region_intersects(
                base,
                size as usize,
                bindings::IORESOURCE_SYSTEM_RAM as usize,
                bindings::IORES_DESC_NONE as usize,
            )
        };
        if ram != bindings::REGION_DISJOINT as i32 {
            pr_err!(
                "window {:#x}-{:#x} overlaps System RAM: boot with memmap={}M${:#x} to reserve it\n",
                base,
                end,
                size >> 20,
                base
            );
            return Err(EBUSY);
        }
        let kind = check_reserved(base, size, allow_any_reserved)?;
        let res = KBox::new(
            Opaque::new(bindings::resource {
                name: NAME.as_char_ptr(),
                start: base,
                end,
                flags: bindings::IORESOURCE_MEM as usize,
                ..Default::default()
            }),
            GFP_KERNEL,
        )?;
        insert(&res, kind)?;
        // From here on, dropping `window` releases the resource.
        let mut window = Window {
            res,
            virt: core::ptr::null_mut(),
            base,
            size,
        };
        // SAFETY: the range is reserved memory outside the direct map.
        window.virt = unsafe { bindings::ioremap(base, size as usize) };
        if window.virt.is_null() {
            pr_err!("window {:#x}-{:#x}: ioremap failed\n", base, end);
            return Err(ENOMEM);
        }
        Ok(window)
    }

    /// The window as a resource, to hand to the host bridge.
    pub(crate) fn resource(&self) -> *mut bindings::resource {
        self.res.get()
    }

    fn checked(&self, phys: u64, len: usize) -> Result<*mut c_void> {
        let off = phys.checked_sub(self.base).ok_or(EINVAL)?;
        if off.checked_add(len as u64).is_none_or(|e| e > self.size) {
            return Err(EINVAL);
        }
        // SAFETY: `off + len` lies inside the mapping.
        Ok(unsafe { self.virt.add(off as usize) })
    }

    /// Copies memory at physical address `phys` into `buf`.
    pub(crate) fn read(&self, phys: u64, buf: &mut [u8]) -> Result {
        let src = self.checked(phys, buf.len())?;
        // SAFETY: `src` is mapped for `buf.len()` bytes.
        unsafe { bindings::memcpy_fromio(buf.as_mut_ptr().cast(), src, buf.len()) };
        Ok(())
    }

    /// Copies `buf` to memory at physical address `phys`.
    pub(crate) fn write(&self, phys: u64, buf: &[u8]) -> Result {
        let dst = self.checked(phys, buf.len())?;
        // SAFETY: `dst` is mapped for `buf.len()` bytes.
        unsafe { bindings::memcpy_toio(dst, buf.as_ptr().cast(), buf.len()) };
        Ok(())
    }

    /// Zeroes `len` bytes at physical address `phys`, a chunk at a time
    /// with a scheduling point between chunks: a 1 GiB BAR is zeroed at
    /// module load and on hot-add (under the PCI rescan lock), and must not
    /// hold a CPU for the whole of it. Process context only.
    pub(crate) fn zero(&self, phys: u64, len: usize) -> Result {
        let dst = self.checked(phys, len)?;
        for off in (0..len).step_by(ZERO_CHUNK) {
            let n = ZERO_CHUNK.min(len - off);
            // SAFETY: `dst + off` is mapped for `n` bytes.
            unsafe { bindings::memset_io(dst.add(off), 0, n) };
            crate::kthread::cond_resched();
        }
        Ok(())
    }
}

/// Bytes zeroed between two scheduling points.
const ZERO_CHUNK: usize = 1 << 20;

impl Drop for Window {
    fn drop(&mut self) {
        if !self.virt.is_null() {
            // SAFETY: mapped in `claim`.
            unsafe { bindings::iounmap(self.virt) };
        }
        // SAFETY: inserted in `claim`. The bridge windows and BARs inside
        // it went with the bus; should anything be left, `remove_resource()`
        // hands it to the reservation rather than leave it pointing at
        // freed memory.
        unsafe {
            if !(*self.res.get()).child.is_null() {
                pr_warn!(
                    "window {:#x}-{:#x}: resources left inside it at unload move to its parent\n",
                    self.base,
                    self.base + self.size - 1
                );
            }
            bindings::remove_resource(self.res.get());
        }
    }
}
