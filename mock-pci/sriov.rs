// SPDX-License-Identifier: GPL-2.0

//! Single Root I/O Virtualization: the SR-IOV extended capability of a
//! Physical Function and the configuration space of its Virtual Functions.
//!
//! A function with `sriov_vfs=N` (1 to [`MAX_VFS`]) has the capability at
//! [`SRIOV_CAP`]: TotalVFs = InitialVFs = N, First VF Offset 1 and VF Stride
//! 1, so its VFs are functions 1 to N of its own slot; the VF Device ID is
//! the PF's; no VF BARs (the PCI core allows that: `nres == 0`, iov.c);
//! no VF Migration. Software writes VF Enable, VF MSE and ARI Capable
//! Hierarchy in SR-IOV Control, NumVFs (only while VF Enable is clear, as
//! the spec says) and System Page Size (one of the supported sizes).
//!
//! The VFs answer configuration requests only while VF Enable is set, and
//! only functions 1 to min(NumVFs, TotalVFs) (fabric.rs routes them). Each
//! is a type 0 header with a power-management and a PCI Express capability
//! (with FLR), without BARs, interrupts or DMA: Vendor and Device ID read
//! 0xffff, as the spec wants (the PCI core takes the PF's Vendor ID and the
//! VF Device ID), the Memory Space bit of COMMAND is read-only zero; class,
//! revision and subsystem IDs are the PF's. VF Enable rising resets every
//! VF; a PF reset (FLR, D3hot to D0, Secondary Bus Reset, power-on) clears
//! VF Enable, which makes them vanish.
//!
//! Plain functions on plain data, called under the host's raw spinlock.

use crate::config::{ConfigSpace, Effect, Template, CFG_SIZE, EXP_CAP, EXP_CAP_SIZE, PM_CAP};
use kernel::bindings;

/// Offset of the SR-IOV capability: the first extended capability.
pub(crate) const SRIOV_CAP: usize = 0x100;
/// Size of the SR-IOV capability (up to the VF Migration State Array Offset).
const SRIOV_CAP_SIZE: usize = 0x40;
const _: () = assert!(SRIOV_CAP + SRIOV_CAP_SIZE <= CFG_SIZE);

/// Most VFs a PF may have: functions 1 to 7 of its slot, without ARI.
pub(crate) const MAX_VFS: usize = 7;

/// Bytes of a VF's configuration space: the header, the power-management
/// and the PCI Express capability.
pub(crate) const VF_CFG_SIZE: usize = 0x90;
const _: () = assert!(EXP_CAP + EXP_CAP_SIZE <= VF_CFG_SIZE);

/// A VF's power-on values and masks (the same for every VF).
pub(crate) type VfTemplate = Template<VF_CFG_SIZE>;
/// A VF's registers.
pub(crate) type VfSpace = ConfigSpace<VF_CFG_SIZE>;

const CAP: usize = SRIOV_CAP + bindings::PCI_SRIOV_CAP as usize;
const CTRL: usize = SRIOV_CAP + bindings::PCI_SRIOV_CTRL as usize;
const INITIAL_VF: usize = SRIOV_CAP + bindings::PCI_SRIOV_INITIAL_VF as usize;
const TOTAL_VF: usize = SRIOV_CAP + bindings::PCI_SRIOV_TOTAL_VF as usize;
const NUM_VF: usize = SRIOV_CAP + bindings::PCI_SRIOV_NUM_VF as usize;
const FUNC_LINK: usize = SRIOV_CAP + bindings::PCI_SRIOV_FUNC_LINK as usize;
const VF_OFFSET: usize = SRIOV_CAP + bindings::PCI_SRIOV_VF_OFFSET as usize;
const VF_STRIDE: usize = SRIOV_CAP + bindings::PCI_SRIOV_VF_STRIDE as usize;
const VF_DID: usize = SRIOV_CAP + bindings::PCI_SRIOV_VF_DID as usize;
const SUP_PGSIZE: usize = SRIOV_CAP + bindings::PCI_SRIOV_SUP_PGSIZE as usize;
const SYS_PGSIZE: usize = SRIOV_CAP + bindings::PCI_SRIOV_SYS_PGSIZE as usize;

/// The SR-IOV capability's extended capability header: ID, version 1, no
/// next capability.
const HEADER: u32 = bindings::PCI_EXT_CAP_ID_SRIOV | 1 << 16;

/// SR-IOV Control bits software may write: VF Enable, VF MSE, ARI Capable
/// Hierarchy (no VF Migration).
pub(crate) const CTRL_WRITABLE: u16 = (bindings::PCI_SRIOV_CTRL_VFE
    | bindings::PCI_SRIOV_CTRL_MSE
    | bindings::PCI_SRIOV_CTRL_ARI) as u16;

/// Supported page sizes (bit n: 2^(n+12) bytes): 4K, 8K, 64K, 256K, 1M and
/// 4M, as many devices report.
pub(crate) const SUPPORTED_PGSIZES: u32 = 0x553;

