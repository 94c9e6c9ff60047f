// SPDX-License-Identifier: GPL-2.0

//! The device side of MSI and MSI-X: a mock function raising a vector, as
//! its hardware would, and the bus delivering the message.
//!
//! Raising vector N of a function ([`Host::fire`], debugfs `fire`):
//! 1. N must exist: below the MSI vectors software enabled (Multiple
//!    Message Enable), or below the MSI-X table size (`EINVAL`); the
//!    capability must exist (`ENODEV`).
//! 2. A function that may not send sends nothing (counted as disabled):
//!    held in reset, not in D0, bus mastering off, or the capability's
//!    enable bit clear.
//! 3. A masked vector (MSI per-vector mask; MSI-X function mask or the
//!    entry's mask bit) latches its pending bit (MSI Pending Bits, MSI-X
//!    PBA in BAR2) and sends nothing.
//! 4. Otherwise the function sends the message: the address and data of
//!    its MSI capability, or of the MSI-X table entry in BAR memory
//!    (whatever software wrote there, userspace included).
//! 5. The bus's MSI domain takes the message only if it is for its
//!    doorbell and names the sending function and kind (msi_domain.rs);
//!    otherwise, or if no Linux interrupt is mapped to it, it is dropped
//!    and counted. Delivery runs the interrupt's handler (vfio-pci's
//!    signals its eventfd) after the host's lock is released.
//!
//! A pending vector is sent, and its pending bit cleared, once software
//! unmasks it: an MSI-X unmask is a plain write to BAR memory that nothing
//! traps, so the device thread (poller.rs) looks at the pending bits on
//! each poll ([`Host::poll_pending`]): within about 10 ms.

use crate::{
    config::ConfigSpace,
    fabric::IrqStats,
    host::Host,
    message::{Message, Outcome},
    msi, msi_domain,
    msi_domain::Kind,
    msix::{self, ENTRY},
};
use kernel::{bindings, prelude::*};

/// Vectors sent per function and poll when software unmasked them.
const BATCH: usize = 64;

/// Whether a function may send messages at all: bus master, in D0.
fn may_send(cfg: &ConfigSpace) -> bool {
    cfg.read(bindings::PCI_COMMAND as usize, 2) & bindings::PCI_COMMAND_MASTER != 0
        && cfg.power_state() == 0
}

impl Host {
    /// Raises vector `vector` of `kind` of the function in `slot`.
    pub(crate) fn fire(&self, slot: usize, kind: Kind, vector: u32) -> Result {
        let bar2 = self.layout.bar2(slot);
        let outcome = {
            let mut fabric = self.fabric.lock();
            let (has_msi, table) = fabric
                .template(slot)
                .map_or((false, None), |t| (t.has_msi(), t.msix().copied()));
            let Some(cfg) = fabric.function_mut(slot) else {
                pr_err!("fire: slot {} is empty or held in reset\n", slot);
                return Err(ENODEV);
            };
            let may_send = may_send(cfg);
            let outcome = match kind {
                Kind::Msi => {
                    if !has_msi {
                        pr_err!("fire: the function in slot {} has no MSI\n", slot);
                        return Err(ENODEV);
                    }
                    msi::check_vector(cfg, vector)?;
                    if may_send {
                        msi::raise(cfg, vector)
                    } else {
                        Outcome::Disabled
                    }
                }
                Kind::MsiX => {
                    let Some(table) = table else {
                        pr_err!("fire: the function in slot {} has no MSI-X\n", slot);
                        return Err(ENODEV);
                    };
                    let Some(at) = table.entry(vector) else {
                        pr_err!(
                            "fire: MSI-X vector {} is beyond the table ({} entries)\n",
                            vector,
                            table.vectors()
                        );
                        return Err(EINVAL);
                    };
                    if may_send {
                        let mut entry = [0u8; ENTRY];
                        self.window.read(bar2 + at, &mut entry)?;
                        let o = msix::outcome(cfg.read(msi::MSIX_FLAGS, 2), &entry);
                        if o == Outcome::Pending {
                            let (at, bit) = table.pending_bit(vector);
                            let mut byte = [0u8];
                            self.window.read(bar2 + at, &mut byte)?;
                            byte[0] |= bit;
                            self.window.write(bar2 + at, &byte)?;
                        }
                        o
                    } else {
                        Outcome::Disabled
                    }
                }
            };
            fabric.count_irq(slot, |s| match outcome {
                Outcome::Pending => s.pending += 1,
                Outcome::Disabled => s.disabled += 1,
                Outcome::Sent(_) => {}
            });
            outcome
        };
        if let Outcome::Sent(m) = outcome {
            self.send(slot, kind, m);
        }
        Ok(())
    }

