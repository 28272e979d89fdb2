//! The desired state, validated ([`Desired`]): the declared namespaces, dm devices,
//! partitions, filesystems and mounts with every reference resolved ([`DevRef`]), and
//! the questions the planner asks of it (what a device's users are, whether a stack is
//! DAX-capable, how many stripes lie under a device). Made by [`super::validate`].

use super::{DaxMode, DmTarget, FsType, MapMode, ModuleArgs, NamespaceMode, State};
use crate::units::{Bytes, Sectors};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A reference to a block device, resolved against the declared names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum DevRef {
    /// A declared namespace (its `/dev/pmemN`).
    Namespace(String),
    /// A declared dm device (`/dev/mapper/<name>`).
    Device(String),
    /// A declared GPT partition.
    Partition(String),
    /// An absolute path under /dev (not declared here; must exist).
    Path(String),
    /// A declared LVM logical volume, `VG/LV` (its dm device `/dev/VG/LV`).
    Volume(String, String),
}

impl std::fmt::Display for DevRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DevRef::Namespace(n) => write!(f, "namespace {n}"),
            DevRef::Device(n) => write!(f, "dm device {n}"),
            DevRef::Partition(n) => write!(f, "partition {n}"),
            DevRef::Path(p) => f.write_str(p),
            DevRef::Volume(vg, lv) => write!(f, "logical volume {vg}/{lv}"),
        }
    }
}

/// A CXL region to have (persistent memory), known by its memory devices' serials in
/// interleave order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CxlRegionSpec {
    /// Our handle (what `namespaces[].region` names).
    pub name: String,
    /// Memory device serials, in interleave order.
    pub memdevs: Vec<u64>,
    /// The root decoder to make it in (`None`: the first that can hold it).
    pub root_decoder: Option<String>,
    /// Interleave granularity (`None`: the root decoder's).
    pub granularity: Option<u32>,
    /// Its size (`None`: all the memory devices' free pmem capacity).
    pub size: Option<Bytes>,
}

impl CxlRegionSpec {
    /// The serials as people read them: `0x2, 0x1`.
    pub fn serials(&self) -> String {
        self.memdevs
            .iter()
            .map(|s| format!("{s:#x}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A namespace to have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamespaceSpec {
    /// Name (alt_name): identity.
    pub name: String,
    /// Region, `regionN`: for a namespace on a CXL region, the NVDIMM region that region
    /// shows as once the plan has bound it (`crate::plan::cxl::bind_namespaces`), else
    /// the CXL region's name.
    pub region: String,
    /// The declared CXL region it is on, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cxl_region: Option<String>,
    /// Mode.
    pub mode: NamespaceMode,
    /// Size; `None` = all available (or the whole raw namespace being converted).
    pub size: Option<Bytes>,
    /// Alignment (fsdax/devdax).
    pub align: Bytes,
    /// Page metadata placement (fsdax/devdax).
    pub map: MapMode,
    /// The uuid of an existing namespace to adopt as this one (lowercase).
    pub uuid: Option<String>,
    /// Given to the kernel as system RAM (devdax only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_ram: Option<SystemRam>,
}

/// How a devdax namespace's memory is onlined as system RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SystemRam {
    /// Online its memory blocks.
    pub online: bool,
    /// In ZONE_MOVABLE.
    pub movable: bool,
}

/// A dm device to have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceSpec {
    /// dm name.
    pub name: String,
    /// Target type.
    pub target: DmTarget,
    /// Members, in order.
    pub members: Vec<DevRef>,
    /// Chunk (striped only; 2 MiB otherwise unused).
    pub chunk: Sectors,
}

/// An LVM volume group to have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeGroupSpec {
    /// VG name.
    pub name: String,
    /// Its physical volumes, in order.
    pub pvs: Vec<DevRef>,
    /// Physical extent size (a multiple of 2 MiB).
    pub extent_size: Bytes,
}

/// An LVM logical volume to have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogicalVolumeSpec {
    /// LV name, unique within its VG.
    pub name: String,
    /// The VG that holds it.
    pub vg: String,
    /// Size; `None` = the rest of the VG.
    pub size: Option<Bytes>,
    /// Stripes (1 = linear).
    pub stripes: u32,
    /// Stripe size (striped only).
    pub stripe_size: Bytes,
}

impl LogicalVolumeSpec {
    /// The path udev gives it, `/dev/VG/LV` (a mount unit's `What=`).
    pub fn dev_path(&self) -> String {
        lv_dev_path(&self.vg, &self.name)
    }
}

/// The dm name LVM gives an active LV: `VG-LV`, each `-` in either doubled.
pub fn lv_dm_name(vg: &str, lv: &str) -> String {
    format!("{}-{}", vg.replace('-', "--"), lv.replace('-', "--"))
}

/// `/dev/VG/LV`.
pub fn lv_dev_path(vg: &str, lv: &str) -> String {
    format!("/dev/{vg}/{lv}")
}

/// A GPT partition to have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionSpec {
    /// GPT partition name.
    pub name: String,
    /// The disk.
    pub disk: DevRef,
    /// Number, if given.
    pub number: Option<u32>,
    /// Start.
    pub start: Sectors,
    /// Size; `None` = the rest, rounded down to 2 MiB.
    pub size: Option<Sectors>,
}

