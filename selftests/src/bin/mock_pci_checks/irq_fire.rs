// SPDX-License-Identifier: GPL-2.0

//! Interrupt delivery end to end through stock vfio-pci. mock-pci's
//! debugfs `fire` (`msi N`, `msix N`) makes a function send vector N as
//! hardware would, and `irqs` counts what became of each attempt:
//! `delivered` (sent and a Linux interrupt raised), `pending` (masked:
//! the pending bit latched, nothing sent), `disabled` (MSI/MSI-X or bus
//! master off, not in D0: nothing sent or latched), `dropped` (sent, but
//! the bus's MSI domain refused it). With the device opened on the group
//! path, bus master on and 4 eventfds per index:
//!
//! * b. MSI-X vectors 0..3: each fire signals exactly its own eventfd
//!   once, `delivered` +1 each, and /proc/interrupts counts one interrupt
//!   on each `vfio-msix[v]` line, whose chip is `MOCK-PCI-MSIX-BDF` (the
//!   function's PCI/MSI-X domain on mock-pci's MSI parent);
//! * c. isolation: an entry whose data names another function, the other
//!   kind or a vector with no interrupt, or whose address is not the
//!   doorbell, is `dropped`, and no eventfd fires (when the function in
//!   the next slot is bound to vfio-pci too, its MSI-X vector 0, the one
//!   the forged data names, is enabled, and its eventfd must stay quiet);
//! * d. masking: a masked entry, and the MSI-X Function Mask, latch the
//!   PBA bit (`pending`), and no eventfd fires; once the Function Mask is
//!   cleared, the pending vector is sent once and its PBA bit cleared (the
//!   entry still masked stays pending);
//! * e. bus master off, then MSI-X disabled (SET_IRQS count 0): `disabled`;
//! * f. MSI with 4 vectors (Multiple Message Enable 2): `msi 0..3` signal
//!   their own eventfd, `msi 4` is EINVAL, a masked vector latches its
//!   Pending Bit and is sent once unmasked;
//! * g. bad input (`msix 99999`, `bogus 1`, `msix`, `msix TABLE_SIZE`):
//!   EINVAL and no counter moves.
//!
//! Table entries are rewritten through mock-pci's debugfs `bar2` (the
//! device's own view of its memory), masks through sysfs `config` (past
//! VFIO's virtualization of the capabilities).

use crate::common::{ensure, hw_config, hw_config_write};
use std::fmt;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::time::Duration;
use vfio_revoke_selftests::error::{last_os, Context, Result};
use vfio_revoke_selftests::sysfs::{self, MOCK_DEBUGFS};
use vfio_revoke_selftests::uapi;
use vfio_revoke_selftests::vfio::{Device, Path};
use vfio_revoke_selftests::{err, poll, sys};

/// The only address mock-pci's MSI domain decodes (address_hi 0).
const DOORBELL: u32 = 0xfeef_f000;
/// Vectors enabled per index.
const VECTORS: usize = 4;
/// How long an expected outcome may take to show (TCG is slow).
const WAIT: Duration = Duration::from_secs(2);
/// How long an eventfd that must stay quiet is given to fire anyway.
const QUIET: Duration = Duration::from_millis(100);

/// How long a pending vector may take to be sent once unmasked: the device
/// thread polls every 10 ms when idle; TCG is slow.
const UNMASK_LIMIT: Duration = Duration::from_secs(2);

/// mock-pci's `irqs` counters of one function: MSI and MSI-X, then INTx
/// (intx.rs of this crate).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub delivered: u64,
    pub pending: u64,
    pub disabled: u64,
    pub dropped: u64,
    pub intx_delivered: u64,
    pub intx_masked: u64,
    pub intx_dropped: u64,
}

/// The format of `irqs`.
const IRQS_FORMAT: &str = "delivered D pending P disabled S dropped X intx_delivered I intx_masked M intx_dropped Y";

impl Counts {
    /// Parses [`IRQS_FORMAT`].
    fn parse(s: &str) -> Option<Self> {
        let w: Vec<&str> = s.split_whitespace().collect();
        match w[..] {
            [
                "delivered",
                d,
                "pending",
                p,
                "disabled",
                s,
                "dropped",
                x,
                "intx_delivered",
                i,
                "intx_masked",
                m,
                "intx_dropped",
                y,
            ] => Some(Counts {
                delivered: d.parse().ok()?,
                pending: p.parse().ok()?,
                disabled: s.parse().ok()?,
                dropped: x.parse().ok()?,
                intx_delivered: i.parse().ok()?,
                intx_masked: m.parse().ok()?,
                intx_dropped: y.parse().ok()?,
            }),
            _ => None,
        }
    }

