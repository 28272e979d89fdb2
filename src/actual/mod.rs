//! The actual state: one snapshot of regions, namespaces, block devices, dm devices,
//! GPT partition tables, filesystems and mounts. Probed from the kernel by the real
//! system, kept in memory by the fake one, or read from a JSON file (`--actual`).
//!
//! Objects are linked by device number (`major:minor`), which is what dm tables and
//! mountinfo print, never by `/dev/pmemN` names (they can change between boots).

pub mod cxl;
pub mod dm;
pub mod kernel;
pub mod lvm;
pub mod ram;

pub use cxl::Cxl;
pub use dm::{Devno, DmTable};
pub use kernel::DaxSyntax;
pub use lvm::Lvm;

use crate::args::{DaxMode, MapMode, NamespaceMode};
use crate::units::{Bytes, Sectors};
use serde::{Deserialize, Serialize};

/// An NVDIMM region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    /// `regionN`.
    pub name: String,
    /// Total size.
    pub size: Bytes,
    /// Space not yet used by labelled namespaces.
    pub available_size: Bytes,
    /// Region alignment (namespace sizes are multiples of it x interleave ways).
    #[serde(default)]
    pub align: Option<Bytes>,
    /// NUMA node.
    #[serde(default)]
    pub numa_node: Option<i32>,
    /// DIMMs interleaved in it.
    #[serde(default)]
    pub interleave_ways: Option<u32>,
    /// Whether the DIMMs have a label area (namespaces can be named and carved).
    /// `false` for legacy (e820) regions of the kernel's `memmap=` option and for DIMMs
    /// without a label area: one namespace spans the region and cannot carry a name.
    #[serde(default = "yes")]
    pub labels: bool,
    /// Physical start address (sysfs `resource`): with `size`, the region's identity,
    /// which does not follow enumeration order as `regionN` does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
}

impl Region {
    /// Its stable identity, if the kernel shows its address.
    pub fn identity(&self) -> Option<RegionId> {
        self.start.map(|start| RegionId {
            start,
            size: self.size,
        })
    }
}

/// A region's stable identity: its physical address range. Region numbers follow the
/// platform's enumeration order (they swap when DIMMs are listed the other way); the
/// address range of a DIMM in its slot, or of a `memmap=` range, does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RegionId {
    /// Physical start address.
    pub start: u64,
    /// Size.
    pub size: Bytes,
}

impl std::fmt::Display for RegionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}, {}", self.start, self.size)
    }
}

/// The name this module keeps for a namespace that cannot carry one in a label: the one
/// namespace of a label-less region (found by the region's address range), or a
/// namespace the user adopted by its uuid. Kept in a file of its own per name
/// (`/var/lib/pmem-stack/names/NAME`), written before the namespace is converted and
/// removed when it is destroyed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRecord {
    /// The declared name.
    pub name: String,
    /// Not on the machine yet: the planner's view of a namespace it adopts in this run
    /// (see `plan::adoption_view`).
    #[serde(skip)]
    pub planned: bool,
    /// What it names.
    #[serde(flatten)]
    pub of: Named,
}

/// What a [`NameRecord`] names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Named {
    /// The one namespace of the label-less region at this address range.
    Region(RegionId),
    /// The namespace with this uuid (its label's, or its fsdax/devdax/sector info
    /// block's, as `ndctl list` shows it).
    Uuid(String),
}

fn yes() -> bool {
    true
}

