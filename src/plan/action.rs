//! What a plan is made of: typed [`Action`]s in [`Step`]s, and the one typed refusal
//! ([`Refused`]) used when a step may not be planned (by the planner) or may not run
//! (by the apply-time guards, against the state probed just before the step).
//!
//! An action knows itself: its name and target as the result shows them, what it
//! does as a refusal names it, the layer whose room plans, guards and translates it,
//! the device whose content it depends on, and whether it changes the state a later
//! step resolves against. Nothing else matches over every variant.

use crate::actual::Devno;
use crate::args::validate::DevRef;
use crate::args::{DaxMode, DmTarget, FsType, MapMode, NamespaceMode};
use crate::op::Op;
use crate::units::{Bytes, Sectors};
use schemars::JsonSchema;
use serde::Serialize;
use std::fmt;

/// A typed step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// `cxl create-region -t pmem`: assemble a CXL region from its memory devices.
    CreateCxlRegion {
        /// Our name for it.
        name: String,
        /// Memory device serials, in interleave order.
        memdevs: Vec<u64>,
        /// The root decoder (None: the first that can hold it, chosen when it runs).
        root_decoder: Option<String>,
        /// Interleave granularity (None: the tool's default, the root decoder's).
        granularity: Option<u32>,
        /// Size (None: all the memory devices have).
        size: Option<Bytes>,
    },
    /// `cxl destroy-region -f REGION`: take a CXL region apart (its memory devices are
    /// free again; what its namespaces held is reachable only through the same region).
    DestroyCxlRegion {
        /// The declared region it was found for.
        name: String,
        /// The kernel's `regionN`.
        region: String,
        /// Its members' serials, in order (it is destroyed only while it still has them).
        memdevs: Vec<Option<u64>>,
    },
    /// `daxctl reconfigure-device --mode=system-ram`: a devdax namespace's memory given to
    /// the kernel.
    ToSystemRam {
        /// The namespace.
        name: String,
        /// Online its memory.
        online: bool,
        /// In ZONE_MOVABLE.
        movable: bool,
    },
    /// `daxctl online-memory`: the offline memory of a namespace in system-ram mode.
    OnlineMemory {
        /// The namespace.
        name: String,
        /// In ZONE_MOVABLE.
        movable: bool,
    },
    /// `daxctl offline-memory`, `daxctl reconfigure-device --mode=devdax`: the memory
    /// taken back from the kernel (fails while it is in use).
    ToDevdax {
        /// The namespace.
        name: String,
    },
    /// Put the auto-online policy back to what a stopped run set aside.
    RestoreAutoOnline {
        /// The policy.
        policy: String,
    },
    /// `ndctl create-namespace -r REGION` (a new labelled namespace).
    CreateNamespace {
        /// Name.
        name: String,
        /// Region.
        region: String,
        /// Mode.
        mode: NamespaceMode,
        /// Size (None: all available).
        size: Option<Bytes>,
        /// Alignment.
        align: Bytes,
        /// Map.
        map: MapMode,
    },
    /// `ndctl create-namespace -f -e DEV` (reconfigure in place; destroys its data).
    ReconfigureNamespace {
        /// Kernel device (namespaceX.Y).
        dev: String,
        /// Name to set.
        name: String,
        /// Mode.
        mode: NamespaceMode,
        /// Size (None: keep).
        size: Option<Bytes>,
        /// Alignment.
        align: Bytes,
        /// Map.
        map: MapMode,
    },
    /// Clear the ends of a namespace an interrupted run made and did not clear.
    ClearNamespace {
        /// Its name.
        name: String,
        /// Kernel device.
        dev: String,
    },
    /// Keep the name of a namespace no label can carry (the one namespace of a
    /// label-less region, or one adopted by its uuid), before it is made or as it is.
    RecordName {
        /// The name.
        name: String,
        /// Kernel device (namespaceX.Y) it names now.
        dev: String,
        /// What names it from now on.
        of: crate::actual::Named,
    },
    /// Drop the record of a name (its namespace is destroyed or no longer declared so).
    ForgetName {
        /// The name.
        name: String,
    },
    /// `ndctl destroy-namespace -f DEV`.
    DestroyNamespace {
        /// Kernel device.
        dev: String,
        /// Its name.
        name: String,
    },
    /// Create a dm device.
    CreateDm {
        /// Name.
        name: String,
        /// Target.
        target: DmTarget,
        /// Members.
        members: Vec<DevRef>,
        /// Chunk (striped).
        chunk: Sectors,
    },
    /// Suspend, load a new table, resume.
    ReloadDm {
        /// Name.
        name: String,
        /// Target.
        target: DmTarget,
        /// Members.
        members: Vec<DevRef>,
        /// Chunk (striped).
        chunk: Sectors,
    },
    /// Remove a dm device.
    RemoveDm {
        /// Name.
        name: String,
    },
    /// Write an empty GPT (protective MBR, headers).
    CreateGpt {
        /// The disk.
        disk: DevRef,
        /// The disk's content was unknown when planned (it is made over data that
        /// existed before): skipped if it has a GPT by then, refused if anything else.
        if_blank: bool,
    },
    /// Add a GPT entry and tell the kernel.
    AddPartition {
        /// The disk.
        disk: DevRef,
        /// Number.
        number: u32,
        /// GPT name.
        name: String,
        /// Start.
        start: Sectors,
        /// Size (None: the rest, rounded down to 2 MiB).
        size: Option<Sectors>,
        /// The table was unknown when planned: skipped if the same entry is there by then.
        if_missing: bool,
    },
    /// Delete a GPT entry and tell the kernel.
    DeletePartition {
        /// The disk.
        disk: DevRef,
        /// Number.
        number: u32,
    },
    /// Expose a partition of a dm device as a dm-linear mapping (what kpartx does).
    MapPartition {
        /// The dm disk.
        disk: DevRef,
        /// Partition number.
        number: u32,
        /// The mapping's dm name.
        dm_name: String,
    },
    /// `pvcreate --dataalignment 2m`: make a device an LVM physical volume.
    CreatePv {
        /// The device.
        device: DevRef,
        /// Wipe what is on it (only when the plan allowed data loss).
        wipe: bool,
    },
    /// `vgcreate -s EXTENT`: a new volume group over PVs.
    CreateVg {
        /// VG name.
        vg: String,
        /// Extent size.
        extent_size: Bytes,
        /// Its PVs.
        pvs: Vec<DevRef>,
    },
    /// `vgextend`: add PVs to a volume group.
    ExtendVg {
        /// VG name.
        vg: String,
        /// The PVs to add.
        pvs: Vec<DevRef>,
    },
    /// `lvcreate`: a new logical volume, active.
    CreateLv(crate::op::NewLv),
    /// `lvextend`: grow a logical volume (its data stays).
    ExtendLv {
        /// VG name.
        vg: String,
        /// LV name.
        lv: String,
        /// Its new size in extents.
        extents: crate::op::Extents,
    },
    /// `lvchange -ay`: activate a logical volume.
    ActivateLv {
        /// VG name.
        vg: String,
        /// LV name.
        lv: String,
    },
    /// `lvremove`: remove a logical volume (its data is gone).
    RemoveLv {
        /// VG name.
        vg: String,
        /// LV name.
        lv: String,
    },
    /// `vgremove`: remove an empty volume group.
    RemoveVg {
        /// VG name.
        vg: String,
    },
    /// `pvremove`: wipe the PV label of a device in no volume group.
    RemovePv {
        /// The device.
        device: DevRef,
    },
    /// Raise the largest I/O (`queue/max_sectors_kb`) of a logical volume's dm device
    /// to its stripe size: it inherits 1280 KiB from pmem, and a striped LV maps a DAX
    /// 2 MiB page only when one I/O can take a whole stripe.
    RaiseMaxSectors {
        /// The LV.
        device: DevRef,
        /// KiB.
        kb: u32,
    },
    /// Make a filesystem.
    Mkfs {
        /// Device.
        device: DevRef,
        /// Type.
        fstype: FsType,
        /// Label.
        label: Option<String>,
        /// Extra options.
        extra: Vec<String>,
        /// Stripes under it.
        stripes: u32,
        /// Overwrite an existing signature (only when the plan allowed data loss).
        force: bool,
        /// The device's content was unknown when planned (made over data that existed
        /// before): skipped if it holds this filesystem by then, refused if anything else.
        if_blank: bool,
    },
    /// Mount.
    Mount {
        /// Device.
        device: DevRef,
        /// Mount point.
        path: String,
        /// Filesystem type.
        fstype: String,
        /// DAX mode.
        dax: DaxMode,
        /// Other options.
        options: Vec<String>,
    },
    /// Change options of a mounted filesystem in place (not dax: the kernel refuses that).
    Remount {
        /// Mount point.
        path: String,
        /// Options to apply.
        options: Vec<String>,
    },
    /// Unmount.
    Umount {
        /// Mount point.
        path: String,
        /// Whether, with `allow_data_loss`, a mount whose files are open may be detached
        /// lazily: only when another device is mounted at the path in its place. A
        /// filesystem with open files stays alive after a lazy detach, holding its
        /// device: mounted again it would be shared, old `dax=` included, and a device
        /// changed or removed under it would be written by it or stay busy.
        #[serde(skip)]
        detachable: bool,
    },
    /// Unmount the copies of the mount at `path` that other mount namespaces hold
    /// (sandboxed services keep them: systemd-logind's `ProtectSystem=`), before the
    /// device mounted there is removed: while one is held, the device stays busy.
    UmountElsewhere {
        /// Mount point, as the processes of those namespaces see it.
        path: String,
        /// The device mounted there (one this plan removes or destroys).
        device: Devno,
    },
    /// Set the extent size hint (inherited) on a mounted xfs root directory.
    SetExtsize {
        /// Mount point.
        path: String,
        /// Size.
        size: Bytes,
    },
    /// Write a boot persistence file (atomically).
    WriteFile {
        /// Path on the machine.
        path: String,
        /// What it is (its content is rendered when the step runs).
        kind: crate::boot::FileKind,
        /// Permissions.
        mode: u32,
    },
    /// Remove a boot persistence file.
    RemoveFile {
        /// Path on the machine.
        path: String,
    },
    /// `systemctl daemon-reload`.
    DaemonReload,
}

