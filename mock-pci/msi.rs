// SPDX-License-Identifier: GPL-2.0

//! The interrupt registers of a mock function: the Interrupt Pin and the
//! MSI and MSI-X capabilities, each optional (module parameters
//! `intx`, `msi_vectors`, `msix_vectors`).
//!
//! The PCI core and VFIO find, size, enable and mask the interrupts as on
//! hardware; [`raise`] and [`crate::msix::outcome`] are what the function
//! does when it raises a vector (see irq.rs for the delivery). The
//! capabilities follow the PCI Express capability at fixed offsets,
//! [`MSI_CAP`] then [`MSIX_CAP`], each linked only if present.
//!
//! - MSI: 64-bit addresses with per-vector masking. Message Control's
//!   Multiple Message Capable says how many vectors there are; Multiple
//!   Message Enable is read/write, and a value above the capable one (which
//!   software must not write) reads back as the capable one.
//! - MSI-X: Table Size, Function Mask and Enable; the table and the PBA
//!   are in BAR2 (see [`crate::msix`]).

use crate::{
    config::{ConfigSpace, Template, EXP_CAP},
    message::{Message, Outcome},
    msix,
};
use kernel::bindings;
use kernel::prelude::*;

/// Offset of the MSI capability, when there is one.
pub(crate) const MSI_CAP: usize = 0x90;
/// Offset of the MSI-X capability, when there is one.
pub(crate) const MSIX_CAP: usize = 0xb0;

/// Most MSI vectors a function can have (Multiple Message Capable 101b).
pub(crate) const MAX_MSI_VECTORS: u32 = 32;

/// Size of an MSI capability with 64-bit addresses and per-vector masking.
const MSI_CAP_SIZE: usize = bindings::PCI_MSI_PENDING_64 as usize + 4;
/// Size of an MSI-X capability.
const MSIX_CAP_SIZE: usize = bindings::PCI_MSIX_PBA as usize + 4;

const MSI_FLAGS: usize = MSI_CAP + bindings::PCI_MSI_FLAGS as usize;
pub(crate) const MSIX_FLAGS: usize = MSIX_CAP + bindings::PCI_MSIX_FLAGS as usize;
const MSI_QMASK: u32 = bindings::PCI_MSI_FLAGS_QMASK;
const MSI_QSIZE: u32 = bindings::PCI_MSI_FLAGS_QSIZE;

const _: () = assert!(EXP_CAP + crate::config::EXP_CAP_SIZE <= MSI_CAP);
const _: () = assert!(MSI_CAP + MSI_CAP_SIZE <= MSIX_CAP);
const _: () = assert!(MSIX_CAP + MSIX_CAP_SIZE <= crate::config::CFG_SIZE);

/// Which interrupts a mock function has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Irqs {
    /// MSI vectors: 0 (no MSI capability) or a power of two up to
    /// [`MAX_MSI_VECTORS`].
    pub(crate) msi: u32,
    /// MSI-X table entries: 0 (no MSI-X capability) up to
    /// [`msix::MAX_VECTORS`], the table and PBA fitting the upper half of
    /// BAR2.
    pub(crate) msix: u32,
    /// Interrupt Pin INTA#.
    pub(crate) intx: bool,
}

/// Adds the interrupt registers of `irqs` to `t`, a function's template
/// whose capability list ends at the PCI Express capability; `table` is
/// where the MSI-X table lies if `irqs` has MSI-X. Nothing changes for
/// `Irqs::default()`.
pub(crate) fn init(t: &mut Template, irqs: &Irqs, table: Option<&msix::Table>) {
    if irqs.intx {
        t.set8(bindings::PCI_INTERRUPT_PIN as usize, 1);
    }
    let mut next = EXP_CAP + 1;
    if irqs.msi != 0 {
        t.set8(next, MSI_CAP as u8);
        next = MSI_CAP + 1;
        init_msi(t, irqs.msi);
    }
    if let Some(table) = table {
        t.set8(next, MSIX_CAP as u8);
        init_msix(t, table);
    }
}

/// MSI capability with `vectors` vectors (a power of two), 64-bit
/// addresses and per-vector masking.
fn init_msi(t: &mut Template, vectors: u32) {
    let at = |reg: u32| MSI_CAP + reg as usize;
    t.set8(MSI_CAP, bindings::PCI_CAP_ID_MSI as u8);
    let mmc = vectors.trailing_zeros() << 1;
    let flags = mmc | bindings::PCI_MSI_FLAGS_64BIT | bindings::PCI_MSI_FLAGS_MASKBIT;
    t.set16(MSI_FLAGS, flags as u16);
    t.set_mask16(
        MSI_FLAGS,
        (bindings::PCI_MSI_FLAGS_ENABLE | MSI_QSIZE) as u16,
        0,
    );
    // The address is dword aligned: bits 1:0 read as zero.
    t.set_mask32(at(bindings::PCI_MSI_ADDRESS_LO), !3, 0);
    t.set_mask32(at(bindings::PCI_MSI_ADDRESS_HI), !0, 0);
    // Message Data: 16 bits (no Extended Message Data).
    t.set_mask16(at(bindings::PCI_MSI_DATA_64), 0xffff, 0);
    // One mask bit per vector; Pending Bits stay zero.
    let mask = u32::MAX >> (32 - vectors);
    t.set_mask32(at(bindings::PCI_MSI_MASK_64), mask, 0);
}

