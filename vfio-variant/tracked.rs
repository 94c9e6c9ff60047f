// SPDX-License-Identifier: GPL-2.0

//! A list of vmas to zap on revocation: the pre-2024 vfio-pci `vma_list`
//! under `vma_lock`, which legacy mode fills (a fault adds its vma, `close`
//! removes it) and every revocation walks.
//!
//! An entry holds its mm (`mmgrab`) and the vma's identity, never a
//! pointer to dereference: a zap takes the mm's mmap lock and finds the vma
//! among the mm's vmas. A listed vma is alive, because `close` removes it
//! under the list lock before the vma is freed.

use crate::vfio::{VmaId, Vmas};
use kernel::{
    mm::{virt::VmaRef, Mm},
    new_mutex,
    prelude::*,
    sync::{aref::ARef, lock::mutex::MutexBackend, lock::Guard, Mutex},
};

/// A faulted legacy vma.
pub(crate) struct Tracked {
    vma: VmaId,
    mm: ARef<Mm>,
}

/// The per-device list of faulted legacy vmas (the old `vma_list` under
/// `vma_lock`).
#[pin_data]
pub(crate) struct VmaList {
    #[pin]
    inner: Mutex<KVec<Tracked>>,
}

/// The list lock held with the list empty: revocation then takes
/// `memory_lock` for write, as the old `vfio_pci_zap_and_vma_lock()` did.
pub(crate) type EmptyList<'a> = Guard<'a, KVec<Tracked>, MutexBackend>;

/// The list lock held by a fault that may add its vma.
pub(crate) struct Locked<'a>(Guard<'a, KVec<Tracked>, MutexBackend>);

impl VmaList {
    /// An empty list.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self { inner <- new_mutex!(KVec::new()) })
    }

    /// Takes the list lock (lock order: mmap_lock -> list lock ->
    /// memory_lock).
    pub(crate) fn lock(&self) -> Locked<'_> {
        Locked(self.inner.lock())
    }

    /// Drops `vma` from the list (its `close`).
    pub(crate) fn remove(&self, vma: &VmaRef) {
        let id = VmaId::of(vma);
        self.inner.lock().retain(|t| t.vma != id);
    }

    /// Zaps every listed vma and returns with the list lock held and the
    /// list empty. Lock order is mmap_lock -> list lock -> memory_lock, so
    /// the list lock is dropped to take each mm's mmap lock, as the pre-6.10
    /// `vfio_pci_zap_and_vma_lock()` did.
    pub(crate) fn zap_and_lock(&self) -> EmptyList<'_> {
        loop {
            let mut list = self.inner.lock();
            let mut found = None;
            while let Some(t) = list.first() {
                if let Some(user) = t.mm.mmget_not_zero() {
                    found = Some(user);
                    break;
                }
                let _ = list.remove(0);
            }
            let Some(user) = found else {
                return list;
            };
            drop(list);
            let vmas = Vmas::lock(&user);
            let mut list = self.inner.lock();
            list.retain(|t| {
                if t.mm.as_raw() != user.as_raw() {
                    return true;
                }
                // Still listed, hence alive, and its mm is locked.
                if let Some(vma) = vmas.find(t.vma) {
                    vma.zap_vma_range(vma.start(), vma.end() - vma.start());
                }
                false
            });
            drop(list);
            drop(vmas);
        }
    }
}

impl Locked<'_> {
    /// Adds `vma` unless it is listed already.
    pub(crate) fn track(&mut self, vma: &VmaRef) -> Result {
        let id = VmaId::of(vma);
        if self.0.iter().any(|t| t.vma == id) {
            return Ok(());
        }
        let mm: &Mm = vma.mm();
        let t = Tracked {
            vma: id,
            mm: mm.into(),
        };
        self.0.push(t, GFP_KERNEL)?;
        Ok(())
    }
}
