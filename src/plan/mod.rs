//! The pure planner: `plan(&Desired, &Actual) -> Result<Plan, Refusal>`. No I/O.
//!
//! Layers are planned bottom-up (namespaces, then dm devices and partitions in
//! dependency order, filesystems, mounts); each layer's rule is an exhaustive match over
//! *exists x wanted x matches x allowed*, written out in the layer's module docs.
//!
//! When a step destroys the content of an existing device (reconfiguring a namespace,
//! reloading a table with other geometry, re-making a filesystem, writing a partition
//! table over a filesystem) the planner first asks `Ctx::destroy` what would be lost
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
//! content-at-risk walk (`Ctx::destroy`) reaches one, whatever `allow_data_loss` says.
//! Any other unreadable device is only a warning: it is not part of this stack.
//!
//! The layers find the declared objects through the bound view of the probed state
//! ([`crate::bind`], made once per plan and held by `Ctx`); what this plan creates,
//! re-makes or removes is `Ctx`'s overlay on it
//! (`overlay::Overlay`, read through `Ctx::current`).
//!
//! Steps name objects symbolically ([`DevRef`]); [`resolve`](crate::apply::resolve()) turns a step into a concrete
//! [`Op`](crate::op::Op) against the state probed just before it runs, because a
//! device created by step k only gets its device number and size when step k has run;
//! a step refused then is a [`Refused`].

mod absent;
mod action;
mod boot;
pub(crate) mod cxl;
mod dm;
mod filesystem;
mod lvm;
mod mount;
mod namespace;
mod overlay;
mod partition;
mod ram;
pub mod replay;

pub use crate::dm_table::striped_chunk_kb;
pub use action::{
    refusal_texts, Action, Layer, Plan, PlanItem, Refusal, Refused, Resolved, Step, ALLOW_DATA_LOSS,
};
pub use filesystem::{
    dax_geometry, expected_geometry, geometry_problems, STRIPE_UNIT_BLOCKS, XFS_EXTSIZE,
};
pub use partition::rest_of_disk;

use crate::actual::{Actual, BlockDevice, Devno};
use crate::args::validate::{Desired, DevRef};
use crate::args::State;
use crate::bind::{bind, Bound};
use crate::units::Sectors;
use overlay::Overlay;
use std::collections::BTreeSet;

/// A planned step at apply time, in its layer's room: the layer's guard and its
/// translation into an op, against the bound view of the state probed just before it
/// (for [`crate::apply::resolve()`], which first applies the guard common to all layers).
pub(crate) fn resolve_in_room(action: &Action, bound: &Bound) -> Result<Resolved, Refused> {
    match action.layer() {
        Layer::Cxl => cxl::resolve(action, bound),
        Layer::Namespace => namespace::resolve(action, bound),
        Layer::SystemRam => ram::resolve(action, bound),
        Layer::Dm => dm::resolve(action, bound),
        Layer::Partition => partition::resolve(action, bound),
        Layer::Lvm => lvm::resolve(action, bound),
        Layer::Filesystem => filesystem::resolve(action, bound),
        Layer::Mount => mount::resolve(action, bound),
        Layer::Boot => boot::resolve(action, bound),
    }
}

