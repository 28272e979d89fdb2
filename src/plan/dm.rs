//! Device-mapper layer. The wanted table is derived from the members: linear
//! concatenates them in order, striped maps `stripes x floor(min member / chunk) x chunk`.
//!
//! | exists | live table vs wanted | allowed | step |
//! |---|---|---|---|
//! | no | - | - | create (table derived from members at apply time) |
//! | yes | equal | - | nothing (suspended: load the same table and resume) |
//! | yes | keeps data: every live sector maps to the same member sector | - | reload, not destructive; users stay (no live table: the steps above are conditional) |
//! | yes | moves data | no | refuse, whatever is on the device, recognised or not |
//! | yes | moves data | yes | tear down users (mounts, dm devices over it) + reload, destructive |
//!
//! "Keeps data" is decided on the tables, not on what was recognised on the device (an
//! application may write the block device raw): the new table must map every sector of
//! the live device to the member sector it maps to now ([`crate::dm_table::keeps_data`],
//! the table algebra this room shares with the bound view). So:
//! - linear grown by appending members (the live table a prefix of the new one), or by
//!   its last member growing at the end: keeps (the device grows);
//! - a member named another way (a namespace by name, then by `/dev/pmemN`) is the same
//!   device number, so the same table: nothing to do;
//! - striped over the same members, chunk and offsets whose members all grew: keeps
//!   (dm-stripe maps from the line's start, chunk and stripes, not from its length);
//! - a striped line of one stripe maps like a linear one (its chunk does not matter);
//! - another chunk, another stripe count, members reordered, a member added (striped) or
//!   inserted or removed (linear), linear <-> striped, a member before the last one of a
//!   linear device changing size (everything after it shifts), a shrink (cuts off the
//!   tail), a live table that cannot be read: moves data. The refusal says which.
//!
//! A member this run makes (or remakes) has no device number when planning: linear
//! compares the members before the first such member (appending a new namespace keeps
//! the data); striped moves data (every row of chunks spans every member).
//!
//! A device over a member that this plan recreates was already torn down by the
//! member's layer and counts as not existing. At apply time [`resolve`] builds the
//! table from the members as they are then and, without `allow_data_loss`, refuses one
//! that would move data after all (the members changed between planning and the step).

use super::{Action, Ctx, Layer, Refused, Resolved};
use crate::actual::dm::{table_text, TableLine};
use crate::actual::{Devno, Missing};
use crate::args::validate::DevRef;
use crate::args::DmTarget;
use crate::bind::Bound;
use crate::dm_table::{
    build_table, linear_table, member_name, moves_phrase, reload_effect, striped_chunk_kb,
    table_length, Member, Reload, Wanted,
};
use crate::op::Op;
use crate::units::Sectors;

