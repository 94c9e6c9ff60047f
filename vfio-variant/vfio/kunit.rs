// SPDX-License-Identifier: GPL-2.0

//! KUnit support (built with `CONFIG_KUNIT` only): finding a bound device,
//! a test thread's user mappings (`kunit_vm_mmap`, as guards that unmap
//! when dropped), a stand-in for a VFIO device file, PTE presence and vma
//! lookups, the fork page-table copy done by hand, and fault injection into
//! the fallible steps.
//!
//! The stand-in file does not hold the device open: a vma of it left
//! mapped after the test closed the device would fault into a closed
//! device. Hence the [`Mapping`] guards.
//!
//! The device-file stand-in is what `vfio_device_fops` gives userspace in
//! the ways that matter here: `f_mapping` is the device inode's
//! address_space (as group.c and device_cdev.c set it) and `->mmap` goes to
//! the device's `vfio_device_ops.mmap`. The device is opened the way the
//! vfio core's first open does it, with the device set lock held for the
//! whole test so that userspace cannot open it meanwhile.

use super::{lookup_pfn, CoreDevice, Device, Driver, MemoryWrite, VmFault, Vmas};
use core::ptr::NonNull;
use kernel::{
    bindings,
    error::from_err_ptr,
    fs::File,
    mm::virt::VmaRef,
    page::PAGE_SIZE,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
    },
    uaccess::{UserPtr, UserSlice},
    ThisModule,
};

// uAPI values (asm-generic/mman-common.h), not in the bindings.
const PROT_RW: c_ulong = 0x1 | 0x2;
const MAP_SHARED: c_ulong = 0x01;
const MAP_PRIVATE: c_ulong = 0x02;
const MAP_ANONYMOUS: c_ulong = 0x20;

/// The running KUnit test, or null outside a test.
fn current_test() -> *mut bindings::kunit {
    // SAFETY: always safe to call.
    unsafe { bindings::kunit_get_current_test() }
}

/// Marks the running test skipped with `reason` (what `kunit_mark_skipped`
/// does); the test should return right after.
pub(crate) fn skip(reason: &CStr) {
    let t = current_test();
    if t.is_null() {
        return;
    }
    let bytes = reason.to_bytes();
    // SAFETY: `t` is the running test; we write its status and comment as
    // the C macro does, NUL terminated within the 256-byte buffer.
    unsafe {
        (*t).status = bindings::kunit_status_KUNIT_SKIPPED;
        let n = bytes.len().min((*t).status_comment.len() - 1);
        for (i, b) in bytes[..n].iter().enumerate() {
            (*t).status_comment[i] = *b as c_char;
        }
        (*t).status_comment[n] = 0;
    }
}

