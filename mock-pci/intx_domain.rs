// SPDX-License-Identifier: GPL-2.0

//! The INTx interrupt domain of the mock host bridge: one level-triggered
//! Linux interrupt per function with an Interrupt Pin, the way a platform
//! wires each slot's INTA# to an interrupt controller input of its own
//! (no swizzling, no sharing between functions).
//!
//! - A linear domain (`mock-pci-INTx-DDDD`), hardware number = the
//!   function's devfn. Its `.map` gives each interrupt the `MOCK-INTx`
//!   chip and `handle_level_irq`.
//! - The host bridge's `map_irq` ([`map_irq`]) creates the mapping when the
//!   PCI core assigns the device its interrupt (`pci_assign_irq()`, before
//!   a driver probes it), so `dev->irq` is that Linux interrupt. Functions
//!   without a pin are never asked about and keep irq 0.
//! - The chip's `irq_unmask` asks for the line to be looked at again: a
//!   level interrupt that is still asserted fires again once unmasked
//!   (`enable_irq()` after `disable_irq()`, the end of a handler). The
//!   chip has no state of its own (`irq_mask` does nothing): what keeps an
//!   interrupt from firing is the function's INTX_DISABLE, or the irq core
//!   (disabled, in progress).
//! - The re-delivery runs in an irq_work ([`IntxDomain::recheck`]), never
//!   in the caller: the callers are the config accessors (under the PCI
//!   core's raw `pci_lock`, which vfio-pci's INTx handler takes) and the
//!   irq core (under the interrupt's descriptor lock, which delivery
//!   takes).
//!
//! Teardown: the bus goes first (its drivers free their interrupts), then
//! [`IntxDomain::quiesce`] waits for the irq_work, then drop disposes of
//! every mapping and removes the domain.

use crate::{host::Host, msi_domain::named_fwnode};
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use kernel::{bindings, error::from_err_ptr, ffi::c_void, prelude::*, types::Opaque};

/// Hardware numbers: one per devfn.
const HWIRQS: u32 = 256;

/// The hardware number of the INTx interrupt of the function in `slot`:
/// its devfn (function 0).
pub(crate) const fn hwirq(slot: usize) -> usize {
    slot << 3
}

/// The slot of a hardware number.
const fn slot_of(hwirq: usize) -> usize {
    hwirq >> 3
}

#[repr(transparent)]
struct Static<T>(T);
// SAFETY: tables of function pointers and constants, never written.
unsafe impl<T> Sync for Static<T> {}

static CHIP: Static<bindings::irq_chip> = Static({
    // SAFETY: all-zero is a valid `irq_chip` (every callback absent).
    let mut c: bindings::irq_chip = unsafe { core::mem::zeroed() };
    c.name = c"MOCK-INTx".to_bytes_with_nul().as_ptr();
    c.irq_mask = Some(mask);
    c.irq_unmask = Some(unmask);
    c.flags = bindings::IRQCHIP_SKIP_SET_WAKE as usize;
    c
});

static DOMAIN_OPS: Static<bindings::irq_domain_ops> = Static({
    // SAFETY: all-zero is a valid `irq_domain_ops` (every op absent).
    let mut o: bindings::irq_domain_ops = unsafe { core::mem::zeroed() };
    o.map = Some(map);
    o
});

/// The domain, its firmware node and the irq_work that re-delivers lines.
///
/// Lives in the pinned `Host` (field `intx`), which the irq_work gets back
/// to.
#[pin_data(PinnedDrop)]
pub(crate) struct IntxDomain {
    #[pin]
    work: Opaque<bindings::irq_work>,
    /// Slots whose line the irq_work looks at again (a bit each).
    recheck: AtomicU32,
    fwnode: AtomicPtr<bindings::fwnode_handle>,
    domain: AtomicPtr<bindings::irq_domain>,
}

// SAFETY: the pointers are only handed to the interrupt core, which
// serialises its own use of them; the rest is atomic.
unsafe impl Send for IntxDomain {}
// SAFETY: see `Send`.
unsafe impl Sync for IntxDomain {}