    /// Delivers message `m` the function in `slot` sent (without the
    /// host's lock held), if the bus's MSI domain takes it, and counts
    /// what became of it.
    fn send(&self, slot: usize, kind: Kind, m: Message) {
        let (to, to_kind, _) = msi_domain::decode(m.data);
        let ours = m.address == u64::from(msi_domain::DOORBELL) && to == slot && to_kind == kind;
        let delivered = ours && self.msi.deliver(m.data);
        self.fabric.lock().count_irq(slot, |s| {
            if delivered {
                s.delivered += 1
            } else {
                s.dropped += 1
            }
        });
    }

    /// Sends the pending vectors of every function that software unmasked
    /// since, clearing their pending bits, as hardware does on unmask (the
    /// device thread calls this on each poll). Says whether it sent any.
    pub(crate) fn poll_pending(&self) -> bool {
        let mut sent = false;
        for slot in 0..self.layout.slots() {
            sent |= self.send_unmasked_pending(slot);
        }
        sent
    }

    /// [`Host::poll_pending`] for one function, at most [`BATCH`] vectors
    /// at a time.
    fn send_unmasked_pending(&self, slot: usize) -> bool {
        let mut out = [(
            Kind::Msi,
            Message {
                address: 0,
                data: 0,
            },
        ); BATCH];
        let mut n = 0;
        {
            let mut fabric = self.fabric.lock();
            let (has_msi, table) = fabric
                .template(slot)
                .map_or((false, None), |t| (t.has_msi(), t.msix().copied()));
            let Some(cfg) = fabric.function_mut(slot) else {
                return false;
            };
            if !may_send(cfg) {
                return false;
            }
            if has_msi {
                if let Some((bits, m)) = msi::take_unmasked_pending(cfg) {
                    for v in (0..32).filter(|v| bits >> v & 1 != 0) {
                        out[n] = (
                            Kind::Msi,
                            Message {
                                data: m.data | v,
                                ..m
                            },
                        );
                        n += 1;
                    }
                }
            }
            if let Some(table) = table {
                let flags = cfg.read(msi::MSIX_FLAGS, 2);
                let bar2 = self.layout.bar2(slot);
                n += self.take_msix_pending(&table, flags, bar2, &mut out[n..]);
            }
        }
        for &(kind, m) in &out[..n] {
            self.send(slot, kind, m);
        }
        n > 0
    }

    /// Takes up to `out.len()` unmasked pending MSI-X vectors of the
    /// function whose BAR2 is at `bar2` and whose Message Control is
    /// `flags`: clears their PBA bits and returns how many messages it put
    /// in `out`.
    fn take_msix_pending(
        &self,
        table: &msix::Table,
        flags: u32,
        bar2: u64,
        out: &mut [(Kind, Message)],
    ) -> usize {
        let enabled = flags & bindings::PCI_MSIX_FLAGS_ENABLE != 0;
        if !enabled || flags & bindings::PCI_MSIX_FLAGS_MASKALL != 0 {
            return 0;
        }
        let mut n = 0;
        for word in 0..table.vectors().div_ceil(64) {
            let (at, _) = table.pending_bit(word * 64);
            let mut bytes = [0u8; 8];
            if self.window.read(bar2 + at, &mut bytes).is_err() {
                return n;
            }
            let mut pba = u64::from_le_bytes(bytes);
            let before = pba;
            for b in (0..64).filter(|b| before >> b & 1 != 0) {
                let Some(entry_at) = table.entry(word * 64 + b) else {
                    break;
                };
                let mut entry = [0u8; ENTRY];
                if n == out.len() || self.window.read(bar2 + entry_at, &mut entry).is_err() {
                    break;
                }
                if let Outcome::Sent(m) = msix::outcome(flags, &entry) {
                    out[n] = (Kind::MsiX, m);
                    n += 1;
                    pba &= !(1 << b);
                }
            }
            if pba != before && self.window.write(bar2 + at, &pba.to_le_bytes()).is_err() {
                return n;
            }
        }
        n
    }

    /// The interrupt counters of the function in `slot`.
    pub(crate) fn irq_stats(&self, slot: usize) -> IrqStats {
        self.fabric.lock().irq_stats(slot)
    }
}