pub(crate) fn plan(cx: &mut Ctx, name: &str) {
    let Some(spec) = cx.d.device(name).cloned() else {
        return;
    };
    if let Some(m) =
        cx.a.missing
            .iter()
            .find(|m| matches!(m, Missing::DeviceMapper | Missing::DeviceMapperAccess))
    {
        cx.refusals.push(Refused::because(format!(
            "dm device {name}: {}",
            m.explain()
        )));
        return;
    }
    // each member's (number, size) as it will be when the step runs; None: made by this run
    let mut sized: Vec<Option<(Devno, Sectors)>> = Vec::new();
    for m in &spec.members {
        match cx.current(m) {
            Some(bd) => sized.push(Some((bd.devno, bd.size))),
            None => {
                if let DevRef::Path(p) = m {
                    cx.refusals.push(Refused::because(format!(
                        "dm device {name}: member {p} does not exist"
                    )));
                    return;
                }
                sized.push(None);
            }
        }
    }
    let known: Option<Vec<(Devno, Sectors)>> = sized.iter().copied().collect();
    let expected = if let Some(known) = &known {
        match build_table(spec.target, spec.chunk, known) {
            Some(t) => Some(t),
            None => {
                cx.refusals.push(Refused::because(format!(
                    "dm device {name}: a member is smaller than one chunk ({} sectors)",
                    spec.chunk
                )));
                return;
            }
        }
    } else {
        None
    };
    let members: Vec<String> = spec.members.iter().map(|m| cx.b.describe(m)).collect();
    let table_words = match &expected {
        Some(t) => table_text(t).join(" / "),
        None => format!(
            "{} over {}{}; length derived from the members when they exist",
            target_word(spec.target),
            members.join(", "),
            chunk_words(spec.target, spec.chunk)
        ),
    };
    // (a device without a table has no block device yet: the kernel adds its disk when
    // the first table is loaded)
    let existing = cx.a.dm(name).filter(|dm| {
        !cx.o.is_removed_dm(name)
            && (dm.table.is_empty() || cx.current(&DevRef::Device(name.to_string())).is_some())
    });
    // A member that already carries something (a filesystem, a partition table, a mount,
    // another dm device) would have it overwritten through the new mapping, except a
    // filesystem larger than the member: that is this device's own, seen through its
    // first member while the device is down (after a reboot), and it comes back. So
    // does a filesystem on the first member of a linear device that fits in the
    // device: that member is mapped from its sector 0, so the mapping shows the
    // filesystem unchanged (a one-member device's own, seen on its member after a
    // reboot; or one made on the member, which the device then carries).
    let live_members: Vec<crate::actual::Devno> = existing
        .and_then(|dm| dm.table.lines().ok())
        .map(|t| t.iter().flat_map(|l| l.members()).collect())
        .unwrap_or_default();
    let own_disk: Option<String> = existing
        .and_then(|dm| cx.a.block(dm.devno))
        .map(|b| b.name.clone());
    let mut old_content = false;
    for m in &spec.members {
        if cx.o.is_unknown(m) {
            old_content = true;
            // A member this plan makes over content that existed before shows, from its
            // sector 0, what its first member holds now. A filesystem found there that
            // fits the device it was found on is that device's own (or carried by a
            // linear device over it), not this device's: only a linear device with this
            // member first keeps showing it; any other mapping overwrites it.
            let Some(bd) = shown_through(cx, m, 0) else {
                continue;
            };
            let carried =
                cx.a.filesystem(bd.devno)
                    .filter(|f| f.size.is_none_or(|s| s <= bd.size.bytes()));
            let keeps = spec.target == DmTarget::Linear && spec.members.first() == Some(m);
            if let Some(fs) = carried.filter(|_| !keeps) {
                let why = format!(
                    "using {m} (it will show the {} filesystem on {}) as a member of dm device {name}",
                    fs.fstype, bd.path
                );
                if !cx.destroy(bd, &why) {
                    return;
                }
            }
            continue;
        }
        let Some(bd) = cx.current(m) else { continue };
        // held by this very device without a live table (a create stopped after loading
        // its table, before resuming it: the loaded table claims the members)
        let held_by_it = own_disk
            .as_deref()
            .is_some_and(|k| bd.holders.iter().any(|h| h == k));
        if live_members.contains(&bd.devno) || held_by_it {
            continue;
        }
        let spanning =
            cx.a.filesystem(bd.devno)
                .is_some_and(|f| f.size.is_some_and(|s| s > bd.size.bytes()));
        let through_linear = spec.target == DmTarget::Linear
            && spec.members.first() == Some(m)
            && cx.a.filesystem(bd.devno).is_some_and(|f| {
                f.size.is_some_and(|s| {
                    expected
                        .as_ref()
                        .is_some_and(|t| s <= table_length(t).bytes())
                })
            });
        let lost = cx.lost_with(bd);
        if (spanning || through_linear) && lost.len() == 1 {
            old_content = true;
            continue;
        }
        if !cx.destroy(
            bd,
            &format!("using {} as a member of dm device {name}", bd.path),
        ) {
            return;
        }
        // an existing member nothing was found on may still hold data of this device
        // (given up data, by contrast, is garbage: the device is new)
        old_content |= lost.is_empty();
    }
    let Some(dm) = existing else {
        cx.step(
            Action::CreateDm {
                name: name.to_string(),
                target: spec.target,
                members: spec.members.clone(),
                chunk: spec.chunk,
            },
            format!("dmsetup create {name}: {table_words}"),
            false,
        );
        cx.o.mark_fresh(DevRef::Device(name.to_string()));
        if old_content {
            cx.o.mark_unknown(DevRef::Device(name.to_string()));
        }
        return;
    };
    if dm.table.is_empty() {
        // Made, its table never loaded (a create stopped between DM_DEV_CREATE and the
        // load): nothing maps through it, so nothing is lost; what the members hold
        // shows once the table is live, so the steps over it are conditional.
        cx.o.mark_unknown(DevRef::Device(name.to_string()));
        cx.step(
            Action::ReloadDm {
                name: name.to_string(),
                target: spec.target,
                members: spec.members.clone(),
                chunk: spec.chunk,
            },
            format!("load the table of {name}, which exists without one (a create stopped half-way leaves this): {table_words}"),
            false,
        );
        return;
    }
    let live = dm.table.lines();
    let reload = Action::ReloadDm {
        name: name.to_string(),
        target: spec.target,
        members: spec.members.clone(),
        chunk: spec.chunk,
    };
    if let (Ok(live), Some(exp)) = (&live, &expected) {
        if live == exp {
            // A matching device is left as it is (a stack built by hand is recognised as
            // converged); if its queue/max_sectors_kb is below the chunk, the DAX audit
            // names the fix. Devices this module creates or reloads get it raised.
            // Suspended (a run stopped between the suspend and the resume of a reload):
            // loading the same table again ends with the resume.
            if dm.suspended {
                // nothing on it could be read while suspended: decided when it is back
                // (mounted, the mount says what it holds: see the filesystem layer)
                if cx.a.mounts_of(dm.devno).next().is_none() {
                    cx.o.mark_unknown(DevRef::Device(name.to_string()));
                }
                cx.step(
                    reload,
                    format!(
                        "resume {name}: it is suspended, so all I/O to it waits (a reload stopped half-way leaves this); the same table is loaded and the device resumed"
                    ),
                    false,
                );
            }
            return;
        }
    }
    let was = dm.table.text().join(" / ");
    let Some(bd) = cx.a.block(dm.devno) else {
        return;
    };
    let wanted = Wanted {
        target: spec.target,
        chunk: spec.chunk,
        members: sized
            .iter()
            .zip(&spec.members)
            .map(|(s, m)| match s {
                Some((devno, _)) => Member::Dev(*devno),
                None => Member::New(m.to_string()),
            })
            .collect(),
        mapped: match &expected {
            Some(t) => t.clone(),
            // linear: the members before the first one this run makes map as they will
            // (appending a new namespace keeps the data); striped: every row of chunks
            // spans every member, so nothing is known to stay
            None if spec.target == DmTarget::Linear => {
                let prefix: Vec<(Devno, Sectors)> = sized.iter().map_while(|s| *s).collect();
                linear_table(&prefix).unwrap_or_default()
            }
            None => Vec::new(),
        },
        complete: expected.is_some(),
    };
    let effect = match &live {
        Ok(live) => reload_effect(live, &wanted, &|m| member_name(cx.a, m)),
        Err(e) => Reload::Moves {
            reasons: vec![format!("its live table cannot be read: {e}")],
            cuts_only: false,
        },
    };
    match effect {
        Reload::Keeps => {
            // No live table (a create stopped before its table went live): what the
            // members hold shows only once it is loaded, so the steps on it are
            // conditional, as on a device rebuilt over its members.
            if live.as_ref().is_ok_and(|l| l.is_empty()) {
                cx.o.mark_unknown(DevRef::Device(name.to_string()));
            }
            let grows = expected.as_ref().is_none_or(|t| table_length(t) > bd.size);
            cx.step(
                reload,
                format!(
                    "suspend, load, resume {name}: {was} -> {table_words} ({}; data kept)",
                    if grows {
                        "grows the device"
                    } else {
                        "the same mapping"
                    }
                ),
                false,
            );
        }
        Reload::Moves { reasons, cuts_only } => {
            let why = format!(
                "reloading dm device {name} with another table (now {was}; wanted {table_words})"
            );
            if !cx.d.allow_data_loss {
                let lost = cx.lost_with(bd);
                cx.refusals.push(Refused::losing_data(
                    &why,
                    format!(
                        "{}{}",
                        moves_phrase(&reasons, cuts_only),
                        if lost.is_empty() {
                            String::new()
                        } else {
                            format!("; it would destroy {}", lost.join(", "))
                        }
                    ),
                ));
                return;
            }
            if !cx.destroy(bd, &why) {
                return;
            }
            cx.step(
                reload,
                format!(
                    "suspend, load, resume {name}: {was} -> {table_words} ({}; allowed by allow_data_loss)",
                    moves_phrase(&reasons, cuts_only)
                ),
                true,
            );
            cx.o.mark_fresh(DevRef::Device(name.to_string()));
        }
    }
}