/// A reference on a module (`try_module_get()`), put when dropped.
struct ModuleRef(&'static ThisModule);

impl ModuleRef {
    /// `None` once the module is being unloaded.
    fn get(module: &'static ThisModule) -> Option<Self> {
        // SAFETY: the module is loaded while its code runs.
        unsafe { bindings::try_module_get(module.as_ptr()) }.then_some(Self(module))
    }
}

impl Drop for ModuleRef {
    fn drop(&mut self) {
        // SAFETY: taken in `get()`.
        unsafe { bindings::module_put(self.0.as_ptr()) };
    }
}

/// References held on `module` (`module_refcount()`): while there is one,
/// `rmmod` fails instead of unloading it.
pub(crate) fn module_refs(module: &'static ThisModule) -> i32 {
    // SAFETY: the module is loaded while its code runs.
    unsafe { bindings::module_refcount(module.as_ptr()) }
}

/// `driver_for_each_device()` callback: takes a registration reference on
/// the first device of the driver in `data` (a `*mut FindBound`) that is
/// still bound to it, and stops.
///
/// # Safety
///
/// `dev` is a device on the driver's list; `data` is a `FindBound`.
unsafe extern "C" fn find_bound(dev: *mut bindings::device, data: *mut c_void) -> c_int {
    let find = data.cast::<FindBound>();
    // SAFETY: `dev` is valid during the callback; its lock serialises us
    // with probe and remove, which set and clear drvdata and the binding.
    unsafe { bindings::mutex_lock(&raw mut (*dev).mutex) };
    // SAFETY: under the device lock: bound to our driver means drvdata is
    // the core device set by probe, registered until remove, which cannot
    // start meanwhile; a registration reference keeps it registered (and
    // alive) after we unlock, until put.
    let found = unsafe {
        if (*dev).driver == (*find).driver {
            let core = bindings::dev_get_drvdata(dev).cast::<bindings::vfio_pci_core_device>();
            if bindings::vfio_device_try_get_registration(&raw mut (*core).vdev) {
                (*find).core = core;
            }
        }
        !(*find).core.is_null()
    };
    // SAFETY: taken above.
    unsafe { bindings::mutex_unlock(&raw mut (*dev).mutex) };
    c_int::from(found)
}

/// What [`find_bound`] looks for and found.
struct FindBound {
    driver: *mut bindings::device_driver,
    core: *mut bindings::vfio_pci_core_device,
}

/// Runs `f` on the first device bound to `T`'s PCI driver (registered by
/// `module` with a [`super::Registration<T>`]), holding a reference on `module` and a registration
/// reference on the device for the whole call (so that neither rmmod nor
/// an unbind can remove it meanwhile: they wait). `None` if no device is
/// bound or the module is being unloaded.
///
/// The KUnit suites call this, and not only at load: a suite can be run
/// again through KUnit's debugfs `run` file, which holds no reference on
/// the module, so `rmmod` may run the module's exit at any time. While the
/// module reference is held rmmod fails (EWOULDBLOCK, "in use") unless
/// forced, and once rmmod is past that check, `try_module_get()` fails.
pub(crate) fn with_bound_device<T: Driver, R>(
    module: &'static ThisModule,
    f: impl FnOnce(&Device<T::Data>) -> R,
) -> Option<R> {
    let _module = ModuleRef::get(module)?;
    // SAFETY: `NAME` is a C string; `pci_bus_type` is a static of the PCI
    // core.
    let driver =
        unsafe { bindings::driver_find(T::NAME.as_char_ptr(), &raw const bindings::pci_bus_type) };
    // SAFETY: a driver found on the bus is registered, and stays so while
    // its module is loaded. Driver names are unique on a bus, so one of
    // `module`'s named `T::NAME` is the `pci_driver` of a `Registration<T>`.
    if driver.is_null() || unsafe { (*driver).owner } != module.as_ptr() {
        return None;
    }
    let mut find = FindBound {
        driver,
        core: core::ptr::null_mut(),
    };
    // SAFETY: `driver` is registered while `module` is loaded (held above);
    // `find_bound` gets `find` back as its data. Its result is what
    // `find_bound` last returned, which `find` holds too.
    let _ = unsafe {
        bindings::driver_for_each_device(
            driver,
            core::ptr::null_mut(),
            (&raw mut find).cast(),
            Some(find_bound),
        )
    };
    if find.core.is_null() {
        return None;
    }
    // SAFETY: bound to `T`'s driver, so probed by it as a `Device<T::Data>`,
    // kept registered by the reference `find_bound` took.
    let r = f(unsafe { Device::<T::Data>::from_core(find.core) });
    // SAFETY: taken by `find_bound`.
    unsafe { bindings::vfio_device_put_registration(&raw mut (*find.core).vdev) };
    Some(r)
}

/// Fault injection: the fallible step that fails next (1: the next one,
/// 0: none). Only the KUnit suites set it; they run one at a time.
static FAIL_AT: Atomic<u32> = Atomic::new(0);

/// Makes the `n`-th fallible step from now fail with `EIO` (0: none).
/// The steps are opening a device file, mapping and config writes: each
/// `?` of a scenario after the device is open.
pub(crate) fn fail_at(n: u32) {
    FAIL_AT.store(n, Relaxed);
}

/// One fallible step: fails if the countdown of [`fail_at`] reaches it.
fn step() -> Result {
    match FAIL_AT.load(Relaxed) {
        0 => Ok(()),
        1 => {
            FAIL_AT.store(0, Relaxed);
            Err(EIO)
        }
        n => {
            FAIL_AT.store(n - 1, Relaxed);
            Ok(())
        }
    }
}

/// The device opened for a test. Closing happens on drop.
pub(crate) struct Opened<'a> {
    dev: &'a CoreDevice,
}