impl Action {
    /// The action's snake_case name (as in the result's `plan[].action`).
    pub fn name(&self) -> &'static str {
        match self {
            Action::ToSystemRam { .. } => "to_system_ram",
            Action::OnlineMemory { .. } => "online_memory",
            Action::ToDevdax { .. } => "to_devdax",
            Action::RestoreAutoOnline { .. } => "restore_auto_online",
            Action::CreateCxlRegion { .. } => "create_cxl_region",
            Action::DestroyCxlRegion { .. } => "destroy_cxl_region",
            Action::CreateNamespace { .. } => "create_namespace",
            Action::ReconfigureNamespace { .. } => "reconfigure_namespace",
            Action::DestroyNamespace { .. } => "destroy_namespace",
            Action::ClearNamespace { .. } => "clear_namespace",
            Action::RecordName { .. } => "record_name",
            Action::ForgetName { .. } => "forget_name",
            Action::CreateDm { .. } => "create_dm",
            Action::ReloadDm { .. } => "reload_dm",
            Action::RemoveDm { .. } => "remove_dm",
            Action::CreateGpt { .. } => "create_gpt",
            Action::AddPartition { .. } => "add_partition",
            Action::DeletePartition { .. } => "delete_partition",
            Action::MapPartition { .. } => "map_partition",
            Action::CreatePv { .. } => "create_pv",
            Action::CreateVg { .. } => "create_vg",
            Action::ExtendVg { .. } => "extend_vg",
            Action::CreateLv(_) => "create_lv",
            Action::ExtendLv { .. } => "extend_lv",
            Action::ActivateLv { .. } => "activate_lv",
            Action::RemoveLv { .. } => "remove_lv",
            Action::RemoveVg { .. } => "remove_vg",
            Action::RemovePv { .. } => "remove_pv",
            Action::RaiseMaxSectors { .. } => "raise_max_sectors",
            Action::Mkfs { .. } => "mkfs",
            Action::Mount { .. } => "mount",
            Action::Remount { .. } => "remount",
            Action::Umount { .. } => "umount",
            Action::UmountElsewhere { .. } => "umount_elsewhere",
            Action::SetExtsize { .. } => "set_extsize",
            Action::WriteFile { .. } => "write_file",
            Action::RemoveFile { .. } => "remove_file",
            Action::DaemonReload => "daemon_reload",
        }
    }

    /// The object the step acts on, for people.
    pub fn target(&self) -> String {
        match self {
            Action::ToSystemRam { name, .. }
            | Action::OnlineMemory { name, .. }
            | Action::ToDevdax { name } => format!("namespace {name} (system RAM)"),
            Action::RestoreAutoOnline { .. } => "auto_online_blocks".into(),
            Action::CreateCxlRegion { name, memdevs, .. } => {
                format!(
                    "CXL region {name} ({})",
                    serials(memdevs.iter().copied().map(Some))
                )
            }
            Action::DestroyCxlRegion { name, region, .. } => {
                format!("CXL region {name} ({region})")
            }
            Action::CreateNamespace { name, region, .. } => format!("namespace {name} ({region})"),
            Action::ReconfigureNamespace { dev, name, .. } => format!("namespace {name} ({dev})"),
            Action::DestroyNamespace { dev, name }
            | Action::ClearNamespace { name, dev }
            | Action::RecordName { name, dev, .. } => {
                format!("namespace {name} ({dev})")
            }
            Action::ForgetName { name } => format!("namespace {name}"),
            Action::CreateDm { name, .. }
            | Action::ReloadDm { name, .. }
            | Action::RemoveDm { name } => {
                format!("/dev/mapper/{name}")
            }
            Action::CreateGpt { disk, .. } => disk.to_string(),
            Action::AddPartition {
                disk, number, name, ..
            } => format!("{disk} partition {number} ({name})"),
            Action::DeletePartition { disk, number } => format!("{disk} partition {number}"),
            Action::MapPartition { dm_name, .. } => format!("/dev/mapper/{dm_name}"),
            Action::CreatePv { device, .. }
            | Action::RemovePv { device }
            | Action::RaiseMaxSectors { device, .. } => device.to_string(),
            Action::CreateVg { vg, .. } | Action::ExtendVg { vg, .. } | Action::RemoveVg { vg } => {
                format!("volume group {vg}")
            }
            Action::CreateLv(crate::op::NewLv { vg, lv, .. })
            | Action::ExtendLv { vg, lv, .. }
            | Action::ActivateLv { vg, lv }
            | Action::RemoveLv { vg, lv } => format!("logical volume {vg}/{lv}"),
            Action::Mkfs { device, .. } => device.to_string(),
            Action::Mount { path, .. }
            | Action::Remount { path, .. }
            | Action::Umount { path, .. }
            | Action::UmountElsewhere { path, .. }
            | Action::SetExtsize { path, .. }
            | Action::WriteFile { path, .. }
            | Action::RemoveFile { path } => path.clone(),
            Action::DaemonReload => "systemd".into(),
        }
    }
    /// What the action does, as a refusal names it ("making ext4 on namespace pm0").
    pub fn doing(&self) -> String {
        match self {
            Action::ToSystemRam { name, .. } => {
                format!("giving namespace {name} to the kernel as system RAM")
            }
            Action::OnlineMemory { name, .. } => {
                format!("onlining the memory of namespace {name}")
            }
            Action::ToDevdax { name } => {
                format!("taking the memory of namespace {name} back (devdax)")
            }
            Action::RestoreAutoOnline { policy } => {
                format!("putting auto_online_blocks back to {policy}")
            }
            Action::CreateCxlRegion { name, memdevs, .. } => format!(
                "making CXL region {name} over memory device(s) {}",
                serials(memdevs.iter().copied().map(Some))
            ),
            Action::DestroyCxlRegion {
                region, memdevs, ..
            } => format!(
                "destroying CXL region {region} (over memory device(s) {})",
                serials(memdevs.iter().copied())
            ),
            Action::CreateNamespace { name, region, .. } => {
                format!("making namespace {name} in {region}")
            }
            Action::ReconfigureNamespace { dev, name, .. } => {
                format!("making namespace {name} ({dev}) again")
            }
            Action::ClearNamespace { name, dev } => format!("clearing namespace {name} ({dev})"),
            Action::RecordName { name, dev, .. } => format!("recording the name {name} of {dev}"),
            Action::ForgetName { name } => format!("forgetting the name {name}"),
            Action::DestroyNamespace { dev, name } => {
                format!("destroying namespace {name} ({dev})")
            }
            Action::CreateDm { name, .. } => format!("making dm device {name}"),
            Action::ReloadDm { name, .. } => format!("reloading dm device {name}"),
            Action::RemoveDm { name } => format!("removing dm device {name}"),
            Action::CreateGpt { disk, .. } => format!("writing a GPT on {disk}"),
            Action::AddPartition {
                disk, number, name, ..
            } => format!("adding partition {number} ({name}) to {disk}"),
            Action::DeletePartition { disk, number } => {
                format!("deleting partition {number} of {disk}")
            }
            Action::MapPartition {
                disk,
                number,
                dm_name,
            } => format!("mapping partition {number} of {disk} as {dm_name}"),
            Action::CreatePv { device, .. } => format!("making {device} an LVM PV"),
            Action::CreateVg { vg, .. } => format!("making volume group {vg}"),
            Action::ExtendVg { vg, pvs } => format!(
                "adding {} to volume group {vg}",
                pvs.iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Action::CreateLv(n) => format!("making logical volume {}/{}", n.vg, n.lv),
            Action::ExtendLv { vg, lv, .. } => format!("growing logical volume {vg}/{lv}"),
            Action::ActivateLv { vg, lv } => format!("activating logical volume {vg}/{lv}"),
            Action::RemoveLv { vg, lv } => format!("removing logical volume {vg}/{lv}"),
            Action::RemoveVg { vg } => format!("removing volume group {vg}"),
            Action::RemovePv { device } => format!("removing the PV label of {device}"),
            Action::RaiseMaxSectors { device, kb } => {
                format!("raising the largest I/O of {device} to {kb} KiB")
            }
            Action::Mkfs { device, fstype, .. } => format!("making {fstype} on {device}"),
            Action::Mount { device, path, .. } => format!("mounting {device} on {path}"),
            Action::Remount { path, .. } => format!("remounting {path}"),
            Action::Umount { path, .. } => format!("unmounting {path}"),
            Action::UmountElsewhere { path, .. } => {
                format!("unmounting {path} in the other mount namespaces")
            }
            Action::SetExtsize { path, .. } => format!("setting the extent size hint on {path}"),
            Action::WriteFile { path, .. } => format!("writing {path}"),
            Action::RemoveFile { path } => format!("removing {path}"),
            Action::DaemonReload => "reloading systemd".into(),
        }
    }

    /// The layer whose room plans this action, guards it and translates it to an op.
    pub fn layer(&self) -> Layer {
        match self {
            Action::CreateCxlRegion { .. } | Action::DestroyCxlRegion { .. } => Layer::Cxl,
            Action::ToSystemRam { .. }
            | Action::OnlineMemory { .. }
            | Action::ToDevdax { .. }
            | Action::RestoreAutoOnline { .. } => Layer::SystemRam,
            Action::CreateNamespace { .. }
            | Action::ReconfigureNamespace { .. }
            | Action::ClearNamespace { .. }
            | Action::RecordName { .. }
            | Action::ForgetName { .. }
            | Action::DestroyNamespace { .. } => Layer::Namespace,
            Action::CreateDm { .. } | Action::ReloadDm { .. } | Action::RemoveDm { .. } => {
                Layer::Dm
            }
            Action::CreateGpt { .. }
            | Action::AddPartition { .. }
            | Action::DeletePartition { .. }
            | Action::MapPartition { .. } => Layer::Partition,
            Action::CreatePv { .. }
            | Action::CreateVg { .. }
            | Action::ExtendVg { .. }
            | Action::CreateLv(_)
            | Action::ExtendLv { .. }
            | Action::ActivateLv { .. }
            | Action::RemoveLv { .. }
            | Action::RemoveVg { .. }
            | Action::RemovePv { .. }
            | Action::RaiseMaxSectors { .. } => Layer::Lvm,
            Action::Mkfs { .. } => Layer::Filesystem,
            Action::Mount { .. }
            | Action::Remount { .. }
            | Action::Umount { .. }
            | Action::UmountElsewhere { .. }
            | Action::SetExtsize { .. } => Layer::Mount,
            Action::WriteFile { .. } | Action::RemoveFile { .. } | Action::DaemonReload => {
                Layer::Boot
            }
        }
    }

    /// The device whose content the step depends on (it never runs over one whose
    /// content the probe could not read: unknown is not blank).
    pub fn reads(&self) -> Option<&DevRef> {
        match self {
            Action::Mkfs { device, .. } | Action::Mount { device, .. } => Some(device),
            Action::CreateGpt { disk, .. }
            | Action::AddPartition { disk, .. }
            | Action::DeletePartition { disk, .. }
            | Action::MapPartition { disk, .. } => Some(disk),
            Action::CreatePv { device, .. } | Action::RemovePv { device } => Some(device),
            _ => None,
        }
    }

    /// Whether, once done, the step may have changed what a later step resolves
    /// against (devices, namespaces, mounts): boot files change none of it.
    pub fn changes_state(&self) -> bool {
        self.layer() != Layer::Boot
    }
}

