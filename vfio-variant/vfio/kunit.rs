// SPDX-License-Identifier: GPL-2.0

//! KUnit support (built with `CONFIG_KUNIT` only): finding a bound device,
//! opening it as userspace does, a test thread's user mappings
//! (`kunit_vm_mmap`, as guards that unmap when dropped), PTE presence and
//! vma lookups, the fork page-table copy done by hand, and fault injection
//! into the fallible steps.
//!
//! A test opens the device through the kernel's own interfaces, the cdev
//! path of userspace: it opens `vfio/devices/<name>` and `iommu` in
//! devtmpfs and binds the two with `VFIO_DEVICE_BIND_IOMMUFD` (the iommufd
//! installed in the test thread's file table) through the device file's
//! `unlocked_ioctl`; config writes go through the file's
//! `write`, mappings through `kunit_vm_mmap()` of the file. While the test
//! has the device bound, userspace cannot open it (the cdev path refuses a
//! second bind, the group path is blocked). Closing releases the file and
//! waits for the release ([`Opened`]'s drop).
//!
//! A vma left mapped after the test closed the device would keep the
//! device file, and so the device, open. Hence the [`Mapping`] guards.

use super::{memory::MemoryWrite, pfnmap::lookup_pfn, CoreDevice, Device, Driver, VmFault, Vmas};
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

/// The device opened for a test through its character device (see the
/// module doc). Closing happens on drop.
pub(crate) struct Opened<'a> {
    dev: &'a CoreDevice,
    /// The device file; `None` only while dropping.
    file: Option<ARef<File>>,
    /// The iommufd's file descriptor, in the test thread's file table.
    iommufd: c_int,
}

/// `VFIO_DEVICE_BIND_IOMMUFD`.
const BIND_IOMMUFD: u32 = kernel::ioctl::_IO(bindings::VFIO_TYPE as u32, bindings::VFIO_BASE + 18);

/// devtmpfs, mounted for the kernel alone (in no mount namespace): a test
/// thread's paths resolve in the initial namespace, where `/dev` need not
/// be devtmpfs (virtme-ng guests mount it in their own), so device nodes
/// are opened relative to this mount instead.
///
/// # Invariants
///
/// `self.0` is a mount made by `vfs_kern_mount()`, put when dropped.
struct DevMount(*mut bindings::vfsmount);

impl DevMount {
    /// Mounts devtmpfs (every mount shares its one superblock).
    fn new() -> Result<Self> {
        // SAFETY: a C string; returns a reference on the type, or NULL.
        let ty = unsafe { bindings::get_fs_type(c"devtmpfs".as_char_ptr()) };
        if ty.is_null() {
            return Err(ENODEV);
        }
        // SAFETY: `ty` is a registered file system type we hold; no data.
        let mnt = unsafe {
            bindings::vfs_kern_mount(ty, 0, c"devtmpfs".as_char_ptr(), core::ptr::null_mut())
        };
        // SAFETY: drops the module reference `get_fs_type()` took (what
        // the unexported `put_filesystem()` does).
        unsafe { bindings::module_put((*ty).owner) };
        // INVARIANT: a mount made by `vfs_kern_mount()`.
        Ok(Self(from_err_ptr(mnt)?))
    }

    /// Opens the device node at `path` (relative to the devtmpfs root)
    /// read/write.
    fn open(&self, path: &CStr) -> Result<ARef<File>> {
        let root = bindings::path {
            mnt: self.0,
            // SAFETY: the mount is valid (type invariant).
            dentry: unsafe { (*self.0).mnt_root },
        };
        // SAFETY: `root` is a valid path held by our mount; `path` is a C
        // string; returns a new reference or an error pointer.
        let f = from_err_ptr(unsafe {
            bindings::file_open_root(&root, path.as_char_ptr(), bindings::O_RDWR as c_int, 0)
        })
        .inspect_err(|e| pr_info!("KUnit: cannot open /dev/{}: {:?}\n", path, e))?;
        // SAFETY: a new reference we now own.
        Ok(unsafe { ARef::from_raw(NonNull::from(File::from_raw_file(f))) })
    }
}

impl Drop for DevMount {
    fn drop(&mut self) {
        // SAFETY: ours (type invariant); open files hold their own reference.
        unsafe { bindings::mntput(self.0) };
    }
}

/// Runs the files released by kernel threads (a test thread's `fput()`s are
/// deferred to a work item), so that a release has happened on return.
fn flush_releases() {
    // SAFETY: always safe to call from process context.
    unsafe { bindings::flush_delayed_fput() };
}