    fn total(&self) -> u64 {
        self.delivered
            + self.pending
            + self.disabled
            + self.dropped
            + self.intx_delivered
            + self.intx_masked
            + self.intx_dropped
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "delivered {} pending {} disabled {} dropped {} intx_delivered {} intx_masked {} intx_dropped {}",
            self.delivered,
            self.pending,
            self.disabled,
            self.dropped,
            self.intx_delivered,
            self.intx_masked,
            self.intx_dropped
        )
    }
}

/// What a fire must come to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Delivered,
    Pending,
    Disabled,
    Dropped,
}

impl Outcome {
    /// `c` with this outcome counted once more.
    fn add(self, mut c: Counts) -> Counts {
        match self {
            Outcome::Delivered => c.delivered += 1,
            Outcome::Pending => c.pending += 1,
            Outcome::Disabled => c.disabled += 1,
            Outcome::Dropped => c.dropped += 1,
        }
        c
    }

    fn name(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Pending => "pending",
            Outcome::Disabled => "disabled",
            Outcome::Dropped => "dropped",
        }
    }
}

/// mock-pci's debugfs files of one function.
pub struct Mock {
    pub dir: String,
    bar2: fs::File,
}

impl Mock {
    pub fn new(bdf: &str) -> Result<Self> {
        let dir = format!("{MOCK_DEBUGFS}/{bdf}");
        let p = format!("{dir}/bar2");
        let bar2 = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .ctx(format!("open {p}"))?;
        Ok(Mock { dir, bar2 })
    }

    pub fn counts(&self) -> Result<Counts> {
        let p = format!("{}/irqs", self.dir);
        let s = fs::read_to_string(&p).ctx(format!("read {p}"))?;
        Counts::parse(&s)
            .ok_or_else(|| err!("{p}: '{}' is not '{IRQS_FORMAT}'", s.trim()))
    }

    /// Writes `cmd` (and a newline, as `echo` does) to `fire`.
    pub fn fire(&self, cmd: &str) -> std::io::Result<()> {
        fs::OpenOptions::new()
            .write(true)
            .open(format!("{}/fire", self.dir))?
            .write_all(format!("{cmd}\n").as_bytes())
    }

    fn bar2_u32(&self, at: u64) -> Result<u32> {
        let mut b = [0u8; 4];
        self.bar2
            .read_exact_at(&mut b, at)
            .ctx(format!("read {}/bar2 at {at:#x}", self.dir))?;
        Ok(u32::from_le_bytes(b))
    }

    fn bar2_u64(&self, at: u64) -> Result<u64> {
        let mut b = [0u8; 8];
        self.bar2
            .read_exact_at(&mut b, at)
            .ctx(format!("read {}/bar2 at {at:#x}", self.dir))?;
        Ok(u64::from_le_bytes(b))
    }

    fn set_bar2_u32(&self, at: u64, v: u32) -> Result<()> {
        self.bar2
            .write_all_at(&v.to_le_bytes(), at)
            .ctx(format!("write {v:#x} to {}/bar2 at {at:#x}", self.dir))
    }
}

/// Nonblocking eventfds, one per vector.
pub struct EventFds(Vec<OwnedFd>);

impl EventFds {
    pub fn new(n: usize) -> Result<Self> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            // SAFETY: eventfd() takes two integers.
            let fd = unsafe { sys::eventfd(0, sys::EFD_NONBLOCK | sys::EFD_CLOEXEC) };
            if fd < 0 {
                return Err(last_os("eventfd"));
            }
            // SAFETY: eventfd() returned a new descriptor that we now own.
            v.push(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        Ok(EventFds(v))
    }

    pub fn raw(&self) -> Vec<RawFd> {
        self.0.iter().map(|f| f.as_raw_fd()).collect()
    }

    /// Reads (and so resets) eventfd `i`'s count: 0 if it has none.
    fn take(&self, i: usize) -> Result<u64> {
        let mut n = 0u64;
        // SAFETY: reads 8 bytes into `n`, which outlives the call.
        let r = unsafe { sys::read(self.0[i].as_raw_fd(), (&raw mut n).cast(), 8) };
        if r == 8 {
            return Ok(n);
        }
        let e = std::io::Error::last_os_error();
        if r < 0 && e.raw_os_error() == Some(sys::EAGAIN) {
            return Ok(0);
        }
        Err(err!("read eventfd {i}: {r} ({e})"))
    }

    /// Every eventfd's count, read and reset.
    pub fn take_all(&self) -> Result<Vec<u64>> {
        (0..self.0.len()).map(|i| self.take(i)).collect()
    }

