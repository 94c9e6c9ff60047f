// SPDX-License-Identifier: GPL-2.0

//! The part of the VFIO uAPI (include/uapi/linux/vfio.h) this test uses,
//! written out by hand: ioctl numbers and `#[repr(C)]` mirrors of the
//! argument structs. All of it is stable ABI.

/// `VFIO_TYPE` (`';'`), the ioctl type of every VFIO ioctl.
const VFIO_TYPE: u64 = b';' as u64;
/// `VFIO_BASE`, the first VFIO ioctl number.
const VFIO_BASE: u64 = 100;

/// `_IO(VFIO_TYPE, VFIO_BASE + nr)`: VFIO ioctls carry no size/direction.
const fn vfio_io(nr: u64) -> u64 {
    (VFIO_TYPE << 8) | (VFIO_BASE + nr)
}

/// `VFIO_GET_API_VERSION`: returns [`VFIO_API_VERSION`].
pub const VFIO_GET_API_VERSION: u64 = vfio_io(0);
/// `VFIO_CHECK_EXTENSION`: is an IOMMU type supported.
pub const VFIO_CHECK_EXTENSION: u64 = vfio_io(1);
/// `VFIO_SET_IOMMU`: choose the container's IOMMU type.
pub const VFIO_SET_IOMMU: u64 = vfio_io(2);
/// `VFIO_GROUP_GET_STATUS`: [`GroupStatus`].
pub const VFIO_GROUP_GET_STATUS: u64 = vfio_io(3);
/// `VFIO_GROUP_SET_CONTAINER`: argument is a pointer to the container fd.
pub const VFIO_GROUP_SET_CONTAINER: u64 = vfio_io(4);
/// `VFIO_GROUP_GET_DEVICE_FD`: argument is the device name (C string).
pub const VFIO_GROUP_GET_DEVICE_FD: u64 = vfio_io(6);
/// `VFIO_DEVICE_GET_INFO`: [`DeviceInfo`].
pub const VFIO_DEVICE_GET_INFO: u64 = vfio_io(7);
/// `VFIO_DEVICE_GET_REGION_INFO`: [`RegionInfo`].
pub const VFIO_DEVICE_GET_REGION_INFO: u64 = vfio_io(8);
/// `VFIO_DEVICE_GET_IRQ_INFO`: [`IrqInfo`].
pub const VFIO_DEVICE_GET_IRQ_INFO: u64 = vfio_io(9);
/// `VFIO_DEVICE_SET_IRQS`: an [`IrqSet`] header, then the data.
pub const VFIO_DEVICE_SET_IRQS: u64 = vfio_io(10);
/// `VFIO_DEVICE_RESET`: no argument.
pub const VFIO_DEVICE_RESET: u64 = vfio_io(11);
/// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`: [`HotResetInfo`] and the
/// [`DependentDevice`]s after it.
pub const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: u64 = vfio_io(12);
/// `VFIO_DEVICE_PCI_HOT_RESET`: a [`HotReset`] header and the group fds.
pub const VFIO_DEVICE_PCI_HOT_RESET: u64 = vfio_io(13);
/// `VFIO_IOMMU_MAP_DMA` (type1 container): [`DmaMap`].
pub const VFIO_IOMMU_MAP_DMA: u64 = vfio_io(13);
/// `VFIO_DEVICE_IOEVENTFD`: [`Ioeventfd`].
pub const VFIO_DEVICE_IOEVENTFD: u64 = vfio_io(16);
/// `VFIO_DEVICE_FEATURE`: a [`Feature`] header, then the feature's data.
pub const VFIO_DEVICE_FEATURE: u64 = vfio_io(17);
/// `VFIO_DEVICE_BIND_IOMMUFD` (cdev path): [`BindIommufd`].
pub const VFIO_DEVICE_BIND_IOMMUFD: u64 = vfio_io(18);

/// `VFIO_DMA_MAP_FLAG_READ`: the device may read the mapping.
pub const VFIO_DMA_MAP_FLAG_READ: u32 = 1;
/// `VFIO_DMA_MAP_FLAG_WRITE`: the device may write the mapping.
pub const VFIO_DMA_MAP_FLAG_WRITE: u32 = 2;