impl CoreDevice {
    /// Opens the device like vfio's first open, holding the device set lock
    /// until the returned guard drops. `EBUSY` if userspace has it open.
    pub(crate) fn test_open(&self) -> Result<Opened<'_>> {
        let v = self.vfio();
        // SAFETY: `dev_set` is assigned at registration and outlives the
        // device; the lock serialises open/close as in vfio_main.c.
        unsafe {
            bindings::mutex_lock(&raw mut (*(*v).dev_set).lock);
            if (*v).open_count != 0 {
                bindings::mutex_unlock(&raw mut (*(*v).dev_set).lock);
                return Err(EBUSY);
            }
            (*v).open_count = 1;
            let ret = match (*(*v).ops).open_device {
                Some(open) => open(v),
                None => 0,
            };
            if ret != 0 {
                (*v).open_count = 0;
                bindings::mutex_unlock(&raw mut (*(*v).dev_set).lock);
                return Err(Error::from_errno(ret));
            }
        }
        Ok(Opened { dev: self })
    }
}

impl Opened<'_> {
    /// The largest BAR the core lets us mmap: (index, length in bytes).
    pub(crate) fn mappable_bar(&self) -> Option<(usize, usize)> {
        let p = self.dev.as_ptr();
        let mut best = None;
        for i in 0..6usize {
            // SAFETY: the device is enabled; `bar_mmap_supported` was filled by
            // `vfio_pci_core_finish_enable()`; resources are fixed while bound.
            let (ok, len) = unsafe {
                let r = &(*(*p).pdev).resource[i];
                let len = if r.start == 0 && r.end == 0 {
                    0
                } else {
                    r.end - r.start + 1
                };
                ((*p).bar_mmap_supported[i], len as usize)
            };
            if ok && len >= PAGE_SIZE && best.is_none_or(|(_, l)| len > l) {
                best = Some((i, len));
            }
        }
        best
    }

    /// Writes `data` to config space at `offset` through the device's
    /// `vfio_device_ops.write` (this driver's wrapper), from user memory at
    /// `scratch`.
    pub(crate) fn config_write(&self, scratch: usize, offset: u64, data: &[u8]) -> Result {
        step()?;
        UserSlice::new(UserPtr::from_addr(scratch), data.len())
            .writer()
            .write_slice(data)?;
        let v = self.dev.vfio();
        let mut pos = ((u64::from(bindings::VFIO_PCI_CONFIG_REGION_INDEX) << super::OFFSET_SHIFT)
            + offset) as bindings::loff_t;
        // SAFETY: the device is open; `scratch` is a user address of the
        // current (test) mm holding `data.len()` bytes.
        let ret = unsafe {
            match (*(*v).ops).write {
                Some(w) => w(v, scratch as *const c_char, data.len(), &mut pos),
                None => return Err(EINVAL),
            }
        };
        if ret < 0 {
            return Err(Error::from_errno(ret as i32));
        }
        Ok(())
    }
}

impl Drop for Opened<'_> {
    fn drop(&mut self) {
        let v = self.dev.vfio();
        // SAFETY: opened in `test_open()`, which left the set lock held.
        unsafe {
            if let Some(close) = (*(*v).ops).close_device {
                close(v);
            }
            (*v).open_count = 0;
            bindings::mutex_unlock(&raw mut (*(*v).dev_set).lock);
        }
    }
}

/// Sets or clears COMMAND.MEM in the virtual config space of an open
/// device, as the core's config write does with `memory_lock` held for
/// write (`_mem`), but without the zap and the hardware write that go with
/// it: for a test that plays a core transition in progress.
pub(crate) fn set_vconfig_memory(dev: &CoreDevice, _mem: &MemoryWrite<'_>, on: bool) {
    const COMMAND: usize = 0x4;
    const MEMORY: u8 = 0x2;
    // SAFETY: `vconfig` is the open device's virtual config space (at least
    // 256 bytes), or NULL once closed; the core reads and writes it with
    // `memory_lock` held, which the caller holds for write.
    unsafe {
        let vconfig = (*dev.as_ptr()).vconfig;
        if vconfig.is_null() {
            return;
        }
        let cmd = vconfig.add(COMMAND);
        if on {
            *cmd |= MEMORY;
        } else {
            *cmd &= !MEMORY;
        }
    }
}

