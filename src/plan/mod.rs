//! The pure planner: `plan(&Desired, &Actual) -> Result<Plan, Refusal>`. No I/O.
//!
//! Layers are planned bottom-up (namespaces, then dm devices and partitions in
//! dependency order, filesystems, mounts); each layer's rule is an exhaustive match over
//! *exists x wanted x matches x allowed*, written out in the layer's module docs.
//!
//! When a step destroys the content of an existing device (reconfiguring a namespace,
//! reloading a table with other geometry, re-making a filesystem, writing a partition
//! table over a filesystem) the planner first asks [`Ctx::destroy`] what would be lost
//! (filesystems, partition tables, mounts, dm devices stacked on it, recursively). If
//! anything would be lost and `allow_data_loss` is off, the step is refused with that
//! list. If allowed, the users are torn down first (umount, dm remove: the *teardown*
//! part of the plan, top-down) and rebuilt by the layers above (the *build* part,
//! bottom-up), because the device is now `fresh`. Users not declared in the arguments
//! (a foreign dm device holding a namespace) are never touched: such a step is refused
//! whatever `allow_data_loss` says.
//!
//! The probe may have found devices whose content it could not read
//! ([`Actual::unreadable`]: an I/O error, no permission, a suspended dm device or one
//! stacked on it). What is on them is unknown, not empty, so the plan must not depend on
//! them: a declared object on one (or, with `state: present`, a mount at a declared
//! mount point from one) is refused, naming the device and the error; so is a step whose
//! content-at-risk walk ([`Ctx::destroy`]) reaches one, whatever `allow_data_loss` says.
//! Any other unreadable device is only a warning: it is not part of this stack.
//!
//! The layers find the declared objects through the bound view of the probed state
//! ([`crate::bind`], made once per plan and held by [`Ctx`]); what this plan creates,
//! re-makes or removes is [`Ctx`]'s overlay on it ([`Ctx::current`]).
//!
//! Steps name objects symbolically ([`DevRef`]); [`resolve`](crate::apply::resolve) turns a step into a concrete
//! [`Op`](crate::system::Op) against the state probed just before it runs, because a
//! device created by step k only gets its device number and size when step k has run;
//! a step refused then is a [`Refused`].

mod absent;
mod boot;
pub(crate) mod dm;
pub(crate) mod filesystem;
pub(crate) mod mount;
mod namespace;
mod partition;

pub use crate::actual::dm::striped_chunk_kb;
pub use filesystem::{
    dax_geometry, expected_geometry, geometry_problems, STRIPE_UNIT_BLOCKS, XFS_EXTSIZE,
};
pub use partition::rest_of_disk;

use crate::actual::{Actual, BlockDevice, Devno};
use crate::args::validate::{Desired, DevRef};
use crate::args::{DaxMode, DmTarget, FsType, MapMode, NamespaceMode, State};
use crate::bind::{bind, Bound};
use crate::units::{Bytes, Sectors};
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A typed step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
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

/// Why no plan could be made: destructive steps without `allow_data_loss`, foreign
/// holders, or things the machine cannot do (a missing region, no space).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// One message per problem.
    pub reasons: Vec<String>,
    /// Warnings found on the way.
    pub warnings: Vec<String>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reasons.join("; "))
    }
}

/// A step refused when it came to run: the state it would run against is not the one
/// the plan was made for, and running it would lose data or act on the unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// What the step would do, as the refusal names it ("making ext4 on ...").
    pub what: String,
    /// Why it is not done.
    pub reason: String,
    /// Data loss is the reason: `allow_data_loss: true` would allow the step.
    pub data_loss: bool,
}

impl Refused {
    pub(crate) fn new(what: impl Into<String>, reason: impl Into<String>) -> Refused {
        Refused {
            what: what.into(),
            reason: reason.into(),
            data_loss: false,
        }
    }