/// Adds the SR-IOV capability with `total` VFs (1 to [`MAX_VFS`]; 0 adds
/// nothing) of device ID `vf_device` to a function's template.
pub(crate) fn add_cap(t: &mut Template, total: u16, vf_device: u16) {
    if total == 0 {
        return;
    }
    let total = total.min(MAX_VFS as u16);
    t.set32(SRIOV_CAP, HEADER);
    t.set32(CAP, 0);
    t.set_mask16(CTRL, CTRL_WRITABLE, 0);
    t.set16(INITIAL_VF, total);
    t.set16(TOTAL_VF, total);
    t.set_mask16(NUM_VF, 0xffff, 0);
    t.set16(VF_OFFSET, 1);
    t.set16(VF_STRIDE, 1);
    t.set16(VF_DID, vf_device);
    t.set32(SUP_PGSIZE, SUPPORTED_PGSIZES);
    t.set32(SYS_PGSIZE, 1);
    t.set_mask32(SYS_PGSIZE, SUPPORTED_PGSIZES, 0);
}

/// `t` with the SR-IOV capability of [`add_cap`].
pub(crate) fn with_cap(mut t: Template, total: u16, vf_device: u16) -> Template {
    add_cap(&mut t, total, vf_device);
    t
}

/// Puts the PF's own routing ID in Function Dependency Link of `t`, the
/// copy of a template in `slot` (the PCI core compares the field with the
/// PF's devfn, iov.c `sriov_enable`): no dependency on another PF.
pub(crate) fn place(t: &mut Template, slot: usize) {
    if has_cap(t) {
        t.set8(FUNC_LINK, (slot << 3) as u8);
    }
}

/// Whether the template describes a PF.
pub(crate) fn has_cap(t: &Template) -> bool {
    t.value(SRIOV_CAP, 4) == HEADER
}

/// TotalVFs of the function (0 if it is no PF).
pub(crate) fn total_vfs(pf: &ConfigSpace) -> u16 {
    if pf.read(SRIOV_CAP, 4) != HEADER {
        return 0;
    }
    (pf.read(TOTAL_VF, 2) as u16).min(MAX_VFS as u16)
}

/// Whether VF Enable is set.
pub(crate) fn vf_enable(pf: &ConfigSpace) -> bool {
    total_vfs(pf) != 0 && pf.read(CTRL, 2) & bindings::PCI_SRIOV_CTRL_VFE != 0
}

/// The VFs that answer: min(NumVFs, TotalVFs) while VF Enable is set, else
/// none.
pub(crate) fn enabled_vfs(pf: &ConfigSpace) -> u16 {
    if !vf_enable(pf) {
        return 0;
    }
    (pf.read(NUM_VF, 2) as u16).min(total_vfs(pf))
}

/// A configuration write to the PF: as [`ConfigSpace::write`], except that
/// NumVFs is read-only while VF Enable is set (before the write).
pub(crate) fn write_pf(
    pf: &mut ConfigSpace,
    t: &Template,
    offset: usize,
    size: usize,
    value: u32,
) -> Effect {
    let locked = vf_enable(pf).then(|| pf.read(NUM_VF, 2) as u16);
    let effect = pf.write(t, offset, size, value);
    if let (Effect::None, Some(num)) = (effect, locked) {
        pf.set16(NUM_VF, num);
    }
    effect
}

/// The VFs' template: type 0 header without BARs or interrupts, COMMAND
/// with Bus Master only (Memory Space is read-only zero in a VF), power
/// management and PCI Express with FLR as a PF's.
pub(crate) fn vf_template() -> VfTemplate {
    let mut t = VfTemplate::blank();
    let command = bindings::PCI_COMMAND as usize;
    let status = bindings::PCI_STATUS as usize;
    t.set_mask16(command, bindings::PCI_COMMAND_MASTER as u16, 0);
    t.set16(status, bindings::PCI_STATUS_CAP_LIST as u16);
    t.set_mask16(status, 0, crate::config::STATUS_W1C);
    t.set8(bindings::PCI_CAPABILITY_LIST as usize, PM_CAP as u8);
    t.init_pm_cap();
    t.init_exp_cap();
    t
}

/// Whether the byte at `at` of a VF's header comes from the PF: class code
/// and revision, subsystem vendor and ID.
fn from_pf(at: usize) -> bool {
    let class = bindings::PCI_CLASS_REVISION as usize;
    let subsys = bindings::PCI_SUBSYSTEM_VENDOR_ID as usize;
    (class..class + 4).contains(&at) || (subsys..subsys + 4).contains(&at)
}

/// Reads `size` bytes at `offset` of a VF whose registers are `vf` and
/// whose PF's are `pf`: Vendor and Device ID read 0xffff, class, revision
/// and subsystem IDs are the PF's.
pub(crate) fn read_vf(vf: &VfSpace, pf: &ConfigSpace, offset: usize, size: usize) -> u32 {
    (0..size).fold(0, |v, i| {
        let at = offset + i;
        let b = if at < 4 {
            0xff
        } else if from_pf(at) {
            pf.read(at, 1)
        } else {
            vf.read(at, 1)
        };
        v | b << (8 * i)
    })
}
