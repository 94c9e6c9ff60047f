// SPDX-License-Identifier: GPL-2.0

//! The control interface in debugfs, `/sys/kernel/debug/mock_pci/`:
//!
//! * `new_device`: write a slot number to hot-add a device there;
//! * `del_device`: write a slot number to hot-remove its device (the bound
//!   driver's remove runs first; for VFIO that waits until users close it);
//! * `devices`: one line per device: address, slot, BAR addresses and sizes;
//! * `<DDDD:01:SS.0>/bar0`, `bar2`: the module's own view of a device's BAR
//!   memory, readable and writable at any offset;
//! * `<DDDD:01:SS.0>/resets`: how often the function was reset since it was
//!   added (FLR, D3hot to D0, Secondary Bus Reset), for tests;
//! * `<DDDD:01:SS.0>/fire`: write `msi N` or `msix N` to make the function
//!   raise vector N as its hardware would (irq.rs), `intx 1` or `intx 0`
//!   to assert or deassert its INTx line (intx.rs);
//! * `<DDDD:01:SS.0>/irqs`: what became of the vectors it raised and of
//!   its INTx line: `delivered D pending P disabled S dropped X
//!   intx_delivered I intx_masked M intx_dropped Y`;
//! * `<DDDD:01:SS.0>/dma` (with `dma=1`): what its DMA engine did:
//!   `jobs J errors E bytes B busy_ns T`.
//!
//! This follows netdevsim's `new_device`/`del_device` convention; sysfs
//! `remove` and `/sys/bus/pci/rescan` work on the devices too.

use crate::{bridge::SECONDARY_BUS, host::Host, msi_domain::Kind};
use kernel::{
    debugfs::{BinaryReader, BinaryWriter, Dir, File, Scope},
    fmt,
    fs::file::Offset,
    new_mutex,
    prelude::*,
    str::CString,
    sync::{Arc, Mutex},
    uaccess::{UserSliceReader, UserSliceWriter},
};

/// A reference to the `Host`, which outlives the [`Control`] that holds it.
#[derive(Clone, Copy)]
struct HostRef(*const Host);

// SAFETY: `Host` is `Sync`; the pointer stays valid while any holder lives
// (`MockPci` drops its `Control` before its `Host`).
unsafe impl Send for HostRef {}
// SAFETY: see `Send`.
unsafe impl Sync for HostRef {}

impl HostRef {
    fn get(&self) -> &Host {
        // SAFETY: see the type's `Send` impl.
        unsafe { &*self.0 }
    }
}

/// One BAR as seen through the module's own mapping.
struct BarView {
    host: HostRef,
    phys: u64,
    size: u64,
}

/// The per-device directory's data.
struct DeviceView {
    bar0: BarView,
    bar2: BarView,
    resets: ResetsView,
    irqs: SlotView,
}

/// One function, for the `fire`, `irqs` and `dma` files.
struct SlotView {
    host: HostRef,
    slot: usize,
}

/// A function's reset count.
struct ResetsView {
    host: HostRef,
    slot: usize,
}

/// The debugfs directory of one device, by slot, and whether a configfs
/// device owns the slot (`del_device` then refuses it).
type DeviceDirs = KVec<(usize, bool, Pin<KBox<Scope<DeviceView>>>)>;

/// State shared by the control files.
#[pin_data]
struct Ctl {
    host: HostRef,
    root: Dir,
    #[pin]
    views: Mutex<DeviceDirs>,
}

/// The control files; removed when dropped.
pub(crate) struct Control {
    _files: KVec<Pin<KBox<File<Arc<Ctl>>>>>,
    ctl: Arc<Ctl>,
}