/// `->mmap` of the device-file stand-in: the device's own mmap.
///
/// # Safety
///
/// Only called by the kernel through the ops table it is registered in,
/// with the arguments that callback's C contract guarantees.
unsafe extern "C" fn stand_in_mmap(
    file: *mut bindings::file,
    vma: *mut bindings::vm_area_struct,
) -> c_int {
    // SAFETY: `private_data` is the vfio device (set in `device_file`), open
    // for the duration of the test.
    unsafe {
        let v = (*file).private_data.cast::<bindings::vfio_device>();
        match (*(*v).ops).mmap {
            Some(m) => m(v, vma),
            None => EINVAL.to_errno(),
        }
    }
}

/// The stand-in's `file_operations`.
const STAND_IN_FOPS: bindings::file_operations = bindings::file_operations {
    mmap: Some(stand_in_mmap),
    ..pin_init::zeroed()
};

/// A file standing in for a VFIO device file of `dev` (see the module doc).
pub(crate) fn device_file(dev: &Opened<'_>) -> Result<ARef<File>> {
    step()?;
    // SAFETY: the fops are a promoted constant; `private_data` is only used
    // by `stand_in_mmap` while the device is open (the test unmaps first).
    let f = unsafe {
        bindings::anon_inode_getfile(
            c"[vfio-variant-kunit]".as_char_ptr(),
            &STAND_IN_FOPS,
            dev.dev.vfio().cast(),
            bindings::O_RDWR as c_int,
        )
    };
    let f = from_err_ptr(f)?;
    // SAFETY: `anon_inode_getfile` returned a new reference we now own.
    let f = unsafe { ARef::from_raw(NonNull::from(File::from_raw_file(f))) };
    // SAFETY: the file is ours and not yet used; this is what vfio's open
    // paths do (`filep->f_mapping = device->inode->i_mapping`).
    unsafe { (*f.as_ptr()).f_mapping = dev.dev.mapping() };
    Ok(f)
}

fn check_addr(addr: c_ulong) -> Result<usize> {
    if addr >= (-4095isize) as c_ulong {
        return Err(Error::from_errno(addr as isize as i32));
    }
    Ok(addr)
}

/// A mapping in the test's mm, unmapped when dropped. Scenarios hold their
/// mappings in these, created after the device was opened, so every way
/// out of a scenario (early returns through `?` included) unmaps them
/// before the device closes: a device is never closed with a vma of it
/// still mapped.
pub(crate) struct Mapping {
    addr: usize,
    len: usize,
}

