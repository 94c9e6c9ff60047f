// SPDX-License-Identifier: GPL-2.0

//! The MSI-X table and Pending Bit Array of a mock function: where they lie
//! in BAR2, and their reset state.
//!
//! Both live in the upper half of BAR2, the table at `bar2_size / 2` and
//! the PBA right after it (8-byte aligned), so the lower half stays free
//! for device registers. They are plain BAR memory: software reads and
//! writes them through its mappings as on hardware, and nothing traps the
//! accesses. What the module does is what a reset does to them on
//! hardware: at power-on and on every conventional or function level reset
//! (FLR, D3hot to D0, Secondary Bus Reset) every entry comes back masked
//! (Vector Control bit 0 set; address and data zero) and no vector is
//! pending. The rest of BAR memory keeps its contents across resets.

use crate::{
    config::Template,
    message::{Message, Outcome},
    window::Window,
};
use kernel::{bindings, prelude::*};

/// Most MSI-X table entries a function can have (Table Size is 11 bits).
pub(crate) const MAX_VECTORS: u32 = 2048;

/// Bytes of one table entry.
pub(crate) const ENTRY: usize = bindings::PCI_MSIX_ENTRY_SIZE as usize;

/// BAR that holds the table and the PBA.
pub(crate) const BIR: u32 = 2;

/// Where the table and the PBA of a function lie in BAR2 (none: no
/// entries, the default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Zeroable)]
pub(crate) struct Table {
    vectors: u32,
    offset: u32,
}

impl Table {
    /// The table of `vectors` entries (1 to [`MAX_VECTORS`]) in a BAR2 of
    /// `bar2_size` bytes, which [`Table::fits`] must hold.
    pub(crate) fn new(vectors: u32, bar2_size: u64) -> Self {
        Table {
            vectors,
            offset: (bar2_size / 2) as u32,
        }
    }

    /// Bytes the table and the PBA of `vectors` entries take together.
    pub(crate) fn footprint(vectors: u32) -> u64 {
        let n = u64::from(vectors);
        n * ENTRY as u64 + n.div_ceil(64) * 8
    }

    /// Whether the table and the PBA of `vectors` entries fit in the upper
    /// half of a BAR2 of `bar2_size` bytes.
    pub(crate) fn fits(vectors: u32, bar2_size: u64) -> bool {
        Self::footprint(vectors) <= bar2_size / 2
    }

    /// The smallest BAR2 size (a power of two, at least `min`) whose upper
    /// half holds the table and the PBA of `vectors` entries.
    pub(crate) fn min_bar2(vectors: u32, min: u64) -> u64 {
        (2 * Self::footprint(vectors)).next_power_of_two().max(min)
    }

    /// Number of entries.
    pub(crate) fn vectors(&self) -> u32 {
        self.vectors
    }

    /// Offset of the table in BAR2.
    pub(crate) fn offset(&self) -> u32 {
        self.offset
    }

    /// Offset of the PBA in BAR2: right after the table, 8-byte aligned.
    pub(crate) fn pba_offset(&self) -> u32 {
        (self.offset + self.vectors * ENTRY as u32).next_multiple_of(8)
    }

    /// Offset in BAR2 of entry `vector`, if the table has it.
    pub(crate) fn entry(&self, vector: u32) -> Option<u64> {
        (vector < self.vectors).then(|| u64::from(self.offset) + u64::from(vector) * ENTRY as u64)
    }

    /// Offset in BAR2 of the PBA byte that holds `vector`'s pending bit,
    /// and the bit in it.
    pub(crate) fn pending_bit(&self, vector: u32) -> (u64, u8) {
        (u64::from(self.pba_offset() + vector / 8), 1 << (vector % 8))
    }

    /// Bytes of the PBA: one bit per entry, in 64-bit words.
    fn pba_len(&self) -> usize {
        self.vectors.div_ceil(64) as usize * 8
    }

    /// Writes the reset state of the table and the PBA through `write`
    /// (offset in BAR2, bytes): every entry masked with address and data
    /// zero, no bit pending. Writes nothing else. Does not sleep.
    pub(crate) fn reset_with(&self, mut write: impl FnMut(u64, &[u8]) -> Result) -> Result {
        // Sixteen masked entries, copied as often as the table needs.
        let mut buf = [0u8; 16 * ENTRY];
        let ctrl = bindings::PCI_MSIX_ENTRY_VECTOR_CTRL as usize;
        for entry in buf.chunks_exact_mut(ENTRY) {
            entry[ctrl..ctrl + 4]
                .copy_from_slice(&bindings::PCI_MSIX_ENTRY_CTRL_MASKBIT.to_le_bytes());
        }
        let len = self.vectors as usize * ENTRY;
        for at in (0..len).step_by(buf.len()) {
            let n = buf.len().min(len - at);
            write(u64::from(self.offset) + at as u64, &buf[..n])?;
        }
        // At most 2048 bits: 256 bytes, the size of `buf`.
        buf.fill(0);
        write(u64::from(self.pba_offset()), &buf[..self.pba_len()])
    }
}

/// Resets the MSI-X table and PBA, if functions of template `t` have
/// them, of the function whose BAR2 is at physical address `bar2`, through
/// the module's mapping of the window. Does not sleep: the configuration
/// accessors call it under the host's raw spinlock when a write resets a
/// function.
pub(crate) fn reset(window: &Window, t: &Template, bar2: u64) -> Result {
    match t.msix() {
        Some(table) => table.reset_with(|at, bytes| window.write(bar2 + at, bytes)),
        None => Ok(()),
    }
}

/// What a function with MSI-X Message Control `flags` does when it raises
/// the vector whose table entry is `entry`: the entry's message, or
/// pending if the function or the entry is masked (the caller sets the PBA
/// bit).
pub(crate) fn outcome(flags: u32, entry: &[u8; ENTRY]) -> Outcome {
    let word = |i: usize| u32::from_le_bytes([entry[i], entry[i + 1], entry[i + 2], entry[i + 3]]);
    if flags & bindings::PCI_MSIX_FLAGS_ENABLE == 0 {
        return Outcome::Disabled;
    }
    let ctrl = word(bindings::PCI_MSIX_ENTRY_VECTOR_CTRL as usize);
    if flags & bindings::PCI_MSIX_FLAGS_MASKALL != 0
        || ctrl & bindings::PCI_MSIX_ENTRY_CTRL_MASKBIT != 0
    {
        return Outcome::Pending;
    }
    let address = u64::from(word(bindings::PCI_MSIX_ENTRY_LOWER_ADDR as usize))
        | u64::from(word(bindings::PCI_MSIX_ENTRY_UPPER_ADDR as usize)) << 32;
    Outcome::Sent(Message {
        address,
        data: word(bindings::PCI_MSIX_ENTRY_DATA as usize),
    })
}