impl IntxDomain {
    /// An irq_work and no domain yet ([`IntxDomain::create`] makes it).
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(IntxDomain {
            work <- Opaque::ffi_init(|w: *mut bindings::irq_work| {
                // SAFETY: `w` is valid for writes; this is `init_irq_work()`
                // (an idle node, no waiter).
                unsafe {
                    w.write(bindings::irq_work {
                        func: Some(run),
                        ..Default::default()
                    })
                }
            }),
            recheck: AtomicU32::new(0),
            fwnode: AtomicPtr::new(core::ptr::null_mut()),
            domain: AtomicPtr::new(core::ptr::null_mut()),
        })
    }

    /// Creates the domain of the host bridge of PCI domain `pci_domain`,
    /// `mock-pci-INTx-DDDD` (`/sys/kernel/debug/irq/domains`). Called once,
    /// before the bus is scanned, on the `IntxDomain` inside the pinned
    /// `Host`.
    pub(crate) fn create(&self, pci_domain: i32) -> Result {
        let fwnode = named_fwnode(fmt!("mock-pci-INTx-{:04x}", pci_domain))?;
        // SAFETY: all-zero is a valid `irq_domain_info`; the fields that
        // matter are set, as `irq_domain_create_linear()` sets them.
        let mut info: bindings::irq_domain_info = unsafe { core::mem::zeroed() };
        info.fwnode = fwnode;
        info.size = HWIRQS;
        info.hwirq_max = HWIRQS as usize;
        info.ops = &DOMAIN_OPS.0;
        info.host_data = core::ptr::from_ref(self).cast_mut().cast::<c_void>();
        // SAFETY: `info` is complete; the ops are static; `host_data` is
        // this pinned `IntxDomain`, which removes the domain in drop.
        let domain = from_err_ptr(unsafe { bindings::irq_domain_instantiate(&info) });
        let domain = match domain {
            Ok(d) if !d.is_null() => d,
            _ => {
                // SAFETY: allocated above and used by no domain.
                unsafe { bindings::irq_domain_free_fwnode(fwnode) };
                pr_err!("cannot create the INTx domain\n");
                return Err(ENOMEM);
            }
        };
        self.fwnode.store(fwnode, Ordering::Release);
        self.domain.store(domain, Ordering::Release);
        Ok(())
    }

    /// Makes the PCI core ask [`map_irq`] for the interrupt of each
    /// function with a pin.
    ///
    /// # Safety
    ///
    /// `bridge` is allocated and not yet scanned, its `sysdata` is (or will
    /// be, before the scan) the `Host`'s, and the domain outlives its buses.
    pub(crate) unsafe fn attach(&self, bridge: *mut bindings::pci_host_bridge) {
        // SAFETY: see the function's safety section. Without
        // `swizzle_irq`, `map_irq` gets no slot and reads the devfn itself.
        unsafe { (*bridge).map_irq = Some(map_irq) };
    }

    fn domain(&self) -> *mut bindings::irq_domain {
        self.domain.load(Ordering::Acquire)
    }

    /// The Linux interrupt of the function in `slot`, created if needed; 0
    /// if it cannot be.
    fn map(&self, slot: usize) -> u32 {
        let d = self.domain();
        if d.is_null() {
            return 0;
        }
        // SAFETY: the domain lives until drop; may sleep (process context:
        // `pci_assign_irq()` from `pci_device_probe()`).
        unsafe { bindings::irq_create_mapping_affinity(d, hwirq(slot), core::ptr::null()) }
    }

    /// Raises the INTx interrupt of the function in `slot`, from any
    /// context, and says whether a Linux interrupt is mapped to it.
    pub(crate) fn deliver(&self, slot: usize) -> bool {
        let d = self.domain();
        // SAFETY: the domain lives until drop; the call disables interrupts
        // around the flow handler.
        !d.is_null() && unsafe { bindings::generic_handle_domain_irq_safe(d, hwirq(slot)) == 0 }
    }

    /// Asks the irq_work to look at the line of the function in `slot`
    /// again and deliver it if it is signalled. Any context.
    pub(crate) fn recheck(&self, slot: usize) {
        if slot >= 32 {
            return;
        }
        self.recheck.fetch_or(1 << slot, Ordering::AcqRel);
        // SAFETY: the irq_work is initialised and pinned in the `Host`;
        // drop waits for it (`quiesce`). Queuing an already queued work
        // is a no-op, and the bit is then seen by the pending run.
        unsafe { bindings::irq_work_queue(self.work.get()) };
    }

    /// Removes the Linux interrupt of the function in `slot`, once the PCI
    /// core removed the device (its driver freed the interrupt).
    pub(crate) fn dispose(&self, slot: usize) {
        let d = self.domain();
        if d.is_null() {
            return;
        }
        let mut virq = 0;
        // SAFETY: a lookup in the domain's reverse map, under RCU; the
        // mapping is then disposed of in process context, with no user left.
        unsafe {
            if !bindings::__irq_resolve_mapping(d, hwirq(slot), &mut virq).is_null() && virq != 0 {
                bindings::irq_dispose_mapping(virq);
            }
        }
    }

    /// Waits until no re-delivery runs or is queued. After the bus is gone
    /// nothing queues one again (no accessor runs, no interrupt is
    /// requested, debugfs and the device thread are stopped).
    pub(crate) fn quiesce(&self) {
        // SAFETY: the irq_work is initialised.
        unsafe { bindings::irq_work_sync(self.work.get()) };
    }
}

