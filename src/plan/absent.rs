//! `state: absent`: take the declared stack down, top to bottom.
//!
//! | object | exists | used by something not declared | allowed | step |
//! |---|---|---|---|---|
//! | mount | mounted from the declared device | - | - | umount |
//! | mount | something else mounted there | - | - | nothing (warning) |
//! | copy of the mount in another mount namespace | of the declared device, at the mount point | - | - | umount it there (after ours) |
//! | boot files (state, units, links, binary) | yes | - | - | remove, then daemon-reload |
//! | dm device / partition mapping | yes | yes (foreign holder, foreign mount, in any mount namespace) | - | refuse, naming the holder |
//! | dm device / partition mapping | yes | no | - | remove |
//! | partition | yes | - | - | delete the GPT entry (the data stays on the disk) |
//! | logical volume | yes | yes | - | refuse, naming the user |
//! | logical volume | yes | no | - | `lvremove` (the data stays on its PVs until they are used again) |
//! | volume group | yes, only declared LVs in it | - | - | `vgremove`, after its LVs |
//! | volume group | yes, with LVs not declared | - | - | nothing (warning) |
//! | PV label | yes | - | yes | `pvremove`, after its VG |
//! | PV label | yes | - | no | nothing (warning: left in place) |
//! | devdax namespace in system-ram mode | yes | - | - | `to_devdax` (offline first), before the namespace |
//! | namespace | yes | - | yes | destroy |
//! | namespace | yes | - | no | nothing (warning: left in place) |

use super::{Action, Ctx, Refused};
use crate::actual::{partition_name, BlockDevice};
use crate::args::validate::DevRef;

pub(crate) fn plan(cx: &mut Ctx) {
    let declared_paths: Vec<String> = cx.d.mounts.iter().map(|m| m.path.clone()).collect();
    for spec in cx.d.mounts.iter().rev() {
        let device = cx.b.block(&spec.device);
        if let Some(m) = cx.b.mount_at(&spec.path) {
            if device.is_some_and(|b| b.devno == m.devno) {
                cx.umount_first(&spec.path, "state: absent", false);
            } else {
                cx.warnings.push(format!(
                    "{}: {} is mounted there, not {}; left alone",
                    spec.path, m.source, spec.device
                ));
            }
        }
        // the copies other namespaces hold, also when ours is gone already (a run
        // stopped after its umount)
        if let Some(bd) = device {
            cx.umount_elsewhere(bd, &spec.path);
        }
    }
    // then the boot files (saved state, units), so a reboot does not bring it back
    super::boot::plan_absent(cx);
    let mut order = cx.stack_order();
    order.reverse();
    // a VG goes once its declared LVs are gone, before the PVs under it
    let mut lvs_left: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for l in &cx.d.logical_volumes {
        *lvs_left.entry(l.vg.clone()).or_default() += 1;
    }
    for g in &cx.d.volume_groups {
        if !lvs_left.contains_key(&g.name) {
            super::lvm::plan_absent_vg(cx, &g.name);
        }
    }
    for r in order {
        match &r {
            DevRef::Volume(vg, lv) => {
                let why = format!("removing logical volume {vg}/{lv}");
                if used_by_others(cx, &r, &declared_paths, &why) {
                    continue;
                }
                super::lvm::plan_absent_lv(cx, vg, lv);
                let left = lvs_left.entry(vg.clone()).or_default();
                *left = left.saturating_sub(1);
                if *left == 0 {
                    super::lvm::plan_absent_vg(cx, vg);
                }
            }
            DevRef::Partition(name) => {
                let Some(spec) = cx.d.partition(name).cloned() else {
                    continue;
                };
                let Some(disk) = cx.b.block(&spec.disk) else {
                    continue;
                };
                let Some(entry) =
                    cx.a.gpt(disk.devno)
                        .and_then(|t| t.partitions.iter().find(|p| p.name == *name))
                        .cloned()
                else {
                    continue;
                };
                let why = format!("removing partition {name}");
                if used_by_others(cx, &r, &declared_paths, &why) {
                    continue;
                }
                if let DevRef::Device(dm) = &spec.disk {
                    let m = partition_name(dm, entry.number);
                    if cx.a.dm(&m).is_some() {
                        cx.step(
                            Action::RemoveDm { name: m.clone() },
                            format!("dmsetup remove {m}"),
                            false,
                        );
                        cx.o.remove_dm(&m);
                    }
                }
                cx.step(
                    Action::DeletePartition {
                        disk: spec.disk.clone(),
                        number: entry.number,
                    },
                    format!(
                        "delete GPT entry {} ({name}) on {}; the data stays on the disk",
                        entry.number, disk.path
                    ),
                    false,
                );
            }
            DevRef::Device(name) => {
                let Some(dm) = cx.a.dm(name) else { continue };
                let Some(bd) = cx.a.block(dm.devno) else {
                    continue;
                };
                if !free_of_foreign_users(
                    cx,
                    bd,
                    &declared_paths,
                    &format!("removing dm device {name}"),
                ) {
                    continue;
                }
                cx.step(
                    Action::RemoveDm { name: name.clone() },
                    format!("dmsetup remove {name}"),
                    false,
                );
                cx.o.remove_dm(name);
            }
            _ => {}
        }
    }
    // memory given to the kernel is taken back before its namespace goes
    super::ram::plan_absent(cx);
    for spec in cx.d.namespaces.iter().rev() {
        let Some(ns) = cx.a.namespace_named(&spec.name) else {
            continue;
        };
        if !cx.d.allow_data_loss {
            cx.warnings.push(format!(
                "namespace {} ({}) left in place: destroying it loses its data; set allow_data_loss: true to destroy it",
                spec.name, ns.dev
            ));
            continue;
        }
        if let Some(bd) = ns.blockdev.as_deref().and_then(|b| cx.a.block_named(b)) {
            if !free_of_foreign_users(
                cx,
                bd,
                &declared_paths,
                &format!("destroying namespace {}", spec.name),
            ) {
                continue;
            }
        }
        let label_less = ns.is_label_less();
        let recorded = ns.name_recorded;
        let dev = ns.dev.clone();
        cx.step(
            Action::DestroyNamespace {
                dev: dev.clone(),
                name: spec.name.clone(),
            },
            if label_less {
                // ndctl's destroy of a label-less namespace zeroes its info block and
                // leaves it disabled; it is enabled again, raw, as fresh DIMMs have it
                format!("ndctl destroy-namespace -f {dev}; ndctl enable-namespace {dev} (label-less: the namespace spans its region and stays, raw)")
            } else {
                format!("ndctl destroy-namespace -f {dev}")
            },
            true,
        );
        if recorded {
            cx.step(
                Action::ForgetName {
                    name: spec.name.clone(),
                },
                format!(
                    "forget the name {} of {dev} (kept by this module: no label carries it)",
                    spec.name
                ),
                false,
            );
        }
    }
    super::cxl::plan_absent(cx);
}