/// What `VFIO_GET_API_VERSION` returns.
pub const VFIO_API_VERSION: i32 = 0;
/// `VFIO_DEVICE_FEATURE_GET`: get the feature into the data.
pub const VFIO_DEVICE_FEATURE_GET: u32 = 1 << 16;
/// `VFIO_DEVICE_FEATURE_SET`: set the feature from the data.
pub const VFIO_DEVICE_FEATURE_SET: u32 = 1 << 17;
/// `VFIO_DEVICE_FEATURE_PROBE`.
pub const VFIO_DEVICE_FEATURE_PROBE: u32 = 1 << 18;
/// `VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY`: mmaps revoked, device may suspend.
pub const VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY: u32 = 3;
/// `VFIO_DEVICE_FEATURE_LOW_POWER_EXIT`: back to full power.
pub const VFIO_DEVICE_FEATURE_LOW_POWER_EXIT: u32 = 5;
/// `VFIO_NOIOMMU_IOMMU`: the no-IOMMU container type.
pub const VFIO_NOIOMMU_IOMMU: u64 = 8;

/// `VFIO_GROUP_FLAGS_VIABLE`.
pub const VFIO_GROUP_FLAGS_VIABLE: u32 = 1 << 0;
/// `VFIO_DEVICE_FLAGS_RESET`: the device supports `VFIO_DEVICE_RESET`.
pub const VFIO_DEVICE_FLAGS_RESET: u32 = 1 << 0;
/// `VFIO_DEVICE_FLAGS_PCI`.
pub const VFIO_DEVICE_FLAGS_PCI: u32 = 1 << 1;
/// `VFIO_REGION_INFO_FLAG_READ`.
pub const VFIO_REGION_INFO_FLAG_READ: u32 = 1 << 0;
/// `VFIO_REGION_INFO_FLAG_WRITE`.
pub const VFIO_REGION_INFO_FLAG_WRITE: u32 = 1 << 1;
/// `VFIO_REGION_INFO_FLAG_MMAP`.
pub const VFIO_REGION_INFO_FLAG_MMAP: u32 = 1 << 2;

/// `VFIO_PCI_CONFIG_REGION_INDEX`.
pub const VFIO_PCI_CONFIG_REGION_INDEX: u32 = 7;
/// `VFIO_PCI_ROM_REGION_INDEX`.
pub const VFIO_PCI_ROM_REGION_INDEX: u32 = 6;
/// `VFIO_PCI_VGA_REGION_INDEX`.
pub const VFIO_PCI_VGA_REGION_INDEX: u32 = 8;
/// `VFIO_PCI_INTX_IRQ_INDEX`.
pub const VFIO_PCI_INTX_IRQ_INDEX: u32 = 0;
/// `VFIO_PCI_MSI_IRQ_INDEX`.
pub const VFIO_PCI_MSI_IRQ_INDEX: u32 = 1;
/// `VFIO_PCI_MSIX_IRQ_INDEX`.
pub const VFIO_PCI_MSIX_IRQ_INDEX: u32 = 2;
/// `VFIO_PCI_NUM_IRQS`.
pub const VFIO_PCI_NUM_IRQS: u32 = 5;
/// `VFIO_IRQ_SET_DATA_NONE`: no data after the [`IrqSet`] header.
pub const VFIO_IRQ_SET_DATA_NONE: u32 = 1 << 0;
/// `VFIO_IRQ_SET_DATA_BOOL`: one `u8` per IRQ after the header.
pub const VFIO_IRQ_SET_DATA_BOOL: u32 = 1 << 1;
/// `VFIO_IRQ_SET_DATA_EVENTFD`: one `i32` eventfd per IRQ after the header.
pub const VFIO_IRQ_SET_DATA_EVENTFD: u32 = 1 << 2;
/// `VFIO_IRQ_SET_ACTION_MASK`.
pub const VFIO_IRQ_SET_ACTION_MASK: u32 = 1 << 3;
/// `VFIO_IRQ_SET_ACTION_UNMASK`.
pub const VFIO_IRQ_SET_ACTION_UNMASK: u32 = 1 << 4;
/// `VFIO_IRQ_SET_ACTION_TRIGGER`: signal the eventfds (or, with
/// `DATA_NONE` and count 0, disable the index).
pub const VFIO_IRQ_SET_ACTION_TRIGGER: u32 = 1 << 5;
/// vfio-pci places region `i` at `i << VFIO_PCI_OFFSET_SHIFT` in the device
/// file (include/linux/vfio_pci_core.h; userspace learns each offset from
/// `VFIO_DEVICE_GET_REGION_INFO`, which reports exactly that).
pub const VFIO_PCI_OFFSET_SHIFT: u32 = 40;
/// Number of BAR regions (`VFIO_PCI_BAR0_REGION_INDEX` ..= `BAR5`).
pub const VFIO_PCI_NUM_BARS: u32 = 6;