impl Control {
    /// Creates the control files for `host` and a directory per device.
    ///
    /// `host` must outlive the returned `Control`.
    pub(crate) fn create(host: &Host) -> Result<Self> {
        let ctl = Arc::pin_init(
            pin_init!(Ctl {
                host: HostRef(host),
                root: Dir::new(c"mock_pci"),
                views <- new_mutex!(KVec::new()),
            }),
            GFP_KERNEL,
        )?;
        let root = &ctl.root;
        let mut files = KVec::new();
        push_file(
            &mut files,
            root.write_callback_file(c"new_device", ctl.clone(), &new_device),
        )?;
        push_file(
            &mut files,
            root.write_callback_file(c"del_device", ctl.clone(), &del_device),
        )?;
        push_file(
            &mut files,
            root.read_callback_file(c"devices", ctl.clone(), &show_devices),
        )?;
        for slot in 0..host.layout.slots() {
            if host.fabric.lock().present(slot) {
                ctl.add_view(slot, false)?;
            }
        }
        Ok(Control { _files: files, ctl })
    }

    /// What configfs devices use to plug and unplug themselves.
    pub(crate) fn handle(&self) -> Handle {
        Handle(self.ctl.clone())
    }
}

/// The host and the control files, for configfs devices: they plug and
/// unplug through the host and get a debugfs directory, like `new_device`.
/// Valid while the [`Control`] it came from lives (`MockPci` unregisters
/// the configfs subsystem, which removes every device, first).
#[derive(Clone)]
pub(crate) struct Handle(Arc<Ctl>);

impl Handle {
    /// The host.
    pub(crate) fn host(&self) -> &Host {
        self.0.host.get()
    }

    /// Hot-adds a configfs device described by `t` (see [`Host::plug`])
    /// and gives it a debugfs directory; returns the slot.
    pub(crate) fn plug(
        &self,
        slot: Option<usize>,
        t: &crate::config::Template,
        dma: bool,
        who: fmt::Arguments<'_>,
    ) -> Result<usize> {
        let slot = self.host().plug(slot, t, dma, who)?;
        if let Err(e) = self.0.add_view(slot, true) {
            pr_warn!("slot {}: no debugfs view of its BARs ({:?})\n", slot, e);
        }
        Ok(slot)
    }

    /// Hot-removes the configfs device in `slot` (see [`Host::unplug`]).
    pub(crate) fn unplug(&self, slot: usize) -> Result {
        self.0.remove_view(slot);
        self.host().unplug(slot)
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.ctl.views.lock().clear();
    }
}

impl Ctl {
    fn add_view(&self, slot: usize, configfs: bool) -> Result {
        let host = self.host.get();
        let l = &host.layout;
        let (bars, dma) = {
            let fabric = host.fabric.lock();
            let bars = fabric.template(slot).map(|t| t.bars()).ok_or(EINVAL)?;
            (bars, fabric.has_dma(slot))
        };
        let view = DeviceView {
            bar0: BarView {
                host: self.host,
                phys: l.bar0(slot),
                size: bars.bar0,
            },
            bar2: BarView {
                host: self.host,
                phys: l.bar2(slot),
                size: bars.bar2,
            },
            resets: ResetsView {
                host: self.host,
                slot,
            },
            irqs: SlotView {
                host: self.host,
                slot,
            },
        };
        let name = CString::try_from_fmt(fmt!(
            "{:04x}:{:02x}:{:02x}.0",
            host.domain,
            SECONDARY_BUS,
            slot
        ))?;
        let scope = KBox::pin_init(
            self.root.scope(view, &name, |v, dir| {
                dir.read_write_binary_file(c"bar0", &v.bar0);
                dir.read_write_binary_file(c"bar2", &v.bar2);
                dir.read_callback_file(c"resets", &v.resets, &show_resets);
                dir.write_only_callback_file(c"fire", &v.irqs, &fire);
                dir.read_callback_file(c"irqs", &v.irqs, &show_irqs);
                if dma {
                    dir.read_callback_file(c"dma", &v.irqs, &show_dma);
                }
            }),
            GFP_KERNEL,
        )?;
        self.views
            .lock()
            .push((slot, configfs, scope), GFP_KERNEL)?;
        Ok(())
    }

