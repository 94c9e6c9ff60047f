// SPDX-License-Identifier: GPL-2.0

//! Emulated configuration space of the mock functions.
//!
//! Plain data, no locking and no allocation: the bus accessors call into it
//! under the host bridge's raw spinlock. Every register byte has a value, a
//! mask of bits software may write and a mask of write-1-to-clear bits, the
//! way `drivers/pci/pci-bridge-emul.c` models bridges. BAR sizing then falls
//! out of the masks: the address bits below the BAR size are read-only zero,
//! so writing all ones reads back the size mask. The masks and power-on
//! values are the same for every function ([`Template`]); each function has
//! only its register values ([`ConfigSpace`]), which are valid when zeroed,
//! so a table of them can be initialised in place. The Root Port
//! (`bridge.rs`) uses the same two types for its type 1 header.

use crate::{
    msi::{self, Irqs},
    msix,
};
use kernel::{bindings, prelude::*};

/// Bytes of configuration space a function stores: the conventional space
/// and the first extended capability, where a Physical Function has its
/// SR-IOV capability (sriov.rs). The rest of extended space reads as zero;
/// a function without an extended capability has only zeroes from 0x100
/// on: a valid, empty extended capability list.
pub(crate) const CFG_SIZE: usize = 0x140;

/// Offset of the power-management capability.
pub(crate) const PM_CAP: usize = 0x40;
/// Offset of the PCI Express capability.
pub(crate) const EXP_CAP: usize = 0x50;
/// Size of a PCI Express capability structure of version 2.
pub(crate) const EXP_CAP_SIZE: usize = 0x3c;

/// The IDs a mock function reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    /// Vendor ID.
    pub(crate) vendor: u16,
    /// Device ID.
    pub(crate) device: u16,
    /// Subsystem vendor ID.
    pub(crate) subsys_vendor: u16,
    /// Subsystem ID.
    pub(crate) subsys_device: u16,
    /// Class code (base class, subclass, programming interface).
    pub(crate) class: u32,
    /// Revision ID.
    pub(crate) revision: u8,
}

/// Sizes of the two memory BARs (powers of two, at least 4 KiB).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Zeroable)]
pub(crate) struct BarSizes {
    /// BAR0: 64-bit, prefetchable (uses BAR1 for the upper half).
    pub(crate) bar0: u64,
    /// BAR2: 32-bit, non-prefetchable.
    pub(crate) bar2: u64,
}

/// What a config write asked the device to do beyond storing bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Nothing else.
    None,
    /// The function was reset (D3hot to D0 transition, or FLR).
    Reset,
}

const PCI_COMMAND: usize = bindings::PCI_COMMAND as usize;
const PCI_STATUS: usize = bindings::PCI_STATUS as usize;
const PCI_BAR0: usize = bindings::PCI_BASE_ADDRESS_0 as usize;
const PCI_BAR2: usize = bindings::PCI_BASE_ADDRESS_2 as usize;
const PM_CTRL: usize = PM_CAP + bindings::PCI_PM_CTRL as usize;
const EXP_DEVCTL: usize = EXP_CAP + bindings::PCI_EXP_DEVCTL as usize;
const EXP_DEVSTA: usize = EXP_CAP + bindings::PCI_EXP_DEVSTA as usize;

/// COMMAND bits this function implements: memory space, bus master, parity
/// and SERR# response, INTx disable. I/O space is hardwired to zero (there
/// are no I/O BARs).
pub(crate) const COMMAND_WRITABLE: u16 = (bindings::PCI_COMMAND_MEMORY
    | bindings::PCI_COMMAND_MASTER
    | bindings::PCI_COMMAND_PARITY
    | bindings::PCI_COMMAND_SERR
    | bindings::PCI_COMMAND_INTX_DISABLE) as u16;