/// The device that exists now and shows at sector 0 of `r` once this plan has made it:
/// `r` itself if it exists and keeps its content; for a dm device this plan makes over
/// content that existed before, what its first member shows (both linear and striped map
/// the first member from the device's sector 0).
fn shown_through<'a>(
    cx: &Ctx<'a>,
    r: &DevRef,
    depth: usize,
) -> Option<&'a crate::actual::BlockDevice> {
    if depth > 16 {
        return None;
    }
    if !cx.o.is_unknown(r) {
        return cx.current(r);
    }
    match r {
        DevRef::Device(n) => {
            let first = cx.d.device(n)?.members.first()?;
            shown_through(cx, first, depth + 1)
        }
        _ => None,
    }
}

fn target_word(t: DmTarget) -> &'static str {
    match t {
        DmTarget::Linear => "linear",
        DmTarget::Striped => "striped",
    }
}

fn chunk_words(t: DmTarget, chunk: crate::units::Sectors) -> String {
    match t {
        DmTarget::Striped => format!(" (chunk {chunk} sectors = {})", chunk.bytes()),
        DmTarget::Linear => String::new(),
    }
}

/// Apply time: a dm step as its op, the table built from the members as they are now.
/// The guard: without `allow_data_loss`, a reload must keep every live sector where it
/// is ([`reload_keeps_data`]).
pub(crate) fn resolve(action: &Action, bound: &Bound) -> Result<Resolved, Refused> {
    let (d, a) = (bound.desired(), bound.actual());
    let refused = |why: String| Refused::new(action.doing(), why);
    let (name, target, members, chunk) = match action {
        Action::RemoveDm { name } => return Ok(Resolved::Run(Op::DmRemove { name: name.clone() })),
        Action::CreateDm {
            name,
            target,
            members,
            chunk,
        }
        | Action::ReloadDm {
            name,
            target,
            members,
            chunk,
        } => (name, *target, members, *chunk),
        _ => return Err(Refused::not_mine(action, Layer::Dm)),
    };
    let mut sized = Vec::new();
    for m in members {
        let b = bound
            .block(m)
            .ok_or_else(|| refused(format!("member {m} of {name} does not exist")))?;
        sized.push((b.devno, b.size));
    }
    let table = build_table(target, chunk, &sized).ok_or_else(|| {
        refused(format!(
            "{name}: a member is smaller than one chunk ({chunk} sectors)"
        ))
    })?;
    // dm-striped maps DAX only up to the device's largest I/O: one request carries a
    // whole chunk
    let max_sectors_kb = Some(striped_chunk_kb(&table)).filter(|k| *k != 0);
    Ok(Resolved::Run(
        if matches!(action, Action::CreateDm { .. }) {
            Op::DmCreate {
                name: name.clone(),
                table,
                max_sectors_kb,
            }
        } else {
            if !d.allow_data_loss {
                reload_keeps_data(a, name, target, chunk, &table)?;
            }
            Op::DmReload {
                name: name.clone(),
                table,
                max_sectors_kb,
            }
        },
    ))
}