/// Plan the steps that take `actual` to `desired`.
pub fn plan(desired: &Desired, actual: &Actual) -> Result<Plan, Refusal> {
    // namespaces adopted by uuid are the declared ones from the start of the plan
    let adopted = namespace::adoption_view(desired, actual);
    let actual = adopted.as_ref().unwrap_or(actual);
    // namespaces on an assembled CXL region are in the NVDIMM region it shows as
    let on_cxl = cxl::bind_namespaces(desired, actual);
    let desired = on_cxl.as_ref().unwrap_or(desired);
    let mut cx = Ctx::new(desired, actual);
    cx.refuse_unreadable_declared();
    match desired.state {
        State::Present => {
            // validation compared the references; here the devices they name
            let conflicts =
                crate::args::validate::role_conflicts(desired, |r| cx.b.block(r).map(|b| b.devno));
            for (path, msg) in conflicts {
                cx.refusals.push(Refused::because(format!("{path}: {msg}")));
            }
            cxl::plan(&mut cx);
            namespace::plan(&mut cx);
            ram::plan(&mut cx);
            for r in cx.stack_order() {
                match &r {
                    DevRef::Device(n) => dm::plan(&mut cx, n),
                    DevRef::Partition(n) => partition::plan(&mut cx, n),
                    DevRef::Volume(vg, _) => lvm::plan_vg(&mut cx, vg),
                    _ => {}
                }
            }
            // volume groups no declared LV is in
            for vg in &desired.volume_groups {
                lvm::plan_vg(&mut cx, &vg.name);
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
    pub refusals: Vec<Refused>,
    pub warnings: Vec<String>,
    /// This plan's changes to the probed state, as the layers above see them.
    pub o: Overlay,
    /// Unreadable devices this plan depends on (already refused, not warned about).
    unreadable_needed: BTreeSet<Devno>,
    /// Volume groups planned so far (each once, with its PVs and LVs).
    vgs_planned: BTreeSet<String>,
    /// Declared CXL regions this plan makes (what is on them is known once they are),
    /// with the NVDIMM region each is expected to show as (the kernel gives the lowest
    /// free number).
    pub cxl_new: std::collections::BTreeMap<String, String>,
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
            o: Overlay::default(),
            unreadable_needed: BTreeSet::new(),
            vgs_planned: BTreeSet::new(),
            cxl_new: std::collections::BTreeMap::new(),
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
        // So is a declared LV's (an activation or a refresh stopped half-way): the LVM
        // layer activates it again, which resumes it.
        let resumable: BTreeSet<Devno> = d
            .devices
            .iter()
            .filter_map(|x| self.a.dm(&x.name))
            .chain(
                d.logical_volumes
                    .iter()
                    .filter_map(|l| self.a.lv_dm(&l.vg, &l.name)),
            )
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
                self.refusals.push(Refused::because(format!(
                    "{r} ({}) could not be read: {}. What it holds is unknown, so nothing is planned over it; fix or free the device and run again",
                    u.path, u.error
                )));
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
                self.refusals.push(Refused::because(format!(
                    "{}: the device mounted there ({}) could not be read: {}; fix or unmount it and run again",
                    m.path, u.path, u.error
                )));
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
                refused: self.refusals,
                warnings: self.warnings,
            })
        }
    }

    /// The actions planned so far (teardown, then build).
    pub fn planned(&self) -> impl Iterator<Item = &Action> + '_ {
        self.teardown.iter().chain(&self.build).map(|s| &s.action)
    }

    /// Add a build step.
    pub fn step(&mut self, action: Action, detail: impl Into<String>, destructive: bool) {
        self.build.push(Step {
            action,
            detail: detail.into(),
            destructive,
        });
    }

    /// The device as it is now and will still be when the build steps run
    /// (`None` if missing, or fresh, or removed by the teardown).
    pub fn current(&self, r: &DevRef) -> Option<&'a BlockDevice> {
        if self.o.is_fresh(r) {
            return None;
        }
        let bd = self.b.block(r)?;
        if let Some(dm) = self.a.dm_by_devno(bd.devno) {
            if self.o.is_removed_dm(&dm.name) {
                return None;
            }
        }
        Some(bd)
    }

    /// Whether a mount point is still mounted when the build steps run.
    pub fn still_mounted(&self, path: &str) -> bool {
        !self.o.is_unmounted(path) && self.b.mount_at(path).is_some()
    }

    /// Everything stacked on `bd` that destroying its content would lose, recursively
    /// (filesystems, partition tables, PV labels, mounts, dm devices and LVs over it),
    /// for messages.
    pub fn lost_with(&self, bd: &BlockDevice) -> Vec<String> {
        let mut lost = Vec::new();
        self.lost_inner(bd, &mut lost, &mut BTreeSet::new());
        lost
    }

    // `seen`: each device once (a corrupt snapshot may have holder cycles, and a device
    // reached twice says nothing new)
    fn lost_inner(&self, bd: &BlockDevice, lost: &mut Vec<String>, seen: &mut BTreeSet<Devno>) {
        if !seen.insert(bd.devno) || self.o.is_wiped(bd.devno) {
            return;
        }
        // (a filesystem whose mkfs never finished holds nothing)
        if let Some(fs) = self.a.filesystem(bd.devno).filter(|f| !f.incomplete) {
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
        if let Some(pv) = self.a.pv(bd.devno) {
            lost.push(match &pv.vg {
                Some(vg) => format!("the LVM PV on {} (of volume group {vg})", bd.path),
                None => format!("the LVM PV label on {}", bd.path),
            });
        }
        for m in self.a.mounts_of(bd.devno) {
            if !self.o.is_unmounted(&m.target) {
                lost.push(format!("the mount of {} on {}", bd.path, m.target));
            }
        }
        for p in self.a.partitions_of(&bd.name) {
            self.lost_inner(p, lost, seen);
        }
        for hb in self.a.holders_of(bd) {
            let name = self
                .a
                .dm_by_devno(hb.devno)
                .map(|d| d.name.clone())
                .unwrap_or_else(|| hb.name.clone());
            if !self.o.is_removed_dm(&name) {
                lost.push(format!("dm device {name} over {}", bd.path));
            }
            self.lost_inner(hb, lost, seen);
        }
    }

    /// The unreadable devices among `bd` and everything stacked on it (the devices
    /// [`Ctx::lost_with`] looks at).
    fn unreadable_in(&self, bd: &BlockDevice) -> Vec<&'a crate::actual::Unreadable> {
        self.a
            .stack_above_until(bd.devno, &|b| self.o.is_wiped(b.devno))
            .into_iter()
            .filter_map(|b| self.a.unreadable(b.devno))
            .collect()
    }

    /// Users of `bd` that are not ours to touch (dm holders not declared and not a
    /// mapping of a declared partition, over it or over a declared one stacked on it;
    /// those this plan removes first are gone), as messages.
    fn foreign_holders(&self, bd: &BlockDevice) -> Vec<String> {
        self.b
            .foreign_holders(bd, &|name| self.o.is_removed_dm(name))
            .into_iter()
            .map(|f| format!("{} is held by dm device {} ({}), which these arguments do not declare; remove it first", f.held, f.name, f.kernel))
            .collect()
    }

    /// Ask to destroy the content of `bd` for `why` (e.g. "reconfiguring namespace pm0").
    /// Returns true when the step may go ahead: nothing would be lost, or data loss is
    /// allowed; then everything stacked on it is torn down first. Otherwise records the
    /// refusal and returns false.
    pub fn destroy(&mut self, bd: &BlockDevice, why: &str) -> bool {
        let blind = self.unreadable_in(bd);
        if !blind.is_empty() {
            for u in blind {
                self.unreadable_needed.insert(u.device);
                self.refusals.push(Refused::new(
                    why,
                    format!(
                        "what it would destroy is unknown: {} could not be read ({})",
                        u.path, u.error
                    ),
                ));
            }
            return false;
        }
        let foreign = self.foreign_holders(bd);
        if !foreign.is_empty() {
            self.refusals
                .extend(foreign.into_iter().map(|f| Refused::new(why, f)));
            return false;
        }
        let lost = self.lost_with(bd);
        if !lost.is_empty() && !self.d.allow_data_loss {
            self.refusals.push(Refused::losing_data(
                why,
                format!("it would destroy {}", lost.join(", ")),
            ));
            return false;
        }
        self.tear_down(bd, &mut BTreeSet::new());
        self.o.wipe(bd.devno);
        true
    }

    /// Umount and remove everything stacked on `bd`, top-down, into the teardown list.
    fn tear_down(&mut self, bd: &BlockDevice, seen: &mut BTreeSet<Devno>) {
        if !seen.insert(bd.devno) {
            return;
        }
        let a = self.a;
        for hb in a.holders_of(bd) {
            let Some(dm) = a.dm_by_devno(hb.devno) else {
                continue;
            };
            if self.o.is_removed_dm(&dm.name) {
                continue;
            }
            self.tear_down(hb, seen);
            self.o.remove_dm(&dm.name);
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
        if who.is_empty() || !self.o.unmount_elsewhere(bd.devno, path) {
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
        if self.o.unmount(path) {
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

    /// Declared devices, partitions and logical volumes in dependency order (members
    /// before devices, disks before partitions, PVs before the LVs of their VG).
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
            .chain(
                self.d
                    .logical_volumes
                    .iter()
                    .map(|x| DevRef::Volume(x.vg.clone(), x.name.clone())),
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
            DevRef::Volume(vg, _) => self
                .d
                .volume_group(vg)
                .map(|x| x.pvs.clone())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        for dep in &deps {
            self.visit(dep, seen, order, depth + 1);
        }
        if matches!(
            r,
            DevRef::Device(_) | DevRef::Partition(_) | DevRef::Volume(..)
        ) {
            order.push(r.clone());
        }
    }
}

/// Sizes in plan details.
pub(crate) fn sectors_h(s: Sectors) -> String {
    format!("{s} sectors ({})", s.bytes())
}
