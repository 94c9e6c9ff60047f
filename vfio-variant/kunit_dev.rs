// SPDX-License-Identifier: GPL-2.0

//! KUnit suites that need a bound device: revocation reaches a vma the
//! driver never saw fault (the fork case), one fault populates a whole vma,
//! and legacy mode keeps the bug it exists to show.
//!
//! Each scenario maps the device twice in the test's mm. The first vma is
//! faulted by touching it; the second gets its page table entries the way a
//! forked child does (`vm_ops->open`, then a copy of the first vma's
//! entries), so the driver never sees a fault for it. Observations are
//! collected first and asserted after everything is unmapped and the
//! device closed, so a failed assertion leaks nothing. Mappings are
//! [`testing::Mapping`] guards, so every way out of a scenario, an early
//! return through `?` included, unmaps them before the device is closed;
//! a test makes each fallible step fail in turn to check that.
//!
//! Without a bound device (mock-pci not loaded, or a device in use) the
//! tests are skipped with the reason. To run them on another RAM-backed
//! device, bind it at load time: `vfio_variant.extra_id=0x1af41110`
//! (QEMU ivshmem-plain).

use crate::{
    counters::Snapshot,
    device::{DevRef, Mode, VariantDevice},
    driver::VariantDriver,
    mapping, region,
    vfio::{
        kunit::{self as testing, Opened},
        pci::{COMMAND as PCI_COMMAND, COMMAND_MEMORY, PM_CTRL as PCI_PM_CTRL},
    },
};
use kernel::{
    prelude::*,
    sync::{
        atomic::{Acquire, Atomic, Relaxed, Release},
        Arc, Completion,
    },
    time::{delay::fsleep, Delta},
    workqueue, ThisModule,
};

/// Length of each test mapping (16 pages: too small for a PMD).
const LEN: usize = 16 * region::PAGE_SIZE;

/// What one scenario observed.
#[derive(Debug, Default)]
pub(crate) struct Obs {
    /// Counter deltas of the first touch of vma 1.
    pub(crate) first_touch: Snapshot,
    /// Pages mapped in vma 1 after its first touch.
    pub(crate) v1_after_touch: usize,
    /// Entries copied into vma 2 by the fork emulation.
    pub(crate) copied: usize,
    /// Counter deltas of the fork emulation (no fault expected).
    pub(crate) fork: Snapshot,
    /// Pages mapped in (vma 1, vma 2) after the driver-initiated revoke.
    pub(crate) after_revoke: (usize, usize),
    /// Counter deltas of touching vma 2 after the revoke.
    pub(crate) v2_refault: Snapshot,
    /// Pages mapped in vma 2 after that touch.
    pub(crate) v2_after_refault: usize,
    /// Pages mapped in (vma 1, vma 2) after COMMAND.MEM was cleared.
    pub(crate) after_mem_off: (usize, usize),
    /// Whether touching vma 2 with memory disabled succeeded.
    pub(crate) v2_readable_mem_off: bool,
    /// Counter deltas of the COMMAND.MEM clear and that touch.
    pub(crate) mem_off: Snapshot,
    /// Whether touching vma 2 after re-enabling memory succeeded.
    pub(crate) v2_readable_mem_on: bool,
    /// Whether `mapping::device_of` took vma 1 for a mapping of this device.
    pub(crate) v1_is_ours: bool,
}

/// This module.
fn this_module() -> &'static ThisModule {
    &<crate::VfioVariant as kernel::ModuleMetadata>::THIS_MODULE
}

/// Runs `f` on the first bound device, holding a reference on this module
/// and keeping the device registered (see
/// [`testing::with_bound_device`]). `None` if no device is bound or the
/// module is being unloaded.
fn with_device<R>(f: impl FnOnce(&VariantDevice) -> R) -> Option<R> {
    testing::with_bound_device::<VariantDriver, R>(this_module(), f)
}

