// SPDX-License-Identifier: GPL-2.0

//! Emulated configuration space of the PCI Express Root Port: bus 0,
//! device 0, the bridge to the secondary bus that holds the mock functions.
//!
//! A type 1 header with what the PCI core needs to scan, configure and
//! reset through it: bus number registers, a non-prefetchable memory
//! window and a 64-bit prefetchable one (no I/O window, no BARs, no
//! expansion ROM), Bridge Control with Secondary Bus Reset, and a PCI
//! Express capability of type Root Port with a trained x1 link that reports
//! Data Link Layer Link Active. Like the functions (`config.rs`), plain
//! data under the host's raw spinlock; what a Secondary Bus Reset does to
//! the functions is `fabric.rs`'s business, this file only reports the
//! edges of the bit.

use crate::{
    config::{ConfigSpace, Template, CFG_SIZE, COMMAND_WRITABLE, EXP_CAP_SIZE, STATUS_W1C},
    layout::{Layout, Range},
};
use kernel::{bindings, prelude::*};

/// Vendor ID of the Root Port (the mock functions' default vendor).
pub(crate) const PORT_VENDOR: u16 = 0x1234;
/// Device ID of the Root Port.
pub(crate) const PORT_DEVICE: u16 = 0xf00e;
/// Secondary (and subordinate) bus number the "firmware" programs.
pub(crate) const SECONDARY_BUS: u8 = 1;
/// Offset of the Root Port's PCI Express capability.
pub(crate) const PORT_EXP_CAP: usize = 0x40;

/// Offsets of the type 1 registers the Root Port emulates.
pub(crate) const PCI_BRIDGE_CONTROL: usize = bindings::PCI_BRIDGE_CONTROL as usize;
pub(crate) const PCI_MEMORY_BASE: usize = bindings::PCI_MEMORY_BASE as usize;
pub(crate) const PCI_MEMORY_LIMIT: usize = bindings::PCI_MEMORY_LIMIT as usize;
pub(crate) const PCI_PREF_MEMORY_BASE: usize = bindings::PCI_PREF_MEMORY_BASE as usize;
pub(crate) const PCI_PREF_MEMORY_LIMIT: usize = bindings::PCI_PREF_MEMORY_LIMIT as usize;
pub(crate) const PCI_PREF_BASE_UPPER32: usize = bindings::PCI_PREF_BASE_UPPER32 as usize;
pub(crate) const PCI_PREF_LIMIT_UPPER32: usize = bindings::PCI_PREF_LIMIT_UPPER32 as usize;
/// Offset of the Root Port's Link Status register.
pub(crate) const EXP_LNKSTA: usize = PORT_EXP_CAP + bindings::PCI_EXP_LNKSTA as usize;

/// Address bits 31:20 of a memory window live in bits 15:4 of its base and
/// limit registers; bits 3:0 are read-only (the window type).
const WINDOW_ADDR_BITS: u16 = 0xfff0;

/// Bridge Control bits the Root Port implements: parity and SERR#
/// forwarding, ISA enable, Secondary Bus Reset. No VGA routing; Master
/// Abort Mode and the PCI timer bits do not apply to PCI Express.
pub(crate) const BRIDGE_CTL_WRITABLE: u16 = (bindings::PCI_BRIDGE_CTL_PARITY
    | bindings::PCI_BRIDGE_CTL_SERR
    | bindings::PCI_BRIDGE_CTL_ISA
    | bindings::PCI_BRIDGE_CTL_BUS_RESET) as u16;

/// What a write to the Root Port did beyond storing bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PortEffect {
    /// Nothing else.
    None,
    /// Secondary Bus Reset went from 0 to 1: the secondary bus is in reset.
    ResetAsserted,
    /// Secondary Bus Reset went from 1 to 0: the secondary bus is out of
    /// reset (its link is up again).
    ResetReleased,
}

