//! LVM layer: physical volumes, volume groups and logical volumes over declared
//! namespaces, partitions or paths. A VG is planned once its PVs are (the stack order
//! puts an LV after its VG's PVs), with all its declared LVs: those with a size first,
//! then the one that takes the rest.
//!
//! PVs (`volume_groups[].pvs`):
//!
//! | found on the device | step |
//! |---|---|
//! | made by this plan, or nothing | `pvcreate --dataalignment 2m` |
//! | a PV of this VG | nothing |
//! | a PV in no VG | nothing (it joins the VG; a data area not on 2 MiB is a warning) |
//! | a PV of another VG | refuse, whatever `allow_data_loss` says: that VG is not ours |
//! | the label of a `pvcreate` stopped before its metadata area (listed by no VG) | zero the label (it holds nothing; LVM refuses every command on it), then `pvcreate` |
//! | an LVM label that cannot be read | refuse, naming the error |
//! | anything else (a filesystem, a table, a dm holder) | as every layer: refused without `allow_data_loss` (naming what would be lost), else torn down and wiped by `pvcreate -y` |
//! | not DAX-capable (`queue/dax` 0) | refuse: the VG's LVs would lose DAX (the guide's rule) |
//!
//! VGs: none by that name: `vgcreate -s EXTENT` over the declared PVs; found: declared
//! PVs not in it are added (`vgextend`). A found VG is left as it is otherwise: PVs in
//! it that are not declared stay (warning), another extent size is a warning (the audit
//! names it when it costs 2 MiB pages).
//!
//! LVs (`logical_volumes[]`, sizes in extents: the size rounded up to a whole number of
//! stripes; no size: what the VG has free, `100%FREE`):
//!
//! | found | wanted | allowed | step |
//! |---|---|---|---|
//! | no | - | - | `lvcreate` (striped: `-i N -I SIZE`), then its largest I/O raised to the stripe size |
//! | same stripes and stripe size, same size | - | - | nothing (inactive, or its dm device not live or suspended: activate; striped with a smaller largest I/O: raise it) |
//! | same shape, larger wanted | - | - | `lvextend` (data kept) |
//! | the rest of the VG, linear, the VG has free extents or gets a PV | - | - | `lvextend -l +100%FREE` |
//! | other stripes, stripe size or segment type, or smaller | - | no | refuse, naming what would be lost |
//! | other stripes, stripe size or segment type, or smaller | - | yes | tear down its users, `lvremove`, `lvcreate` |
//!
//! At apply time each step checks the state probed just before it: a step already done
//! (a run stopped after an `lvm` command committed) is skipped, one whose device changed
//! is refused.

use super::{Action, Ctx, Layer, Refused, Resolved, Step};
use crate::actual::lvm::Vg;
use crate::args::desired::{lv_dm_name, LogicalVolumeSpec};
use crate::args::validate::DevRef;
use crate::bind::Bound;
use crate::op::{DevId, Extents, LvmOp, NewLv, Op};
use crate::units::{Bytes, HUGE_PAGE};