/// The guard on a reload without `allow_data_loss`: the planner only plans one that keeps
/// the data, but the table is built from the members as they are when the step runs; if
/// that table would move the data already on the device (a member was remade or resized
/// since), refuse rather than scramble it.
fn reload_keeps_data(
    a: &crate::actual::Actual,
    name: &str,
    target: DmTarget,
    chunk: Sectors,
    table: &[TableLine],
) -> Result<(), Refused> {
    let Some(dm) = a.dm(name) else {
        // nothing there to move (the load itself will say the device is missing)
        return Ok(());
    };
    let wanted = Wanted::whole(target, chunk, table);
    let effect = match dm.table.lines() {
        Ok(live) => reload_effect(live, &wanted, &|m| member_name(a, m)),
        Err(e) => Reload::Moves {
            reasons: vec![format!("its live table cannot be read: {e}")],
            cuts_only: false,
        },
    };
    match effect {
        Reload::Keeps => Ok(()),
        Reload::Moves { reasons, cuts_only } => Err(Refused::losing_data(
            format!(
                "to reload dm device {name} (now {}; built now from its members: {})",
                dm.table.text().join(" / "),
                table_text(table).join(" / "),
            ),
            format!(
                "{}; the plan expected a reload that keeps the data, but the members changed before this step",
                moves_phrase(&reasons, cuts_only)
            ),
        )),
    }
}
