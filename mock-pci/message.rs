// SPDX-License-Identifier: GPL-2.0

//! What a function does when it raises an interrupt vector: send a message
//! (a memory write of `data` to `address`), latch it as pending because the
//! vector is masked, or nothing at all because its interrupts are off.

/// An MSI or MSI-X message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) address: u64,
    pub(crate) data: u32,
}

/// The outcome of raising a vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The function sent this message.
    Sent(Message),
    /// The vector is masked: its pending bit is set, nothing is sent.
    Pending,
    /// The capability is disabled, or the function may not send (no bus
    /// mastering, not in D0): nothing is sent or latched.
    Disabled,
}