/// A namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// Kernel device, `namespaceX.Y`.
    pub dev: String,
    /// Region, `regionX`.
    pub region: String,
    /// Name (alt_name); `None` when empty or label-less.
    #[serde(default)]
    pub name: Option<String>,
    /// Mode.
    pub mode: NamespaceMode,
    /// Namespace size (raw, before fsdax/devdax metadata).
    pub size: Bytes,
    /// Label uuid; `None` for a label-less namespace.
    #[serde(default)]
    pub uuid: Option<String>,
    /// fsdax/devdax alignment.
    #[serde(default)]
    pub align: Option<Bytes>,
    /// fsdax/devdax page metadata placement.
    #[serde(default)]
    pub map: Option<MapMode>,
    /// Block device name (`pmemN`, `pmemNs`), if it has one.
    #[serde(default)]
    pub blockdev: Option<String>,
    /// Character device name (`daxX.Y`) in devdax mode.
    #[serde(default)]
    pub chardev: Option<String>,
    /// Physical start address (sysfs `resource`).
    #[serde(default)]
    pub resource: Option<u64>,
    /// NUMA node.
    #[serde(default)]
    pub numa_node: Option<i32>,
    /// The uuid of its fsdax/devdax/sector info block (`pfnX.Y/uuid`, ...), which
    /// `ndctl list` shows as the namespace's `uuid`; `None` without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info_uuid: Option<String>,
    /// Where its name comes from when no label carries it: this module's record
    /// (`true`), or its label (`false`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub name_recorded: bool,
}

/// The name of partition `number` of disk `disk`, the kernel's way (`pmem0p1`, `sda1`),
/// and kpartx's for the mapping of a dm device's partition.
pub fn partition_name(disk: &str, number: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{number}")
    } else {
        format!("{disk}{number}")
    }
}

impl Namespace {
    /// A label-less namespace (fresh DIMMs, or DIMMs without a label area): one raw
    /// namespace spanning the region, which can only be converted in place.
    pub fn is_label_less(&self) -> bool {
        self.uuid.is_none()
    }
    /// A label-less namespace that carries no info block yet (raw, or the page-mapped
    /// `memory` mode the kernel gives a `memmap=` range): nothing was made of it.
    pub fn is_fresh(&self) -> bool {
        self.is_label_less() && self.info_uuid.is_none()
    }
    /// Whether `uuid` is its label's or its info block's.
    pub fn has_uuid(&self, uuid: &str) -> bool {
        let same = |u: &Option<String>| u.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(uuid));
        same(&self.uuid) || same(&self.info_uuid)
    }
    /// Disabled: no driver holds it, so it has no block (or dax) device. What an
    /// interrupted ndctl leaves (labels written, never enabled), or `ndctl
    /// disable-namespace`; its content cannot be inspected.
    pub fn is_disabled(&self) -> bool {
        match self.mode {
            NamespaceMode::Devdax => self.chardev.is_none(),
            _ => self.blockdev.is_none(),
        }
    }
}

/// A block device (whole disk, partition or dm device).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDevice {
    /// Kernel name (`pmem0`, `pmem0p1`, `dm-0`).
    pub name: String,
    /// Device number.
    pub devno: Devno,
    /// Canonical path (`/dev/pmem0`, `/dev/mapper/NAME` for dm devices).
    pub path: String,
    /// Other paths that lead to it (`/dev/dm-0`, `/dev/disk/by-id/...`).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Size.
    pub size: Sectors,
    /// `queue/dax`: the device can do DAX.
    #[serde(default)]
    pub dax: bool,
    /// Kernel names of devices holding it (dm devices over it).
    #[serde(default)]
    pub holders: Vec<String>,
    /// For a partition: parent disk's kernel name, partition number and start.
    #[serde(default)]
    pub partition: Option<PartitionOf>,
    /// `queue/max_sectors_kb`: the largest I/O. dm-striped maps DAX only up to it, so
    /// below the chunk every fault falls back to 4 KiB pages (seen on 6.1).
    #[serde(default)]
    pub max_sectors_kb: Option<u32>,
}

#[cfg(test)]
impl BlockDevice {
    /// A DAX-capable whole disk of 8 sectors at `/dev/NAME`, held by `holders`.
    pub(crate) fn for_test(name: &str, devno: Devno, holders: &[&str]) -> BlockDevice {
        BlockDevice {
            name: name.into(),
            devno,
            path: format!("/dev/{name}"),
            aliases: Vec::new(),
            size: Sectors(8),
            dax: true,
            holders: holders.iter().map(|h| h.to_string()).collect(),
            partition: None,
            max_sectors_kb: None,
        }
    }
}

