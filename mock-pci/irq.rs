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
//! A pending vector is not sent again when it is unmasked: an MSI-X unmask
//! is a plain write to BAR memory, which nothing traps. Software that polls
//! the pending bits (or raises the vector again) sees it.

use crate::{
    fabric::IrqStats,
    host::Host,
    message::Outcome,
    msi, msi_domain,
    msi_domain::Kind,
    msix::{self, ENTRY},
};
use kernel::{bindings, prelude::*};

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
            let may_send =
                cfg.read(bindings::PCI_COMMAND as usize, 2) & bindings::PCI_COMMAND_MASTER != 0
                    && cfg.power_state() == 0;
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
            let (to, to_kind, _) = msi_domain::decode(m.data);
            let ours =
                m.address == u64::from(msi_domain::DOORBELL) && to == slot && to_kind == kind;
            let delivered = ours && self.msi.deliver(m.data);
            self.fabric.lock().count_irq(slot, |s| {
                if delivered {
                    s.delivered += 1
                } else {
                    s.dropped += 1
                }
            });
        }
        Ok(())
    }

    /// The interrupt counters of the function in `slot`.
    pub(crate) fn irq_stats(&self, slot: usize) -> IrqStats {
        self.fabric.lock().irq_stats(slot)
    }
}