/// PCI config space: the COMMAND register.
pub const PCI_COMMAND: u64 = 0x04;
/// COMMAND bit: memory space enable.
pub const PCI_COMMAND_MEMORY: u16 = 0x2;
/// COMMAND bit: bus master enable (a function sends no MSI without it).
pub const PCI_COMMAND_MASTER: u16 = 0x4;
/// PCI config space: the Status register.
pub const PCI_STATUS: u64 = 0x06;
/// `PCI_STATUS_CAP_LIST`: the function has a capability list.
pub const PCI_STATUS_CAP_LIST: u16 = 0x10;
/// `PCI_CAPABILITY_LIST`: offset of the first capability pointer.
pub const PCI_CAPABILITY_LIST: u64 = 0x34;
/// `PCI_CAP_ID_PM`: power management capability.
pub const PCI_CAP_ID_PM: u8 = 0x01;
/// `PCI_PM_CTRL`: PMCSR, inside the PM capability.
pub const PCI_PM_CTRL: u64 = 4;
/// `PCI_PM_CTRL_STATE_MASK`: the power state field of PMCSR.
pub const PCI_PM_CTRL_STATE_MASK: u16 = 0x3;
/// `PCI_CAP_ID_MSI`: MSI capability.
pub const PCI_CAP_ID_MSI: u8 = 0x05;
/// `PCI_MSI_FLAGS`: MSI Message Control, inside the MSI capability.
pub const PCI_MSI_FLAGS: u64 = 2;
/// `PCI_MSI_FLAGS_ENABLE`.
pub const PCI_MSI_FLAGS_ENABLE: u16 = 0x1;
/// `PCI_MSI_FLAGS_QSIZE`: Multiple Message Enable (log2 of the vectors).
pub const PCI_MSI_FLAGS_QSIZE: u16 = 0x70;
/// `PCI_MSI_FLAGS_64BIT`.
pub const PCI_MSI_FLAGS_64BIT: u16 = 0x80;
/// `PCI_MSI_FLAGS_MASKBIT`: per-vector masking.
pub const PCI_MSI_FLAGS_MASKBIT: u16 = 0x100;
/// `PCI_MSI_ADDRESS_LO`.
pub const PCI_MSI_ADDRESS_LO: u64 = 4;
/// `PCI_MSI_ADDRESS_HI` (64-bit capability).
pub const PCI_MSI_ADDRESS_HI: u64 = 8;
/// `PCI_MSI_DATA_64`: Message Data of a 64-bit capability.
pub const PCI_MSI_DATA_64: u64 = 0x0c;
/// `PCI_MSI_MASK_64`: Mask Bits of a 64-bit capability.
pub const PCI_MSI_MASK_64: u64 = 0x10;
/// `PCI_MSI_PENDING_64`: Pending Bits of a 64-bit capability.
pub const PCI_MSI_PENDING_64: u64 = 0x14;
/// `PCI_CAP_ID_MSIX`: MSI-X capability.
pub const PCI_CAP_ID_MSIX: u8 = 0x11;
/// `PCI_MSIX_FLAGS`: MSI-X Message Control.
pub const PCI_MSIX_FLAGS: u64 = 2;
/// `PCI_MSIX_FLAGS_QSIZE`: Table Size - 1.
pub const PCI_MSIX_FLAGS_QSIZE: u16 = 0x7ff;
/// `PCI_MSIX_FLAGS_MASKALL`: Function Mask.
pub const PCI_MSIX_FLAGS_MASKALL: u16 = 0x4000;
/// `PCI_MSIX_FLAGS_ENABLE`.
pub const PCI_MSIX_FLAGS_ENABLE: u16 = 0x8000;
/// `PCI_MSIX_TABLE`: Table Offset/BIR.
pub const PCI_MSIX_TABLE: u64 = 4;
/// `PCI_MSIX_PBA`: PBA Offset/BIR.
pub const PCI_MSIX_PBA: u64 = 8;
/// `PCI_MSIX_TABLE_BIR` (also the PBA's BIR mask).
pub const PCI_MSIX_TABLE_BIR: u32 = 0x7;
/// `PCI_MSIX_ENTRY_SIZE`: bytes per MSI-X table entry.
pub const PCI_MSIX_ENTRY_SIZE: u64 = 16;
/// `PCI_MSIX_ENTRY_LOWER_ADDR`.
pub const PCI_MSIX_ENTRY_LOWER_ADDR: u64 = 0;
/// `PCI_MSIX_ENTRY_UPPER_ADDR`.
pub const PCI_MSIX_ENTRY_UPPER_ADDR: u64 = 4;
/// `PCI_MSIX_ENTRY_DATA`.
pub const PCI_MSIX_ENTRY_DATA: u64 = 8;
/// `PCI_MSIX_ENTRY_VECTOR_CTRL`.
pub const PCI_MSIX_ENTRY_VECTOR_CTRL: u64 = 12;
/// `PCI_MSIX_ENTRY_CTRL_MASKBIT`: the entry is masked.
pub const PCI_MSIX_ENTRY_CTRL_MASKBIT: u32 = 0x1;
/// `PCI_CAP_ID_EXP`: PCI Express capability.
pub const PCI_CAP_ID_EXP: u8 = 0x10;
/// `PCI_EXP_DEVCAP`: Device Capabilities, inside the PCIe capability.
pub const PCI_EXP_DEVCAP: u64 = 4;
/// `PCI_EXP_DEVCAP_FLR`: Function Level Reset supported.
pub const PCI_EXP_DEVCAP_FLR: u32 = 1 << 28;
/// `PCI_EXP_DEVCTL`: Device Control, inside the PCIe capability.
pub const PCI_EXP_DEVCTL: u64 = 8;
/// `PCI_EXP_DEVCTL_BCR_FLR`: Initiate Function Level Reset.
pub const PCI_EXP_DEVCTL_BCR_FLR: u16 = 0x8000;