#[pinned_drop]
impl PinnedDrop for IntxDomain {
    fn drop(self: Pin<&mut Self>) {
        self.quiesce();
        let d = self.domain();
        if d.is_null() {
            return;
        }
        for slot in 0..(HWIRQS as usize >> 3) {
            self.dispose(slot);
        }
        // SAFETY: created in `create`; every mapping is disposed of and
        // the buses are gone.
        unsafe {
            bindings::irq_domain_remove(d);
            bindings::irq_domain_free_fwnode(self.fwnode.load(Ordering::Acquire));
        }
    }
}

/// The irq_work: re-delivers the lines [`IntxDomain::recheck`] asked for.
///
/// # Safety
///
/// `work` is the `work` field of an `IntxDomain` in a live `Host`.
unsafe extern "C" fn run(work: *mut bindings::irq_work) {
    // SAFETY: see the function's safety section; the `Host` waits for this
    // function in drop (`quiesce`) before anything of it goes away.
    let host = unsafe {
        let intx =
            kernel::container_of!(work.cast::<Opaque<bindings::irq_work>>(), IntxDomain, work);
        &*kernel::container_of!(intx, Host, intx)
    };
    let slots = host.intx.recheck.swap(0, Ordering::AcqRel);
    host.recheck_intx(slots);
}

/// `pci_host_bridge.map_irq`: the Linux interrupt of `dev`'s pin (0 if
/// none), for `pci_assign_irq()`.
///
/// # Safety
///
/// Called by the PCI core for a device of a mock bus, in process context.
unsafe extern "C" fn map_irq(dev: *const bindings::pci_dev, _slot: u8, _pin: u8) -> c_int {
    // SAFETY: see the function's safety section: the bus's `sysdata` is
    // the `Host`'s.
    let (host, bus, devfn) = unsafe {
        (
            crate::accessors::host_of((*dev).bus),
            (*(*dev).bus).number,
            (*dev).devfn,
        )
    };
    // Only the functions behind the Root Port have pins (the port has
    // none), function 0 of each slot.
    if bus == 0 || devfn & 7 != 0 {
        return 0;
    }
    let slot = (devfn >> 3) as usize;
    let virq = host.intx.map(slot);
    if virq == 0 {
        pr_err!(
            "{:04x}:{:02x}:{:02x}.0: cannot map its INTx interrupt: the device gets none\n",
            host.domain,
            bus,
            slot
        );
    }
    virq as c_int
}

/// `irq_chip.irq_mask`: nothing to do (see the module's documentation);
/// present so that the irq core tracks the masked state and calls
/// [`unmask`].
///
/// # Safety
///
/// Called by the interrupt core for an interrupt of this domain.
unsafe extern "C" fn mask(_data: *mut bindings::irq_data) {}

/// `irq_chip.irq_unmask`: a level interrupt still asserted fires again.
///
/// # Safety
///
/// Called by the interrupt core for an interrupt of this domain (its chip
/// data is the `IntxDomain`), under its descriptor lock.
unsafe extern "C" fn unmask(data: *mut bindings::irq_data) {
    // SAFETY: see the function's safety section; `map` set the chip data.
    let (intx, hwirq) = unsafe { (&*(*data).chip_data.cast::<IntxDomain>(), (*data).hwirq) };
    intx.recheck(slot_of(hwirq));
}

/// `irq_domain_ops.map`: a new Linux interrupt of the domain gets the chip,
/// the level flow handler and the `IntxDomain` as chip data.
///
/// # Safety
///
/// Called by the interrupt core for this domain.
unsafe extern "C" fn map(
    d: *mut bindings::irq_domain,
    virq: c_uint,
    _hwirq: bindings::irq_hw_number_t,
) -> c_int {
    // SAFETY: `virq` was just allocated for this domain; the chip is
    // static and `host_data` is the domain's `IntxDomain`.
    unsafe {
        bindings::irq_set_chip_and_handler_name(
            virq,
            &CHIP.0,
            Some(bindings::handle_level_irq),
            c"level".as_char_ptr(),
        );
        bindings::irq_set_chip_data(virq, (*d).host_data);
        bindings::irq_modify_status(
            virq,
            (bindings::IRQ_NOREQUEST | bindings::IRQ_NOPROBE) as usize,
            (bindings::IRQ_LEVEL | bindings::IRQ_TYPE_LEVEL_HIGH) as usize,
        );
    }
    0
}

#[kunit_tests(mock_pci_intx_domain)]
mod tests {
    use super::*;

    /// Each slot's function 0 has a number of its own, below the
    /// domain's size, and gets its slot back.
    #[test]
    fn hwirq_is_the_devfn() {
        assert_eq!(hwirq(0), 0);
        assert_eq!(hwirq(1), 8);
        assert_eq!(hwirq(31), 248);
        assert!(hwirq(31) < HWIRQS as usize);
        for slot in 0..32 {
            assert_eq!(slot_of(hwirq(slot)), slot);
        }
    }
}
