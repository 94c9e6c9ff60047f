// SPDX-License-Identifier: GPL-2.0

//! Devices described at runtime in configfs, the way rnull and netdevsim
//! let tests describe theirs: `mkdir /sys/kernel/config/mock_pci/NAME`
//! creates a description with the module parameters' values; its
//! attributes (`vendor`, `device`, `subsys_vendor`, `subsys_device`,
//! `class`, `revision`, `bar0_size`, `bar2_size`, `msi_vectors`,
//! `msix_vectors`, `intx`, `dma`, `sriov_vfs`, `slot`) change it while the device is
//! disabled; `enable` 1 plugs the device on the mock bus (in `slot`, or the
//! first free one), 0 unplugs it; `bdf` names it while it is enabled.
//! `rmdir` unplugs an enabled device first (waiting, like `del_device`,
//! until VFIO users closed it).
//!
//! Every value is checked when it is stored, with the checks of the module
//! parameters (params.rs): a bad one is refused with `EINVAL` and one log
//! line that says what is accepted; a store while the device is enabled is
//! refused with `EBUSY`. BARs are carved at fixed offsets per slot, so a
//! BAR may be smaller than the module's `bar0_size`/`bar2_size` (it then
//! sits at the start of the slot's range) but not larger.
//!
//! configfs holds a reference on the module while a device directory
//! exists, so `rmmod` needs every directory removed first; the subsystem
//! is unregistered before the control files and the host go.

use crate::{
    bridge::SECONDARY_BUS,
    config::{BarSizes, Identity, Template},
    control::Handle,
    msi::Irqs,
    params, sriov,
};
use kernel::{
    configfs::{self, AttributeOperations},
    configfs_attrs,
    fmt::{self, Write},
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    str::{parse_int::ParseInt, BStr, CString, Formatter},
    sync::Mutex,
};

/// What one mock function is: the module parameters describe the devices
/// created at load and by `new_device`; each configfs device its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Description {
    pub(crate) identity: Identity,
    pub(crate) bars: BarSizes,
    pub(crate) irqs: Irqs,
    pub(crate) dma: bool,
    /// Virtual Functions the function may enable (0: no SR-IOV).
    pub(crate) sriov_vfs: u16,
}

/// The attributes that describe the function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Vendor,
    Device,
    SubsysVendor,
    SubsysDevice,
    Class,
    Revision,
    Bar0Size,
    Bar2Size,
    MsiVectors,
    MsixVectors,
    Intx,
    Dma,
    SriovVfs,
}

impl Field {
    /// The attribute's file name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Field::Vendor => "vendor",
            Field::Device => "device",
            Field::SubsysVendor => "subsys_vendor",
            Field::SubsysDevice => "subsys_device",
            Field::Class => "class",
            Field::Revision => "revision",
            Field::Bar0Size => "bar0_size",
            Field::Bar2Size => "bar2_size",
            Field::MsiVectors => "msi_vectors",
            Field::MsixVectors => "msix_vectors",
            Field::Intx => "intx",
            Field::Dma => "dma",
            Field::SriovVfs => "sriov_vfs",
        }
    }
}

/// Longest value accepted (the longest valid one, `0x40000000`, has 10
/// characters).
const MAX_TEXT: usize = 32;

/// The text written to attribute `name`, without surrounding white space.
pub(crate) fn text<'a>(name: &str, page: &'a [u8]) -> Result<&'a str> {
    let text = core::str::from_utf8(page).map(str::trim);
    match text {
        Ok(t) if t.len() <= MAX_TEXT => Ok(t),
        _ => {
            pr_err!("{}: input too long or not text: write one value\n", name);
            Err(EINVAL)
        }
    }
}

/// A number as module parameters read it: decimal, or hex with `0x`
/// (octal with a leading 0, binary with `0b`), that fits `T`.
pub(crate) fn number<T: ParseInt>(name: &str, text: &str, what: &str) -> Result<T> {
    T::from_str(BStr::from_bytes(text.as_bytes())).map_err(|_| {
        pr_err!(
            "{}='{}' is invalid: use {} (decimal, or hex with 0x)\n",
            name,
            text,
            what
        );
        EINVAL
    })
}

/// 0 or 1.
pub(crate) fn boolean(name: &str, text: &str) -> Result<bool> {
    match text {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => {
            pr_err!("{}='{}' is invalid: use 0 or 1\n", name, text);
            Err(EINVAL)
        }
    }
}