/// A filesystem to have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilesystemSpec {
    /// The device.
    pub device: DevRef,
    /// Type.
    pub fstype: FsType,
    /// Label.
    pub label: Option<String>,
    /// Extra mkfs words.
    pub mkfs_options: Vec<String>,
    /// Stripes under it (members of a striped device, else 1): sets stripe_width / sw.
    pub stripes: u32,
}

/// A mount to have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountSpec {
    /// Mount point.
    pub path: String,
    /// Device.
    pub device: DevRef,
    /// dax= mode.
    pub dax: DaxMode,
    /// Other options.
    pub options: Vec<String>,
}

/// The validated desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Desired {
    /// present / absent.
    pub state: State,
    /// Destructive steps allowed.
    pub allow_data_loss: bool,
    /// CXL regions (left out when empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cxl_regions: Vec<CxlRegionSpec>,
    /// Namespaces.
    pub namespaces: Vec<NamespaceSpec>,
    /// dm devices.
    pub devices: Vec<DeviceSpec>,
    /// Partitions.
    pub partitions: Vec<PartitionSpec>,
    /// LVM volume groups (left out when empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volume_groups: Vec<VolumeGroupSpec>,
    /// LVM logical volumes (left out when empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logical_volumes: Vec<LogicalVolumeSpec>,
    /// Filesystems.
    pub filesystems: Vec<FilesystemSpec>,
    /// Mounts.
    pub mounts: Vec<MountSpec>,
    /// Boot persistence.
    pub persist: bool,
    /// Non-fatal advice found while validating.
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// The options as parsed (what boot persistence saves).
    #[serde(skip)]
    pub args: ModuleArgs,
}

impl Desired {
    /// The CXL region spec called `name`.
    pub fn cxl_region(&self, name: &str) -> Option<&CxlRegionSpec> {
        self.cxl_regions.iter().find(|c| c.name == name)
    }
    /// The namespace spec called `name`.
    pub fn namespace(&self, name: &str) -> Option<&NamespaceSpec> {
        self.namespaces.iter().find(|n| n.name == name)
    }
    /// The device spec called `name`.
    pub fn device(&self, name: &str) -> Option<&DeviceSpec> {
        self.devices.iter().find(|n| n.name == name)
    }
    /// The partition spec called `name`.
    pub fn partition(&self, name: &str) -> Option<&PartitionSpec> {
        self.partitions.iter().find(|n| n.name == name)
    }
    /// What it makes and names: its namespaces, then its dm devices, then its partitions.
    pub fn own_devices(&self) -> impl Iterator<Item = DevRef> + '_ {
        let namespaces = self
            .namespaces
            .iter()
            .map(|x| DevRef::Namespace(x.name.clone()));
        let devices = self.devices.iter().map(|x| DevRef::Device(x.name.clone()));
        let partitions = self
            .partitions
            .iter()
            .map(|x| DevRef::Partition(x.name.clone()));
        let volumes = self
            .logical_volumes
            .iter()
            .map(|x| DevRef::Volume(x.vg.clone(), x.name.clone()));
        namespaces.chain(devices).chain(partitions).chain(volumes)
    }

    /// The volume group spec called `name`.
    pub fn volume_group(&self, name: &str) -> Option<&VolumeGroupSpec> {
        self.volume_groups.iter().find(|n| n.name == name)
    }
    /// The logical volume spec `vg`/`lv`.
    pub fn logical_volume(&self, vg: &str, lv: &str) -> Option<&LogicalVolumeSpec> {
        self.logical_volumes
            .iter()
            .find(|l| l.vg == vg && l.name == lv)
    }

    /// The devices the declarations use: dm members, partition disks, filesystem and
    /// mount devices (by any reference: declared objects or paths).
    pub fn used_devices(&self) -> impl Iterator<Item = &DevRef> + '_ {
        self.devices
            .iter()
            .flat_map(|x| x.members.iter())
            .chain(self.partitions.iter().map(|x| &x.disk))
            .chain(self.filesystems.iter().map(|x| &x.device))
            .chain(self.mounts.iter().map(|x| &x.device))
            .chain(self.volume_groups.iter().flat_map(|x| x.pvs.iter()))
    }

    /// Whether dm device `name` is the dm device of a declared LV.
    pub fn is_lv_dm(&self, name: &str) -> bool {
        self.logical_volumes
            .iter()
            .any(|l| lv_dm_name(&l.vg, &l.name) == name)
    }
}