    pub(crate) fn losing_data(what: impl Into<String>, reason: impl Into<String>) -> Refused {
        Refused {
            data_loss: true,
            ..Refused::new(what, reason)
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refusing {}: {}", self.what, self.reason)?;
        if self.data_loss {
            f.write_str(". Set allow_data_loss: true to allow it")?;
        }
        Ok(())
    }
}

/// Plan the steps that take `actual` to `desired`.
pub fn plan(desired: &Desired, actual: &Actual) -> Result<Plan, Refusal> {
    // namespaces adopted by uuid are the declared ones from the start of the plan
    let adopted = namespace::adoption_view(desired, actual);
    let actual = adopted.as_ref().unwrap_or(actual);
    let mut cx = Ctx::new(desired, actual);
    cx.refuse_unreadable_declared();
    match desired.state {
        State::Present => {
            // validation compared the references; here the devices they name
            let conflicts =
                crate::args::validate::role_conflicts(desired, |r| cx.b.block(r).map(|b| b.devno));
            for (path, msg) in conflicts {
                cx.refusals.push(format!("{path}: {msg}"));
            }
            namespace::plan(&mut cx);
            for r in cx.stack_order() {
                match &r {
                    DevRef::Device(n) => dm::plan(&mut cx, n),
                    DevRef::Partition(n) => partition::plan(&mut cx, n),
                    _ => {}
                }
            }
            filesystem::plan(&mut cx);
            mount::plan(&mut cx);
            if desired.persist {
                boot::plan(&mut cx);
            } else {
                boot::reload_if_needed(&mut cx, false);
            }
        }
        State::Absent => absent::plan(&mut cx),
    }
    cx.warn_unreadable_others();
    cx.finish()
}

/// Planning state shared by the layers.
pub(crate) struct Ctx<'a> {
    pub d: &'a Desired,
    pub a: &'a Actual,
    /// The declared objects bound to the probed state (the overlays below are this
    /// plan's changes to it).
    pub b: Bound<'a>,
    teardown: Vec<Step>,
    build: Vec<Step>,
    pub refusals: Vec<String>,
    pub warnings: Vec<String>,
    /// Declared objects whose content is new after this plan (created or destroyed).
    fresh: BTreeSet<DevRef>,
    /// Existing devices whose content this plan destroys (their users are torn down).
    wiped: BTreeSet<Devno>,
    /// dm devices removed by the teardown.
    removed_dm: BTreeSet<String>,
    /// Mount points unmounted by the teardown.
    unmounted: BTreeSet<String>,
    /// Mounts (device, mount point) unmounted in the other mount namespaces holding them.
    unmounted_elsewhere: BTreeSet<(Devno, String)>,
    /// Disks that get a new GPT in this plan.
    pub gpt_new: BTreeSet<DevRef>,
    /// Partition numbers used per disk by this plan.
    pub numbers: BTreeMap<DevRef, BTreeSet<u32>>,
    /// Devices that get a new filesystem in this plan.
    pub new_fs: BTreeSet<DevRef>,
    /// Devices this plan creates over content that existed before (a dm device rebuilt
    /// over its members, a partition mapped again): what they hold is known only once
    /// they exist, so the steps on them are conditional.
    pub unknown: BTreeSet<DevRef>,
    /// Unreadable devices this plan depends on (already refused, not warned about).
    unreadable_needed: BTreeSet<Devno>,
}

impl<'a> Ctx<'a> {
    fn new(d: &'a Desired, a: &'a Actual) -> Self {
        Ctx {
            d,
            a,
            b: bind(d, a),
            teardown: Vec::new(),
            build: Vec::new(),
            refusals: Vec::new(),
            warnings: d.warnings.clone(),
            fresh: BTreeSet::new(),
            wiped: BTreeSet::new(),
            removed_dm: BTreeSet::new(),
            unmounted: BTreeSet::new(),
            unmounted_elsewhere: BTreeSet::new(),
            gpt_new: BTreeSet::new(),
            numbers: BTreeMap::new(),
            new_fs: BTreeSet::new(),
            unknown: BTreeSet::new(),
            unreadable_needed: BTreeSet::new(),
        }
    }