/// MSI-X capability with its table and PBA in BAR2 where `table` says.
fn init_msix(t: &mut Template, table: &msix::Table) {
    t.set8(MSIX_CAP, bindings::PCI_CAP_ID_MSIX as u8);
    t.set16(MSIX_FLAGS, (table.vectors() - 1) as u16);
    t.set_mask16(
        MSIX_FLAGS,
        (bindings::PCI_MSIX_FLAGS_MASKALL | bindings::PCI_MSIX_FLAGS_ENABLE) as u16,
        0,
    );
    let at = |reg: u32| MSIX_CAP + reg as usize;
    t.set32(at(bindings::PCI_MSIX_TABLE), table.offset() | msix::BIR);
    t.set32(at(bindings::PCI_MSIX_PBA), table.pba_offset() | msix::BIR);
}

/// After a write to the MSI capability of `c`, lowers Multiple Message
/// Enable to Multiple Message Capable if it asked for more vectors than the
/// function has.
pub(crate) fn clamp_mme<const N: usize>(c: &mut ConfigSpace<N>) {
    let flags = c.read(MSI_FLAGS, 2);
    let mmc = (flags & MSI_QMASK) >> 1;
    let mme = (flags & MSI_QSIZE) >> 4;
    if mme > mmc {
        c.set16(MSI_FLAGS, ((flags & !MSI_QSIZE) | mmc << 4) as u16);
    }
}

/// Vectors software enabled (Multiple Message Enable).
fn enabled_vectors(c: &ConfigSpace) -> u32 {
    1 << ((c.read(MSI_FLAGS, 2) & MSI_QSIZE) >> 4)
}

/// Checks that `vector` is one of the vectors software enabled: `EINVAL`
/// otherwise.
pub(crate) fn check_vector(c: &ConfigSpace, vector: u32) -> Result {
    if vector >= enabled_vectors(c) {
        pr_err!(
            "fire: MSI vector {} is not enabled: Multiple Message Enable allows {}\n",
            vector,
            enabled_vectors(c)
        );
        return Err(EINVAL);
    }
    Ok(())
}

/// Raises MSI vector `vector` (checked with [`check_vector`]) of a function
/// allowed to send: the message, with the vector number in the low bits of
/// the data as multiple-message MSI does, or its pending bit set if the
/// vector is masked.
pub(crate) fn raise(c: &mut ConfigSpace, vector: u32) -> Outcome {
    let at = |reg: u32| MSI_CAP + reg as usize;
    if c.read(MSI_FLAGS, 2) & bindings::PCI_MSI_FLAGS_ENABLE == 0 {
        return Outcome::Disabled;
    }
    if c.read(at(bindings::PCI_MSI_MASK_64), 4) >> vector & 1 != 0 {
        let pending = c.read(at(bindings::PCI_MSI_PENDING_64), 4) | 1 << vector;
        c.set32(at(bindings::PCI_MSI_PENDING_64), pending);
        return Outcome::Pending;
    }
    Outcome::Sent(message(c, vector))
}

/// The message of MSI vector `vector`: the capability's address, its data
/// with the vector number in the low bits multiple-message MSI lets the
/// function change.
fn message(c: &ConfigSpace, vector: u32) -> Message {
    let at = |reg: u32| MSI_CAP + reg as usize;
    let address = u64::from(c.read(at(bindings::PCI_MSI_ADDRESS_LO), 4))
        | u64::from(c.read(at(bindings::PCI_MSI_ADDRESS_HI), 4)) << 32;
    let data = c.read(at(bindings::PCI_MSI_DATA_64), 2) & !(enabled_vectors(c) - 1) | vector;
    Message { address, data }
}

/// Takes the pending vectors of an enabled MSI capability that are no
/// longer masked: clears their pending bits and returns them (a bit per
/// vector) with the message of vector 0, whose data's low bits the vector
/// number replaces. `None` if there are none.
pub(crate) fn take_unmasked_pending(c: &mut ConfigSpace) -> Option<(u32, Message)> {
    let at = |reg: u32| MSI_CAP + reg as usize;
    if c.read(MSI_FLAGS, 2) & bindings::PCI_MSI_FLAGS_ENABLE == 0 {
        return None;
    }
    let enabled = enabled_vectors(c);
    let pending = c.read(at(bindings::PCI_MSI_PENDING_64), 4);
    let mask = c.read(at(bindings::PCI_MSI_MASK_64), 4);
    let bits = pending & !mask & (u32::MAX >> (32 - enabled));
    if bits == 0 {
        return None;
    }
    c.set32(at(bindings::PCI_MSI_PENDING_64), pending & !bits);
    Some((bits, message(c, 0)))
}