/// Memory device serials as people read them (`0x2, 0x1`; `?` for one sysfs did not give).
pub fn serials(s: impl Iterator<Item = Option<u64>>) -> String {
    s.map(|s| s.map_or_else(|| "?".to_string(), |s| format!("{s:#x}")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What to do.
    pub action: Action,
    /// One line for people: what and why.
    pub detail: String,
    /// It destroys data (only planned when allowed).
    pub destructive: bool,
}

/// A step as the result shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct PlanItem {
    /// Action name (create_namespace, create_dm, reload_dm, mkfs, mount, ...).
    pub action: String,
    /// The object acted on.
    pub target: String,
    /// One line: what and why.
    pub detail: String,
    /// Whether it destroys data.
    pub destructive: bool,
}

impl Step {
    /// The result's view of the step.
    pub fn item(&self) -> PlanItem {
        PlanItem {
            action: self.action.name().to_string(),
            target: self.action.target(),
            detail: self.detail.clone(),
            destructive: self.destructive,
        }
    }
}

/// An ordered plan, with advice that did not need a step.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Steps in order.
    pub steps: Vec<Step>,
    /// Warnings (geometry that costs 2 MiB pages, things left in place, ...).
    pub warnings: Vec<String>,
}

/// The layers of a stack, bottom-up; each is one room (`plan/<layer>.rs`) that owns its
/// plan rule, its apply-time guard and its action -> op translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// CXL regions (the NVDIMM regions namespaces are made in).
    Cxl,
    /// ndctl namespaces and the names the module records for them.
    Namespace,
    /// devdax namespaces given to the kernel as system RAM.
    SystemRam,
    /// device-mapper devices.
    Dm,
    /// GPT partitions and their mappings.
    Partition,
    /// LVM physical volumes, volume groups and logical volumes.
    Lvm,
    /// Filesystems.
    Filesystem,
    /// Mounts and their extent size hint.
    Mount,
    /// Boot persistence files and systemd.
    Boot,
}