/// Power-on values and write masks of the Root Port.
pub(crate) fn template() -> Template {
    let mut t = Template::blank();
    t.set16(bindings::PCI_VENDOR_ID as usize, PORT_VENDOR);
    t.set16(bindings::PCI_DEVICE_ID as usize, PORT_DEVICE);
    t.set_mask16(bindings::PCI_COMMAND as usize, COMMAND_WRITABLE, 0);
    t.set16(
        bindings::PCI_STATUS as usize,
        bindings::PCI_STATUS_CAP_LIST as u16,
    );
    t.set_mask16(bindings::PCI_STATUS as usize, 0, STATUS_W1C);
    t.set32(
        bindings::PCI_CLASS_REVISION as usize,
        bindings::PCI_CLASS_BRIDGE_PCI_NORMAL << 8,
    );
    t.set_mask8(bindings::PCI_CACHE_LINE_SIZE as usize, 0xff);
    t.set8(
        bindings::PCI_HEADER_TYPE as usize,
        bindings::PCI_HEADER_TYPE_BRIDGE as u8,
    );
    // Bus numbers: primary, secondary, subordinate are read/write; the
    // secondary latency timer does not apply to PCI Express.
    for reg in [
        bindings::PCI_PRIMARY_BUS,
        bindings::PCI_SECONDARY_BUS,
        bindings::PCI_SUBORDINATE_BUS,
    ] {
        t.set_mask8(reg as usize, 0xff);
    }
    t.set_mask16(bindings::PCI_SEC_STATUS as usize, 0, STATUS_W1C);
    // Memory windows. I/O base and limit stay read-only zero: no I/O
    // window, so the PCI core sees none (`io_window` = 0).
    t.set_mask16(PCI_MEMORY_BASE, WINDOW_ADDR_BITS, 0);
    t.set_mask16(PCI_MEMORY_LIMIT, WINDOW_ADDR_BITS, 0);
    let pref64 = bindings::PCI_PREF_RANGE_TYPE_64 as u16;
    t.set16(PCI_PREF_MEMORY_BASE, pref64);
    t.set16(PCI_PREF_MEMORY_LIMIT, pref64);
    t.set_mask16(PCI_PREF_MEMORY_BASE, WINDOW_ADDR_BITS, 0);
    t.set_mask16(PCI_PREF_MEMORY_LIMIT, WINDOW_ADDR_BITS, 0);
    t.set_mask32(PCI_PREF_BASE_UPPER32, !0, 0);
    t.set_mask32(PCI_PREF_LIMIT_UPPER32, !0, 0);
    t.set8(bindings::PCI_CAPABILITY_LIST as usize, PORT_EXP_CAP as u8);
    t.set_mask8(bindings::PCI_INTERRUPT_LINE as usize, 0xff);
    t.set_mask16(PCI_BRIDGE_CONTROL, BRIDGE_CTL_WRITABLE, 0);
    init_exp_cap(&mut t);
    t
}

/// PCI Express capability, version 2, Root Port without a slot (nothing to
/// hot-plug: the module adds and removes functions itself), on a trained x1
/// 2.5 GT/s link with Data Link Layer Link Active reporting.
fn init_exp_cap(t: &mut Template) {
    let exp = PORT_EXP_CAP;
    t.set8(exp, bindings::PCI_CAP_ID_EXP as u8);
    t.set8(exp + 1, 0);
    let flags = 2 | (bindings::PCI_EXP_TYPE_ROOT_PORT << 4) as u16;
    t.set16(exp + bindings::PCI_EXP_FLAGS as usize, flags);
    t.set32(
        exp + bindings::PCI_EXP_DEVCAP as usize,
        bindings::PCI_EXP_DEVCAP_RBER,
    );
    t.set_mask16(
        exp + bindings::PCI_EXP_DEVCTL as usize,
        crate::config::DEVCTL_RW,
        0,
    );
    let devsta_w1c = (bindings::PCI_EXP_DEVSTA_CED
        | bindings::PCI_EXP_DEVSTA_NFED
        | bindings::PCI_EXP_DEVSTA_FED
        | bindings::PCI_EXP_DEVSTA_URD) as u16;
    t.set_mask16(exp + bindings::PCI_EXP_DEVSTA as usize, 0, devsta_w1c);
    t.init_link(exp, bindings::PCI_EXP_LNKCAP_DLLLARC, 0);
    let lnksta = lnksta_up();
    t.set16(EXP_LNKSTA, lnksta);
    let rtctl_rw = (bindings::PCI_EXP_RTCTL_SECEE
        | bindings::PCI_EXP_RTCTL_SENFEE
        | bindings::PCI_EXP_RTCTL_SEFEE
        | bindings::PCI_EXP_RTCTL_PMEIE) as u16;
    t.set_mask16(exp + bindings::PCI_EXP_RTCTL as usize, rtctl_rw, 0);
    t.set_mask32(
        exp + bindings::PCI_EXP_RTSTA as usize,
        0,
        bindings::PCI_EXP_RTSTA_PME,
    );
    const { assert!(PORT_EXP_CAP + EXP_CAP_SIZE <= CFG_SIZE) };
}