/// `slot`: `auto` or -1 for the first free slot, or a slot number below
/// `slots`.
pub(crate) fn slot(text: &str, slots: usize) -> Result<Option<usize>> {
    if text == "auto" || text == "-1" {
        return Ok(None);
    }
    match text.parse::<usize>() {
        Ok(s) if s < slots => Ok(Some(s)),
        _ => {
            pr_err!(
                "slot='{}' is invalid: use 0 to {}, or -1 (auto) for the first free slot\n",
                text,
                slots.saturating_sub(1)
            );
            Err(EINVAL)
        }
    }
}

impl Description {
    /// Sets `field` from `text`, checked as the module parameter of the
    /// same name is, with BARs at most `max` (the slots' sizes), and the
    /// MSI-X table fitting BAR2 whichever of the two is set last.
    pub(crate) fn set(&mut self, field: Field, text: &str, max: &BarSizes) -> Result {
        let name = field.name();
        let id = &mut self.identity;
        let id16 = "a 16-bit number";
        match field {
            Field::Vendor => id.vendor = params::vendor(number(name, text, id16)?)?,
            Field::Device => id.device = number(name, text, id16)?,
            Field::SubsysVendor => id.subsys_vendor = number(name, text, id16)?,
            Field::SubsysDevice => id.subsys_device = number(name, text, id16)?,
            Field::Class => id.class = params::class(number(name, text, "a 24-bit class code")?)?,
            Field::Revision => id.revision = number(name, text, "0 to 255")?,
            Field::Bar0Size => {
                let size = number(name, text, "a power of two")?;
                self.bars.bar0 = params::bar_size(name, size, max.bar0)?;
            }
            Field::Bar2Size => {
                let size = number(name, text, "a power of two")?;
                let size = params::bar_size(name, size, max.bar2)?;
                params::msix_vectors(self.irqs.msix, size)?;
                self.bars.bar2 = size;
            }
            Field::MsiVectors => {
                self.irqs.msi = params::msi_vectors(number(name, text, "a number")?)?;
            }
            Field::MsixVectors => {
                let n = number(name, text, "a number")?;
                self.irqs.msix = params::msix_vectors(n, self.bars.bar2)?;
            }
            Field::Intx => self.irqs.intx = boolean(name, text)?,
            Field::Dma => self.dma = boolean(name, text)?,
            Field::SriovVfs => {
                self.sriov_vfs = params::sriov_vfs(number(name, text, "0 to 7")?)?;
            }
        }
        Ok(())
    }

    /// Writes the value of `field` as it reads back.
    pub(crate) fn show(&self, field: Field, w: &mut impl Write) -> fmt::Result {
        let id = &self.identity;
        match field {
            Field::Vendor => writeln!(w, "{:#06x}", id.vendor),
            Field::Device => writeln!(w, "{:#06x}", id.device),
            Field::SubsysVendor => writeln!(w, "{:#06x}", id.subsys_vendor),
            Field::SubsysDevice => writeln!(w, "{:#06x}", id.subsys_device),
            Field::Class => writeln!(w, "{:#08x}", id.class),
            Field::Revision => writeln!(w, "{:#04x}", id.revision),
            Field::Bar0Size => writeln!(w, "{:#x}", self.bars.bar0),
            Field::Bar2Size => writeln!(w, "{:#x}", self.bars.bar2),
            Field::MsiVectors => writeln!(w, "{}", self.irqs.msi),
            Field::MsixVectors => writeln!(w, "{}", self.irqs.msix),
            Field::Intx => writeln!(w, "{}", u8::from(self.irqs.intx)),
            Field::Dma => writeln!(w, "{}", u8::from(self.dma)),
            Field::SriovVfs => writeln!(w, "{}", self.sriov_vfs),
        }
    }

    /// The function's configuration space.
    fn template(&self) -> Template {
        let t = Template::new(&self.identity, &self.bars, &self.irqs);
        sriov::with_cap(t, self.sriov_vfs, self.identity.device)
    }
}

