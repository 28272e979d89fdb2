//! System-RAM layer: a devdax namespace declared with `system_ram` is given to the kernel
//! as memory (daxctl, its dax device bound to kmem), onlined as declared; one declared
//! without it, or torn down, is taken back first (offlined, then devdax again). The dax
//! device is the namespace's (`chardev`), found when the step runs: a namespace this plan
//! makes gets it then.
//!
//! | declared | dax device | its memory | step |
//! |---|---|---|---|
//! | `system_ram` | devdax (or the namespace is made by this plan) | - | `to_system_ram` (daxctl, the auto-online policy offline around it) |
//! | `system_ram` | system-ram | online as declared (every block; movable or not) | nothing |
//! | `system_ram: {online: true}` | system-ram | some or every block offline, those online in the declared zone (also what a stopped daxctl leaves) | `online_memory` (daxctl onlines the offline ones) |
//! | `system_ram` | system-ram | online in another zone | nothing, a warning: a zone changes only offline (take it back, then give it again) |
//! | not declared, or `state: absent` | system-ram | - | `to_devdax` (offline what is online first, as a stopped run may have done already; memory in use fails it, EBUSY named, and what was offlined is onlined again) |
//!
//! A run stopped while daxctl ran with the policy set aside leaves it set aside: the next
//! run puts it back first (`restore_auto_online`).

use super::{Action, Ctx, Refused, Resolved};
use crate::actual::ram::DaxMode;
use crate::args::validate::DevRef;
use crate::bind::Bound;
use crate::op::Op;

/// `state: present`.
pub(crate) fn plan(cx: &mut Ctx) {
    restore_policy(cx);
    for spec in &cx.d.namespaces {
        let fresh = cx.o.is_fresh(&DevRef::Namespace(spec.name.clone()));
        let dax = if fresh {
            None
        } else {
            cx.a.namespace_named(&spec.name)
                .and_then(|n| n.chardev.as_deref())
                .and_then(|c| cx.a.memory.dax(c))
        };
        match (spec.system_ram, dax) {
            (Some(r), Some(d)) if d.mode == DaxMode::SystemRam => {
                if !r.online || d.online_as(r.movable) {
                    continue;
                }
                let zone = if r.movable { "Movable" } else { "Normal" };
                let offline = d.blocks.iter().filter(|b| !b.online).count();
                if d.blocks
                    .iter()
                    .all(|b| !b.online || b.zone.as_deref() == Some(zone))
                {
                    cx.step(
                        Action::OnlineMemory {
                            name: spec.name.clone(),
                            movable: r.movable,
                        },
                        format!(
                            "daxctl online-memory{} {} ({offline} of its {} memory block(s) offline)",
                            if r.movable { "" } else { " --no-movable" },
                            d.name,
                            d.blocks.len()
                        ),
                        false,
                    );
                } else {
                    cx.warnings.push(format!(
                        "namespace {}: the memory of {} is online otherwise than declared ({} of {} block(s) online, zones {}); a block changes zone only offline: remove system_ram, run, then declare it again",
                        spec.name,
                        d.name,
                        d.blocks.iter().filter(|b| b.online).count(),
                        d.blocks.len(),
                        zones(d)
                    ));
                }
            }
            (Some(r), _) => {
                let dev = dax.map_or_else(|| "its dax device".to_string(), |d| d.name.clone());
                cx.step(
                    Action::ToSystemRam {
                        name: spec.name.clone(),
                        online: r.online,
                        movable: r.movable,
                    },
                    format!(
                        "daxctl reconfigure-device --mode=system-ram{}{} {dev} (auto_online_blocks offline while it runs, then put back)",
                        if r.online { "" } else { " --no-online" },
                        if r.movable { "" } else { " --no-movable" },
                    ),
                    false,
                );
            }
            (None, Some(d)) if d.mode == DaxMode::SystemRam => to_devdax(cx, &spec.name, d),
            (None, _) => {}
        }
    }
}