/// Plan volume group `name`: its PVs, itself and its declared LVs (once per plan).
pub(crate) fn plan_vg(cx: &mut Ctx, name: &str) {
    if !cx.vgs_planned.insert(name.to_string()) {
        return;
    }
    let Some(spec) = cx.d.volume_group(name).cloned() else {
        return;
    };
    let found = cx.a.vg(name).cloned();
    // declared PVs not in the VG yet (made now, or found as PVs in no VG)
    let mut joining: Vec<DevRef> = Vec::new();
    let mut ok = true;
    for r in &spec.pvs {
        match pv_step(cx, name, r) {
            Some(PvState::InVg) => {}
            Some(PvState::Joins) => joining.push(r.clone()),
            None => ok = false,
        }
    }
    if !ok {
        return;
    }
    let extent_size = match &found {
        None => {
            cx.step(
                Action::CreateVg {
                    vg: name.to_string(),
                    extent_size: spec.extent_size,
                    pvs: spec.pvs.clone(),
                },
                format!(
                    "lvm vgcreate -s {}k {name} over {} (extents of {})",
                    spec.extent_size.0 / 1024,
                    describe_all(cx, &spec.pvs),
                    spec.extent_size
                ),
                false,
            );
            spec.extent_size
        }
        Some(vg) => {
            for p in &vg.pvs {
                let declared = p.device.is_some_and(|d| {
                    spec.pvs
                        .iter()
                        .any(|r| cx.b.block(r).is_some_and(|b| b.devno == d))
                });
                if !declared {
                    let at = p
                        .device
                        .and_then(|d| cx.a.block(d))
                        .map(|b| b.path.clone())
                        .unwrap_or_else(|| format!("missing (uuid {})", p.uuid));
                    cx.warnings.push(format!(
                        "volume group {name} also has PV {at}, which its declaration does not list; it is left in the VG"
                    ));
                }
            }
            if vg.extent_size != spec.extent_size {
                cx.warnings.push(format!(
                    "volume group {name} has extents of {}, not the declared {}; a VG's extent size is kept",
                    vg.extent_size, spec.extent_size
                ));
            }
            if !joining.is_empty() {
                cx.step(
                    Action::ExtendVg {
                        vg: name.to_string(),
                        pvs: joining.clone(),
                    },
                    format!(
                        "lvm vgextend {name} {} (the VG grows; its LVs keep their data)",
                        describe_all(cx, &joining)
                    ),
                    false,
                );
            }
            vg.extent_size
        }
    };
    let mut lvs: Vec<LogicalVolumeSpec> =
        cx.d.logical_volumes
            .iter()
            .filter(|l| l.vg == name)
            .cloned()
            .collect();
    // the one taking the rest last
    lvs.sort_by_key(|l| l.size.is_none());
    for lv in &lvs {
        plan_lv(cx, lv, found.as_ref(), extent_size, !joining.is_empty());
    }
}

/// Where a declared PV stands.
enum PvState {
    /// Already a PV of the VG.
    InVg,
    /// A PV (now, or made by this plan) to put in the VG.
    Joins,
}

/// The step making `r` a PV of VG `vg`, if one is needed; `None` when refused.
fn pv_step(cx: &mut Ctx, vg: &str, r: &DevRef) -> Option<PvState> {
    let Some(bd) = cx.current(r) else {
        if let DevRef::Path(p) = r {
            cx.refusals.push(Refused::because(format!(
                "volume group {vg}: PV {p} does not exist"
            )));
            return None;
        }
        // made (or made again) by this plan
        cx.step(
            Action::CreatePv {
                device: r.clone(),
                wipe: false,
            },
            format!("lvm pvcreate --dataalignment 2m {}", cx.b.describe(r)),
            false,
        );
        return Some(PvState::Joins);
    };
    if !bd.dax {
        cx.refusals.push(Refused::because(format!(
            "volume group {vg}: PV {r} ({}) is not DAX-capable (queue/dax is 0); a volume group of DAX volumes takes DAX-capable PVs only",
            bd.path
        )));
        return None;
    }
    if cx.a.lvm.unfinished_pv(bd.devno).is_some() {
        let path = bd.path.clone();
        zero_unfinished_label(cx, r, &path);
        cx.step(
            Action::CreatePv {
                device: r.clone(),
                wipe: false,
            },
            format!("lvm pvcreate --dataalignment 2m {path}"),
            false,
        );
        return Some(PvState::Joins);
    }
    if let Some(pv) = cx.a.pv(bd.devno) {
        if let Some(e) = &pv.error {
            cx.refusals.push(Refused::because(format!(
                "volume group {vg}: {} carries an LVM label that could not be read ({e}); repair it with LVM's tools or wipe it, then run again",
                bd.path
            )));
            return None;
        }
        return match pv.vg.as_deref() {
            Some(v) if v == vg => Some(PvState::InVg),
            Some(other) => {
                cx.refusals.push(Refused::because(format!(
                    "volume group {vg}: {} is a PV of volume group {other}, which is not this one; it is left alone (take it out of {other} with vgreduce first)",
                    bd.path
                )));
                None
            }
            None => {
                if let Some(s) = pv.pe_start.filter(|s| !s.is_multiple_of(HUGE_PAGE)) {
                    cx.warnings.push(format!(
                        "PV {} has its data area at {s}, not on 2 MiB: no extent is 2 MiB aligned and DAX falls back to 4 KiB pages (pvremove it and run again to have it made with --dataalignment 2m)",
                        bd.path
                    ));
                }
                Some(PvState::Joins)
            }
        };
    }
    let lost = cx.lost_with(bd);
    let path = bd.path.clone();
    if !cx.destroy(bd, &format!("making {path} a PV of volume group {vg}")) {
        return None;
    }
    cx.step(
        Action::CreatePv {
            device: r.clone(),
            wipe: !lost.is_empty(),
        },
        if lost.is_empty() {
            format!("lvm pvcreate --dataalignment 2m {path}")
        } else {
            format!(
                "lvm pvcreate --dataalignment 2m -y {path} (destroys {}; allowed by allow_data_loss)",
                lost.join(", ")
            )
        },
        !lost.is_empty(),
    );
    Some(PvState::Joins)
}