impl CoreDevice {
    /// Opens the device through `/dev/vfio/devices/<name>` and binds it to
    /// a new iommufd, as userspace does; the returned guard closes it.
    /// Fails if userspace has the device open.
    pub(crate) fn test_open(&self) -> Result<Opened<'_>> {
        // SAFETY: the `struct device` of a registered vfio device is valid;
        // it is the device of its character device.
        let cdev: &kernel::device::Device =
            unsafe { kernel::device::Device::from_raw(&raw mut (*self.vfio()).device) };
        let mut path = [0u8; 80];
        let name = cdev.name().to_bytes();
        let prefix = b"vfio/devices/";
        let len = prefix.len() + name.len();
        if len >= path.len() {
            return Err(ENAMETOOLONG);
        }
        path[..prefix.len()].copy_from_slice(prefix);
        path[prefix.len()..len].copy_from_slice(name);
        let path = CStr::from_bytes_with_nul(&path[..=len]).map_err(|_| EINVAL)?;
        let dev = DevMount::new()?;
        let iommu = dev.open(c"iommu")?;
        // SAFETY: always safe to call; the file table is the test thread's.
        let fd = unsafe { bindings::get_unused_fd_flags(bindings::O_CLOEXEC) };
        if fd < 0 {
            return Err(Error::from_errno(fd));
        }
        // SAFETY: `fd` is reserved above; `fd_install` consumes our reference.
        unsafe { bindings::fd_install(fd as c_uint, ARef::into_raw(iommu).as_ptr().cast()) };
        let mut opened = Opened {
            dev: self,
            file: None,
            iommufd: fd,
        };
        let file = dev.open(path)?;
        drop(dev);
        let arg = UserPage::new()?;
        // struct vfio_device_bind_iommufd without the token: argsz, flags,
        // iommufd, out_devid.
        let mut bind = [0u8; 16];
        bind[0..4].copy_from_slice(&16u32.to_ne_bytes());
        bind[8..12].copy_from_slice(&fd.to_ne_bytes());
        UserSlice::new(UserPtr::from_addr(arg.0.addr), bind.len())
            .writer()
            .write_slice(&bind)?;
        // SAFETY: a VFIO device file has `unlocked_ioctl`; the argument is a
        // user address of the test's mm holding the struct.
        let ret = unsafe {
            match (*(*file.as_ptr()).f_op).unlocked_ioctl {
                Some(ioctl) => ioctl(file.as_ptr(), BIND_IOMMUFD, arg.0.addr),
                None => EINVAL.to_errno() as c_long,
            }
        };
        opened.file = Some(file);
        if ret < 0 {
            return Err(Error::from_errno(ret as c_int));
        }
        Ok(opened)
    }
}

/// One page of user memory for an ioctl argument, unmapped when dropped
/// (mapped without a fault injection step).
struct UserPage(Mapping);

impl UserPage {
    fn new() -> Result<Self> {
        anon(PAGE_SIZE).map(Self)
    }
}

impl Opened<'_> {
    /// The largest BAR the core lets us mmap: (index, length in bytes).
    pub(crate) fn mappable_bar(&self) -> Option<(usize, usize)> {
        let p = self.dev.as_ptr();
        let mut best = None;
        for i in 0..bindings::PCI_STD_NUM_BARS as usize {
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
        let file = self.file.as_ref().ok_or(EBADF)?;
        let mut pos =
            ((super::CONFIG_REGION_INDEX << super::OFFSET_SHIFT) + offset) as bindings::loff_t;
        // SAFETY: the file is an open VFIO device file; `scratch` is a user
        // address of the current (test) mm holding `data.len()` bytes.
        let ret = unsafe {
            match (*(*file.as_ptr()).f_op).write {
                Some(w) => w(
                    file.as_ptr(),
                    scratch as *const c_char,
                    data.len(),
                    &mut pos,
                ),
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
        // The device file first: its release unbinds and closes the device.
        drop(self.file.take());
        flush_releases();
        // SAFETY: installed by `test_open()`, ours to close.
        unsafe { bindings::close_fd(self.iommufd as c_uint) };
        flush_releases();
    }
}

/// Sets or clears COMMAND.MEM in the virtual config space of an open
/// device, as the core's config write does with `memory_lock` held for
/// write (`_mem`), but without the zap and the hardware write that go with
/// it: for a test that plays a core transition in progress.
pub(crate) fn set_vconfig_memory(dev: &CoreDevice, _mem: &MemoryWrite<'_>, on: bool) {
    const COMMAND: usize = bindings::PCI_COMMAND as usize;
    const MEMORY: u8 = bindings::PCI_COMMAND_MEMORY as u8;
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

/// The device file of an opened device, for mapping it.
pub(crate) fn device_file(dev: &Opened<'_>) -> Result<ARef<File>> {
    step()?;
    dev.file.clone().ok_or(EBADF)
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
    anon(len)
}

/// [`map_anon`] without the fault injection step.
fn anon(len: usize) -> Result<Mapping> {
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