    /// Waits up to `limit` for eventfd `i` to become readable.
    pub fn wait(&self, i: usize, limit: Duration) -> Result<()> {
        let mut p = sys::pollfd {
            fd: self.0[i].as_raw_fd(),
            events: sys::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        let r = unsafe { sys::poll(&mut p, 1, limit.as_millis() as i32) };
        if r < 0 {
            return Err(last_os(format!("poll eventfd {i}")));
        }
        Ok(())
    }
}

/// The expected eventfd counts: one on `signal`, none elsewhere.
fn one_on(n: usize, signal: Option<usize>) -> Vec<u64> {
    (0..n).map(|i| u64::from(Some(i) == signal)).collect()
}

/// Writes `cmd` to `fire`, which must be accepted; the counters must then
/// move by exactly one `want`, and eventfd `signal` (if any) count exactly
/// one interrupt while no other eventfd counts any.
fn fire_expect(
    mock: &Mock,
    efds: &EventFds,
    cmd: &str,
    want: Outcome,
    signal: Option<usize>,
) -> Result<Counts> {
    let before = mock.counts()?;
    mock.fire(cmd).map_err(|e| {
        err!(
            "write '{cmd}' to {}/fire: {e} (expected it accepted, then one {})",
            mock.dir,
            want.name()
        )
    })?;
    let expected = want.add(before);
    let mut now = Ok(before);
    poll::wait_for(WAIT, || {
        now = mock.counts();
        !matches!(&now, Ok(c) if c.total() == before.total())
    });
    let now = now?;
    ensure(now == expected, || {
        format!(
            "'{cmd}': irqs went from '{before}' to '{now}', expected '{expected}' (one {})",
            want.name()
        )
    })?;
    match signal {
        Some(v) => efds.wait(v, WAIT)?,
        None => std::thread::sleep(QUIET),
    }
    let got = efds.take_all()?;
    let expected_fds = one_on(got.len(), signal);
    ensure(got == expected_fds, || {
        format!(
            "'{cmd}' ({}): eventfd counts {got:?}, expected {expected_fds:?}",
            want.name()
        )
    })?;
    let after = mock.counts()?;
    ensure(after == now, || {
        format!("'{cmd}': irqs moved again after the outcome: '{now}' then '{after}'")
    })?;
    Ok(now)
}

/// Writes `cmd` to `fire`, which must be refused with `errno`; no counter
/// may move and no eventfd fire.
fn fire_refused(mock: &Mock, efds: &EventFds, cmd: &str, errno: i32) -> Result<()> {
    let before = mock.counts()?;
    let r = mock.fire(cmd);
    let want = std::io::Error::from_raw_os_error(errno);
    match &r {
        Err(e) if e.raw_os_error() == Some(errno) => {}
        Err(e) => return Err(err!("write '{cmd}' to fire: {e}, expected {want}")),
        Ok(()) => return Err(err!("write '{cmd}' to fire accepted, expected {want}")),
    }
    std::thread::sleep(QUIET);
    let after = mock.counts()?;
    ensure(after == before, || {
        format!("refused '{cmd}' moved irqs: '{before}' to '{after}'")
    })?;
    let got = efds.take_all()?;
    ensure(got.iter().all(|&n| n == 0), || {
        format!("refused '{cmd}': eventfd counts {got:?}, expected none")
    })
}

/// The /proc/interrupts lines of `bdf`'s VFIO interrupts named
/// `{prefix}[v]` (vfio-pci names them `vfio-msix[v](BDF)`): for each `v`
/// in `0..n`, the line (spaces squeezed) and its count summed over CPUs.
fn proc_interrupts(bdf: &str, prefix: &str, n: usize) -> Result<Vec<Option<(String, u64)>>> {
    let s = fs::read_to_string("/proc/interrupts").ctx("read /proc/interrupts")?;
    Ok((0..n)
        .map(|v| {
            let name = format!("{prefix}[{v}]({bdf})");
            s.lines().find(|l| l.contains(&name)).map(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                let total = words
                    .iter()
                    .skip(1)
                    .map_while(|w| w.parse::<u64>().ok())
                    .sum();
                (words.join(" "), total)
            })
        })
        .collect())
}

/// Every `{prefix}[v]` line of `bdf` exists, names `chip`, and counted
/// exactly one interrupt.
fn check_proc_interrupts(bdf: &str, prefix: &str, chip: &str) -> Result<()> {
    let lines = proc_interrupts(bdf, prefix, VECTORS)?;
    for (v, l) in lines.iter().enumerate() {
        let Some((line, total)) = l else {
            return Err(err!(
                "/proc/interrupts has no {prefix}[{v}]({bdf}) line while the vectors are enabled"
            ));
        };
        println!("  /proc/interrupts: {line}");
        ensure(line.contains(chip), || {
            format!("/proc/interrupts line of {prefix}[{v}] does not name {chip}: {line}")
        })?;
        ensure(*total == 1, || {
            format!("/proc/interrupts counts {total} interrupts of {prefix}[{v}], expected 1")
        })?;
    }
    Ok(())
}