/// STATUS error bits, all write-1-to-clear.
pub(crate) const STATUS_W1C: u16 = (bindings::PCI_STATUS_PARITY
    | bindings::PCI_STATUS_SIG_TARGET_ABORT
    | bindings::PCI_STATUS_REC_TARGET_ABORT
    | bindings::PCI_STATUS_REC_MASTER_ABORT
    | bindings::PCI_STATUS_SIG_SYSTEM_ERROR
    | bindings::PCI_STATUS_DETECTED_PARITY) as u16;

/// Device Status error bits of the PCIe capability, write-1-to-clear.
const DEVSTA_W1C: u16 = (bindings::PCI_EXP_DEVSTA_CED
    | bindings::PCI_EXP_DEVSTA_NFED
    | bindings::PCI_EXP_DEVSTA_FED
    | bindings::PCI_EXP_DEVSTA_URD) as u16;

/// PCIe Device Control bits that are plain read/write on every mock
/// function and the Root Port: error reporting enables, relaxed ordering,
/// max payload and read request size, no snoop.
pub(crate) const DEVCTL_RW: u16 = (bindings::PCI_EXP_DEVCTL_CERE
    | bindings::PCI_EXP_DEVCTL_NFERE
    | bindings::PCI_EXP_DEVCTL_FERE
    | bindings::PCI_EXP_DEVCTL_URRE
    | bindings::PCI_EXP_DEVCTL_RELAX_EN
    | bindings::PCI_EXP_DEVCTL_PAYLOAD
    | bindings::PCI_EXP_DEVCTL_NOSNOOP_EN
    | bindings::PCI_EXP_DEVCTL_READRQ) as u16;

/// Power-on values and write masks of a mock function: the module
/// parameters' one, or a configfs device's (each slot has a copy, see
/// fabric.rs). All zeroes is a valid (blank) template. `N` is the number of
/// register bytes: [`CFG_SIZE`], or fewer for the Virtual Functions of
/// sriov.rs, which have no capability past their PCI Express one.
#[derive(Clone, Zeroable)]
pub(crate) struct Template<const N: usize = CFG_SIZE> {
    regs: [u8; N],
    wmask: [u8; N],
    w1c: [u8; N],
    /// Whether there is an MSI capability (at [`msi::MSI_CAP`]).
    msi: bool,
    /// The MSI-X table; no MSI-X capability if it has no entries.
    msix: msix::Table,
    /// The BAR sizes (zero in the Root Port's template).
    bars: BarSizes,
}

impl Template {
    /// Power-on state of a function with these IDs, BARs and interrupts:
    /// BAR addresses zero, decoding off, in D0.
    pub(crate) fn new(id: &Identity, bars: &BarSizes, irqs: &Irqs) -> Self {
        let mut c = Template::blank();
        c.set16(bindings::PCI_VENDOR_ID as usize, id.vendor);
        c.set16(bindings::PCI_DEVICE_ID as usize, id.device);
        c.set_mask16(PCI_COMMAND, COMMAND_WRITABLE, 0);
        c.set16(PCI_STATUS, bindings::PCI_STATUS_CAP_LIST as u16);
        c.set_mask16(PCI_STATUS, 0, STATUS_W1C);
        c.set32(
            bindings::PCI_CLASS_REVISION as usize,
            id.class << 8 | u32::from(id.revision),
        );
        c.set_mask8(bindings::PCI_CACHE_LINE_SIZE as usize, 0xff);
        c.set16(bindings::PCI_SUBSYSTEM_VENDOR_ID as usize, id.subsys_vendor);
        c.set16(bindings::PCI_SUBSYSTEM_ID as usize, id.subsys_device);
        c.set_mask8(bindings::PCI_INTERRUPT_LINE as usize, 0xff);

        // BAR0/1: 64-bit prefetchable memory. BAR2: 32-bit memory.
        let flags64 =
            bindings::PCI_BASE_ADDRESS_MEM_TYPE_64 | bindings::PCI_BASE_ADDRESS_MEM_PREFETCH;
        c.set32(PCI_BAR0, flags64);
        let mask0 = !(bars.bar0 - 1);
        c.set_mask32(PCI_BAR0, mask0 as u32, 0);
        c.set_mask32(PCI_BAR0 + 4, (mask0 >> 32) as u32, 0);
        c.set_mask32(PCI_BAR2, !(bars.bar2 as u32 - 1), 0);

        c.set8(bindings::PCI_CAPABILITY_LIST as usize, PM_CAP as u8);
        c.init_pm_cap();
        c.init_exp_cap();
        c.init_irqs(irqs, bars);
        c.bars = *bars;
        c
    }