/// Whether `name` is a [`partition_name`] of a partition of `disk`.
pub fn mapping_prefix_matches(disk: &str, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(disk) else {
        return false;
    };
    let rest = if disk.ends_with(|c: char| c.is_ascii_digit()) {
        match rest.strip_prefix('p') {
            Some(r) => r,
            None => return false,
        }
    } else {
        rest
    };
    !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit())
}

/// Where a partition block device sits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOf {
    /// Parent disk kernel name.
    pub disk: String,
    /// Partition number.
    pub number: u32,
    /// Start on the parent.
    pub start: Sectors,
}

/// A device-mapper device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmDevice {
    /// dm name.
    pub name: String,
    /// Device number.
    pub devno: Devno,
    /// dm uuid, if set.
    #[serde(default)]
    pub uuid: Option<String>,
    /// Live table, one `start length target params` line per target (members as
    /// major:minor); a list of those text lines on the wire.
    pub table: DmTable,
    /// Suspended.
    #[serde(default)]
    pub suspended: bool,
    /// Open count.
    #[serde(default)]
    pub open_count: u32,
}

impl DmDevice {
    /// Made by LVM: its dm uuid starts `LVM-` (an LV's, or a sub-device of one).
    pub fn is_lvm(&self) -> bool {
        self.uuid
            .as_deref()
            .is_some_and(|u| u.starts_with(lvm::LVM_DM_UUID_PREFIX))
    }
}

/// A GPT partition table on a disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionTable {
    /// The disk's device number.
    pub disk: Devno,
    /// First usable sector.
    pub first_usable: Sectors,
    /// Last usable sector (inclusive).
    pub last_usable: Sectors,
    /// Entries in use.
    pub partitions: Vec<GptPartition>,
}

/// A GPT entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GptPartition {
    /// Number (1-based).
    pub number: u32,
    /// Name.
    pub name: String,
    /// First sector.
    pub start: Sectors,
    /// Size in sectors.
    pub size: Sectors,
    /// Partition type GUID.
    #[serde(default)]
    pub type_guid: Option<String>,
    /// Partition GUID.
    #[serde(default)]
    pub uuid: Option<String>,
}

/// A filesystem signature found on a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filesystem {
    /// The device it is on.
    pub device: Devno,
    /// Type (`ext4`, `xfs`, or whatever else was recognised).
    pub fstype: String,
    /// UUID.
    #[serde(default)]
    pub uuid: Option<String>,
    /// Label.
    #[serde(default)]
    pub label: Option<String>,
    /// Block size.
    #[serde(default)]
    pub block_size: Option<Bytes>,
    /// Stripe unit in fs blocks (ext4 stride, xfs sunit in blocks).
    #[serde(default)]
    pub stripe_unit: Option<u32>,
    /// Stripe width in fs blocks (ext4 stripe_width, xfs swidth in blocks).
    #[serde(default)]
    pub stripe_width: Option<u32>,
    /// xfs reflink feature.
    #[serde(default)]
    pub reflink: Option<bool>,
    /// Bytes it spans (from the superblock). Larger than its device: it is the
    /// filesystem of a device built over this one (a dm device's first member).
    #[serde(default)]
    pub size: Option<Bytes>,
    /// Its mkfs never finished (xfs's `sb_inprogress`, set first and cleared last by
    /// mkfs.xfs: the kernel refuses to mount it). It holds no data.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
}

/// A mount (from mountinfo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Mount point.
    pub target: String,
    /// Device number of the source (mountinfo field 3).
    pub devno: Devno,
    /// Source as mountinfo shows it.
    pub source: String,
    /// Filesystem type.
    pub fstype: String,
    /// Per-mount and superblock options, split.
    pub options: Vec<String>,
    /// DAX mode in effect (`dax=` in the options), if the filesystem reports one.
    #[serde(default)]
    pub dax: Option<DaxMode>,
    /// xfs: extent size hint on the root directory and whether it is inherited.
    #[serde(default)]
    pub root_extsize: Option<Extsize>,
}