    fn remove_view(&self, slot: usize) {
        self.views.lock().retain(|(s, _, _)| *s != slot);
    }

    /// Whether a configfs device owns `slot`.
    fn configfs_owns(&self, slot: usize) -> bool {
        self.views.lock().iter().any(|(s, c, _)| *s == slot && *c)
    }

    /// Parses a slot number written to `file`.
    fn slot(&self, file: &str, r: &mut UserSliceReader) -> Result<usize> {
        let mut buf = [0u8; 16];
        let text = read_text(r, &mut buf, file, "a slot number")?;
        let max = self.host.get().layout.slots();
        match text.parse::<usize>() {
            Ok(slot) if slot < max => Ok(slot),
            Ok(slot) => {
                pr_err!(
                    "{}: slot {} is out of range: use 0 to {}\n",
                    file,
                    slot,
                    max - 1
                );
                Err(EINVAL)
            }
            Err(_) => {
                pr_err!(
                    "{}: '{}' is not a slot number: write a number from 0 to {}\n",
                    file,
                    text,
                    max - 1
                );
                Err(EINVAL)
            }
        }
    }
}

/// What was written to `file`, trimmed (empty if it is not UTF-8), read
/// into `buf`; `EINVAL` and a line saying to write `what` if it does not
/// fit.
fn read_text<'a>(
    r: &mut UserSliceReader,
    buf: &'a mut [u8],
    file: &str,
    what: &str,
) -> Result<&'a str> {
    let n = r.len();
    if n > buf.len() {
        pr_err!("{}: input too long: write {}\n", file, what);
        return Err(EINVAL);
    }
    r.read_slice(&mut buf[..n])?;
    Ok(core::str::from_utf8(&buf[..n]).map(str::trim).unwrap_or(""))
}

/// Creates a debugfs file and keeps it in `files`.
fn push_file<T>(files: &mut KVec<Pin<KBox<File<T>>>>, file: impl PinInit<File<T>>) -> Result {
    files.push(KBox::pin_init(file, GFP_KERNEL)?, GFP_KERNEL)?;
    Ok(())
}

fn new_device(ctl: &Arc<Ctl>, r: &mut UserSliceReader) -> Result {
    let slot = ctl.slot("new_device", r)?;
    let host = ctl.host.get();
    host.plug(
        Some(slot),
        &host.templates.func,
        host.dma,
        fmt!("new_device"),
    )?;
    if let Err(e) = ctl.add_view(slot, false) {
        pr_warn!("slot {}: no debugfs view of its BARs ({:?})\n", slot, e);
    }
    Ok(())
}

fn del_device(ctl: &Arc<Ctl>, r: &mut UserSliceReader) -> Result {
    let slot = ctl.slot("del_device", r)?;
    if ctl.configfs_owns(slot) {
        pr_err!(
            "del_device {}: a configfs device owns slot {}: write 0 to its enable (/sys/kernel/config/mock_pci/NAME/enable)\n",
            slot,
            slot
        );
        return Err(EBUSY);
    }
    ctl.remove_view(slot);
    ctl.host.get().unplug(slot)
}

fn show_devices(ctl: &Arc<Ctl>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let host = ctl.host.get();
    let l = &host.layout;
    for slot in 0..l.slots() {
        let bars = {
            let fabric = host.fabric.lock();
            fabric
                .template(slot)
                .filter(|_| fabric.present(slot))
                .map(|t| t.bars())
        };
        if let Some(bars) = bars {
            writeln!(
                f,
                "{:04x}:{:02x}:{:02x}.0 slot {} bar0 {:#x}+{:#x} bar2 {:#x}+{:#x}",
                host.domain,
                SECONDARY_BUS,
                slot,
                slot,
                l.bar0(slot),
                bars.bar0,
                l.bar2(slot),
                bars.bar2
            )?;
        }
    }
    Ok(())
}

