// SPDX-License-Identifier: GPL-2.0

//! The device thread of a host: what the mock functions do on their own,
//! since their BAR memory is plain memory that nothing traps. Each poll
//! runs the DMA jobs whose doorbell software rang (dma.rs) and sends the
//! pending MSI and MSI-X vectors software unmasked (irq.rs). It polls every
//! 50-100 us while there is work, and backs off to 10 ms after 200 idle
//! polls (about 20 ms).

use crate::{host::Host, kthread};
use kernel::{ffi::c_void, prelude::*, str::CString};

/// Idle polls before the thread slows down.
const BUSY_POLLS: u32 = 200;

/// # Safety
///
/// `data` is the `Host`, which stops the thread before it goes away.
unsafe extern "C" fn device_thread(data: *mut c_void) -> c_int {
    // SAFETY: see the function's safety section.
    let host = unsafe { &*data.cast::<Host>() };
    let mut idle = 0u32;
    while !kthread::should_stop() {
        // Only functions with a DMA engine are polled (`Fabric::has_dma`).
        let dma = host.dma_poll();
        if host.poll_pending() || dma {
            idle = 0;
        } else {
            idle = idle.saturating_add(1);
        }
        if idle < BUSY_POLLS {
            kthread::sleep_us(50, 100);
        } else {
            kthread::sleep_us(10_000, 11_000);
        }
    }
    0
}

/// Starts the device thread of `host`, `mock_pci/DOMAIN`.
///
/// # Safety
///
/// The returned thread is dropped before `host` is.
pub(crate) unsafe fn start(host: &Host) -> Result<kthread::Thread> {
    let name = CString::try_from_fmt(fmt!("mock_pci/{:x}", host.domain))?;
    // SAFETY: see the function's safety section.
    unsafe {
        kthread::Thread::spawn(
            device_thread,
            core::ptr::from_ref(host).cast_mut().cast(),
            &name,
        )
    }
}