impl Mapping {
    /// Start address.
    pub(crate) fn addr(&self) -> usize {
        self.addr
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping our own test mapping (the mm is the test
        // thread's, whose lifetime covers the scenario).
        unsafe { bindings::vm_munmap(self.addr, self.len) };
    }
}

/// Maps `len` bytes of `file` at `offset` shared read/write into the test's
/// mm (`kunit_vm_mmap`), until the returned guard drops.
pub(crate) fn map_file(file: &File, hint: usize, len: usize, offset: u64) -> Result<Mapping> {
    step()?;
    // SAFETY: the test pointer is the running test; the file is valid.
    let addr = check_addr(unsafe {
        bindings::kunit_vm_mmap(
            current_test(),
            file.as_ptr(),
            hint,
            len,
            PROT_RW,
            MAP_SHARED,
            offset as usize,
        )
    })?;
    Ok(Mapping { addr, len })
}

/// Maps `len` bytes of anonymous private memory into the test's mm, until
/// the returned guard drops.
pub(crate) fn map_anon(len: usize) -> Result<Mapping> {
    step()?;
    // SAFETY: as `map_file`, without a file.
    let addr = check_addr(unsafe {
        bindings::kunit_vm_mmap(
            current_test(),
            core::ptr::null_mut(),
            0,
            len,
            PROT_RW,
            MAP_PRIVATE | MAP_ANONYMOUS,
            0,
        )
    })?;
    Ok(Mapping { addr, len })
}

/// Reads 4 bytes at each page of `[addr, addr + len)`; fails with EFAULT
/// when a fault is refused (SIGBUS in userspace).
pub(crate) fn touch(addr: usize, len: usize) -> Result {
    for a in (addr..addr + len).step_by(PAGE_SIZE) {
        let mut b = [0u8; 4];
        UserSlice::new(UserPtr::from_addr(a), 4)
            .reader()
            .read_slice(&mut b)?;
    }
    Ok(())
}

/// Calls `f` on the test mm's vma at `addr`, with the mmap lock held;
/// `None` if there is none.
pub(crate) fn with_vma<R>(addr: usize, f: impl FnOnce(&VmaRef) -> R) -> Option<R> {
    let task = kernel::current!();
    let mm = task.mm()?;
    let lock = mm.mmap_read_lock();
    lock.vma_lookup(addr).map(f)
}

/// How many vmas of the test's mm map the device whose core device is
/// `core` (`vm_private_data`, as `vfio_pci_core_mmap()` sets it), in either
/// mode. Compares pointers only.
pub(crate) fn vmas_of(core: &CoreDevice) -> usize {
    let task = kernel::current!();
    let Some(mm) = task.mm() else {
        return 0;
    };
    let vmas = Vmas::lock(mm);
    let mut n = 0;
    vmas.for_each(|vma| {
        if core.is_mapped_by(vma) {
            n += 1;
        }
    });
    drop(vmas);
    n
}

/// Page table state of `[addr, addr + len)` without faulting:
/// (pages mapped, PMD entries seen).
pub(crate) fn present(addr: usize, len: usize) -> (usize, usize) {
    let task = kernel::current!();
    let Some(mm) = task.mm() else {
        return (0, 0);
    };
    let lock = mm.mmap_read_lock();
    let Some(vma) = lock.vma_lookup(addr) else {
        return (0, 0);
    };
    let (mut pages, mut pmds) = (0, 0);
    let mut a = addr;
    while a < addr + len {
        match lookup_pfn(vma, a) {
            Some(p) if p.size > PAGE_SIZE => {
                pmds += 1;
                pages += p.size / PAGE_SIZE;
                a = (a & !(p.size - 1)) + p.size;
            }
            Some(_) => {
                pages += 1;
                a += PAGE_SIZE;
            }
            None => a += PAGE_SIZE,
        }
    }
    (pages, pmds)
}

/// What `dup_mmap()` does for a child vma, in 7.3's order, with `dst`
/// standing in for the child's vma: `vm_ops->open(dst)`, then copy every
/// PFN entry of `src` into `dst` (`copy_page_range`). The driver never sees
/// a fault for `dst`.
pub(crate) fn fork_copy(src: usize, dst: usize, len: usize) -> Result<usize> {
    let task = kernel::current!();
    let mm = task.mm().ok_or(EINVAL)?;
    let lock = mm.mmap_read_lock();
    let s = lock.vma_lookup(src).ok_or(EINVAL)?;
    let d = lock.vma_lookup(dst).ok_or(EINVAL)?;
    // SAFETY: `d` is a valid vma whose mm is locked; `vm_ops` is set by the
    // driver's mmap and `open` is what dup_mmap() calls on the new vma.
    unsafe {
        let ops = (*d.as_ptr()).vm_ops;
        if let Some(open) = (*ops).open {
            open(d.as_ptr());
        }
    }
    let mut copied = 0;
    for off in (0..len).step_by(PAGE_SIZE) {
        if let Some(p) = lookup_pfn(s, src + off) {
            let pfn = p.pfn;
            // SAFETY: `d` is VM_PFNMAP (set up by the driver's mmap), its
            // mm is read-locked and `dst + off` lies inside it.
            let ret = unsafe { bindings::vmf_insert_pfn(d.as_ptr(), dst + off, pfn) };
            if !VmFault(ret).is_error() {
                copied += 1;
            }
        }
    }
    Ok(copied)
}
