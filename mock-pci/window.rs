// SPDX-License-Identifier: GPL-2.0

//! The host-bridge window: a physical range inside the boot-time `memmap=`
//! reservation, claimed in `/proc/iomem` and mapped for the module's own
//! access to BAR memory.
//!
//! Why a reservation: vfio-pci maps BARs with `pci_request_selected_regions()`
//! and `pci_iomap()`, which refuse System RAM. A `memmap=SIZE$ADDR` range is
//! E820-reserved: not in the direct map, published as a non-busy "Reserved"
//! resource, and still real memory. The window nests inside it, the BARs
//! nest inside the window. It is mapped uncached (`ioremap`), the memory
//! type vfio-pci uses for its own mappings, so PAT sees no conflict.

use kernel::{bindings, ffi::c_void, prelude::*};

/// Name of the window in `/proc/iomem`.
const NAME: &CStr = c"mock-pci window";

/// The claimed and mapped window. Released when dropped.
pub(crate) struct Window {
    res: *mut bindings::resource,
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

/// Records how much of the range the first "Reserved" resource covers, if
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

/// How many bytes from `base` one "Reserved" (E820) resource covers.
fn reserved_from(base: u64, size: u64) -> u64 {
    let mut cov = Coverage { base, covered: 0 };
    // SAFETY: the callback matches the C signature and reads `arg` as the
    // `Coverage` we pass, which outlives the walk.
    unsafe {
        bindings::walk_iomem_res_desc(
            bindings::IORES_DESC_RESERVED as usize,
            bindings::IORESOURCE_MEM as usize,
            base,
            base + size - 1,
            (&raw mut cov).cast(),
            Some(covered_from_base),
        );
    }
    cov.covered
}

impl Window {
    /// Checks that `[base, base + size)` lies inside one `memmap=`
    /// reservation, claims it in `/proc/iomem` and maps it.
    pub(crate) fn claim(base: u64, size: u64) -> Result<Self> {
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
        let covered = reserved_from(base, size);
        if covered < size {
            pr_err!(
                "window {:#x}-{:#x} is not inside one memmap= reservation ({:#x} bytes of it are): boot with memmap={}M${:#x} or set window_base/window_size\n",
                base,
                end,
                covered,
                size >> 20,
                base
            );
            return Err(ENXIO);
        }
        // SAFETY: `iomem_resource` is the root of the I/O memory tree;
        // `__request_region()` takes the resource lock and nests the new
        // resource inside the non-busy "Reserved" one.
        let res = unsafe {
            bindings::__request_region(
                &raw mut bindings::iomem_resource,
                base,
                size,
                NAME.as_char_ptr(),
                0,
            )
        };
        if res.is_null() {
            pr_err!(
                "window {:#x}-{:#x} is busy: is another mock_pci instance or driver using it?\n",
                base,
                end
            );
            return Err(EBUSY);
        }
        // The window is a bridge aperture, not a driver's claim: BARs must
        // nest inside it. Nothing else can see the new resource's flags
        // change in a way that matters: only its children consult them.
        // SAFETY: `res` is the resource just allocated for us.
        unsafe { (*res).flags &= !(bindings::IORESOURCE_BUSY as usize) };
        // SAFETY: the range is reserved memory outside the direct map.
        let virt = unsafe { bindings::ioremap(base, size as usize) };
        let window = Window {
            res,
            virt,
            base,
            size,
        };
        if virt.is_null() {
            pr_err!("window {:#x}-{:#x}: ioremap failed\n", base, end);
            return Err(ENOMEM);
        }
        Ok(window)
    }

    /// The window as a resource, to hand to the host bridge.
    pub(crate) fn resource(&self) -> *mut bindings::resource {
        self.res
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
            cond_resched();
        }
        Ok(())
    }
}

/// Bytes zeroed between two scheduling points.
const ZERO_CHUNK: usize = 1 << 20;

/// `cond_resched()`: as in C, nothing under full preemption
/// (`CONFIG_PREEMPTION` without `CONFIG_PREEMPT_DYNAMIC`).
fn cond_resched() {
    #[cfg(any(not(CONFIG_PREEMPTION), CONFIG_PREEMPT_DYNAMIC))]
    // SAFETY: process context, no spinlock held (see `Window::zero`).
    unsafe {
        bindings::__cond_resched();
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        if !self.virt.is_null() {
            // SAFETY: mapped in `claim`.
            unsafe { bindings::iounmap(self.virt) };
        }
        // SAFETY: `res` came from `__request_region()`; every child (BAR)
        // is gone once the bus is removed. Marking it busy again makes
        // `__release_region()` find and free it rather than descend into it.
        unsafe {
            (*self.res).flags |= bindings::IORESOURCE_BUSY as usize;
            bindings::__release_region(&raw mut bindings::iomem_resource, self.base, self.size);
        }
    }
}