/// Whether the device `r` leads to (if it exists) is used by something not declared
/// (refused, see [`free_of_foreign_users`]).
fn used_by_others(cx: &mut Ctx, r: &DevRef, declared_paths: &[String], why: &str) -> bool {
    let Some(bd) = cx.b.block(r) else {
        return false;
    };
    !free_of_foreign_users(cx, bd, declared_paths, why)
}

/// Refuse (and return false) when something not declared uses `bd`: a dm holder we do
/// not remove, or a mount at a path we do not manage.
fn free_of_foreign_users(
    cx: &mut Ctx,
    bd: &BlockDevice,
    declared_paths: &[String],
    why: &str,
) -> bool {
    let mut ok = true;
    for h in &bd.holders {
        let name =
            cx.a.block_named(h)
                .and_then(|hb| cx.a.dm_by_devno(hb.devno))
                .map(|d| d.name.clone())
                .unwrap_or_else(|| h.clone());
        if !cx.o.is_removed_dm(&name) {
            cx.refusals.push(Refused::new(
                why,
                format!(
                    "{} is held by {name} ({h}), which these arguments do not declare",
                    bd.path
                ),
            ));
            ok = false;
        }
    }
    for m in cx.a.mounts_of(bd.devno) {
        if !declared_paths.contains(&m.target) {
            cx.refusals.push(Refused::new(
                why,
                format!(
                    "{} is mounted on {}, which these arguments do not declare",
                    bd.path, m.target
                ),
            ));
            ok = false;
        }
    }
    for m in cx.a.elsewhere.iter().filter(|m| m.devno == bd.devno) {
        if !declared_paths.contains(&m.target) {
            cx.refusals.push(Refused::new(
                why,
                format!(
                "{} is mounted on {} in the mount namespace of {}, which these arguments do not declare",
                bd.path, m.target, m.who()
            )));
            ok = false;
        }
    }
    ok
}