    /// Interrupt Pin, MSI and MSI-X capabilities, as `irqs` asks.
    fn init_irqs(&mut self, irqs: &Irqs, bars: &BarSizes) {
        let table = (irqs.msix != 0).then(|| msix::Table::new(irqs.msix, bars.bar2));
        msi::init(self, irqs, table.as_ref());
        self.msi = irqs.msi != 0;
        self.msix = table.unwrap_or_default();
    }

    /// Whether functions have an MSI capability.
    pub(crate) fn has_msi(&self) -> bool {
        self.msi
    }

    /// Where the MSI-X table lies in BAR2, if there is one.
    pub(crate) fn msix(&self) -> Option<&msix::Table> {
        (self.msix.vectors() != 0).then_some(&self.msix)
    }

    /// The sizes of BAR0 and BAR2.
    pub(crate) fn bars(&self) -> BarSizes {
        self.bars
    }
}

impl<const N: usize> Template<N> {
    /// Power management capability, version 3, D0 and D3hot only, without
    /// No_Soft_Reset: leaving D3hot resets the function.
    pub(crate) fn init_pm_cap(&mut self) {
        self.set8(PM_CAP, bindings::PCI_CAP_ID_PM as u8);
        self.set8(PM_CAP + 1, EXP_CAP as u8);
        self.set16(PM_CAP + bindings::PCI_PM_PMC as usize, 3);
        self.set_mask16(PM_CTRL, bindings::PCI_PM_CTRL_STATE_MASK as u16, 0);
    }

    /// PCI Express capability, version 2, endpoint (below the Root Port,
    /// on a x1 2.5 GT/s link), with Function Level Reset.
    pub(crate) fn init_exp_cap(&mut self) {
        self.set8(EXP_CAP, bindings::PCI_CAP_ID_EXP as u8);
        self.set8(EXP_CAP + 1, 0);
        let flags = 2 | (bindings::PCI_EXP_TYPE_ENDPOINT << 4) as u16;
        self.set16(EXP_CAP + bindings::PCI_EXP_FLAGS as usize, flags);
        // Role-based error reporting, as every PCIe 1.1 and later function
        // has (ASPM setup treats functions without it as pre-1.1).
        let devcap = bindings::PCI_EXP_DEVCAP_FLR | bindings::PCI_EXP_DEVCAP_RBER;
        self.set32(EXP_CAP + bindings::PCI_EXP_DEVCAP as usize, devcap);
        // Device Control: error reporting enables, relaxed ordering, max
        // payload/read request, no snoop are plain read/write bits; the FLR
        // bit triggers a reset and always reads as zero.
        self.set_mask16(
            EXP_DEVCTL,
            DEVCTL_RW | bindings::PCI_EXP_DEVCTL_BCR_FLR as u16,
            0,
        );
        self.set_mask16(EXP_DEVSTA, 0, DEVSTA_W1C);
        let lnkctl_rw = bindings::PCI_EXP_LNKCTL_RCB as u16;
        self.init_link(EXP_CAP, 0, lnkctl_rw);
        const { assert!(EXP_CAP + EXP_CAP_SIZE <= N) };
    }