/// Where the MSI-X table and PBA are, from the capability.
struct Msix {
    cap: u64,
    entries: u64,
    table: u64,
    pba: u64,
}

impl Msix {
    fn entry(&self, i: u64, field: u64) -> u64 {
        self.table + i * uapi::PCI_MSIX_ENTRY_SIZE + field
    }

    fn find(dev: &Device) -> Result<Self> {
        let cap = dev
            .find_cap(uapi::PCI_CAP_ID_MSIX)?
            .ok_or_else(|| err!("{}: no MSI-X capability (load with msix_vectors=)", dev.bdf))?;
        let ctrl = dev.config_u16(cap + uapi::PCI_MSIX_FLAGS)?;
        let table = dev.config_u32(cap + uapi::PCI_MSIX_TABLE)?;
        let pba = dev.config_u32(cap + uapi::PCI_MSIX_PBA)?;
        let bir = uapi::PCI_MSIX_TABLE_BIR;
        ensure(table & bir == 2 && pba & bir == 2, || {
            format!("MSI-X table ({table:#x}) and PBA ({pba:#x}) are not both in BAR2")
        })?;
        Ok(Msix {
            cap,
            entries: u64::from(ctrl & uapi::PCI_MSIX_FLAGS_QSIZE) + 1,
            table: u64::from(table & !bir),
            pba: u64::from(pba & !bir),
        })
    }
}

/// `bdf`'s device number (the slot on mock-pci's bus).
fn slot_of(bdf: &str) -> Result<u32> {
    let devfn = bdf.rsplit(':').next().unwrap_or("");
    devfn
        .split('.')
        .next()
        .and_then(|d| u32::from_str_radix(d, 16).ok())
        .ok_or_else(|| err!("{bdf}: no device number"))
}

/// The message data mock-pci's MSI domain gives a vector.
fn msg_data(slot: u32, msix: bool, vector: u32) -> u32 {
    slot << 12 | u32::from(msix) << 11 | vector
}

fn errno_text(e: i32) -> String {
    std::io::Error::from_raw_os_error(e).to_string()
}

/// The function in the next slot, when it is bound to stock vfio-pci
/// too: opened with its MSI-X vector 0 on an eventfd, so that a Linux
/// interrupt is mapped at the number the isolation step's forged message
/// names, and a domain that delivered it would signal this eventfd.
struct Neighbour {
    bdf: String,
    _dev: Device,
    efds: EventFds,
}

impl Neighbour {
    fn open(bdf: &str, slot: u32) -> Result<Option<Self>> {
        let (bus, devfn) = bdf.rsplit_once(':').unwrap_or((bdf, ""));
        let func = devfn.split('.').nth(1).unwrap_or("0");
        let nbdf = format!("{bus}:{:02x}.{func}", slot + 1);
        if sysfs::driver(&nbdf).as_deref() != Some("vfio-pci") {
            println!("  {nbdf} is not bound to vfio-pci: step c's forged message names a number with no interrupt mapped");
            return Ok(None);
        }
        let dev = Device::open(&nbdf, Path::Group)?;
        let efds = EventFds::new(1)?;
        dev.set_irq_eventfds(uapi::VFIO_PCI_MSIX_IRQ_INDEX, 0, &efds.raw())?;
        let x = Msix::find(&dev)?;
        let data = Mock::new(&nbdf)?.bar2_u32(x.entry(0, uapi::PCI_MSIX_ENTRY_DATA))?;
        let want = msg_data(slot + 1, true, 0);
        ensure(data == want, || {
            format!("{nbdf}'s MSI-X entry 0 has data {data:#x}, expected {want:#x}")
        })?;
        println!("  {nbdf}: MSI-X vector 0 enabled on an eventfd (entry 0 data {data:#06x})");
        Ok(Some(Neighbour {
            bdf: nbdf,
            _dev: dev,
            efds,
        }))
    }

    /// Its eventfd stayed quiet.
    fn quiet(n: Option<&Self>, after: &str) -> Result<()> {
        let Some(n) = n else { return Ok(()) };
        let got = n.efds.take(0)?;
        ensure(got == 0, || {
            format!("{after}: {}'s MSI-X vector 0 eventfd counted {got}: another function's interrupt was raised", n.bdf)
        })
    }
}

