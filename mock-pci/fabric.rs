// SPDX-License-Identifier: GPL-2.0

//! The emulated hardware behind the host bridge, as one piece of state: the
//! Root Port on bus 0 and the functions on its secondary bus.
//!
//! This is where configuration requests are routed (bus 0 device 0 is the
//! Root Port; the secondary bus number the port holds selects the
//! functions) and where a Secondary Bus Reset takes effect: asserting it
//! resets every function on the secondary bus to its power-on state, as an
//! FLR does (configuration registers here; the accessors reset the MSI-X
//! tables, and the rest of BAR memory keeps its contents), and holds them
//! in reset, unreachable, until it is released. Each slot has its own copy
//! of the function's [`Template`] (the module parameters' one, or a
//! configfs device's) and says whether it has a DMA engine. A function with
//! an SR-IOV capability has up to seven Virtual Functions, functions 1 to 7
//! of its slot, which answer only while its VF Enable is set (sriov.rs).
//! Plain data,
//! guarded by the host's raw spinlock; the accessors call in with
//! interrupts off.

use crate::{
    bridge::{PortEffect, RootPort},
    config::{ConfigSpace, Effect, Template},
    layout::{Layout, MAX_SLOTS},
    sriov::{self, VfSpace, VfTemplate, MAX_VFS},
};
use kernel::{bindings, prelude::*};

/// Power-on values and masks of the Root Port and of the functions.
pub(crate) struct Templates {
    /// The Root Port's type 1 header.
    pub(crate) port: Template,
    /// The type 0 header of the functions the module parameters describe
    /// (created at load and by debugfs `new_device`); each slot has a copy
    /// of its function's template in the [`Fabric`].
    pub(crate) func: Template,
}

/// What a configuration write did beyond storing bits, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// Nothing else.
    None,
    /// The function in this slot reset itself (FLR, D3hot to D0).
    FunctionReset(usize),
    /// The Virtual Function (slot, function number) reset itself (FLR,
    /// D3hot to D0); it has no state in BAR memory.
    VfReset(usize, usize),
    /// Secondary Bus Reset was asserted: every function on the secondary
    /// bus was reset and is held in reset.
    BusResetAsserted,
    /// Secondary Bus Reset was released.
    BusResetReleased,
}

/// Who answers a configuration request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Port,
    Function(usize),
    /// Virtual Function `.1` (0-based: function `.1 + 1`) of the PF in
    /// slot `.0`.
    Vf(usize, usize),
}

/// What became of the vectors a function raised, and of its INTx line,
/// since it was added (debugfs `irqs`; see irq.rs and intx.rs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Zeroable)]
pub(crate) struct IrqStats {
    /// Sent, and a Linux interrupt raised for it.
    pub(crate) delivered: u32,
    /// Masked: the pending bit was set.
    pub(crate) pending: u32,
    /// Interrupts off, or the function may not send: nothing happened.
    pub(crate) disabled: u32,
    /// Sent, but refused by the bus's MSI domain (not its doorbell, not
    /// the sender's own number, or no interrupt mapped to it).
    pub(crate) dropped: u32,
    /// INTx: the line signalled, and its Linux interrupt raised (see
    /// intx.rs).
    pub(crate) intx_delivered: u32,
    /// INTx: the line asserted, but held by the function (INTX_DISABLE
    /// set, or not in D0).
    pub(crate) intx_masked: u32,
    /// INTx: the line signalled, but no Linux interrupt is mapped to it
    /// (no driver ever bound the function).
    pub(crate) intx_dropped: u32,
}

/// What a function's DMA engine did since it was added (debugfs `dma`;
/// see dma.rs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Zeroable)]
pub(crate) struct DmaStats {
    /// Jobs ended (done or failed).
    pub(crate) jobs: u64,
    /// Jobs that failed.
    pub(crate) errors: u64,
    /// Bytes the successful jobs copied.
    pub(crate) bytes: u64,
    /// Time the engine spent on jobs.
    pub(crate) busy_ns: u64,
}