/// `remove_pv` of the PV on `r` (at `path`) that a stopped `pvcreate` left
/// ([`crate::actual::lvm::Lvm::unfinished_pv`]): its label zeroed at apply time, not
/// destructive (it holds nothing), so as in a converge as in a teardown.
fn zero_unfinished_label(cx: &mut Ctx, r: &DevRef, path: &str) {
    cx.step(
        Action::RemovePv { device: r.clone() },
        format!("zero the LVM2 label on {path}: a pvcreate stopped before writing its metadata area left it, it holds nothing, and LVM refuses every command on it"),
        false,
    );
}

fn describe_all(cx: &Ctx, refs: &[DevRef]) -> String {
    refs.iter()
        .map(|r| cx.b.describe(r))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The extents `spec` wants with extents of `extent`: its size rounded up to whole
/// extents and whole stripes, or the rest of the VG.
pub(crate) fn wanted_extents(spec: &LogicalVolumeSpec, extent: Bytes) -> Extents {
    match spec.size {
        None => Extents::RestOfVg,
        Some(size) => {
            let e = extent.0.max(1);
            let n = size.0.div_ceil(e);
            let s = u64::from(spec.stripes.max(1));
            Extents::Count(n.div_ceil(s) * s)
        }
    }
}

/// The extents of `vg` no LV uses.
fn free_extents(vg: &Vg) -> u64 {
    let all: u64 = vg.pvs.iter().map(|p| p.pe_count).sum();
    let used: u64 = vg.lvs.iter().map(|l| l.extent_count()).sum();
    all.saturating_sub(used)
}

fn plan_lv(cx: &mut Ctx, spec: &LogicalVolumeSpec, vg: Option<&Vg>, extent: Bytes, vg_grows: bool) {
    let (vgn, lvn) = (spec.vg.as_str(), spec.name.as_str());
    let me = DevRef::Volume(vgn.to_string(), lvn.to_string());
    let want = wanted_extents(spec, extent);
    let stripe_kb = u32::try_from(spec.stripe_size.0 / 1024).unwrap_or(u32::MAX);
    let new = NewLv {
        vg: vgn.to_string(),
        lv: lvn.to_string(),
        extents: want,
        stripes: spec.stripes,
        stripe_size: spec.stripe_size,
    };
    let shape = if spec.stripes > 1 {
        format!("{} stripes of {}", spec.stripes, spec.stripe_size)
    } else {
        "linear".to_string()
    };
    let size_words = match want {
        Extents::Count(n) => format!("{n} extents of {extent}"),
        Extents::RestOfVg => "the rest of the VG".to_string(),
    };
    // the LV made (again: destructive), fresh for the layers above, its I/O raised
    let make = |cx: &mut Ctx, again: bool| {
        cx.step(
            Action::CreateLv(new.clone()),
            format!("lvm lvcreate {vgn}/{lvn}: {shape}, {size_words}"),
            again,
        );
        cx.o.mark_fresh(me.clone());
        raise_after(
            cx,
            spec,
            &me,
            stripe_kb,
            if again { "made again" } else { "made" },
        );
    };
    let Some(found) = vg.and_then(|g| g.lv(lvn)) else {
        make(cx, false);
        return;
    };
    let have = found.extent_count();
    let mut differs: Vec<String> = Vec::new();
    for s in &found.segments {
        if s.segtype != "striped" {
            differs.push(format!("it has a {} segment", s.segtype));
        } else if s.stripe_count != u64::from(spec.stripes) {
            differs.push(format!(
                "it has {} stripe(s), {} wanted",
                s.stripe_count, spec.stripes
            ));
        } else if spec.stripes > 1 && s.stripe_size != Some(spec.stripe_size) {
            differs.push(format!(
                "its stripe size is {}, {} wanted",
                s.stripe_size.map(|b| b.to_string()).unwrap_or_default(),
                spec.stripe_size
            ));
        }
    }
    differs.dedup();
    if let Extents::Count(n) = want {
        if n < have {
            differs.push(format!(
                "it has {have} extents and {n} are wanted (shrinking cuts off its end)"
            ));
        }
    }
    // active: its dm device is live (a run killed inside LVM's activation leaves it
    // without a live table, or suspended: `lvchange -ay` finishes that)
    let live =
        cx.a.lv_dm(vgn, lvn)
            .is_some_and(|d| !d.table.is_empty() && !d.suspended);
    let active = cx.current(&me).filter(|_| live);
    if !differs.is_empty() {
        let why = format!(
            "making logical volume {vgn}/{lvn} again ({})",
            differs.join("; ")
        );
        if !cx.d.allow_data_loss {
            let mut lost = vec![format!("the data on logical volume {vgn}/{lvn}")];
            if let Some(bd) = active {
                lost.extend(cx.lost_with(bd));
            }
            cx.refusals.push(Refused::losing_data(
                &why,
                format!("it would destroy {}", lost.join(", ")),
            ));
            return;
        }
        if let Some(bd) = active {
            if !cx.destroy(bd, &why) {
                return;
            }
        }
        cx.o.remove_dm(&lv_dm_name(vgn, lvn));
        cx.teardown.push(Step {
            action: Action::RemoveLv {
                vg: vgn.to_string(),
                lv: lvn.to_string(),
            },
            detail: format!(
                "lvm lvremove -y {vgn}/{lvn} ({}; allowed by allow_data_loss)",
                differs.join("; ")
            ),
            destructive: true,
        });
        make(cx, true);
        return;
    }
    if active.is_none() {
        let state = match cx.a.lv_dm(vgn, lvn) {
            Some(d) if d.suspended => {
                "its dm device is suspended: a refresh or reload stopped half-way leaves this"
            }
            Some(_) => {
                "its dm device has no live table: an activation stopped half-way leaves this"
            }
            None => "it exists, inactive",
        };
        cx.step(
            Action::ActivateLv {
                vg: vgn.to_string(),
                lv: lvn.to_string(),
            },
            format!("lvm lvchange -ay {vgn}/{lvn} ({state})"),
            false,
        );
        // what it holds is read once it is active: the steps over it are conditional
        // (suspended while mounted: the mount says what it holds)
        let mounted =
            cx.a.lv_dm(vgn, lvn)
                .is_some_and(|d| cx.a.mounts_of(d.devno).next().is_some());
        if !mounted {
            cx.o.mark_unknown(me.clone());
        }
    }
    let grow = match want {
        Extents::Count(n) if n > have => Some(want),
        Extents::RestOfVg
            if spec.stripes == 1 && (vg_grows || vg.is_some_and(|g| free_extents(g) > 0)) =>
        {
            Some(want)
        }
        _ => None,
    };
    if let Some(extents) = grow {
        cx.step(
            Action::ExtendLv {
                vg: vgn.to_string(),
                lv: lvn.to_string(),
                extents,
            },
            format!(
                "lvm lvextend {vgn}/{lvn} from {have} extents to {} (its data stays)",
                match extents {
                    Extents::Count(n) => n.to_string(),
                    Extents::RestOfVg => "all the VG has free".to_string(),
                }
            ),
            false,
        );
    }
    match active {
        None => raise_after(cx, spec, &me, stripe_kb, "activated"),
        Some(bd) if spec.stripes > 1 && bd.max_sectors_kb.is_some_and(|k| k < stripe_kb) => {
            raise_after(cx, spec, &me, stripe_kb, "found with less");
        }
        Some(_) => {}
    }
}

/// A striped LV's largest I/O raised to its stripe size once it is active.
fn raise_after(cx: &mut Ctx, spec: &LogicalVolumeSpec, me: &DevRef, kb: u32, why: &str) {
    if spec.stripes <= 1 {
        return;
    }
    cx.step(
        Action::RaiseMaxSectors {
            device: me.clone(),
            kb,
        },
        format!(
            "queue/max_sectors_kb of {me} to {kb} ({why}: an LV's dm device inherits 1280 KiB from pmem, and a striped one maps a 2 MiB DAX page only when one I/O takes a whole stripe)"
        ),
        false,
    );
}

/// `state: absent`: LV `vg/lv` removed (the data stays on the PVs until they are used
/// again; LVM's metadata archive can bring it back).
pub(crate) fn plan_absent_lv(cx: &mut Ctx, vg: &str, lv: &str) {
    if cx.a.lv(vg, lv).is_none() {
        return;
    }
    cx.o.remove_dm(&lv_dm_name(vg, lv));
    cx.step(
        Action::RemoveLv {
            vg: vg.to_string(),
            lv: lv.to_string(),
        },
        format!("lvm lvremove -y {vg}/{lv} (the data stays on its PVs until they are used again)"),
        false,
    );
}

/// `state: absent`: VG `name` removed once it holds no LV but the declared ones, then
/// (with `allow_data_loss`) the labels of its declared PVs.
pub(crate) fn plan_absent_vg(cx: &mut Ctx, name: &str) {
    let Some(spec) = cx.d.volume_group(name).cloned() else {
        return;
    };
    if let Some(vg) = cx.a.vg(name) {
        let others: Vec<&str> = vg
            .lvs
            .iter()
            .filter(|l| cx.d.logical_volume(name, &l.name).is_none())
            .map(|l| l.name.as_str())
            .collect();
        if !others.is_empty() {
            cx.warnings.push(format!(
                "volume group {name} left in place: it holds logical volumes these arguments do not declare ({})",
                others.join(", ")
            ));
            return;
        }
        cx.step(
            Action::RemoveVg {
                vg: name.to_string(),
            },
            format!("lvm vgremove {name}"),
            false,
        );
    }
    for r in &spec.pvs {
        let Some(bd) = cx.b.block(r) else { continue };
        let Some(pv) = cx.a.pv(bd.devno) else {
            continue;
        };
        if pv.vg.as_deref().is_some_and(|v| v != name) {
            continue;
        }
        if cx.a.lvm.unfinished_pv(bd.devno).is_some() {
            let path = bd.path.clone();
            zero_unfinished_label(cx, r, &path);
            continue;
        }
        if !cx.d.allow_data_loss {
            cx.warnings.push(format!(
                "the PV label of {} left in place: removing it loses what LVM needs to find its data; set allow_data_loss: true to remove it",
                bd.path
            ));
            continue;
        }
        cx.step(
            Action::RemovePv { device: r.clone() },
            format!("lvm pvremove {}", bd.path),
            true,
        );
    }
}

/// Apply time: an LVM step as its op, against the state probed just before it. A step
/// a stopped run already did is skipped; a PV to make that holds something now
/// (without `wipe`), or a VG or LV to remove that holds more than planned, is refused.
pub(crate) fn resolve(action: &Action, bound: &Bound) -> Result<Resolved, Refused> {
    let a = bound.actual();
    let refused = |why: String| Refused::new(action.doing(), why);
    let ids = |refs: &[DevRef]| -> Result<Vec<DevId>, Refused> {
        refs.iter()
            .map(|r| bound.dev_id(r).map_err(&refused))
            .collect()
    };
    let lvm = |op: LvmOp| Ok(Resolved::Run(Op::Lvm(op)));
    match action {
        Action::CreatePv { device, wipe } => {
            let b = bound.existing(device).map_err(refused)?;
            if let Some(pv) = a.pv(b.devno) {
                if pv.unfinished {
                    return Err(refused(format!(
                        "{} carries the label of a stopped pvcreate by now",
                        b.path
                    )));
                }
                return match &pv.vg {
                    None => Ok(Resolved::Skip(format!("{} is a PV already", b.path))),
                    Some(vg) => Err(refused(format!(
                        "{} is a PV of volume group {vg} by now",
                        b.path
                    ))),
                };
            }
            if !wipe {
                let found = a
                    .filesystem(b.devno)
                    .map(|f| format!("a {} filesystem", f.fstype))
                    .or_else(|| a.gpt(b.devno).map(|_| "a partition table".to_string()));
                if let Some(f) = found {
                    return Err(refused(format!("{} holds {f} by now", b.path)));
                }
            }
            lvm(LvmOp::PvCreate {
                device: bound.dev_id(device).map_err(refused)?,
                wipe: *wipe,
            })
        }
        Action::CreateVg {
            vg,
            extent_size,
            pvs,
        } => {
            if a.vg(vg).is_some() {
                return Ok(Resolved::Skip(format!("volume group {vg} exists")));
            }
            lvm(LvmOp::VgCreate {
                vg: vg.clone(),
                extent_size: *extent_size,
                pvs: ids(pvs)?,
            })
        }
        Action::ExtendVg { vg, pvs } => {
            let mut add = Vec::new();
            for id in ids(pvs)? {
                if a.pv(id.devno).and_then(|p| p.vg.as_deref()) != Some(vg.as_str()) {
                    add.push(id);
                }
            }
            if add.is_empty() {
                return Ok(Resolved::Skip(format!("volume group {vg} has them")));
            }
            lvm(LvmOp::VgExtend {
                vg: vg.clone(),
                pvs: add,
            })
        }
        Action::CreateLv(n) => {
            if a.lv(&n.vg, &n.lv).is_some() {
                return Ok(Resolved::Skip(format!(
                    "logical volume {}/{} exists",
                    n.vg, n.lv
                )));
            }
            lvm(LvmOp::LvCreate(n.clone()))
        }
        Action::ExtendLv { vg, lv, extents } => {
            let (_, l) = a
                .lv(vg, lv)
                .ok_or_else(|| refused(format!("logical volume {vg}/{lv} does not exist")))?;
            if let Extents::Count(n) = extents {
                if l.extent_count() >= *n {
                    return Ok(Resolved::Skip(format!(
                        "logical volume {vg}/{lv} has {} extents",
                        l.extent_count()
                    )));
                }
            }
            lvm(LvmOp::LvExtend {
                vg: vg.clone(),
                lv: lv.clone(),
                extents: *extents,
            })
        }
        Action::ActivateLv { vg, lv } => {
            if a.lv_dm(vg, lv)
                .is_some_and(|d| !d.table.is_empty() && !d.suspended)
            {
                return Ok(Resolved::Skip(format!(
                    "logical volume {vg}/{lv} is active"
                )));
            }
            lvm(LvmOp::LvActivate {
                vg: vg.clone(),
                lv: lv.clone(),
            })
        }
        Action::RemoveLv { vg, lv } => {
            if a.lv(vg, lv).is_none() {
                return Ok(Resolved::Skip(format!("logical volume {vg}/{lv} is gone")));
            }
            lvm(LvmOp::LvRemove {
                vg: vg.clone(),
                lv: lv.clone(),
            })
        }
        Action::RemoveVg { vg } => match a.vg(vg) {
            None => Ok(Resolved::Skip(format!("volume group {vg} is gone"))),
            Some(g) if !g.lvs.is_empty() => Err(refused(format!(
                "volume group {vg} still holds {}",
                g.lvs
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            Some(_) => lvm(LvmOp::VgRemove { vg: vg.clone() }),
        },
        Action::RemovePv { device } => {
            let b = bound.existing(device).map_err(refused)?;
            if a.pv(b.devno).is_none() {
                return Ok(Resolved::Skip(format!("{} has no PV label", b.path)));
            }
            if a.lvm.unfinished_pv(b.devno).is_some() {
                return Ok(Resolved::Run(Op::ZeroPvLabel {
                    device: bound.dev_id(device).map_err(refused)?,
                }));
            }
            lvm(LvmOp::PvRemove {
                device: bound.dev_id(device).map_err(refused)?,
            })
        }
        Action::RaiseMaxSectors { device, kb } => {
            let b = bound.existing(device).map_err(refused)?;
            if b.max_sectors_kb.is_some_and(|k| k >= *kb) {
                return Ok(Resolved::Skip(format!(
                    "{} takes I/O of {kb} KiB already",
                    b.path
                )));
            }
            Ok(Resolved::Run(Op::SetMaxSectors {
                device: bound.dev_id(device).map_err(refused)?,
                kb: *kb,
            }))
        }
        _ => Err(Refused::not_mine(action, Layer::Lvm)),
    }
}