/// Runs every step on `bdf`, which must be bound to stock vfio-pci.
pub fn run(bdf: &str) -> Result<()> {
    let drv = sysfs::driver(bdf);
    ensure(drv.as_deref() == Some("vfio-pci"), || {
        format!("{bdf} is bound to {drv:?}, not the stock vfio-pci")
    })?;
    let slot = slot_of(bdf)?;
    let dev = Device::open(bdf, Path::Group)?;
    let mock = Mock::new(bdf)?;

    // a. Bus master (and memory) on, as the device holds COMMAND.
    dev.set_memory(true)?;
    dev.set_master(true)?;
    let cmd = hw_config(bdf, uapi::PCI_COMMAND, 2)? as u16;
    let both = uapi::PCI_COMMAND_MASTER | uapi::PCI_COMMAND_MEMORY;
    ensure(cmd & both == both, || {
        format!("the device's COMMAND is {cmd:#06x} after setting bus master and memory through VFIO")
    })?;
    println!(
        "ok: a. COMMAND {cmd:#06x} in the device (bus master and memory on); irqs: {}",
        mock.counts()?
    );

    let neighbour = Neighbour::open(bdf, slot)?;
    msix_steps(&dev, &mock, bdf, slot, neighbour.as_ref())?;
    let efds = msi_steps(&dev, &mock, bdf, slot)?;

    // g. Bad input, with both indexes disabled.
    let table_size = Msix::find(&dev)?.entries;
    let at_size = format!("msix {table_size}");
    for cmd in ["msix 99999", "bogus 1", "msix", "msi", at_size.as_str()] {
        fire_refused(&mock, &efds, cmd, sys::EINVAL)?;
    }
    let c = fire_expect(
        &mock,
        &efds,
        &format!("msix {}", table_size - 1),
        Outcome::Disabled,
        None,
    )?;
    println!(
        "ok: g. 'msix 99999', 'bogus 1', 'msix', 'msi', 'msix {table_size}' (the table size): {}, no counter moved; 'msix {}' accepted (disabled); irqs: {c}",
        errno_text(sys::EINVAL),
        table_size - 1
    );
    Ok(())
}