/// The Root Port and every slot behind it. All zeroes is a valid state:
/// port powered off, every slot empty.
#[derive(Zeroable)]
pub(crate) struct Fabric {
    port: RootPort,
    present: [bool; MAX_SLOTS],
    funcs: [ConfigSpace; MAX_SLOTS],
    /// Power-on values and masks of the function in each slot.
    templates: [Template; MAX_SLOTS],
    /// Whether the function in each slot has a DMA engine.
    engines: [bool; MAX_SLOTS],
    resets: [u32; MAX_SLOTS],
    irqs: [IrqStats; MAX_SLOTS],
    dma: [DmaStats; MAX_SLOTS],
    /// The Virtual Functions of the function in each slot, if it is a PF.
    vfs: [[VfSpace; MAX_VFS]; MAX_SLOTS],
    /// Power-on values and masks of every Virtual Function.
    vf_template: VfTemplate,
}

impl Fabric {
    /// Powers the Root Port on and programs it as firmware does, with bus
    /// numbers and with windows that cover every slot of `layout`.
    pub(crate) fn power_on_port(&mut self, t: &Template, layout: &Layout) {
        self.reset_port(t);
        self.port.program(t, layout);
    }

    /// Powers the Root Port on, unprogrammed: no bus numbers, no windows.
    pub(crate) fn reset_port(&mut self, t: &Template) {
        self.port.reset(t);
    }

    /// Puts a function described by `t` in `slot`, in its power-on state,
    /// with its BARs at `bar0` and `bar2` as firmware programs them, and
    /// without a DMA engine (see [`Fabric::set_dma`]).
    pub(crate) fn power_on(&mut self, t: &Template, slot: usize, bar0: u64, bar2: u64) {
        let (Some(cfg), Some(own)) = (self.funcs.get_mut(slot), self.templates.get_mut(slot))
        else {
            return;
        };
        own.clone_from(t);
        sriov::place(own, slot);
        let t = &*own;
        cfg.reset(t);
        let bar = bindings::PCI_BASE_ADDRESS_0 as usize;
        cfg.write(t, bar, 4, bar0 as u32);
        cfg.write(t, bar + 4, 4, (bar0 >> 32) as u32);
        cfg.write(t, bar + 8, 4, bar2 as u32);
        self.present[slot] = true;
        self.resets[slot] = 0;
        self.irqs[slot] = IrqStats::default();
        self.dma[slot] = DmaStats::default();
        self.engines[slot] = false;
        if sriov::has_cap(t) {
            self.vf_template = sriov::vf_template();
        }
    }

    /// Gives the function in `slot` a DMA engine, or takes it away.
    pub(crate) fn set_dma(&mut self, slot: usize, dma: bool) {
        if let Some(e) = self.engines.get_mut(slot) {
            *e = dma;
        }
    }

    /// Whether the function in `slot` has a DMA engine.
    pub(crate) fn has_dma(&self, slot: usize) -> bool {
        self.present(slot) && self.engines.get(slot).copied().unwrap_or(false)
    }

    /// The template of the function in `slot` (blank if it never held one).
    pub(crate) fn template(&self, slot: usize) -> Option<&Template> {
        self.templates.get(slot)
    }

    /// Empties `slot`.
    pub(crate) fn remove(&mut self, slot: usize) {
        if let Some(p) = self.present.get_mut(slot) {
            *p = false;
        }
    }

    /// Whether a function sits in `slot`.
    pub(crate) fn present(&self, slot: usize) -> bool {
        self.present.get(slot).copied().unwrap_or(false)
    }

    /// How often the function in `slot` was reset since it was added.
    pub(crate) fn resets(&self, slot: usize) -> u32 {
        self.resets.get(slot).copied().unwrap_or(0)
    }

    /// The config space of the function in `slot`, unless the slot is
    /// empty or the function is held in reset (it can then do nothing).
    pub(crate) fn function_mut(&mut self, slot: usize) -> Option<&mut ConfigSpace> {
        if self.port.in_reset() || !self.present(slot) {
            return None;
        }
        self.funcs.get_mut(slot)
    }

    /// The interrupt counters of the function in `slot`.
    pub(crate) fn irq_stats(&self, slot: usize) -> IrqStats {
        self.irqs.get(slot).copied().unwrap_or_default()
    }

    /// Updates the interrupt counters of the function in `slot`.
    pub(crate) fn count_irq(&mut self, slot: usize, f: impl FnOnce(&mut IrqStats)) {
        if let Some(stats) = self.irqs.get_mut(slot) {
            f(stats);
        }
    }