    /// Refuse every declared object whose device the probe could not read, and (present)
    /// every declared mount point with something unreadable mounted on it.
    fn refuse_unreadable_declared(&mut self) {
        if self.a.unreadable.is_empty() {
            return;
        }
        let d = self.d;
        let refs: BTreeSet<&DevRef> = d.used_devices().collect();
        let own: Vec<DevRef> = d.own_devices().collect();
        // A declared dm device that is itself suspended (what a run stopped between the
        // suspend and the resume of a reload leaves) is not refused: the dm layer loads
        // its table again and resumes it, and the steps over it are conditional.
        let resumable: BTreeSet<Devno> = d
            .devices
            .iter()
            .filter_map(|x| self.a.dm(&x.name))
            .filter(|dm| dm.suspended)
            .map(|dm| dm.devno)
            .collect();
        self.unreadable_needed.extend(resumable.iter().copied());
        let mut seen = resumable.clone();
        for r in own
            .iter()
            .chain(refs.into_iter().filter(|r| !own.contains(r)))
        {
            let Some(bd) = self.b.block(r) else {
                continue;
            };
            let Some(u) = self.a.unreadable(bd.devno) else {
                continue;
            };
            self.unreadable_needed.insert(bd.devno);
            if seen.insert(bd.devno) {
                self.refusals.push(format!(
                    "{r} ({}) could not be read: {}. What it holds is unknown, so nothing is planned over it; fix or free the device and run again",
                    u.path, u.error
                ));
            }
        }
        if d.state != State::Present {
            return;
        }
        for m in &d.mounts {
            let Some(mt) = self.b.mount_at(&m.path) else {
                continue;
            };
            let Some(u) = self.a.unreadable(mt.devno) else {
                continue;
            };
            self.unreadable_needed.insert(mt.devno);
            if resumable.contains(&mt.devno) {
                continue;
            }
            if seen.insert(mt.devno) {
                self.refusals.push(format!(
                    "{}: the device mounted there ({}) could not be read: {}; fix or unmount it and run again",
                    m.path, u.path, u.error
                ));
            }
        }
    }

    /// The unreadable devices this plan does not depend on, as warnings.
    fn warn_unreadable_others(&mut self) {
        for u in &self.a.unreadable {
            if !self.unreadable_needed.contains(&u.device) {
                self.warnings.push(format!(
                    "could not read {}: {}; it is not part of this stack, so it was left alone",
                    u.path, u.error
                ));
            }
        }
    }

    fn finish(self) -> Result<Plan, Refusal> {
        if self.refusals.is_empty() {
            let mut steps = self.teardown;
            steps.extend(self.build);
            Ok(Plan {
                steps,
                warnings: self.warnings,
            })
        } else {
            Err(Refusal {
                reasons: self.refusals,
                warnings: self.warnings,
            })
        }
    }

    /// Add a build step.
    pub fn step(&mut self, action: Action, detail: impl Into<String>, destructive: bool) {
        self.build.push(Step {
            action,
            detail: detail.into(),
            destructive,
        });
    }

    /// Mark a declared object as having new content after this plan.
    pub fn mark_fresh(&mut self, r: DevRef) {
        self.fresh.insert(r);
    }

    /// The object gets new content in this plan (created, reconfigured, re-made).
    pub fn is_fresh(&self, r: &DevRef) -> bool {
        self.fresh.contains(r)
    }

    /// Whether a device this plan creates shows content that existed before.
    pub fn is_unknown(&self, r: &DevRef) -> bool {
        self.unknown.contains(r)
    }