/// `struct vfio_pci_hot_reset_info` (the devices follow it).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct HotResetInfo {
    /// Size of this struct plus the room for devices.
    pub argsz: u32,
    /// `VFIO_PCI_HOT_RESET_FLAG_*`.
    pub flags: u32,
    /// Devices the reset affects.
    pub count: u32,
}

/// `struct vfio_pci_dependent_device`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct DependentDevice {
    /// IOMMU group (group path) or iommufd device id (cdev path).
    pub id: u32,
    /// PCI segment (the low 16 bits of the domain).
    pub segment: u16,
    /// Bus number.
    pub bus: u8,
    /// Device and function.
    pub devfn: u8,
}

/// `struct vfio_pci_hot_reset` (the group fds follow it).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct HotReset {
    /// Size of this struct plus the group fds.
    pub argsz: u32,
    /// No flags are defined.
    pub flags: u32,
    /// Group fds that follow.
    pub count: u32,
}

const _: () = assert!(std::mem::size_of::<DependentDevice>() == 8);

/// `struct vfio_device_feature` without data (the low-power features
/// carry none).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Feature {
    /// Size of this struct.
    pub argsz: u32,
    /// Feature index and GET/SET/PROBE.
    pub flags: u32,
}

/// `struct vfio_group_status`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct GroupStatus {
    /// Size of this struct.
    pub argsz: u32,
    /// `VFIO_GROUP_FLAGS_*`.
    pub flags: u32,
}

/// `struct vfio_device_info`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct DeviceInfo {
    /// Size of this struct.
    pub argsz: u32,
    /// `VFIO_DEVICE_FLAGS_*`.
    pub flags: u32,
    /// Number of regions.
    pub num_regions: u32,
    /// Number of IRQ types.
    pub num_irqs: u32,
    /// Offset of the first capability, if any.
    pub cap_offset: u32,
    /// Padding.
    pub pad: u32,
}

/// `struct vfio_region_info`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct RegionInfo {
    /// Size of this struct.
    pub argsz: u32,
    /// `VFIO_REGION_INFO_FLAG_*`.
    pub flags: u32,
    /// Region index (`VFIO_PCI_*_REGION_INDEX`).
    pub index: u32,
    /// Offset of the first capability, if any.
    pub cap_offset: u32,
    /// Region size in bytes.
    pub size: u64,
    /// Offset of the region in the device fd (for pread/pwrite/mmap).
    pub offset: u64,
}

/// `struct vfio_device_bind_iommufd`, up to `out_devid` (the kernel's
/// minimum size; the optional token pointer after it is not used).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct BindIommufd {
    /// Size of this struct.
    pub argsz: u32,
    /// No flags are used.
    pub flags: u32,
    /// The iommufd (7.3 refuses a negative one, no-IOMMU devices included).
    pub iommufd: i32,
    /// Set by the kernel.
    pub out_devid: u32,
}