    /// The DMA counters of the function in `slot`.
    pub(crate) fn dma_stats(&self, slot: usize) -> DmaStats {
        self.dma.get(slot).copied().unwrap_or_default()
    }

    /// Updates the DMA counters of the function in `slot`.
    pub(crate) fn count_dma(&mut self, slot: usize, f: impl FnOnce(&mut DmaStats)) {
        if let Some(stats) = self.dma.get_mut(slot) {
            f(stats);
        }
    }

    fn route(&self, bus: u8, devfn: u32) -> Option<Target> {
        if bus == 0 {
            return (devfn == 0).then_some(Target::Port);
        }
        // A bus in reset does not answer; nor do buses the port does not
        // lead to (there is nothing below the secondary bus).
        if self.port.in_reset() || bus != self.port.secondary() {
            return None;
        }
        let (slot, f) = ((devfn >> 3) as usize, (devfn & 7) as usize);
        if !self.present.get(slot).copied().unwrap_or(false) {
            return None;
        }
        if f == 0 {
            return Some(Target::Function(slot));
        }
        (f <= usize::from(sriov::enabled_vfs(&self.funcs[slot]))).then_some(Target::Vf(slot, f - 1))
    }

    /// The number of Virtual Functions of the PF in `slot` that answer
    /// (0 while VF Enable is clear, or if it is no PF).
    pub(crate) fn enabled_vfs(&self, slot: usize) -> u16 {
        if !self.present(slot) {
            return 0;
        }
        self.funcs.get(slot).map_or(0, sriov::enabled_vfs)
    }

    /// Reads `size` bytes at `offset` of the function at `bus`/`devfn`;
    /// `None` if nothing answers there.
    pub(crate) fn read(&self, bus: u8, devfn: u32, offset: usize, size: usize) -> Option<u32> {
        match self.route(bus, devfn)? {
            Target::Port => Some(self.port.read(offset, size)),
            Target::Function(s) => Some(self.funcs[s].read(offset, size)),
            Target::Vf(s, v) => Some(sriov::read_vf(
                &self.vfs[s][v],
                &self.funcs[s],
                offset,
                size,
            )),
        }
    }

    /// Writes `size` bytes of `value` at `offset` of the function at
    /// `bus`/`devfn` and carries out what the write triggers; `None` if
    /// nothing answers there. `port` is the Root Port's template.
    pub(crate) fn write(
        &mut self,
        port: &Template,
        bus: u8,
        devfn: u32,
        offset: usize,
        size: usize,
        value: u32,
    ) -> Option<Event> {
        match self.route(bus, devfn)? {
            Target::Port => Some(match self.port.write(port, offset, size, value) {
                PortEffect::None => Event::None,
                PortEffect::ResetAsserted => {
                    self.reset_secondary();
                    Event::BusResetAsserted
                }
                PortEffect::ResetReleased => Event::BusResetReleased,
            }),
            Target::Function(s) => {
                let enabled = sriov::vf_enable(&self.funcs[s]);
                let effect =
                    sriov::write_pf(&mut self.funcs[s], &self.templates[s], offset, size, value);
                if !enabled && sriov::vf_enable(&self.funcs[s]) {
                    // VF Enable rose: the VFs come out of reset.
                    for vf in &mut self.vfs[s] {
                        vf.reset(&self.vf_template);
                    }
                }
                Some(match effect {
                    Effect::None => Event::None,
                    Effect::Reset => {
                        self.resets[s] = self.resets[s].wrapping_add(1);
                        Event::FunctionReset(s)
                    }
                })
            }
            Target::Vf(s, v) => Some(
                match self.vfs[s][v].write(&self.vf_template, offset, size, value) {
                    Effect::None => Event::None,
                    Effect::Reset => Event::VfReset(s, v + 1),
                },
            ),
        }
    }

    /// Resets every function on the secondary bus, as a conventional reset
    /// does.
    fn reset_secondary(&mut self) {
        for s in 0..MAX_SLOTS {
            if self.present[s] {
                self.funcs[s].reset(&self.templates[s]);
                self.resets[s] = self.resets[s].wrapping_add(1);
            }
        }
    }
}