/// A mount held in another mount namespace than the run's own, found in the mountinfo
/// of a process of that namespace (`/proc/PID/mountinfo`), one entry per namespace,
/// mount point and device.
///
/// Why they outlive our umount: a namespace made as a copy of ours keeps its copies of
/// our mounts; an umount in ours reaches them only through mount propagation (a copy
/// that is a slave of, or a peer to, ours), and only where nothing is mounted over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsMount {
    /// The namespace: the inode of `/proc/PID/ns/mnt` (`mnt:[N]`).
    pub ns: u64,
    /// A process in it (the lowest pid found there), through which it is entered.
    pub pid: u32,
    /// That process's command name (`/proc/PID/comm`), for people.
    pub comm: String,
    /// Mount point, as that process sees it (relative to its root).
    pub target: String,
    /// Device number of the mounted device.
    pub devno: Devno,
}

impl NsMount {
    /// `systemd-logind (pid 345, mnt:[4026532212])`.
    pub fn who(&self) -> String {
        format!("{} (pid {}, mnt:[{}])", self.comm, self.pid, self.ns)
    }
}

/// An extent size hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extsize {
    /// Size.
    pub size: Bytes,
    /// FS_XFLAG_EXTSZINHERIT set (new files inherit it).
    pub inherit: bool,
}

/// Facts about the machine that matter for 2 MiB DAX pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// Page size.
    pub page_size: Bytes,
    /// CPU flag `pse` (2 MiB pages).
    pub pse: bool,
    /// CPU flag `pdpe1gb` (1 GiB pages).
    pub pdpe1gb: bool,
    /// /sys/kernel/mm/transparent_hugepage/enabled (the selected value).
    #[serde(default)]
    pub thp: Option<String>,
    /// The running kernel's release (`uname -r`, e.g. `6.1.0-27-amd64`): it decides how
    /// the DAX mount option is spelled (see [`kernel`]). `None` in snapshots captured
    /// before it was recorded, which keep the `dax=` form.
    #[serde(default)]
    pub kernel: Option<String>,
}

/// What a managed file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FileContent {
    /// A text file.
    Text {
        /// Its text.
        text: String,
    },
    /// A symbolic link.
    Link {
        /// Where it points.
        target: String,
    },
    /// A binary: only whether it is this very program.
    Binary {
        /// Same bytes as the running executable.
        matches_self: bool,
    },
}

/// A file the module manages (boot persistence), as found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    /// Path on the machine.
    pub path: String,
    /// Content.
    pub content: FileContent,
    /// Permission bits (regular files).
    #[serde(default)]
    pub mode: Option<u32>,
}

/// The whole snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Actual {
    /// Regions.
    #[serde(default)]
    pub regions: Vec<Region>,
    /// Namespaces.
    #[serde(default)]
    pub namespaces: Vec<Namespace>,
    /// Block devices.
    #[serde(default)]
    pub block_devices: Vec<BlockDevice>,
    /// dm devices.
    #[serde(default)]
    pub dm_devices: Vec<DmDevice>,
    /// GPT partition tables.
    #[serde(default)]
    pub partition_tables: Vec<PartitionTable>,
    /// Filesystems.
    #[serde(default)]
    pub filesystems: Vec<Filesystem>,
    /// Mounts.
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// Mounts of this run's devices held in *other* mount namespaces than the run's own:
    /// the copies a process took when it got its own namespace (systemd's sandboxed
    /// services, `ProtectSystem=`/`ProtectHome=`, such as systemd-logind), which an
    /// umount in ours does not always reach (see [`NsMount`]). Probed only for runs that
    /// may tear something down (`state: absent`, `allow_data_loss`; see
    /// [`crate::system::ProbeScope`]), and only for the devices the probe lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elsewhere: Vec<NsMount>,
    /// LVM as the devices in the probe's scope carry it on disk: PVs, VGs, LVs.
    #[serde(default, skip_serializing_if = "Lvm::is_empty")]
    pub lvm: Lvm,
    /// CXL memory devices, root decoders and regions (sysfs); none without a CXL bus.
    #[serde(default, skip_serializing_if = "Cxl::is_empty")]
    pub cxl: Cxl,
    /// Dax devices, and their memory in system-ram mode (sysfs); none without one.
    #[serde(default, skip_serializing_if = "ram::Memory::is_empty")]
    pub memory: ram::Memory,
    /// Files of boot persistence that exist (state, units, links, the installed binary).
    #[serde(default)]
    pub files: Vec<FileState>,
    /// Page size and CPU flags.
    #[serde(default)]
    pub platform: Option<Platform>,
    /// Namespaces this module made whose ends it had not yet cleared when its run was
    /// stopped (a marker written before ndctl ran and removed after the clearing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uncleared: Vec<Uncleared>,
    /// The names this module keeps for namespaces without a label to carry them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub name_records: Vec<NameRecord>,
    /// Block devices in the probe's scope whose content could not be read (an I/O
    /// error, no permission, a suspended dm device or one stacked on it, a device gone
    /// during the probe): what is on them is unknown, not empty. The planner refuses to
    /// act on or under one of them and warns about the others.
    #[serde(default)]
    pub unreadable: Vec<Unreadable>,
    /// Kernel support the probe found missing (each explains the empty lists it leaves).
    #[serde(default)]
    pub missing: Vec<Missing>,
}