/// `struct vfio_iommu_type1_dma_map`: map `size` bytes of the process's
/// memory at `vaddr` to `iova` in the container's IOMMU domain.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct DmaMap {
    /// Size of this struct.
    pub argsz: u32,
    /// `VFIO_DMA_MAP_FLAG_READ` and/or `VFIO_DMA_MAP_FLAG_WRITE`.
    pub flags: u32,
    /// Process virtual address (page aligned).
    pub vaddr: u64,
    /// IO virtual address (page aligned).
    pub iova: u64,
    /// Bytes (whole pages).
    pub size: u64,
}

/// `struct vfio_irq_info`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct IrqInfo {
    /// Size of this struct.
    pub argsz: u32,
    /// `VFIO_IRQ_INFO_*`.
    pub flags: u32,
    /// IRQ index.
    pub index: u32,
    /// Number of IRQs of the index.
    pub count: u32,
}

/// `struct vfio_irq_set` without data.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct IrqSet {
    /// Size of this struct plus the data.
    pub argsz: u32,
    /// `VFIO_IRQ_SET_*`.
    pub flags: u32,
    /// IRQ index.
    pub index: u32,
    /// First IRQ.
    pub start: u32,
    /// Number of IRQs.
    pub count: u32,
}

/// `struct vfio_device_ioeventfd`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Ioeventfd {
    /// Size of this struct.
    pub argsz: u32,
    /// Access size (`VFIO_DEVICE_IOEVENTFD_8` ...).
    pub flags: u32,
    /// Device file offset of the write.
    pub offset: u64,
    /// Value written.
    pub data: u64,
    /// eventfd, or -1 to remove.
    pub fd: i32,
    /// Reserved.
    pub reserved: u32,
}

/// `argsz` for a uAPI struct.
pub fn argsz<T>() -> u32 {
    std::mem::size_of::<T>() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_linux_vfio_h() {
        // Values of the C macros on x86_64 (_IO(';', 100 + n)).
        assert_eq!(VFIO_GET_API_VERSION, 0x3b64);
        assert_eq!(VFIO_SET_IOMMU, 0x3b66);
        assert_eq!(VFIO_GROUP_GET_DEVICE_FD, 0x3b6a);
        assert_eq!(VFIO_DEVICE_GET_REGION_INFO, 0x3b6c);
        assert_eq!(VFIO_DEVICE_RESET, 0x3b6f);
        assert_eq!(VFIO_DEVICE_BIND_IOMMUFD, 0x3b76);
        assert_eq!(VFIO_IOMMU_MAP_DMA, 0x3b71);
        assert_eq!(VFIO_DEVICE_GET_IRQ_INFO, 0x3b6d);
        assert_eq!(VFIO_DEVICE_SET_IRQS, 0x3b6e);
        assert_eq!(VFIO_DEVICE_IOEVENTFD, 0x3b74);
    }

    #[test]
    fn struct_sizes_match_linux_vfio_h() {
        assert_eq!(argsz::<GroupStatus>(), 8);
        assert_eq!(argsz::<DeviceInfo>(), 24);
        assert_eq!(argsz::<RegionInfo>(), 32);
        assert_eq!(argsz::<BindIommufd>(), 16);
        assert_eq!(argsz::<IrqInfo>(), 16);
        assert_eq!(argsz::<IrqSet>(), 20);
        assert_eq!(argsz::<Ioeventfd>(), 32);
    }

    #[test]
    fn irq_set_flags_match_linux_vfio_h() {
        assert_eq!(VFIO_IRQ_SET_DATA_NONE, 0x1);
        assert_eq!(VFIO_IRQ_SET_DATA_BOOL, 0x2);
        assert_eq!(VFIO_IRQ_SET_DATA_EVENTFD, 0x4);
        assert_eq!(VFIO_IRQ_SET_ACTION_MASK, 0x8);
        assert_eq!(VFIO_IRQ_SET_ACTION_UNMASK, 0x10);
        assert_eq!(VFIO_IRQ_SET_ACTION_TRIGGER, 0x20);
        // The data of a vfio_irq_set starts right after its 20 bytes.
        assert_eq!(std::mem::align_of::<IrqSet>(), 4);
    }
}
