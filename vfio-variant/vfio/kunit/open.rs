// SPDX-License-Identifier: GPL-2.0

//! Opening a device for a test as userspace does on the cdev path, and the
//! config writes and mappings a test makes through the opened file.

use super::{
    super::{memory::MemoryWrite, CoreDevice},
    step,
    user::{anon, Mapping},
};
use core::ptr::NonNull;
use kernel::{
    bindings,
    error::from_err_ptr,
    fs::File,
    page::PAGE_SIZE,
    prelude::*,
    sync::aref::ARef,
    uaccess::{UserPtr, UserSlice},
};

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
        UserSlice::new(UserPtr::from_addr(arg.0.addr()), bind.len())
            .writer()
            .write_slice(&bind)?;
        // SAFETY: a VFIO device file has `unlocked_ioctl`; the argument is a
        // user address of the test's mm holding the struct.
        let ret = unsafe {
            match (*(*file.as_ptr()).f_op).unlocked_ioctl {
                Some(ioctl) => ioctl(file.as_ptr(), BIND_IOMMUFD, arg.0.addr()),
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
        let mut pos = ((super::super::CONFIG_REGION_INDEX << super::super::OFFSET_SHIFT) + offset)
            as bindings::loff_t;
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
