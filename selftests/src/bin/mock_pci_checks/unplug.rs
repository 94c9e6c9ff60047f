// SPDX-License-Identifier: GPL-2.0

//! Hot-remove of a mock device that a user has bound to vfio_variant,
//! mapped and forked. The parent maps BAR0, writes a pattern and forks a
//! child that reads it. Then mock-pci's `del_device SLOT` runs in another
//! process: the driver's remove revokes every mapping (the parent's next
//! read gets SIGBUS) and waits for the users, so `del_device` must still
//! be running; the child's next read gets SIGBUS. Once parent and child
//! have closed the device the removal completes and the device is gone;
//! `new_device SLOT` brings the slot back with zeroed BAR memory, bound to
//! a driver again.

use crate::common::{bar0_view, ensure};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};
use vfio_revoke_selftests::error::{last_os, Result};
use vfio_revoke_selftests::mapping::{Mapping, Place};
use vfio_revoke_selftests::poll::{self, poll_until, wait_child, Pace};
use vfio_revoke_selftests::probe::PAGE;
use vfio_revoke_selftests::sysfs::{self, Unplug};
use vfio_revoke_selftests::vfio::{Device, Path};
use vfio_revoke_selftests::{err, sys};

/// What the parent writes at BAR0 offset 0.
const PATTERN: u32 = u32::from_le_bytes(*b"mock");

/// Child exit codes.
const CHILD_NO_DATA: i32 = 3;
const CHILD_KEPT_ACCESS: i32 = 4;

/// Runs the check on `bdf` (bound to vfio_variant, in a mock-pci slot).
pub fn run(bdf: &str) -> Result<()> {
    let drv = sysfs::driver(bdf);
    ensure(drv.as_deref() == Some(sysfs::VARIANT_DRIVER), || {
        format!("{bdf} is bound to {drv:?}, not vfio_variant")
    })?;
    ensure(sysfs::mock_slot(bdf).is_some(), || {
        format!("{bdf} is not in a mock-pci slot (or mock_pci has no control files)")
    })?;
    let dev = Device::open(bdf, Path::Group)?;
    dev.set_memory(true)?;
    let bar = dev.bar(0)?;
    let map = Mapping::new(dev.fd(), &bar, 0, PAGE, Place::Any)?;
    map.write_u32(0, PATTERN);

    let mut go = [0; 2];
    // SAFETY: `go` has room for the two descriptors.
    if unsafe { sys::pipe2(go.as_mut_ptr(), sys::O_CLOEXEC) } != 0 {
        return Err(last_os("pipe2"));
    }
    // SAFETY: this process is single-threaded; the child only reads the
    // mapping (SIGBUS-safe), reads the pipe and exits.
    let child = unsafe { sys::fork() };
    if child < 0 {
        return Err(last_os("fork"));
    }
    if child == 0 {
        // SAFETY: plain system calls on this process's own descriptors
        // and mapping.
        unsafe {
            sys::prctl(sys::PR_SET_PDEATHSIG, sys::SIGKILL);
            let ok = map.read_u32(0) == Some(PATTERN);
            let mut b = 0u8;
            sys::read(go[0], (&raw mut b).cast(), 1);
            let after = map.read_u32(0);
            sys::_exit(match (ok, after) {
                (false, _) => CHILD_NO_DATA,
                (true, Some(_)) => CHILD_KEPT_ACCESS,
                (true, None) => 0,
            });
        }
    }

    let mut unplug = sysfs::start_unplug(bdf, Unplug::MockDelDevice)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let every = Pace::Every(Duration::from_millis(100));
    if !poll_until(deadline, every, || map.read_u32(0).is_none()) {
        let _ = unplug.kill();
        // SAFETY: the child is ours.
        unsafe { sys::kill(child, sys::SIGKILL) };
        return Err(err!("mappings were not revoked within 20 s of del_device"));
    }
    println!("ok: del_device revoked the parent's mapping (its read got SIGBUS)");
    ensure(matches!(unplug.try_wait(), Ok(None)), || {
        "del_device finished while the device was still open".into()
    })?;
    println!("ok: del_device waits while the device is open");
    // SAFETY: a one-byte write from a live buffer; the child is ours.
    let status = unsafe {
        sys::write(go[1], b"x".as_ptr().cast(), 1);
        let mut status = 0;
        sys::waitpid(child, &mut status, 0);
        status
    };
    if !sys::WIFEXITED(status) {
        return Err(err!(
            "the forked child died of signal {}",
            sys::WTERMSIG(status)
        ));
    }
    match sys::WEXITSTATUS(status) {
        0 => {}
        CHILD_NO_DATA => return Err(err!("the forked child did not read the pattern after fork")),
        CHILD_KEPT_ACCESS => {
            return Err(err!(
                "the forked child read device memory after the unplug revoked it: it kept access (the fork bug)"
            ))
        }
        e => return Err(err!("the forked child exited with {e}")),
    }
    println!("ok: the forked child's next read got SIGBUS");

    drop(map);
    drop(dev);
    let done = match wait_child(&mut unplug, Duration::from_secs(20)) {
        Ok(Some(s)) => s,
        Ok(None) => {
            let _ = unplug.kill();
            return Err(err!(
                "del_device did not finish within 20 s of the last close"
            ));
        }
        Err(e) => return Err(err!("wait for del_device: {e}")),
    };
    ensure(done.success(), || format!("del_device failed ({done})"))?;
    ensure(!sysfs::exists(bdf), || {
        format!("{bdf} is still there after del_device")
    })?;
    println!("ok: del_device completed once the user closed the device");

    sysfs::replug(bdf, Unplug::MockDelDevice)?;
    let mut head = [0xffu8; 8];
    bar0_view(bdf, false)?
        .read_exact_at(&mut head, 0)
        .map_err(|e| err!("read the re-added device's debugfs bar0: {e}"))?;
    ensure(head == [0; 8], || {
        format!("a re-added device does not start with zeroed memory: {head:02x?}")
    })?;
    ensure(
        poll::wait_for(Duration::from_secs(5), || sysfs::driver(bdf).is_some()),
        || format!("{bdf} is not bound to a driver after new_device"),
    )?;
    println!(
        "ok: new_device re-added the slot with zeroed BAR memory, bound to {}",
        sysfs::driver(bdf).unwrap_or_default()
    );
    Ok(())
}