/// Each block device has one user: a dm device (as a member), a partition table (as
/// its disk; the partitions on one disk share it) or a filesystem. Two users would write
/// over each other's data. `key` says which references are the same device: equal
/// references for validation; the same device number for the planner, which also finds
/// one device named two ways (`pm0` and `/dev/pmem0`). Returns (JSON path, message).
pub fn role_conflicts<K: Ord>(
    d: &Desired,
    key: impl Fn(&DevRef) -> Option<K>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // device -> (its user, whether that user is a partition table)
    let mut user: BTreeMap<K, (String, bool)> = BTreeMap::new();
    // dm members and PVs: (JSON path, the device, what it is, why not twice)
    let members = d.devices.iter().enumerate().flat_map(|(i, dev)| {
        dev.members.iter().enumerate().map(move |(j, m)| {
            (
                format!("devices[{i}].members[{j}]"),
                m,
                format!("a member of dm device {:?} (devices[{i}])", dev.name),
                "a block device can be in one dm device only",
            )
        })
    });
    let pvs = d.volume_groups.iter().enumerate().flat_map(|(i, vg)| {
        vg.pvs.iter().enumerate().map(move |(j, pv)| {
            (
                format!("volume_groups[{i}].pvs[{j}]"),
                pv,
                format!("a PV of volume group {:?} (volume_groups[{i}])", vg.name),
                "it cannot also be a PV",
            )
        })
    });
    for (at, r, me, not_twice) in members.chain(pvs) {
        let Some(k) = key(r) else { continue };
        if let Some((first, _)) = user.get(&k) {
            out.push((at, format!("{r} is already {first}; {not_twice}")));
        } else {
            user.insert(k, (me, false));
        }
    }
    for (i, part) in d.partitions.iter().enumerate() {
        let Some(k) = key(&part.disk) else { continue };
        match user.get(&k) {
            Some((_, true)) => {} // another partition of the same table
            Some((first, false)) => out.push((
                format!("partitions[{i}].disk"),
                format!(
                    "{} is {first}; it cannot also hold a partition table",
                    part.disk
                ),
            )),
            None => {
                let me = format!("the disk of partition {:?} (partitions[{i}])", part.name);
                user.insert(k, (me, true));
            }
        }
    }
    for (i, fs) in d.filesystems.iter().enumerate() {
        let Some(k) = key(&fs.device) else { continue };
        if let Some((first, _)) = user.get(&k) {
            out.push((
                format!("filesystems[{i}].device"),
                format!(
                    "{} is {first}; a filesystem on it would overwrite that",
                    fs.device
                ),
            ));
        } else {
            let me = format!("the device of the filesystem at filesystems[{i}]");
            user.insert(k, (me, false));
        }
    }
    out
}

/// The declared name a reference points to, if any.
pub fn declared_name(r: &DevRef) -> Option<String> {
    match r {
        DevRef::Namespace(n) | DevRef::Device(n) | DevRef::Partition(n) => Some(n.clone()),
        DevRef::Path(_) | DevRef::Volume(..) => None,
    }
}

/// Why `r` has no block device at all (a devdax namespace), if so.
pub(crate) fn no_block_device(d: &Desired, r: &DevRef) -> Option<String> {
    match r {
        DevRef::Namespace(n) => d
            .namespace(n)
            .filter(|ns| ns.mode == NamespaceMode::Devdax)
            .map(|_| {
                format!(
                    "namespace {n:?} is devdax, which has a character device and no block device"
                )
            }),
        _ => None,
    }
}

/// Why the stack under `r` cannot do DAX, as far as the arguments tell (paths: unknown
/// until probed; the planner checks them against the kernel's `queue/dax`).
pub fn not_dax_capable(d: &Desired, r: &DevRef) -> Option<String> {
    let mut seen = BTreeSet::new();
    not_dax_capable_inner(d, r, &mut seen)
}

fn not_dax_capable_inner(d: &Desired, r: &DevRef, seen: &mut BTreeSet<DevRef>) -> Option<String> {
    if !seen.insert(r.clone()) {
        return None; // cycles are reported elsewhere
    }
    match r {
        DevRef::Namespace(n) => d.namespace(n).and_then(|ns| match ns.mode {
            NamespaceMode::Fsdax => None,
            mode => Some(format!("namespace {n:?} is in {mode} mode (only fsdax namespaces are DAX-capable block devices)")),
        }),
        DevRef::Device(n) => d.device(n).and_then(|dev| {
            dev.members.iter().find_map(|m| {
                not_dax_capable_inner(d, m, seen).map(|why| format!("dm device {n:?} has a member that is not: {why}"))
            })
        }),
        DevRef::Partition(n) => d
            .partition(n)
            .and_then(|p| not_dax_capable_inner(d, &p.disk, seen)),
        // its VG's PVs are checked where the VG is declared
        DevRef::Path(_) | DevRef::Volume(..) => None,
    }
}

/// Number of stripes under a device (for stripe_width / sw).
pub fn stripes_under(d: &Desired, r: &DevRef) -> u32 {
    match r {
        DevRef::Device(n) => d
            .device(n)
            .map(|dev| match dev.target {
                DmTarget::Striped => u32::try_from(dev.members.len()).unwrap_or(u32::MAX),
                DmTarget::Linear => 1,
            })
            .unwrap_or(1),
        DevRef::Partition(n) => d
            .partition(n)
            .map(|p| stripes_under(d, &p.disk))
            .unwrap_or(1),
        DevRef::Volume(vg, lv) => d.logical_volume(vg, lv).map(|l| l.stripes).unwrap_or(1),
        _ => 1,
    }
}