/// Link Status of the trained link: x1 at 2.5 GT/s, Data Link Layer up.
fn lnksta_up() -> u16 {
    (bindings::PCI_EXP_LNKSTA_CLS_2_5GB
        | bindings::PCI_EXP_LNKSTA_NLW_X1
        | bindings::PCI_EXP_LNKSTA_DLLLA) as u16
}

/// Register values of the Root Port; all zeroes is a valid (powered-off)
/// state.
#[derive(Zeroable)]
pub(crate) struct RootPort {
    cfg: ConfigSpace,
}

impl RootPort {
    /// Back to the power-on state: no bus numbers, windows unprogrammed.
    pub(crate) fn reset(&mut self, t: &Template) {
        self.cfg.reset(t);
    }

    /// Programs what firmware programs before the OS scans: bus numbers
    /// (primary 0, secondary and subordinate [`SECONDARY_BUS`]), the two
    /// memory windows of `layout`, memory decoding and bus mastering.
    pub(crate) fn program(&mut self, t: &Template, layout: &Layout) {
        let buses = u32::from(SECONDARY_BUS) << 8 | u32::from(SECONDARY_BUS) << 16;
        self.cfg
            .store(t, bindings::PCI_PRIMARY_BUS as usize, 4, buses);
        let mem = layout.mem_window();
        self.cfg.store(t, PCI_MEMORY_BASE, 2, window_reg(mem.start));
        self.cfg
            .store(t, PCI_MEMORY_LIMIT, 2, window_reg(mem.last()));
        self.program_pref(t, layout.pref_window());
        let cmd = bindings::PCI_COMMAND_MEMORY | bindings::PCI_COMMAND_MASTER;
        self.cfg.store(t, bindings::PCI_COMMAND as usize, 2, cmd);
    }

    fn program_pref(&mut self, t: &Template, pref: Range) {
        self.cfg
            .store(t, PCI_PREF_MEMORY_BASE, 2, window_reg(pref.start));
        self.cfg
            .store(t, PCI_PREF_MEMORY_LIMIT, 2, window_reg(pref.last()));
        self.cfg
            .store(t, PCI_PREF_BASE_UPPER32, 4, (pref.start >> 32) as u32);
        self.cfg
            .store(t, PCI_PREF_LIMIT_UPPER32, 4, (pref.last() >> 32) as u32);
    }

    /// Reads `size` bytes at `offset` (see [`ConfigSpace::read`]).
    pub(crate) fn read(&self, offset: usize, size: usize) -> u32 {
        self.cfg.read(offset, size)
    }

    /// Writes `size` bytes of `value` at `offset`, honouring the masks of
    /// `t`, and reports an edge of Secondary Bus Reset. While it is set the
    /// link is in Hot Reset: Link Status shows the Data Link Layer down.
    pub(crate) fn write(
        &mut self,
        t: &Template,
        offset: usize,
        size: usize,
        value: u32,
    ) -> PortEffect {
        let was = self.in_reset();
        self.cfg.store(t, offset, size, value);
        let now = self.in_reset();
        if was == now {
            return PortEffect::None;
        }
        let up = lnksta_up();
        let lnksta = if now {
            up & !(bindings::PCI_EXP_LNKSTA_DLLLA as u16)
        } else {
            up
        };
        self.cfg.set16(EXP_LNKSTA, lnksta);
        if now {
            PortEffect::ResetAsserted
        } else {
            PortEffect::ResetReleased
        }
    }

    /// Whether Secondary Bus Reset is set.
    pub(crate) fn in_reset(&self) -> bool {
        self.read(PCI_BRIDGE_CONTROL, 2) & bindings::PCI_BRIDGE_CTL_BUS_RESET != 0
    }

    /// The secondary bus number.
    pub(crate) fn secondary(&self) -> u8 {
        self.read(bindings::PCI_SECONDARY_BUS as usize, 1) as u8
    }
}

/// The base or limit register value for address `addr` (bits 31:20).
fn window_reg(addr: u64) -> u32 {
    (addr >> 16) as u32 & u32::from(WINDOW_ADDR_BITS)
}