    /// Link registers of a PCI Express capability at `exp`: a x1 link at
    /// 2.5 GT/s, trained and without ASPM support. `cap` adds Link
    /// Capabilities bits. ASPM control, common clock and extended synch are
    /// plain read/write bits in Link Control, as are the `rw` bits; Retrain
    /// Link reads as zero (a retrain completes at once).
    pub(crate) fn init_link(&mut self, exp: usize, cap: u32, rw: u16) {
        let lnkcap = bindings::PCI_EXP_LNKCAP_SLS_2_5GB | 1 << 4 | cap;
        self.set32(exp + bindings::PCI_EXP_LNKCAP as usize, lnkcap);
        let lnkctl_rw = (bindings::PCI_EXP_LNKCTL_ASPMC
            | bindings::PCI_EXP_LNKCTL_CCC
            | bindings::PCI_EXP_LNKCTL_ES) as u16
            | rw;
        self.set_mask16(exp + bindings::PCI_EXP_LNKCTL as usize, lnkctl_rw, 0);
        let lnksta = (bindings::PCI_EXP_LNKSTA_CLS_2_5GB | bindings::PCI_EXP_LNKSTA_NLW_X1) as u16;
        self.set16(exp + bindings::PCI_EXP_LNKSTA as usize, lnksta);
    }

    /// A template with every register zero and read-only.
    pub(crate) fn blank() -> Self {
        Template {
            regs: [0; N],
            wmask: [0; N],
            w1c: [0; N],
            msi: false,
            msix: msix::Table::default(),
            bars: BarSizes { bar0: 0, bar2: 0 },
        }
    }

    /// The power-on value of the `size` bytes at `at`, little endian (zero
    /// past the stored registers).
    pub(crate) fn value(&self, at: usize, size: usize) -> u32 {
        (0..size).fold(0, |v, i| {
            let b = self.regs.get(at + i).copied().unwrap_or(0);
            v | u32::from(b) << (8 * i)
        })
    }

    /// Sets the power-on value of the byte at `at`.
    pub(crate) fn set8(&mut self, at: usize, v: u8) {
        self.regs[at] = v;
    }