/// A namespace made by this module whose ends are not known to be cleared: what it shows
/// may be the content of an earlier namespace at the same place, never its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uncleared {
    /// The label uuid the module gave it (`ndctl create-namespace --uuid`).
    pub uuid: String,
    /// The name it was made for.
    pub name: String,
}

/// A block device whose content (GPT, superblock) the probe could not read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreadable {
    /// The device.
    pub device: Devno,
    /// Its path (the node that was, or would have been, opened).
    pub path: String,
    /// What failed, for people (`reading the GPT: Input/output error (os error 5)`).
    pub error: String,
}

/// Kernel support that is not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// No NVDIMM bus (`/sys/bus/nd/devices/ndbus*`): the NVDIMM drivers are not loaded,
    /// the kernel has none, or the machine has no persistent memory.
    Nvdimm,
    /// No device-mapper: no `/dev/mapper/control`, or `dm_mod` is not loaded.
    DeviceMapper,
    /// `/dev/mapper/control` exists but opening it is not permitted (a container's device
    /// cgroup, or not root): dm devices cannot be listed or managed from here.
    DeviceMapperAccess,
}

impl Missing {
    /// What is missing and how to load it, for people.
    pub fn explain(self) -> &'static str {
        match self {
            Missing::Nvdimm => {
                "no NVDIMM bus (no /sys/bus/nd/devices/ndbus*): the NVDIMM drivers are not loaded (modprobe nfit nd_pmem) or this machine has no persistent memory"
            }
            Missing::DeviceMapper => {
                "no device-mapper: /dev/mapper/control is missing or dm_mod is not loaded (modprobe dm_mod)"
            }
            Missing::DeviceMapperAccess => {
                "device-mapper cannot be used from here: opening /dev/mapper/control is not permitted (not root, or a container's device cgroup)"
            }
        }
    }
}