    /// The device as it is now and will still be when the build steps run
    /// (`None` if missing, or fresh, or removed by the teardown).
    pub fn current(&self, r: &DevRef) -> Option<&'a BlockDevice> {
        if self.is_fresh(r) {
            return None;
        }
        let bd = self.b.block(r)?;
        if let Some(dm) = self.a.dm_by_devno(bd.devno) {
            if self.removed_dm.contains(&dm.name) {
                return None;
            }
        }
        Some(bd)
    }

    /// Whether this plan removes dm device `name` before building.
    pub fn is_removed_dm(&self, name: &str) -> bool {
        self.removed_dm.contains(name)
    }

    /// Record that a build step removes dm device `name`.
    pub fn note_removed_dm(&mut self, name: &str) {
        self.removed_dm.insert(name.to_string());
    }

    /// Whether a mount point is still mounted when the build steps run.
    pub fn still_mounted(&self, path: &str) -> bool {
        !self.unmounted.contains(path) && self.b.mount_at(path).is_some()
    }

    /// Everything stacked on `bd` that destroying its content would lose, recursively
    /// (filesystems, partition tables, mounts, dm devices over it), for messages.
    pub fn lost_with(&self, bd: &BlockDevice) -> Vec<String> {
        let mut lost = Vec::new();
        self.lost_inner(bd, &mut lost, &mut BTreeSet::new());
        lost
    }

    // `seen`: each device once (a corrupt snapshot may have holder cycles, and a device
    // reached twice says nothing new)
    fn lost_inner(&self, bd: &BlockDevice, lost: &mut Vec<String>, seen: &mut BTreeSet<Devno>) {
        if !seen.insert(bd.devno) || self.wiped.contains(&bd.devno) {
            return;
        }
        if let Some(fs) = self.a.filesystem(bd.devno) {
            let label = fs
                .label
                .as_deref()
                .map(|l| format!(" labelled {l:?}"))
                .unwrap_or_default();
            lost.push(format!(
                "the {} filesystem{label} on {}",
                fs.fstype, bd.path
            ));
        }
        if let Some(t) = self.a.gpt(bd.devno) {
            lost.push(format!(
                "the partition table on {} ({} partition{})",
                bd.path,
                t.partitions.len(),
                if t.partitions.len() == 1 { "" } else { "s" }
            ));
        }
        for m in self.a.mounts_of(bd.devno) {
            if !self.unmounted.contains(&m.target) {
                lost.push(format!("the mount of {} on {}", bd.path, m.target));
            }
        }
        for p in self.a.partitions_of(&bd.name) {
            self.lost_inner(p, lost, seen);
        }
        for h in &bd.holders {
            if let Some(hb) = self.a.block_named(h) {
                let name = self
                    .a
                    .dm_by_devno(hb.devno)
                    .map(|d| d.name.clone())
                    .unwrap_or_else(|| h.clone());
                if !self.removed_dm.contains(&name) {
                    lost.push(format!("dm device {name} over {}", bd.path));
                }
                self.lost_inner(hb, lost, seen);
            }
        }
    }

    /// The unreadable devices among `bd` and everything stacked on it (the devices
    /// [`Ctx::lost_with`] looks at).
    fn unreadable_in(
        &self,
        bd: &BlockDevice,
        out: &mut Vec<&'a crate::actual::Unreadable>,
        seen: &mut BTreeSet<Devno>,
    ) {
        if !seen.insert(bd.devno) || self.wiped.contains(&bd.devno) {
            return;
        }
        out.extend(self.a.unreadable(bd.devno));
        for p in self.a.partitions_of(&bd.name) {
            self.unreadable_in(p, out, seen);
        }
        for h in &bd.holders {
            if let Some(hb) = self.a.block_named(h) {
                self.unreadable_in(hb, out, seen);
            }
        }
    }

    /// Users of `bd` that are not ours to touch (dm holders not declared and not a
    /// mapping of a declared partition, over it or over a declared one stacked on it;
    /// those this plan removes first are gone), as messages.
    fn foreign_holders(&self, bd: &BlockDevice) -> Vec<String> {
        self.b
            .foreign_holders(bd, &|name| self.removed_dm.contains(name))
            .into_iter()
            .map(|f| format!("{} is held by dm device {} ({}), which these arguments do not declare; remove it first", f.held, f.name, f.kernel))
            .collect()
    }

    /// Ask to destroy the content of `bd` for `why` (e.g. "reconfiguring namespace pm0").
    /// Returns true when the step may go ahead: nothing would be lost, or data loss is
    /// allowed; then everything stacked on it is torn down first. Otherwise records the
    /// refusal and returns false.
    pub fn destroy(&mut self, bd: &BlockDevice, why: &str) -> bool {
        let mut blind = Vec::new();
        self.unreadable_in(bd, &mut blind, &mut BTreeSet::new());
        if !blind.is_empty() {
            for u in blind {
                self.unreadable_needed.insert(u.device);
                self.refusals.push(format!(
                    "refusing {why}: what it would destroy is unknown: {} could not be read ({})",
                    u.path, u.error
                ));
            }
            return false;
        }
        let foreign = self.foreign_holders(bd);
        if !foreign.is_empty() {
            self.refusals
                .extend(foreign.into_iter().map(|f| format!("refusing {why}: {f}")));
            return false;
        }
        let lost = self.lost_with(bd);
        if !lost.is_empty() && !self.d.allow_data_loss {
            self.refusals.push(format!(
                "refusing {why}: it would destroy {}. Set allow_data_loss: true to allow it",
                lost.join(", ")
            ));
            return false;
        }
        self.tear_down(bd, &mut BTreeSet::new());
        self.wiped.insert(bd.devno);
        true
    }

    /// Umount and remove everything stacked on `bd`, top-down, into the teardown list.
    fn tear_down(&mut self, bd: &BlockDevice, seen: &mut BTreeSet<Devno>) {
        if !seen.insert(bd.devno) {
            return;
        }
        for h in bd.holders.clone() {
            let Some(hb) = self.a.block_named(&h) else {
                continue;
            };
            let Some(dm) = self.a.dm_by_devno(hb.devno) else {
                continue;
            };
            if self.removed_dm.contains(&dm.name) {
                continue;
            }
            self.tear_down(hb, seen);
            self.removed_dm.insert(dm.name.clone());
            self.teardown.push(Step {
                action: Action::RemoveDm {
                    name: dm.name.clone(),
                },
                detail: format!(
                    "dmsetup remove {} (rebuilt after {} changes)",
                    dm.name, bd.path
                ),
                destructive: true,
            });
        }
        let parts: Vec<&BlockDevice> = self.a.partitions_of(&bd.name).collect();
        for p in parts {
            self.tear_down(p, seen);
        }
        let targets: Vec<String> = self
            .a
            .mounts_of(bd.devno)
            .map(|m| m.target.clone())
            .collect();
        for t in targets {
            self.umount_first(&t, &format!("{} changes underneath", bd.path), false);
        }
        let copies: Vec<String> = self
            .a
            .elsewhere
            .iter()
            .filter(|m| m.devno == bd.devno)
            .map(|m| m.target.clone())
            .collect();
        for t in copies {
            self.umount_elsewhere(bd, &t);
        }
    }

    /// Add to the teardown the umount of the copies of `bd`'s mount at `path` that other
    /// mount namespaces hold (once per device and mount point; nothing when none does),
    /// after the umount in ours: `bd` is removed or destroyed by this plan, and stays busy
    /// while one is held. An umount in our namespace reaches such a copy only through
    /// mount propagation, when the copy is a slave of ours or a peer; systemd's stop of a
    /// mount unit is such an umount, in PID 1's namespace, and reaches no further.
    pub fn umount_elsewhere(&mut self, bd: &BlockDevice, path: &str) {
        let who: Vec<String> = self
            .a
            .copies_elsewhere(bd.devno, path)
            .map(|m| m.who())
            .collect();
        if who.is_empty()
            || !self
                .unmounted_elsewhere
                .insert((bd.devno, path.to_string()))
        {
            return;
        }
        self.teardown.push(Step {
            action: Action::UmountElsewhere {
                path: path.to_string(),
                device: bd.devno,
            },
            detail: format!(
                "umount {path} in the other mount namespaces holding a copy of it ({}): {} stays busy while one is held",
                who.join(", "),
                bd.path
            ),
            destructive: false,
        });
    }

    /// Add an umount to the teardown (once per mount point), without data-loss checks.
    /// Unmount `path` first (`detachable`: see [`Action::Umount`]).
    pub fn umount_first(&mut self, path: &str, why: &str, detachable: bool) {
        if self.unmounted.insert(path.to_string()) {
            self.teardown.push(Step {
                action: Action::Umount {
                    path: path.to_string(),
                    detachable,
                },
                detail: format!("umount {path} ({why})"),
                destructive: false,
            });
        }
    }

    /// Declared devices and partitions in dependency order (members before devices,
    /// disks before partitions).
    fn stack_order(&self) -> Vec<DevRef> {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        let all: Vec<DevRef> = self
            .d
            .devices
            .iter()
            .map(|x| DevRef::Device(x.name.clone()))
            .chain(
                self.d
                    .partitions
                    .iter()
                    .map(|x| DevRef::Partition(x.name.clone())),
            )
            .collect();
        for r in all {
            self.visit(&r, &mut seen, &mut order, 0);
        }
        order
    }

    fn visit(
        &self,
        r: &DevRef,
        seen: &mut BTreeSet<DevRef>,
        order: &mut Vec<DevRef>,
        depth: usize,
    ) {
        if depth > 64 || !seen.insert(r.clone()) {
            return;
        }
        let deps: Vec<DevRef> = match r {
            DevRef::Device(n) => self
                .d
                .device(n)
                .map(|x| x.members.clone())
                .unwrap_or_default(),
            DevRef::Partition(n) => self
                .d
                .partition(n)
                .map(|x| vec![x.disk.clone()])
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        for dep in &deps {
            self.visit(dep, seen, order, depth + 1);
        }
        if matches!(r, DevRef::Device(_) | DevRef::Partition(_)) {
            order.push(r.clone());
        }
    }
}

/// Sizes in plan details.
pub(crate) fn sectors_h(s: Sectors) -> String {
    format!("{s} sectors ({})", s.bytes())
}