/// Runs `f` with an opened bound device in `mode`; `None` (after marking
/// the test skipped) when there is no usable device.
fn with_open_device<R>(
    mode: Mode,
    f: impl FnOnce(&VariantDevice, &Opened<'_>) -> Result<R>,
) -> Option<Result<R>> {
    let r = with_device(|dev| {
        let opened = match dev.core().test_open() {
            Ok(o) => o,
            Err(e) => {
                pr_info!("KUnit: cannot open the bound device: {:?}\n", e);
                testing::skip(c"the bound device cannot be opened through /dev/vfio/devices (open in userspace?)");
                return None;
            }
        };
        let old = dev.mode();
        dev.set_mode(mode);
        let r = f(dev, &opened);
        dev.set_mode(old);
        drop(opened);
        Some(r)
    });
    match r {
        Some(r) => r,
        None => {
            testing::skip(c"no device bound to vfio_variant (mock-pci 1234:f00d not present)");
            None
        }
    }
}

fn bar_offset(index: usize) -> u64 {
    (index as u64) << region::OFFSET_SHIFT
}

/// Sets or clears COMMAND.MEM through the driver's config write.
fn set_memory(o: &Opened<'_>, scratch: usize, on: bool, cmd: u16) -> Result {
    let v = if on {
        cmd | COMMAND_MEMORY
    } else {
        cmd & !COMMAND_MEMORY
    };
    o.config_write(scratch, PCI_COMMAND, &v.to_le_bytes())
}

/// The two-vma scenario (see the module doc).
pub(crate) fn two_vmas(mode: Mode) -> Option<Result<Obs>> {
    with_open_device(mode, |dev, o| {
        let (bar, _) = o.mappable_bar().ok_or(ENODEV)?;
        let file = testing::device_file(o)?;
        // Unmapped when dropped, on every way out, before the device closes.
        let scratch_map = testing::map_anon(region::PAGE_SIZE)?;
        let scratch = scratch_map.addr();
        // Memory enabled, as a user would do first (I/O and bus master off).
        set_memory(o, scratch, true, 0)?;
        let m1 = testing::map_file(&file, 0, LEN, bar_offset(bar))?;
        let m2 = testing::map_file(&file, 0, LEN, bar_offset(bar))?;
        let (v1, v2) = (m1.addr(), m2.addr());
        let c = dev.counters();
        let mut obs = Obs {
            v1_is_ours: testing::with_vma(v1, |vma| {
                mapping::device_of(vma).is_some_and(|d| core::ptr::eq(d, dev))
            })
            .unwrap_or(false),
            ..Obs::default()
        };

        let s0 = c.snapshot();
        // Legacy inserts one page per fault: touch every page so that the
        // "parent" is fully populated before the "fork", as in userspace.
        let r = match mode {
            Mode::Fixed => testing::touch(v1, region::PAGE_SIZE),
            Mode::Legacy => testing::touch(v1, LEN),
        };
        let s1 = c.snapshot();
        obs.first_touch = s1.since(&s0);
        obs.v1_after_touch = testing::present(v1, LEN).0;

        obs.copied = testing::fork_copy(v1, v2, LEN).unwrap_or(0);
        let s2 = c.snapshot();
        obs.fork = s2.since(&s1);

        dev.revoke();
        obs.after_revoke = (testing::present(v1, LEN).0, testing::present(v2, LEN).0);

        let s3 = c.snapshot();
        let _ = testing::touch(v2, region::PAGE_SIZE);
        obs.v2_refault = c.snapshot().since(&s3);
        obs.v2_after_refault = testing::present(v2, LEN).0;

        // A core revocation: COMMAND.MEM cleared through config space.
        let _ = testing::touch(v1, LEN);
        let _ = testing::touch(v2, LEN);
        let s4 = c.snapshot();
        set_memory(o, scratch, false, 0)?;
        obs.after_mem_off = (testing::present(v1, LEN).0, testing::present(v2, LEN).0);
        obs.v2_readable_mem_off = testing::touch(v2, region::PAGE_SIZE).is_ok();
        obs.mem_off = c.snapshot().since(&s4);
        set_memory(o, scratch, true, 0)?;
        obs.v2_readable_mem_on = testing::touch(v2, LEN).is_ok();

        drop((m1, m2, scratch_map));
        let _ = r;
        Ok(obs)
    })
}

/// A 2 MiB PMD-aligned mapping faulted once: (counter deltas, pages, PMDs).
pub(crate) fn pmd_mapping() -> Option<Result<Option<(Snapshot, usize, usize)>>> {
    with_open_device(Mode::Fixed, |dev, o| {
        let (bar, len) = o.mappable_bar().ok_or(ENODEV)?;
        if len < region::PMD_SIZE || !cfg!(CONFIG_ARCH_SUPPORTS_PMD_PFNMAP) {
            return Ok(None);
        }
        let file = testing::device_file(o)?;
        let scratch = testing::map_anon(region::PAGE_SIZE)?;
        set_memory(o, scratch.addr(), true, 0)?;
        // A hint far from everything else in the test mm, PMD aligned.
        let hint = 0x0020_0000_0000_usize;
        let m = testing::map_file(&file, hint, region::PMD_SIZE, bar_offset(bar))?;
        let v = m.addr();
        let mut out = None;
        if v % region::PMD_SIZE == 0 && dev.core().bar_pfn(bar) % (1 << region::PMD_ORDER) == 0 {
            let s0 = dev.counters().snapshot();
            let _ = testing::touch(v, region::PAGE_SIZE);
            let d = dev.counters().snapshot().since(&s0);
            let (pages, pmds) = testing::present(v, region::PMD_SIZE);
            out = Some((d, pages, pmds));
        }
        drop((m, scratch));
        Ok(out)
    })
}

/// Runs `scenario` once per fallible step, that step made to fail, until
/// a run gets through with no step failing. Returns the runs made and the
/// most vmas of the device any run left in the test's mm (after the run,
/// so after the device was closed); `None` without a usable device.
pub(crate) fn fail_each_step(
    scenario: impl Fn() -> Option<Result>,
) -> Option<Result<(u32, usize)>> {
    let mut worst = 0;
    for n in 1..=64 {
        testing::fail_at(n);
        let r = scenario();
        testing::fail_at(0);
        let r = r?;
        let left = with_device(|dev| testing::vmas_of(dev.core()))?;
        worst = worst.max(left);
        match r {
            Ok(()) => return Some(Ok((n, worst))),
            Err(e) if e == EIO => {}
            Err(e) => return Some(Err(e)),
        }
    }
    Some(Err(E2BIG))
}

/// PMCSR's power states.
const D0: u16 = 0;
const D3HOT: u16 = 3;

/// What [`memory_set_in_d3hot`] observed.
#[derive(Debug)]
pub(crate) struct D3Obs {
    /// COMMAND.MEM in the device once back in D0.
    pub(crate) device_memory: bool,
    /// Whether a touch of the mapping succeeded then.
    pub(crate) readable: bool,
    /// Whether it succeeded once COMMAND.MEM was written again.
    pub(crate) readable_after_set: bool,
}

/// Memory off, D3hot, memory on while in D3hot, D0: the core restores the
/// state it saved on entering D3hot into the device (memory off) and keeps
/// its virtual COMMAND.MEM set. `None` inside when the function has no
/// power management capability.
pub(crate) fn memory_set_in_d3hot() -> Option<Result<Option<D3Obs>>> {
    with_open_device(Mode::Fixed, |dev, o| {
        let pm = dev.core().pm_cap();
        if pm == 0 {
            return Ok(None);
        }
        let pmcsr = u64::from(pm) + PCI_PM_CTRL;
        let (bar, _) = o.mappable_bar().ok_or(ENODEV)?;
        let file = testing::device_file(o)?;
        let scratch_map = testing::map_anon(region::PAGE_SIZE)?;
        let scratch = scratch_map.addr();
        set_memory(o, scratch, false, 0)?;
        o.config_write(scratch, pmcsr, &D3HOT.to_le_bytes())?;
        set_memory(o, scratch, true, 0)?;
        o.config_write(scratch, pmcsr, &D0.to_le_bytes())?;
        let m = testing::map_file(&file, 0, LEN, bar_offset(bar))?;
        let device_memory = dev.core().memory_read().device_memory_enabled();
        let readable = testing::touch(m.addr(), region::PAGE_SIZE).is_ok();
        set_memory(o, scratch, true, 0)?;
        let readable_after_set = testing::touch(m.addr(), LEN).is_ok();
        drop((m, scratch_map));
        Ok(Some(D3Obs {
            device_memory,
            readable,
            readable_after_set,
        }))
    })
}

/// A memory-enable snapshot taken by a work item while the test holds
/// `memory_lock` for write.
#[pin_data]
struct Probe {
    /// The snapshot has been taken.
    done: Atomic<bool>,
    /// What it saw.
    seen: Atomic<bool>,
    #[pin]
    finished: Completion,
}

/// How long the writer waits for a snapshot that does not wait for it.
const WRITER_WAIT_MS: i64 = 500;

/// A memory-enable snapshot of the kind the ops wrappers take
/// ([`crate::vfio::CoreDevice::memory_enabled`]), taken from a work item
/// while the test holds `memory_lock` for write in the middle of a
/// transition the way the core makes one (COMMAND.MEM cleared in the
/// virtual config space, then set again before the lock is released).
/// Returns (whether the snapshot was taken before the writer let go, what
/// it saw).
pub(crate) fn snapshot_during_write() -> Option<Result<(bool, bool)>> {
    with_open_device(Mode::Fixed, |dev, o| {
        let scratch = testing::map_anon(region::PAGE_SIZE)?;
        set_memory(o, scratch.addr(), true, 0)?;
        drop(scratch);
        let probe = Arc::pin_init(
            pin_init!(Probe {
                done: Atomic::new(false),
                seen: Atomic::new(false),
                finished <- Completion::new(),
            }),
            GFP_KERNEL,
        )?;
        let d = DevRef::from(dev);
        let p = probe.clone();
        let mem = dev.core().memory_write();
        testing::set_vconfig_memory(dev.core(), &mem, false);
        let spawned = workqueue::system().try_spawn(GFP_KERNEL, move || {
            let seen = d.core().memory_enabled();
            p.seen.store(seen, Relaxed);
            p.done.store(true, Release);
            p.finished.complete_all();
        });
        let mut waited = 0;
        while spawned.is_ok() && !probe.done.load(Acquire) && waited < WRITER_WAIT_MS {
            fsleep(Delta::from_millis(10));
            waited += 10;
        }
        let early = probe.done.load(Acquire);
        testing::set_vconfig_memory(dev.core(), &mem, true);
        drop(mem);
        spawned?;
        probe.finished.wait_for_completion();
        Ok((early, probe.seen.load(Relaxed)))
    })
}

#[kunit_tests(vfio_variant_revoke)]
mod tests {
    use super::*;

    const PAGES: usize = LEN / region::PAGE_SIZE;

    #[test]
    fn fixed_one_fault_populates_whole_vma() -> Result {
        let Some(obs) = two_vmas(Mode::Fixed) else {
            return Ok(());
        };
        let obs = obs?;
        assert!(obs.v1_is_ours);
        assert_eq!(obs.first_touch.faults, 1);
        assert_eq!(obs.first_touch.ptes, PAGES as u64);
        assert_eq!(obs.v1_after_touch, PAGES);
        Ok(())
    }

    #[test]
    fn fixed_revoke_reaches_never_faulted_vma() -> Result {
        let Some(obs) = two_vmas(Mode::Fixed) else {
            return Ok(());
        };
        let obs = obs?;
        // The fork emulation gave vma 2 every entry without a driver fault.
        assert_eq!(obs.copied, PAGES);
        assert_eq!(obs.fork.faults, 0);
        // Driver-initiated revoke: both vmas lose every entry...
        assert_eq!(obs.after_revoke, (0, 0));
        // ...and vma 2 faults again, once, for the whole vma.
        assert_eq!(obs.v2_refault.faults, 1);
        assert_eq!(obs.v2_after_refault, PAGES);
        // Core revocation (COMMAND.MEM cleared): both zapped, access refused
        // with SIGBUS, counted; access returns after re-enable.
        assert_eq!(obs.after_mem_off, (0, 0));
        assert!(!obs.v2_readable_mem_off);
        assert_eq!(obs.mem_off.sigbus, 1);
        assert_eq!(obs.mem_off.zaps, 1);
        assert!(obs.v2_readable_mem_on);
        Ok(())
    }

    #[test]
    fn legacy_never_faulted_vma_keeps_ptes() -> Result {
        let Some(obs) = two_vmas(Mode::Legacy) else {
            return Ok(());
        };
        let obs = obs?;
        assert!(obs.v1_is_ours);
        // Legacy inserts one page per fault.
        assert_eq!(obs.first_touch.faults, PAGES as u64);
        assert_eq!(obs.v1_after_touch, PAGES);
        assert_eq!(obs.copied, PAGES);
        assert_eq!(obs.fork.faults, 0);
        // Expected legacy behaviour (the bug): the revoke walks only the
        // list of faulted vmas, so vma 2 keeps every entry.
        assert_eq!(obs.after_revoke, (0, PAGES));
        assert_eq!(obs.v2_refault.faults, 0);
        // Same for a core revocation: vma 2 still reads with memory off.
        assert_eq!(obs.after_mem_off, (0, PAGES));
        assert!(obs.v2_readable_mem_off);
        Ok(())
    }

    #[test]
    fn fixed_pmd_fault_inserts_one_pmd() -> Result {
        let Some(r) = pmd_mapping() else {
            return Ok(());
        };
        let Some((d, pages, pmds)) = r? else {
            testing::skip(c"BAR smaller than 2 MiB, or PMD alignment not available");
            return Ok(());
        };
        assert_eq!(d.faults, 1);
        assert_eq!(d.pmds, 1);
        assert_eq!(pmds, 1);
        assert_eq!(pages, 512);
        Ok(())
    }

    #[test]
    fn fault_refused_while_device_memory_off() -> Result {
        let Some(r) = memory_set_in_d3hot() else {
            return Ok(());
        };
        let Some(obs) = r? else {
            testing::skip(c"the bound device has no power management capability");
            return Ok(());
        };
        // The scenario happened: the device's own COMMAND.MEM is clear
        // while the core's virtual one is set...
        assert!(!obs.device_memory);
        // ...and the fault path believed the device, not the core.
        assert!(!obs.readable);
        assert!(obs.readable_after_set);
        Ok(())
    }

    #[test]
    fn device_of_refuses_foreign_vma() -> Result {
        let anon = testing::map_anon(region::PAGE_SIZE)?;
        let ours = testing::with_vma(anon.addr(), |vma| mapping::device_of(vma).is_some());
        // An anonymous vma: not this driver's (its vm_private_data is NULL).
        assert_eq!(ours, Some(false));
        let Some(posing) = with_device(|dev| {
            testing::with_anon_vma_posing_as(anon.addr(), dev.core(), |vma| {
                mapping::device_of(vma).is_some()
            })
        }) else {
            testing::skip(c"no device bound to vfio_variant (mock-pci 1234:f00d not present)");
            return Ok(());
        };
        drop(anon);
        // Not this driver's either, though its vm_private_data is a bound
        // device's core device: only the vma's ops say whose it is.
        assert_eq!(posing, Some(false));
        Ok(())
    }

    #[test]
    fn memory_snapshot_waits_for_writer() -> Result {
        let Some(r) = snapshot_during_write() else {
            return Ok(());
        };
        let (early, seen) = r?;
        // The snapshot waited for the writer, and saw the state it left,
        // not the one it was passing through.
        assert!(!early);
        assert!(seen);
        Ok(())
    }

    #[test]
    fn early_returns_unmap_before_close() -> Result {
        let scenarios: [&dyn Fn() -> Option<Result>; 4] = [
            &|| two_vmas(Mode::Fixed).map(|r| r.map(|_| ())),
            &|| two_vmas(Mode::Legacy).map(|r| r.map(|_| ())),
            &|| pmd_mapping().map(|r| r.map(|_| ())),
            &|| memory_set_in_d3hot().map(|r| r.map(|_| ())),
        ];
        for scenario in scenarios {
            let Some(r) = fail_each_step(scenario) else {
                return Ok(());
            };
            let (runs, left) = r?;
            // Some step was made to fail, and no run, whichever step failed,
            // left a vma of the device mapped once the device was closed.
            assert!(runs > 1);
            assert_eq!(left, 0);
        }
        Ok(())
    }

    #[test]
    fn with_device_holds_the_module() -> Result {
        let outside = testing::module_refs(this_module());
        let Some(inside) = with_device(|_| testing::module_refs(this_module())) else {
            testing::skip(c"no device bound to vfio_variant (mock-pci 1234:f00d not present)");
            return Ok(());
        };
        // `with_device` holds a reference of its own on the module, so that
        // rmmod cannot unload it (and drop the driver and its device list)
        // while a device is in use. Suites run at load also have the
        // loader's reference, but a re-run through KUnit's debugfs `run`
        // file has no other.
        assert!(inside > outside);
        Ok(())
    }
}
