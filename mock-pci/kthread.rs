// SPDX-License-Identifier: GPL-2.0

//! A kernel thread that runs until it is dropped (the DMA engine's poller),
//! and the scheduling calls of long-running work. The kernel crate has no
//! kthread abstraction; this is the thin layer.

use kernel::{bindings, ffi::c_void, prelude::*};

/// A running kernel thread; dropping it stops it (`kthread_stop()`, which
/// waits until the thread function returned).
pub(crate) struct Thread(*mut bindings::task_struct);

// SAFETY: a task pointer, only passed to `kthread_stop()`.
unsafe impl Send for Thread {}
// SAFETY: see `Send`.
unsafe impl Sync for Thread {}

/// Whether the current kernel thread was asked to stop.
pub(crate) fn should_stop() -> bool {
    // SAFETY: called from the thread's function.
    unsafe { bindings::kthread_should_stop() }
}

/// `cond_resched()`: as in C, nothing under full preemption
/// (`CONFIG_PREEMPTION` without `CONFIG_PREEMPT_DYNAMIC`). Process context,
/// no spinlock held.
pub(crate) fn cond_resched() {
    #[cfg(any(not(CONFIG_PREEMPTION), CONFIG_PREEMPT_DYNAMIC))]
    // SAFETY: see the function's doc: the caller may sleep.
    unsafe {
        bindings::__cond_resched();
    }
}

/// Sleeps between `min_us` and `max_us` microseconds.
pub(crate) fn sleep_us(min_us: u64, max_us: u64) {
    // SAFETY: called from process context (the thread's function).
    unsafe {
        bindings::usleep_range_state(
            min_us as usize,
            max_us as usize,
            bindings::TASK_INTERRUPTIBLE,
        )
    };
}

impl Thread {
    /// Starts `f(data)` in a new kernel thread named `name`.
    ///
    /// # Safety
    ///
    /// `data` stays valid for `f` until the returned `Thread` is dropped,
    /// and `f` returns once [`should_stop`] says so (and not before).
    pub(crate) unsafe fn spawn(
        f: unsafe extern "C" fn(*mut c_void) -> c_int,
        data: *mut c_void,
        name: &CStr,
    ) -> Result<Self> {
        // SAFETY: `name` is a plain string passed through "%s"; see the
        // function's safety section for `data`.
        let task = unsafe {
            bindings::kthread_create_on_node(
                Some(f),
                data,
                bindings::NUMA_NO_NODE,
                c"%s".as_char_ptr(),
                name.as_char_ptr(),
            )
        };
        let task = kernel::error::from_err_ptr(task)?;
        // SAFETY: a fresh, not yet running kthread.
        unsafe { bindings::wake_up_process(task) };
        Ok(Thread(task))
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        // SAFETY: the thread runs until asked to stop, so the task exists.
        unsafe { bindings::kthread_stop(self.0) };
    }
}