    /// Sets the power-on value of the 16-bit register at `at`.
    pub(crate) fn set16(&mut self, at: usize, v: u16) {
        self.regs[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }

    /// Sets the power-on value of the 32-bit register at `at`.
    pub(crate) fn set32(&mut self, at: usize, v: u32) {
        self.regs[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// Makes the `writable` bits of the byte at `at` read/write.
    pub(crate) fn set_mask8(&mut self, at: usize, writable: u8) {
        self.wmask[at] = writable;
    }

    /// Makes the `writable` bits of the 16-bit register at `at` read/write
    /// and its `w1c` bits write-1-to-clear.
    pub(crate) fn set_mask16(&mut self, at: usize, writable: u16, w1c: u16) {
        self.wmask[at..at + 2].copy_from_slice(&writable.to_le_bytes());
        self.w1c[at..at + 2].copy_from_slice(&w1c.to_le_bytes());
    }

    /// Makes the `writable` bits of the 32-bit register at `at` read/write
    /// and its `w1c` bits write-1-to-clear.
    pub(crate) fn set_mask32(&mut self, at: usize, writable: u32, w1c: u32) {
        self.wmask[at..at + 4].copy_from_slice(&writable.to_le_bytes());
        self.w1c[at..at + 4].copy_from_slice(&w1c.to_le_bytes());
    }

    /// The first offset at which `self` and `other` differ in a power-on
    /// value or a mask, if any.
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn first_difference(&self, other: &Template<N>) -> Option<usize> {
        (0..N).find(|&i| {
            self.regs[i] != other.regs[i]
                || self.wmask[i] != other.wmask[i]
                || self.w1c[i] != other.w1c[i]
        })
    }
}

/// Register values of one function. All zeroes is a valid (powered-off)
/// state; [`ConfigSpace::reset`] brings it to the power-on state. `N` is
/// the number of register bytes, as in [`Template`].
#[derive(Zeroable)]
pub(crate) struct ConfigSpace<const N: usize = CFG_SIZE> {
    regs: [u8; N],
}

impl<const N: usize> ConfigSpace<N> {
    /// Reads `size` (1, 2 or 4) bytes at `offset`, little endian. Reads past
    /// the stored registers return zero.
    pub(crate) fn read(&self, offset: usize, size: usize) -> u32 {
        (0..size).fold(0, |v, i| {
            let b = self.regs.get(offset + i).copied().unwrap_or(0);
            v | u32::from(b) << (8 * i)
        })
    }

    /// Writes `size` bytes of `value` at `offset`, honouring the read-only
    /// and write-1-to-clear masks of `t`, and reports a reset if the write
    /// caused one (FLR, or PMCSR from D3hot to D0).
    pub(crate) fn write(
        &mut self,
        t: &Template<N>,
        offset: usize,
        size: usize,
        value: u32,
    ) -> Effect {
        let old_power = self.power_state();
        self.store(t, offset, size, value);
        if t.msi {
            msi::clamp_mme(self);
        }
        if matches!(self.power_state(), 1 | 2) {
            // D1 and D2 are not advertised: a write asking for them is
            // discarded and changes no state (PCI PM 1.2, 3.2.4).
            self.set_power_state(old_power);
        }
        let flr = self.read(EXP_DEVCTL, 2) & bindings::PCI_EXP_DEVCTL_BCR_FLR != 0;
        if flr || (old_power == 3 && self.power_state() == 0) {
            self.reset(t);
            return Effect::Reset;
        }
        Effect::None
    }

    /// Stores `size` bytes of `value` at `offset` as software writes them:
    /// read-only bits keep their value, write-1-to-clear bits clear where
    /// `value` has ones. No side effects.
    pub(crate) fn store(&mut self, t: &Template<N>, offset: usize, size: usize, value: u32) {
        for i in 0..size {
            let Some(at) = offset.checked_add(i).filter(|&at| at < N) else {
                break;
            };
            let v = (value >> (8 * i)) as u8;
            let keep = self.regs[at] & !t.wmask[at];
            self.regs[at] = (keep | (v & t.wmask[at])) & !(v & t.w1c[at]);
        }
    }

    /// Sets a 16-bit register as the hardware does (status bits that
    /// software cannot write), ignoring the masks.
    pub(crate) fn set16(&mut self, at: usize, v: u16) {
        if let Some(r) = self.regs.get_mut(at..at + 2) {
            r.copy_from_slice(&v.to_le_bytes());
        }
    }

    /// Sets a 32-bit register as the hardware does (status bits that
    /// software cannot write), ignoring the masks.
    pub(crate) fn set32(&mut self, at: usize, v: u32) {
        if let Some(r) = self.regs.get_mut(at..at + 4) {
            r.copy_from_slice(&v.to_le_bytes());
        }
    }

    /// Back to the power-on state (conventional reset).
    pub(crate) fn reset(&mut self, t: &Template<N>) {
        self.regs = t.regs;
    }

    /// Sets PMCSR's power state field, leaving its other bits.
    fn set_power_state(&mut self, state: u32) {
        let mask = bindings::PCI_PM_CTRL_STATE_MASK;
        let v = (self.read(PM_CTRL, 2) & !mask) | (state & mask);
        self.set16(PM_CTRL, v as u16);
    }

    /// Current power state from PMCSR (0 = D0, 3 = D3hot).
    pub(crate) fn power_state(&self) -> u32 {
        self.read(PM_CTRL, 2) & bindings::PCI_PM_CTRL_STATE_MASK
    }

    /// Latches STATUS error bits, as the hardware does on an error. Used by
    /// the tests of the write-1-to-clear semantics.
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn raise_status(&mut self, bits: u16) {
        let s = self.read(PCI_STATUS, 2) as u16 | (bits & STATUS_W1C);
        self.set16(PCI_STATUS, s);
    }
}