/// `state: absent`: each declared namespace's memory taken back before it goes.
pub(crate) fn plan_absent(cx: &mut Ctx) {
    restore_policy(cx);
    for spec in cx.d.namespaces.iter().rev() {
        if let Some(d) =
            cx.a.namespace_named(&spec.name)
                .and_then(|n| n.chardev.as_deref())
                .and_then(|c| cx.a.memory.dax(c))
                .filter(|d| d.mode == DaxMode::SystemRam)
        {
            to_devdax(cx, &spec.name, d);
        }
    }
}

fn to_devdax(cx: &mut Ctx, name: &str, d: &crate::actual::ram::DaxDevice) {
    cx.step(
        Action::ToDevdax {
            name: name.to_string(),
        },
        format!(
            "daxctl offline-memory {dev}; daxctl reconfigure-device --mode=devdax {dev} ({} online, fails while the memory is in use)",
            d.online_bytes(cx.a.memory.block_size),
            dev = d.name
        ),
        false,
    );
}

fn restore_policy(cx: &mut Ctx) {
    if let Some(p) = cx.a.memory.auto_online_saved.clone() {
        cx.step(
            Action::RestoreAutoOnline { policy: p.clone() },
            format!("auto_online_blocks back to {p} (a stopped run set it aside)"),
            false,
        );
    }
}

fn zones(d: &crate::actual::ram::DaxDevice) -> String {
    let mut z: Vec<&str> = d.blocks.iter().filter_map(|b| b.zone.as_deref()).collect();
    z.sort();
    z.dedup();
    if z.is_empty() {
        "none".into()
    } else {
        z.join(", ")
    }
}

/// Apply time: the namespace's dax device as it is now.
pub(crate) fn resolve(action: &Action, bound: &Bound) -> Result<Resolved, Refused> {
    let a = bound.actual();
    let refused = |why: String| Refused::new(action.doing(), why);
    let dax_of = |name: &str| {
        let ns = a
            .namespace_named(name)
            .ok_or_else(|| refused(format!("namespace {name} is not there")))?;
        let dev = ns.chardev.as_deref().ok_or_else(|| {
            refused(format!(
                "namespace {name} ({}) has no dax device: it is not devdax",
                ns.dev
            ))
        })?;
        a.memory
            .dax(dev)
            .ok_or_else(|| refused(format!("dax device {dev} is not on the dax bus")))
    };
    match action {
        Action::ToSystemRam {
            name,
            online,
            movable,
        } => {
            let d = dax_of(name)?;
            if d.mode == DaxMode::SystemRam {
                return Ok(Resolved::Skip(format!("{} is system RAM already", d.name)));
            }
            Ok(Resolved::Run(Op::DaxToSystemRam {
                dev: d.name.clone(),
                online: *online,
                movable: *movable,
            }))
        }
        Action::OnlineMemory { name, movable } => {
            let d = dax_of(name)?;
            Ok(Resolved::Run(Op::DaxOnlineMemory {
                dev: d.name.clone(),
                movable: *movable,
            }))
        }
        Action::ToDevdax { name } => {
            let d = dax_of(name)?;
            if d.mode != DaxMode::SystemRam {
                return Ok(Resolved::Skip(format!("{} is devdax already", d.name)));
            }
            Ok(Resolved::Run(Op::DaxToDevdax {
                dev: d.name.clone(),
                movable: d
                    .blocks
                    .iter()
                    .any(|b| b.zone.as_deref() == Some("Movable")),
                // daxctl offline-memory fails when nothing is online (a stopped run
                // offlined it all)
                offline_first: d.blocks.iter().any(|b| b.online),
            }))
        }
        Action::RestoreAutoOnline { policy } => match &a.memory.auto_online_saved {
            None => Ok(Resolved::Skip("nothing was set aside".into())),
            Some(_) => Ok(Resolved::Run(Op::RestoreAutoOnline {
                policy: policy.clone(),
            })),
        },
        _ => Err(Refused::not_mine(action, super::Layer::SystemRam)),
    }
}