/// What a step comes to when it runs (its layer's guard and translation, against the
/// state probed just before it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Do this.
    Run(Op),
    /// Nothing to do after all (a conditional step whose condition is not met), and why.
    Skip(String),
}

impl Refused {
    /// An action handed to a room that does not own it (a dispatch error, never planned).
    pub(crate) fn not_mine(action: &Action, layer: Layer) -> Refused {
        Refused::new(
            action.doing(),
            format!("it is not a step of the {layer:?} layer (an internal error)"),
        )
    }
}

/// Why no plan could be made: destructive steps without `allow_data_loss`, foreign
/// holders, or things the machine cannot do (a missing region, no space).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// One refusal per problem.
    pub refused: Vec<Refused>,
    /// Warnings found on the way.
    pub warnings: Vec<String>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let texts: Vec<String> = self.refused.iter().map(|r| r.to_string()).collect();
        f.write_str(&texts.join("; "))
    }
}

/// The option that allows a step refused for the data it would destroy.
pub const ALLOW_DATA_LOSS: &str = "allow_data_loss: true";

/// A step that may not be planned, or may not run: what it would do, why not, and
/// whether (and by which option) it would be allowed. The planner refuses against the
/// state probed before the plan; the apply-time guards refuse against the state probed
/// just before the step, when it is not the one the plan was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Where it was found (a snapshot's path when several are planned), or empty.
    pub within: String,
    /// What the step would do ("making ext4 on ..."); empty when `why` names its object.
    pub what: String,
    /// Why it is not done.
    pub why: String,
    /// Data loss is the reason.
    pub data_loss: bool,
    /// The option that would allow it (`allow_data_loss: true`), if any.
    pub allowed_by: Option<&'static str>,
    /// The last sentence, telling what to do ("Set allow_data_loss: true to allow it").
    pub advice: Option<String>,
}