/// The subsystem, `/sys/kernel/config/mock_pci`.
pub(crate) fn subsystem(
    ctl: Handle,
    defaults: Description,
) -> impl PinInit<configfs::Subsystem<Devices>, Error> {
    let item_type = configfs_attrs! {
        container: configfs::Subsystem<Devices>,
        data: Devices,
        child: Device,
        attributes: [],
    };
    configfs::Subsystem::new(
        c"mock_pci",
        item_type,
        try_pin_init!(Devices { ctl, defaults }),
    )
}

/// The subsystem's data: what a new device starts from.
#[pin_data]
pub(crate) struct Devices {
    ctl: Handle,
    /// The module parameters' description (and their BAR sizes, the
    /// largest a slot holds).
    defaults: Description,
}

#[vtable]
impl configfs::GroupOperations for Devices {
    type Child = Device;

    fn make_group(&self, name: &CStr) -> Result<impl PinInit<configfs::Group<Device>, Error>> {
        let item_type = configfs_attrs! {
            container: configfs::Group<Device>,
            data: Device,
            attributes: [
                vendor: 0,
                device: 1,
                subsys_vendor: 2,
                subsys_device: 3,
                class: 4,
                revision: 5,
                bar0_size: 6,
                bar2_size: 7,
                msi_vectors: 8,
                msix_vectors: 9,
                intx: 10,
                dma: 11,
                enable: 12,
                slot: 13,
                bdf: 14,
                sriov_vfs: 15,
            ],
        };
        Ok(configfs::Group::new(
            name.try_into()?,
            item_type,
            try_pin_init!(Device {
                ctl: self.ctl.clone(),
                max: self.defaults.bars,
                name: name.try_into()?,
                state <- new_mutex!(State {
                    desc: self.defaults,
                    slot: None,
                    plugged: None,
                }),
            }),
        ))
    }
}

/// One configfs device.
#[pin_data(PinnedDrop)]
pub(crate) struct Device {
    ctl: Handle,
    /// The largest BARs a slot holds.
    max: BarSizes,
    name: CString,
    #[pin]
    state: Mutex<State>,
}

struct State {
    desc: Description,
    /// The slot asked for; `None`: the first free one.
    slot: Option<usize>,
    /// The slot the device is plugged in while enabled.
    plugged: Option<usize>,
}

#[pinned_drop]
impl PinnedDrop for Device {
    /// `rmdir` (configfs's last reference): an enabled device is unplugged.
    fn drop(self: Pin<&mut Self>) {
        let plugged = self.state.lock().plugged.take();
        if let Some(slot) = plugged {
            if let Err(e) = self.ctl.unplug(slot) {
                pr_warn!(
                    "mock_pci/{}: unplug on rmdir failed ({:?})\n",
                    &*self.name,
                    e
                );
            }
        }
    }
}