impl Actual {
    /// Namespace named `name`.
    pub fn namespace_named(&self, name: &str) -> Option<&Namespace> {
        self.namespaces
            .iter()
            .find(|n| n.name.as_deref() == Some(name))
    }
    /// Region called `name`.
    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name == name)
    }
    /// Region called `name`, to change.
    pub fn region_mut(&mut self, name: &str) -> Option<&mut Region> {
        self.regions.iter_mut().find(|r| r.name == name)
    }
    /// Block device by kernel name.
    pub fn block_named(&self, name: &str) -> Option<&BlockDevice> {
        self.block_devices.iter().find(|b| b.name == name)
    }
    /// Block device by number.
    pub fn block(&self, devno: Devno) -> Option<&BlockDevice> {
        self.block_devices.iter().find(|b| b.devno == devno)
    }
    /// Block device by path or alias.
    pub fn block_at(&self, path: &str) -> Option<&BlockDevice> {
        self.block_devices
            .iter()
            .find(|b| b.path == path || b.aliases.iter().any(|a| a == path))
    }
    /// dm device by name.
    pub fn dm(&self, name: &str) -> Option<&DmDevice> {
        self.dm_devices.iter().find(|d| d.name == name)
    }
    /// dm device by device number.
    pub fn dm_by_devno(&self, devno: Devno) -> Option<&DmDevice> {
        self.dm_devices.iter().find(|d| d.devno == devno)
    }
    /// GPT on a disk.
    pub fn gpt(&self, disk: Devno) -> Option<&PartitionTable> {
        self.partition_tables.iter().find(|t| t.disk == disk)
    }
    /// Filesystem on a device.
    pub fn filesystem(&self, devno: Devno) -> Option<&Filesystem> {
        self.filesystems.iter().find(|f| f.device == devno)
    }
    /// Mount at a path (the topmost one if stacked).
    pub fn mount_at(&self, path: &str) -> Option<&Mount> {
        self.mounts.iter().rev().find(|m| m.target == path)
    }
    /// Mounts of a device.
    pub fn mounts_of(&self, devno: Devno) -> impl Iterator<Item = &Mount> {
        self.mounts.iter().filter(move |m| m.devno == devno)
    }
    /// Copies of the mount of `devno` at `target` held in other mount namespaces.
    pub fn copies_elsewhere<'a>(
        &'a self,
        devno: Devno,
        target: &'a str,
    ) -> impl Iterator<Item = &'a NsMount> + 'a {
        self.elsewhere
            .iter()
            .filter(move |m| m.devno == devno && m.target == target)
    }
    /// Partition block devices of a disk.
    pub fn partitions_of<'a>(
        &'a self,
        disk: &'a str,
    ) -> impl Iterator<Item = &'a BlockDevice> + 'a {
        self.block_devices
            .iter()
            .filter(move |b| b.partition.as_ref().is_some_and(|p| p.disk == disk))
    }
    /// The dm devices (and other holders) that hold `bd`, as block devices, in the order
    /// the kernel lists them (a holder not listed as a block device is left out).
    pub fn holders_of<'a>(
        &'a self,
        bd: &'a BlockDevice,
    ) -> impl Iterator<Item = &'a BlockDevice> + 'a {
        bd.holders.iter().filter_map(|h| self.block_named(h))
    }
    /// The device graph upwards: `devno` and everything stacked on it (its partitions,
    /// then the devices holding it, depth first), transitively, each once: a corrupt
    /// snapshot may have holder cycles, and a device reached twice says nothing new.
    pub fn stack_above(&self, devno: Devno) -> Vec<&BlockDevice> {
        self.stack_above_until(devno, &|_| false)
    }
    /// [`Actual::stack_above`], neither listing nor climbing above a device for which
    /// `stop` is true (one whose stack a caller has accounted for already).
    pub fn stack_above_until(
        &self,
        devno: Devno,
        stop: &dyn Fn(&BlockDevice) -> bool,
    ) -> Vec<&BlockDevice> {
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut todo: Vec<&BlockDevice> = self.block(devno).into_iter().collect();
        while let Some(b) = todo.pop() {
            if stop(b) || !seen.insert(b.devno) {
                continue;
            }
            out.push(b);
            // pushed in reverse, so that they are visited partitions first, in order
            let above: Vec<&BlockDevice> = self
                .partitions_of(&b.name)
                .chain(self.holders_of(b))
                .collect();
            todo.extend(above.into_iter().rev());
        }
        out
    }
    /// The device graph downwards: what `devno` is stacked on (a partition's disk, the
    /// members a dm device holds), transitively, each once, without `devno` itself.
    pub fn stack_below(&self, devno: Devno) -> Vec<&BlockDevice> {
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeSet::from([devno]);
        let mut todo: Vec<&BlockDevice> = self.block(devno).into_iter().collect();
        while let Some(b) = todo.pop() {
            let below = self
                .block_devices
                .iter()
                .filter(|l| l.holders.contains(&b.name))
                .chain(b.partition.as_ref().and_then(|p| self.block_named(&p.disk)));
            for l in below {
                if seen.insert(l.devno) {
                    out.push(l);
                    todo.push(l);
                }
            }
        }
        out
    }
    /// A managed file by path.
    pub fn file(&self, path: &str) -> Option<&FileState> {
        self.files.iter().find(|f| f.path == path)
    }
    /// The running kernel's release, if recorded.
    pub fn kernel(&self) -> Option<&str> {
        self.platform.as_ref()?.kernel.as_deref()
    }
    /// How the running kernel spells the DAX mount option (the `dax=` form of 5.8 and
    /// later when the kernel is not known).
    pub fn dax_syntax(&self) -> DaxSyntax {
        DaxSyntax::of(self.kernel())
    }
    /// Whether the namespace `ns` was made by this module and not yet cleared.
    pub fn is_uncleared(&self, ns: &Namespace) -> bool {
        match ns.uuid.as_deref() {
            Some(u) => self.uncleared.iter().any(|m| m.uuid == u),
            // a label-less namespace gets no label uuid from ndctl: its marker is known
            // by the recorded name (written before ndctl ran, as the marker)
            None => {
                ns.name_recorded
                    && ns
                        .name
                        .as_deref()
                        .is_some_and(|n| self.uncleared.iter().any(|m| m.name == n))
            }
        }
    }
    /// The record that names namespace `ns`, if one does (see [`NameRecord`]).
    pub fn record_of(&self, ns: &Namespace) -> Option<&NameRecord> {
        self.name_records.iter().find(|r| match &r.of {
            Named::Uuid(u) => ns.has_uuid(u),
            Named::Region(id) => {
                ns.is_label_less()
                    && self
                        .region(&ns.region)
                        .and_then(Region::identity)
                        .is_some_and(|have| have == *id)
            }
        })
    }
    /// Give the namespaces that carry no name of their own the name recorded for them
    /// (a name the label has wins: that namespace was relabelled since). What the
    /// probe does once it has read the namespaces and the records.
    pub fn apply_name_records(&mut self) {
        for ns in self.namespaces.iter_mut().filter(|n| n.name_recorded) {
            ns.name = None;
            ns.name_recorded = false;
        }
        let names: Vec<Option<String>> = self
            .namespaces
            .iter()
            .map(|ns| {
                if ns.name.is_some() || ns.size.is_zero() {
                    return None;
                }
                self.record_of(ns).map(|r| r.name.clone())
            })
            .collect();
        for (ns, name) in self.namespaces.iter_mut().zip(names) {
            if let Some(n) = name {
                ns.name = Some(n);
                ns.name_recorded = true;
            }
        }
    }
    /// Why the content of device `devno` is unknown, if the probe could not read it.
    pub fn unreadable(&self, devno: Devno) -> Option<&Unreadable> {
        self.unreadable.iter().find(|u| u.device == devno)
    }
    /// The VG named `name`.
    pub fn vg(&self, name: &str) -> Option<&lvm::Vg> {
        self.lvm.vg(name)
    }
    /// The LV `lv` of the VG named `vg`, with its VG.
    pub fn lv(&self, vg: &str, lv: &str) -> Option<(&lvm::Vg, &lvm::Lv)> {
        self.lvm.lv(vg, lv)
    }
    /// The PV on device `devno`.
    pub fn pv(&self, devno: Devno) -> Option<&lvm::Pv> {
        self.lvm.pv(devno)
    }
    /// The active dm device of LV `lv` of VG `vg`: the one whose dm uuid is the LV's
    /// ([`lvm::Lv::dm_uuid`]); `None` when the LV is not active (or not known).
    pub fn lv_dm(&self, vg: &str, lv: &str) -> Option<&DmDevice> {
        let (vg, lv) = self.lv(vg, lv)?;
        let uuid = lv.dm_uuid(vg);
        self.dm_devices
            .iter()
            .find(|d| d.uuid.as_deref() == Some(uuid.as_str()))
    }
    /// The LV whose active dm device is `dm` (its dm uuid is the LV's), with its VG.
    pub fn lv_of_dm(&self, dm: &DmDevice) -> Option<(&lvm::Vg, &lvm::Lv)> {
        self.lvm.lv_by_dm_uuid(dm.uuid.as_deref()?)
    }
    /// Whether every device holding `b` is an LV's dm device (dm uuid `LVM-`): `b` is
    /// then a PV whose first bytes (label, metadata) are its own, not a device's above.
    pub fn held_only_by_lvm(&self, b: &BlockDevice) -> bool {
        !b.holders.is_empty()
            && b.holders.iter().all(|h| {
                self.block_named(h)
                    .and_then(|hb| self.dm_by_devno(hb.devno))
                    .is_some_and(DmDevice::is_lvm)
            })
    }
    /// Namespace whose block device is `blockdev`.
    pub fn namespace_of_block(&self, blockdev: &str) -> Option<&Namespace> {
        self.namespaces
            .iter()
            .find(|n| n.blockdev.as_deref() == Some(blockdev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The device graph upwards: partitions first, then holders, depth first; each
    /// device once however the holders loop; `stop` neither lists nor climbs.
    #[test]
    fn the_stack_above_a_device_is_walked_once_through_cycles() {
        let dev = |name: &str, minor: u32, holders: &[&str], part_of: Option<&str>| BlockDevice {
            name: name.into(),
            devno: Devno { major: 259, minor },
            path: format!("/dev/{name}"),
            aliases: Vec::new(),
            size: Sectors(8),
            dax: true,
            holders: holders.iter().map(|h| h.to_string()).collect(),
            partition: part_of.map(|d| PartitionOf {
                disk: d.into(),
                number: 1,
                start: Sectors(0),
            }),
            max_sectors_kb: None,
        };
        let a = Actual {
            block_devices: vec![
                dev("pmem0", 0, &["dm-0", "dm-9"], None),
                dev("dm-0", 1, &["dm-1"], None),
                // a ring: dm-1 holds dm-0 again, and a device that is its own partition
                dev("dm-1", 2, &["dm-0"], Some("dm-1")),
                dev("pmem0p1", 3, &[], Some("pmem0")),
            ],
            ..Actual::default()
        };
        let names = |v: Vec<&BlockDevice>| v.iter().map(|b| b.name.clone()).collect::<Vec<_>>();
        let pmem0 = Devno {
            major: 259,
            minor: 0,
        };
        // dm-9 is no listed block device: left out
        assert_eq!(
            names(a.stack_above(pmem0)),
            ["pmem0", "pmem0p1", "dm-0", "dm-1"]
        );
        assert_eq!(
            names(a.stack_above_until(pmem0, &|b| b.name == "dm-0")),
            ["pmem0", "pmem0p1"]
        );
        assert!(a.stack_above(Devno { major: 1, minor: 1 }).is_empty());
        let held: Vec<&str> = a
            .holders_of(&a.block_devices[0])
            .map(|b| b.name.as_str())
            .collect();
        assert_eq!(held, ["dm-0"]);
        // downwards: a partition's disk, the devices a dm device holds (dm-0 holds pmem0
        // and, through the ring, dm-1); each once, never the device itself
        let minor = |m| Devno {
            major: 259,
            minor: m,
        };
        assert_eq!(names(a.stack_below(minor(3))), ["pmem0"]);
        assert_eq!(names(a.stack_below(minor(1))), ["pmem0", "dm-1"]);
        assert_eq!(names(a.stack_below(minor(2))), ["dm-0", "pmem0"]);
        assert!(a.stack_below(pmem0).is_empty());
    }

    #[test]
    fn kpartx_names() {
        assert_eq!(partition_name("striped", 1), "striped1");
        assert_eq!(partition_name("pmem0", 2), "pmem0p2");
        assert!(mapping_prefix_matches("striped", "striped1"));
        assert!(mapping_prefix_matches("pmem0", "pmem0p12"));
        assert!(!mapping_prefix_matches("pmem0", "pmem01"));
        assert!(!mapping_prefix_matches("striped", "striped"));
        assert!(!mapping_prefix_matches("striped", "stripedx"));
    }
}