/// Steps b to e: MSI-X delivery, isolation, masking, disable.
fn msix_steps(
    dev: &Device,
    mock: &Mock,
    bdf: &str,
    slot: u32,
    neighbour: Option<&Neighbour>,
) -> Result<()> {
    let info = dev.irq_info(uapi::VFIO_PCI_MSIX_IRQ_INDEX)?;
    ensure(info.count as usize >= VECTORS, || {
        format!("VFIO reports {} MSI-X vectors, {VECTORS} needed", info.count)
    })?;
    let x = Msix::find(dev)?;
    let bar2 = dev.region(2)?.size;
    ensure(x.table == bar2 / 2, || {
        format!(
            "MSI-X table at BAR2 + {:#x}, expected bar2_size / 2 = {:#x}",
            x.table,
            bar2 / 2
        )
    })?;
    let pba_want = (x.table + x.entries * uapi::PCI_MSIX_ENTRY_SIZE).next_multiple_of(8);
    ensure(x.pba == pba_want, || {
        format!("MSI-X PBA at BAR2 + {:#x}, expected {pba_want:#x}", x.pba)
    })?;

    // b. Four vectors, each its own eventfd.
    let efds = EventFds::new(VECTORS)?;
    dev.set_irq_eventfds(uapi::VFIO_PCI_MSIX_IRQ_INDEX, 0, &efds.raw())?;
    let ctrl = hw_config(bdf, x.cap + uapi::PCI_MSIX_FLAGS, 2)? as u16;
    ensure(
        ctrl & (uapi::PCI_MSIX_FLAGS_ENABLE | uapi::PCI_MSIX_FLAGS_MASKALL)
            == uapi::PCI_MSIX_FLAGS_ENABLE,
        || format!("MSI-X Message Control {ctrl:#06x} after SET_IRQS: expected enabled, not function-masked"),
    )?;
    for v in 0..VECTORS as u64 {
        let lo = mock.bar2_u32(x.entry(v, uapi::PCI_MSIX_ENTRY_LOWER_ADDR))?;
        let hi = mock.bar2_u32(x.entry(v, uapi::PCI_MSIX_ENTRY_UPPER_ADDR))?;
        let data = mock.bar2_u32(x.entry(v, uapi::PCI_MSIX_ENTRY_DATA))?;
        let ctl = mock.bar2_u32(x.entry(v, uapi::PCI_MSIX_ENTRY_VECTOR_CTRL))?;
        let want = msg_data(slot, true, v as u32);
        println!("  entry {v}: address {hi:#x}:{lo:#010x} data {data:#06x} vector control {ctl:#x}");
        ensure(
            lo == DOORBELL && hi == 0 && data == want && ctl & 1 == 0,
            || format!("MSI-X entry {v} as the kernel programmed it: address {hi:#x}:{lo:#x} data {data:#x} control {ctl:#x}; expected {DOORBELL:#x}, data {want:#x}, unmasked"),
        )?;
    }
    let start = mock.counts()?;
    for v in 0..VECTORS {
        fire_expect(mock, &efds, &format!("msix {v}"), Outcome::Delivered, Some(v))?;
    }
    let c = mock.counts()?;
    ensure(
        c.delivered == start.delivered + VECTORS as u64 && c.total() == start.total() + 4,
        || format!("irqs '{start}' then '{c}' after firing msix 0..3: expected delivered +4 and nothing else"),
    )?;
    check_proc_interrupts(bdf, "vfio-msix", "MOCK-PCI-MSIX")?;
    println!(
        "ok: b. MSI-X ({} entries, table at BAR2 + {:#x}, PBA at {:#x}): msix 0..3 each signalled only its own eventfd, once; irqs: {c}",
        x.entries, x.table, x.pba
    );

    // c. Isolation: messages the bus's MSI domain must refuse.
    let data0 = x.entry(0, uapi::PCI_MSIX_ENTRY_DATA);
    for (what, data) in [
        ("slot+1's vector 0 (another function)", msg_data(slot + 1, true, 0)),
        ("its own MSI vector 0 (the other kind)", msg_data(slot, false, 0)),
        ("its own MSI-X vector 5 (no interrupt mapped)", msg_data(slot, true, 5)),
    ] {
        mock.set_bar2_u32(data0, data)?;
        let c = fire_expect(mock, &efds, "msix 0", Outcome::Dropped, None)
            .ctx(format!("entry 0's data {data:#06x}, {what}"))?;
        Neighbour::quiet(neighbour, &format!("entry 0's data {data:#06x}"))?;
        println!("ok: c. entry 0's data rewritten to {data:#06x}, {what}: dropped, no eventfd; irqs: {c}");
    }
    let lo1 = x.entry(1, uapi::PCI_MSIX_ENTRY_LOWER_ADDR);
    let hi1 = x.entry(1, uapi::PCI_MSIX_ENTRY_UPPER_ADDR);
    for (what, at, v) in [
        ("address 0xfee00000 (not the doorbell)", lo1, 0xfee0_0000),
        ("the doorbell with address_hi 1", hi1, 1),
    ] {
        if at == hi1 {
            mock.set_bar2_u32(lo1, DOORBELL)?;
        }
        mock.set_bar2_u32(at, v)?;
        let c = fire_expect(mock, &efds, "msix 1", Outcome::Dropped, None)
            .ctx(format!("entry 1 with {what}"))?;
        Neighbour::quiet(neighbour, &format!("entry 1 with {what}"))?;
        println!("ok: c. entry 1 with {what}: dropped, no eventfd; irqs: {c}");
    }

    // d. Masking: the entry's mask bit, then the Function Mask.
    let pba0 = mock.bar2_u64(x.pba)?;
    ensure(pba0 == 0, || {
        format!("PBA bits 0..63 are {pba0:#x} before any vector was masked, expected 0")
    })?;
    let ctl2 = x.entry(2, uapi::PCI_MSIX_ENTRY_VECTOR_CTRL);
    let ctl = mock.bar2_u32(ctl2)?;
    mock.set_bar2_u32(ctl2, ctl | uapi::PCI_MSIX_ENTRY_CTRL_MASKBIT)?;
    let c = fire_expect(mock, &efds, "msix 2", Outcome::Pending, None)?;
    let pba = mock.bar2_u64(x.pba)?;
    ensure(pba == 1 << 2, || {
        format!("PBA bits 0..63 are {pba:#x} after firing masked entry 2, expected 0x4")
    })?;
    println!("ok: d. entry 2 masked: pending, no eventfd, PBA {pba:#x}; irqs: {c}");
    let flags_at = x.cap + uapi::PCI_MSIX_FLAGS;
    let ctrl = hw_config(bdf, flags_at, 2)? as u16;
    hw_config_write(
        bdf,
        flags_at,
        &(ctrl | uapi::PCI_MSIX_FLAGS_MASKALL).to_le_bytes(),
    )?;
    let masked = fire_expect(mock, &efds, "msix 3", Outcome::Pending, None)
        .ctx("MSI-X Function Mask set");
    let pba = mock.bar2_u64(x.pba);
    hw_config_write(bdf, flags_at, &ctrl.to_le_bytes())?;
    let c = masked?;
    let pba = pba?;
    ensure(pba == 1 << 2 | 1 << 3, || {
        format!("PBA bits 0..63 are {pba:#x} after firing entry 3 under the Function Mask, expected 0xc")
    })?;
    println!("ok: d. Function Mask set: msix 3 pending, no eventfd, PBA {pba:#x}; irqs: {c}");
    // Hardware sends a pending message once its vector is unmasked, and
    // clears the pending bit: vector 3 now (entry 2 stays masked). The
    // device thread polls the PBA, at least every ~10 ms.
    efds.wait(3, UNMASK_LIMIT).ctx("MSI-X vector 3 pending under the Function Mask, then unmasked")?;
    std::thread::sleep(QUIET);
    let (pba, fired, c) = (mock.bar2_u64(x.pba)?, efds.take_all()?, mock.counts()?);
    ensure(pba == 1 << 2 && fired == [0, 0, 0, 1], || {
        format!("after the Function Mask was cleared: PBA {pba:#x}, eventfds {fired:?}; expected PBA 0x4 (entry 2 still masked) and only vector 3 signalled, once")
    })?;
    println!("ok: d. Function Mask cleared: pending msix 3 sent once, PBA {pba:#x}; irqs: {c}");

    // e. Bus master off with MSI-X enabled, then MSI-X disabled.
    dev.set_master(false)?;
    let off = fire_expect(mock, &efds, "msix 3", Outcome::Disabled, None)
        .ctx("COMMAND bus master off");
    dev.set_master(true)?;
    let c = off?;
    println!("ok: e. bus master off: msix 3 disabled, no eventfd; irqs: {c}");
    let c = fire_expect(mock, &efds, "msix 3", Outcome::Delivered, Some(3))
        .ctx("bus master back on")?;
    println!("ok: e. bus master on again: msix 3 delivered to its eventfd; irqs: {c}");
    dev.disable_irqs(uapi::VFIO_PCI_MSIX_IRQ_INDEX)?;
    let ctrl = hw_config(bdf, flags_at, 2)? as u16;
    ensure(ctrl & uapi::PCI_MSIX_FLAGS_ENABLE == 0, || {
        format!("MSI-X Message Control {ctrl:#06x} after SET_IRQS count 0: still enabled")
    })?;
    let c = fire_expect(mock, &efds, "msix 3", Outcome::Disabled, None)
        .ctx("MSI-X disabled")?;
    let left = proc_interrupts(bdf, "vfio-msix", VECTORS)?;
    ensure(left.iter().all(Option::is_none), || {
        format!("vfio-msix lines of {bdf} left in /proc/interrupts after disable: {left:?}")
    })?;
    println!("ok: e. MSI-X disabled (SET_IRQS count 0, Message Control {ctrl:#06x}): msix 3 disabled, no eventfd; irqs: {c}");
    Ok(())
}