/// What `fire` was asked to do.
enum Fire {
    Vector(Kind, u32),
    Intx(bool),
}

/// `fire`: `msi N`, `msix N`, `intx 1` or `intx 0`.
fn fire(v: &SlotView, r: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 32];
    let text = read_text(r, &mut buf, "fire", "'msi N', 'msix N' or 'intx 1|0'")?;
    let mut words = text.split_ascii_whitespace();
    let (first, second) = (words.next(), words.next());
    let vector = second.and_then(|w| w.parse::<u32>().ok());
    let what = match (first, second, words.next()) {
        (Some("msi"), Some(_), None) => vector.map(|n| Fire::Vector(Kind::Msi, n)),
        (Some("msix"), Some(_), None) => vector.map(|n| Fire::Vector(Kind::MsiX, n)),
        (Some("intx"), Some("1"), None) => Some(Fire::Intx(true)),
        (Some("intx"), Some("0"), None) => Some(Fire::Intx(false)),
        _ => None,
    };
    let host = v.host.get();
    match what {
        Some(Fire::Vector(kind, vector)) => host.fire(v.slot, kind, vector),
        Some(Fire::Intx(level)) => host.fire_intx(v.slot, level),
        None => {
            pr_err!(
                "fire: '{}' is not 'msi N', 'msix N' (N: a vector number) or 'intx 1' / 'intx 0'\n",
                text
            );
            Err(EINVAL)
        }
    }
}

fn show_irqs(v: &SlotView, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let s = v.host.get().irq_stats(v.slot);
    writeln!(
        f,
        "delivered {} pending {} disabled {} dropped {} intx_delivered {} intx_masked {} intx_dropped {}",
        s.delivered,
        s.pending,
        s.disabled,
        s.dropped,
        s.intx_delivered,
        s.intx_masked,
        s.intx_dropped
    )
}

fn show_dma(v: &SlotView, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let s = v.host.get().dma_stats(v.slot);
    writeln!(
        f,
        "jobs {} errors {} bytes {} busy_ns {}",
        s.jobs, s.errors, s.bytes, s.busy_ns
    )
}

fn show_resets(v: &ResetsView, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let resets = v.host.get().fabric.lock().resets(v.slot);
    writeln!(f, "{}", resets)
}

/// Bytes moved through a stack buffer per step.
const CHUNK: usize = 256;

impl BarView {
    /// The part of `[offset, offset + len)` inside the BAR.
    fn span(&self, offset: Offset, len: usize) -> Option<(u64, usize)> {
        let pos = u64::try_from(offset).ok().filter(|&p| p < self.size)?;
        Some((pos, len.min((self.size - pos) as usize)))
    }
}

impl BinaryWriter for BarView {
    fn write_to_slice(&self, w: &mut UserSliceWriter, offset: &mut Offset) -> Result<usize> {
        let Some((pos, len)) = self.span(*offset, w.len()) else {
            return Ok(0);
        };
        let mut buf = [0u8; CHUNK];
        for done in (0..len).step_by(CHUNK) {
            let n = CHUNK.min(len - done);
            self.host
                .get()
                .window
                .read(self.phys + pos + done as u64, &mut buf[..n])?;
            w.write_slice(&buf[..n])?;
        }
        *offset += len as Offset;
        Ok(len)
    }
}

impl BinaryReader for BarView {
    fn read_from_slice(&self, r: &mut UserSliceReader, offset: &mut Offset) -> Result<usize> {
        let Some((pos, len)) = self.span(*offset, r.len()) else {
            return Err(ENOSPC);
        };
        let mut buf = [0u8; CHUNK];
        for done in (0..len).step_by(CHUNK) {
            let n = CHUNK.min(len - done);
            r.read_slice(&mut buf[..n])?;
            self.host
                .get()
                .window
                .write(self.phys + pos + done as u64, &buf[..n])?;
        }
        *offset += len as Offset;
        Ok(len)
    }
}