impl Refused {
    /// Refused for a reason no option overrides.
    pub fn new(what: impl Into<String>, why: impl Into<String>) -> Refused {
        Refused {
            within: String::new(),
            what: what.into(),
            why: why.into(),
            data_loss: false,
            allowed_by: None,
            advice: None,
        }
    }

    /// Refused with a reason that names its object itself (`"mounts[0].dax: ..."`).
    pub fn because(why: impl Into<String>) -> Refused {
        Refused::new("", why)
    }

    /// Refused for the data it would destroy: `allow_data_loss: true` allows it.
    pub fn losing_data(what: impl Into<String>, why: impl Into<String>) -> Refused {
        Refused::new(what, why).allowed_to("allow it")
    }

    /// Refused for the data it would destroy; the advice ends "... to {to}".
    pub fn allowed_to(self, to: impl fmt::Display) -> Refused {
        let advice = format!("Set {ALLOW_DATA_LOSS} to {to}");
        self.advised(advice)
    }

    /// Refused for the data it would destroy, with advice of its own (which names
    /// `allow_data_loss`).
    pub fn advised(self, advice: impl Into<String>) -> Refused {
        Refused {
            data_loss: true,
            allowed_by: Some(ALLOW_DATA_LOSS),
            advice: Some(advice.into()),
            ..self
        }
    }

    /// The same refusal, found within `path`.
    pub fn within(self, path: &str) -> Refused {
        let within = if self.within.is_empty() {
            path.to_string()
        } else {
            format!("{path}: {}", self.within)
        };
        Refused { within, ..self }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.within.is_empty() {
            write!(f, "{}: ", self.within)?;
        }
        if self.what.is_empty() {
            f.write_str(&self.why)?;
        } else {
            write!(f, "refusing {}: {}", self.what, self.why)?;
        }
        if let Some(advice) = &self.advice {
            write!(f, ". {advice}")?;
        }
        Ok(())
    }
}

/// Refusals serialise as the sentences people read (the result's `refusals`).
pub fn refusal_texts<S: serde::Serializer>(r: &[Refused], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(r.iter().map(|x| x.to_string()))
}