/// Writes what `f` writes into a configfs page.
fn page_out(
    page: &mut [u8; PAGE_SIZE],
    f: impl FnOnce(&mut Formatter<'_>) -> fmt::Result,
) -> Result<usize> {
    let mut w = Formatter::new(page);
    f(&mut w).map_err(|_| EINVAL)?;
    Ok(w.bytes_written())
}

impl Device {
    /// Refuses a change while enabled.
    fn check_disabled(&self, st: &State, name: &str) -> Result {
        if st.plugged.is_some() {
            pr_err!(
                "mock_pci/{}/{}: the device is enabled: write 0 to enable first\n",
                &*self.name,
                name
            );
            return Err(EBUSY);
        }
        Ok(())
    }

    fn store_field(&self, field: Field, page: &[u8]) -> Result {
        let text = text(field.name(), page)?;
        let mut st = self.state.lock();
        self.check_disabled(&st, field.name())?;
        st.desc.set(field, text, &self.max)
    }

    fn store_enable(&self, page: &[u8]) -> Result {
        let on = boolean("enable", text("enable", page)?)?;
        let mut st = self.state.lock();
        match (on, st.plugged) {
            (true, None) => {
                let t = KBox::new(st.desc.template(), GFP_KERNEL)?;
                let who = fmt!("mock_pci/{} enable", &*self.name);
                st.plugged = Some(self.ctl.plug(st.slot, &t, st.desc.dma, who)?);
            }
            (false, Some(slot)) => {
                st.plugged = None;
                self.ctl.unplug(slot)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn store_slot(&self, page: &[u8]) -> Result {
        let text = text("slot", page)?;
        let mut st = self.state.lock();
        self.check_disabled(&st, "slot")?;
        st.slot = slot(text, self.ctl.host().layout.slots())?;
        Ok(())
    }
}

/// The attributes of the description, one `AttributeOperations` each.
macro_rules! field_attributes {
    ($($id:literal => $field:ident),* $(,)?) => {$(
        #[vtable]
        impl AttributeOperations<$id> for Device {
            type Data = Device;

            fn show(d: &Device, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
                let desc = d.state.lock().desc;
                page_out(page, |w| desc.show(Field::$field, w))
            }

            fn store(d: &Device, page: &[u8]) -> Result {
                d.store_field(Field::$field, page)
            }
        }
    )*};
}

field_attributes! {
    0 => Vendor,
    1 => Device,
    2 => SubsysVendor,
    3 => SubsysDevice,
    4 => Class,
    5 => Revision,
    6 => Bar0Size,
    7 => Bar2Size,
    8 => MsiVectors,
    9 => MsixVectors,
    10 => Intx,
    11 => Dma,
    15 => SriovVfs,
}

/// `enable`: 1 plugs the device, 0 unplugs it.
#[vtable]
impl AttributeOperations<12> for Device {
    type Data = Device;

    fn show(d: &Device, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let on = d.state.lock().plugged.is_some();
        page_out(page, |w| writeln!(w, "{}", u8::from(on)))
    }

    fn store(d: &Device, page: &[u8]) -> Result {
        d.store_enable(page)
    }
}

/// `slot`: the slot asked for (`auto`: the first free one) while disabled,
/// the device's slot while enabled.
#[vtable]
impl AttributeOperations<13> for Device {
    type Data = Device;

    fn show(d: &Device, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let (asked, plugged) = {
            let st = d.state.lock();
            (st.slot, st.plugged)
        };
        page_out(page, |w| match plugged.or(asked) {
            Some(s) => writeln!(w, "{}", s),
            None => writeln!(w, "auto"),
        })
    }

    fn store(d: &Device, page: &[u8]) -> Result {
        d.store_slot(page)
    }
}

/// `bdf` (read-only): the device's PCI address while enabled, empty
/// otherwise.
#[vtable]
impl AttributeOperations<14> for Device {
    type Data = Device;

    fn show(d: &Device, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let plugged = d.state.lock().plugged;
        let domain = d.ctl.host().domain;
        page_out(page, |w| match plugged {
            Some(s) => writeln!(w, "{:04x}:{:02x}:{:02x}.0", domain, SECONDARY_BUS, s),
            None => Ok(()),
        })
    }
}

#[kunit_tests(mock_pci_configfs)]
mod tests {
    use super::*;

    const MAX: BarSizes = BarSizes {
        bar0: 2 << 20,
        bar2: 64 << 10,
    };

    fn defaults() -> Description {
        Description {
            identity: crate::config_tests::ID,
            bars: MAX,
            irqs: Irqs::default(),
            dma: false,
            sriov_vfs: 0,
        }
    }

    #[test]
    fn numbers_are_read_as_module_parameters() {
        assert_eq!(number::<u16>("t", "0xbeef", ""), Ok(0xbeef));
        assert_eq!(number::<u16>("t", "4660", ""), Ok(0x1234));
        assert_eq!(number::<u16>("t", "0x10000", ""), Err(EINVAL));
        assert_eq!(number::<u16>("t", "-1", ""), Err(EINVAL));
        assert_eq!(number::<u16>("t", "", ""), Err(EINVAL));
        assert_eq!(number::<u16>("t", "12ab", ""), Err(EINVAL));
        assert_eq!(number::<u8>("t", "256", ""), Err(EINVAL));
        assert_eq!(boolean("t", "1"), Ok(true));
        assert_eq!(boolean("t", "0"), Ok(false));
        assert_eq!(boolean("t", "2"), Err(EINVAL));
        assert_eq!(boolean("t", "yes"), Err(EINVAL));
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(text("t", b"0x1234\n"), Ok("0x1234"));
        assert_eq!(text("t", b"  7 \n"), Ok("7"));
        assert_eq!(text("t", &[b'1'; MAX_TEXT + 1]), Err(EINVAL));
        assert_eq!(text("t", &[0xff, 0xfe]), Err(EINVAL));
    }

    #[test]
    fn slot_is_auto_or_in_range() {
        assert_eq!(slot("auto", 32), Ok(None));
        assert_eq!(slot("-1", 32), Ok(None));
        assert_eq!(slot("0", 32), Ok(Some(0)));
        assert_eq!(slot("31", 32), Ok(Some(31)));
        assert_eq!(slot("32", 32), Err(EINVAL));
        assert_eq!(slot("4", 4), Err(EINVAL));
        assert_eq!(slot("-2", 32), Err(EINVAL));
        assert_eq!(slot("x", 32), Err(EINVAL));
    }

    #[test]
    fn good_values_are_stored() -> Result {
        let mut d = defaults();
        for (field, text) in [
            (Field::Vendor, "0x1234"),
            (Field::Device, "0xbeef"),
            (Field::SubsysVendor, "0x1af4"),
            (Field::SubsysDevice, "2"),
            (Field::Class, "0x020000"),
            (Field::Revision, "0x10"),
            (Field::Bar0Size, "0x100000"),
            (Field::Bar2Size, "0x8000"),
            (Field::MsiVectors, "8"),
            (Field::MsixVectors, "16"),
            (Field::Intx, "1"),
            (Field::Dma, "1"),
            (Field::SriovVfs, "7"),
        ] {
            d.set(field, text, &MAX)?;
        }
        assert_eq!(d.sriov_vfs, 7);
        assert_eq!(d.identity.device, 0xbeef);
        assert_eq!(d.identity.subsys_vendor, 0x1af4);
        assert_eq!(d.identity.class, 0x02_0000);
        assert_eq!(d.identity.revision, 0x10);
        assert_eq!(
            d.bars,
            BarSizes {
                bar0: 1 << 20,
                bar2: 32 << 10
            }
        );
        assert_eq!(
            d.irqs,
            Irqs {
                msi: 8,
                msix: 16,
                intx: true
            }
        );
        assert!(d.dma);
        Ok(())
    }

    #[test]
    fn bad_values_are_refused_and_change_nothing() {
        for (field, text) in [
            (Field::Vendor, "0xffff"),
            (Field::Vendor, "0"),
            (Field::Device, "0x10000"),
            (Field::Class, "0x1000000"),
            (Field::Revision, "0x100"),
            (Field::Bar0Size, "0x3000"),
            (Field::Bar0Size, "0x800"),
            // Larger than the slot's BAR (the module's bar0_size).
            (Field::Bar0Size, "0x400000"),
            (Field::Bar2Size, "0x20000"),
            (Field::MsiVectors, "3"),
            (Field::MsiVectors, "64"),
            (Field::MsixVectors, "2049"),
            // 2048 entries need a 128 KiB BAR2.
            (Field::MsixVectors, "2048"),
            (Field::Intx, "2"),
            (Field::Dma, "on"),
            (Field::SriovVfs, "8"),
            (Field::SriovVfs, "-1"),
        ] {
            let mut d = defaults();
            assert_eq!(d.set(field, text, &MAX), Err(EINVAL));
            assert_eq!(d, defaults());
        }
    }

    #[test]
    fn msix_table_fits_bar2_whichever_is_set_last() -> Result {
        let mut d = defaults();
        // 127 entries and their PBA fit the upper half of 4 KiB.
        d.set(Field::Bar2Size, "0x1000", &MAX)?;
        d.set(Field::MsixVectors, "127", &MAX)?;
        assert_eq!(d.set(Field::MsixVectors, "128", &MAX), Err(EINVAL));
        d.set(Field::Bar2Size, "0x10000", &MAX)?;
        d.set(Field::MsixVectors, "1024", &MAX)?;
        assert_eq!(d.set(Field::Bar2Size, "0x1000", &MAX), Err(EINVAL));
        assert_eq!(d.bars.bar2, 0x10000);
        Ok(())
    }

    #[test]
    fn values_read_back_as_stored() -> Result {
        let mut d = defaults();
        d.set(Field::Class, "0x20000", &MAX)?;
        let mut buf = [0u8; 32];
        let mut w = Formatter::new(&mut buf);
        d.show(Field::Class, &mut w).map_err(|_| EINVAL)?;
        d.show(Field::Vendor, &mut w).map_err(|_| EINVAL)?;
        d.show(Field::Intx, &mut w).map_err(|_| EINVAL)?;
        let n = w.bytes_written();
        assert_eq!(&buf[..n], b"0x020000\n0x1234\n0\n");
        Ok(())
    }
}
