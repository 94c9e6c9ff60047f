// SPDX-License-Identifier: GPL-2.0

//! A raw spinlock that disables interrupts while held.
//!
//! PCI configuration accessors may be called with interrupts off and, on
//! x86 (`PCI_LOCKLESS_CONFIG`), without any lock of the PCI core: they need
//! their own lock that never sleeps, even on PREEMPT_RT. The kernel crate
//! has no raw spinlock, so this is a [`Backend`] for `raw_spinlock_t`, built
//! on the helpers of kernel patch 0005.

use kernel::{
    bindings,
    sync::lock::{Backend, Lock},
};

/// A `raw_spinlock_t` taken with `raw_spin_lock_irqsave()`.
pub(crate) type RawSpinLockIrq<T> = Lock<T, RawSpinLockIrqBackend>;

/// Creates a [`RawSpinLockIrq`] initialiser with a new lock class.
macro_rules! new_raw_spinlock_irq {
    ($inner:expr, $name:literal $(,)?) => {
        $crate::raw_lock::RawSpinLockIrq::new(
            $inner,
            kernel::optional_name!($name),
            kernel::static_lock_class!(),
        )
    };
}
pub(crate) use new_raw_spinlock_irq;

extern "C" {
    /// Patch 0005's `rust_helper___raw_spin_lock_init()`: the lock with
    /// its lockdep class, right with and without `CONFIG_DEBUG_SPINLOCK`.
    /// Declared by its link name because with `CONFIG_DEBUG_SPINLOCK` the C
    /// function `__raw_spin_lock_init()` exists too, takes a fourth argument
    /// (the wait type), and is what `bindings::__raw_spin_lock_init` then
    /// names. `key` is a `struct lock_class_key *` (an empty struct
    /// without lockdep, which Rust does not pass through FFI).
    #[link_name = "rust_helper___raw_spin_lock_init"]
    fn raw_spin_lock_init_helper(
        lock: *mut bindings::raw_spinlock_t,
        name: *const kernel::ffi::c_char,
        key: *mut kernel::ffi::c_void,
    );
}

/// The [`Backend`] of [`RawSpinLockIrq`]; the guard keeps the saved
/// interrupt flags.
pub(crate) struct RawSpinLockIrqBackend;

// SAFETY: `raw_spinlock_t` ensures mutual exclusion; the guard state carries
// the interrupt flags from lock to unlock, and `relock` uses the default,
// which takes the lock the same way again.
unsafe impl Backend for RawSpinLockIrqBackend {
    type State = bindings::raw_spinlock_t;
    type GuardState = kernel::ffi::c_ulong;

    unsafe fn init(
        ptr: *mut Self::State,
        name: *const kernel::ffi::c_char,
        key: *mut bindings::lock_class_key,
    ) {
        // SAFETY: the caller guarantees `ptr` is valid for writes and that
        // `name` and `key` stay valid for the lock's lifetime.
        unsafe { raw_spin_lock_init_helper(ptr, name, key.cast()) }
    }

    unsafe fn lock(ptr: *mut Self::State) -> Self::GuardState {
        // SAFETY: the caller guarantees `ptr` is an initialised lock.
        unsafe { bindings::raw_spin_lock_irqsave(ptr) }
    }

    unsafe fn try_lock(ptr: *mut Self::State) -> Option<Self::GuardState> {
        let mut flags = 0;
        // SAFETY: the caller guarantees `ptr` is an initialised lock;
        // `flags` is a valid place for the saved flags.
        (unsafe { bindings::raw_spin_trylock_irqsave(ptr, &mut flags) } != 0).then_some(flags)
    }

    unsafe fn unlock(ptr: *mut Self::State, flags: &Self::GuardState) {
        // SAFETY: the caller guarantees it holds the lock, taken with the
        // flags it passes back.
        unsafe { bindings::raw_spin_unlock_irqrestore(ptr, *flags) }
    }

    unsafe fn assert_is_held(ptr: *mut Self::State) {
        // SAFETY: the caller guarantees `ptr` is an initialised lock.
        unsafe { bindings::raw_spin_assert_is_held(ptr) }
    }
}