/// Step f: MSI with 4 vectors. Returns the eventfds (quiet, for step g).
fn msi_steps(dev: &Device, mock: &Mock, bdf: &str, slot: u32) -> Result<EventFds> {
    let info = dev.irq_info(uapi::VFIO_PCI_MSI_IRQ_INDEX)?;
    ensure(info.count as usize >= VECTORS, || {
        format!(
            "VFIO reports {} MSI vectors, {VECTORS} needed (load mock_pci with msi_vectors=4 or more)",
            info.count
        )
    })?;
    let cap = dev
        .find_cap(uapi::PCI_CAP_ID_MSI)?
        .ok_or_else(|| err!("{bdf}: no MSI capability"))?;
    let efds = EventFds::new(VECTORS)?;
    dev.set_irq_eventfds(uapi::VFIO_PCI_MSI_IRQ_INDEX, 0, &efds.raw())?;
    let flags = hw_config(bdf, cap + uapi::PCI_MSI_FLAGS, 2)? as u16;
    let mme = (flags & uapi::PCI_MSI_FLAGS_QSIZE) >> 4;
    ensure(
        flags & uapi::PCI_MSI_FLAGS_ENABLE != 0
            && flags & uapi::PCI_MSI_FLAGS_64BIT != 0
            && flags & uapi::PCI_MSI_FLAGS_MASKBIT != 0
            && mme == 2,
        || format!("MSI Message Control {flags:#06x} after SET_IRQS of 4: expected enabled, 64-bit, maskable, Multiple Message Enable 2"),
    )?;
    let lo = hw_config(bdf, cap + uapi::PCI_MSI_ADDRESS_LO, 4)? as u32;
    let hi = hw_config(bdf, cap + uapi::PCI_MSI_ADDRESS_HI, 4)? as u32;
    let data = hw_config(bdf, cap + uapi::PCI_MSI_DATA_64, 2)? as u32;
    let want = msg_data(slot, false, 0);
    println!("  MSI: Message Control {flags:#06x} address {hi:#x}:{lo:#010x} data {data:#06x}");
    ensure(lo == DOORBELL && hi == 0 && data == want, || {
        format!("MSI message as the kernel programmed it: address {hi:#x}:{lo:#x} data {data:#x}; expected {DOORBELL:#x}, data {want:#x}")
    })?;
    let start = mock.counts()?;
    for v in 0..VECTORS {
        fire_expect(mock, &efds, &format!("msi {v}"), Outcome::Delivered, Some(v))?;
    }
    let c = mock.counts()?;
    ensure(c.delivered == start.delivered + VECTORS as u64, || {
        format!("irqs '{start}' then '{c}' after firing msi 0..3: expected delivered +4")
    })?;
    check_proc_interrupts(bdf, "vfio-msi", "MOCK-PCI-MSI-")?;
    fire_refused(mock, &efds, &format!("msi {VECTORS}"), sys::EINVAL)?;
    println!(
        "ok: f. MSI, 4 vectors (Multiple Message Enable {mme}): msi 0..3 each signalled only its own eventfd, once; msi 4: {}; irqs: {c}",
        errno_text(sys::EINVAL)
    );

    // A masked MSI vector latches its Pending Bit.
    let mask_at = cap + uapi::PCI_MSI_MASK_64;
    let pending_at = cap + uapi::PCI_MSI_PENDING_64;
    let pending0 = hw_config(bdf, pending_at, 4)? as u32;
    ensure(pending0 == 0, || {
        format!("MSI Pending Bits {pending0:#x} before any vector was masked, expected 0")
    })?;
    let mask = hw_config(bdf, mask_at, 4)? as u32;
    hw_config_write(bdf, mask_at, &(mask | 1 << 1).to_le_bytes())?;
    let masked = fire_expect(mock, &efds, "msi 1", Outcome::Pending, None)
        .ctx("MSI vector 1 masked");
    let pending = hw_config(bdf, pending_at, 4);
    hw_config_write(bdf, mask_at, &mask.to_le_bytes())?;
    let c = masked?;
    let pending = pending? as u32;
    ensure(pending == 1 << 1, || {
        format!("MSI Pending Bits {pending:#x} after firing masked vector 1, expected 0x2")
    })?;
    println!("ok: f. MSI vector 1 masked: pending, no eventfd, Pending Bits {pending:#x}; irqs: {c}");
    efds.wait(1, UNMASK_LIMIT).ctx("MSI vector 1 pending while masked, then unmasked")?;
    std::thread::sleep(QUIET);
    let (pending, fired, c) = (hw_config(bdf, pending_at, 4)?, efds.take_all()?, mock.counts()?);
    ensure(pending == 0 && fired == [0, 1, 0, 0], || {
        format!("after MSI vector 1 was unmasked: Pending Bits {pending:#x}, eventfds {fired:?}; expected 0 and only vector 1 signalled, once")
    })?;
    println!("ok: f. MSI vector 1 unmasked: its pending message sent once, Pending Bits 0; irqs: {c}");

    dev.disable_irqs(uapi::VFIO_PCI_MSI_IRQ_INDEX)?;
    let flags = hw_config(bdf, cap + uapi::PCI_MSI_FLAGS, 2)? as u16;
    ensure(flags & uapi::PCI_MSI_FLAGS_ENABLE == 0, || {
        format!("MSI Message Control {flags:#06x} after SET_IRQS count 0: still enabled")
    })?;
    let c = fire_expect(mock, &efds, "msi 0", Outcome::Disabled, None).ctx("MSI disabled")?;
    println!("ok: f. MSI disabled (Message Control {flags:#06x}): msi 0 disabled, no eventfd; irqs: {c}");
    Ok(efds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parse_the_irqs_line() {
        let line = "delivered 4 pending 1 disabled 2 dropped 3 intx_delivered 5 intx_masked 6 intx_dropped 7";
        let c = Counts::parse(&format!("{line}\n")).unwrap();
        assert_eq!(
            c,
            Counts {
                delivered: 4,
                pending: 1,
                disabled: 2,
                dropped: 3,
                intx_delivered: 5,
                intx_masked: 6,
                intx_dropped: 7,
            }
        );
        assert_eq!(c.total(), 28);
        assert_eq!(c.to_string(), line);
        assert_eq!(Counts::parse("delivered 4 pending 1"), None);
        assert_eq!(Counts::parse("delivered 4 pending 1 disabled 2 dropped 3"), None);
        assert_eq!(
            Counts::parse(&line.replace("5", "x")),
            None
        );
    }

    #[test]
    fn slot_and_message_data() {
        assert_eq!(slot_of("10000:01:00.0").unwrap(), 0);
        assert_eq!(slot_of("1000:01:1f.0").unwrap(), 31);
        assert_eq!(msg_data(1, true, 3), 0x1803);
        assert_eq!(msg_data(0, false, 2), 0x2);
        assert_eq!(one_on(4, Some(2)), [0, 0, 1, 0]);
        assert_eq!(one_on(2, None), [0, 0]);
    }
}
