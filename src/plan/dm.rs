//! Device-mapper layer. The wanted table is derived from the members: linear
//! concatenates them in order, striped maps `stripes x floor(min member / chunk) x chunk`.
//!
//! | exists | members known now | table matches | content at risk | allowed | step |
//! |---|---|---|---|---|---|
//! | no | - | - | - | - | create (table derived from members at apply time) |
//! | yes | yes | yes | - | - | nothing |
//! | yes | yes | no: linear, old table a prefix of the new (grow) | - | - | reload (keeps data) |
//! | yes | yes/no | no | no | - | reload |
//! | yes | yes/no | no | yes (fs, GPT, mounts, holders) | yes / no | teardown + reload / refuse |
//!
//! A device over a member that this plan recreates was already torn down by the
//! member's layer and counts as not existing.

use super::resolve::build_table;
use super::{describe, Action, Ctx};
use crate::actual::dm::{parse_table, table_text, Target};
use crate::actual::Missing;
use crate::args::validate::DevRef;
use crate::args::DmTarget;

pub(crate) fn plan(cx: &mut Ctx, name: &str) {
    let Some(spec) = cx.d.device(name).cloned() else {
        return;
    };
    if let Some(m) =
        cx.a.missing
            .iter()
            .find(|m| matches!(m, Missing::DeviceMapper | Missing::DeviceMapperAccess))
    {
        cx.refusals
            .push(format!("dm device {name}: {}", m.explain()));
        return;
    }
    let mut known = Vec::new();
    let mut all_known = true;
    for m in &spec.members {
        match cx.current(m) {
            Some(bd) => known.push((bd.devno, bd.size)),
            None => {
                if let DevRef::Path(p) = m {
                    cx.refusals
                        .push(format!("dm device {name}: member {p} does not exist"));
                    return;
                }
                all_known = false;
            }
        }
    }
    let expected = if all_known {
        match build_table(spec.target, spec.chunk, &known) {
            Some(t) => Some(t),
            None => {
                cx.refusals.push(format!(
                    "dm device {name}: a member is smaller than one chunk ({} sectors)",
                    spec.chunk
                ));
                return;
            }
        }
    } else {
        None
    };
    let members: Vec<String> = spec
        .members
        .iter()
        .map(|m| describe(cx.d, cx.a, m))
        .collect();
    let table_words = match &expected {
        Some(t) => table_text(t).join(" / "),
        None => format!(
            "{} over {}{}; length derived from the members when they exist",
            target_word(spec.target),
            members.join(", "),
            chunk_words(spec.target, spec.chunk)
        ),
    };
    let existing =
        cx.a.dm(name)
            .filter(|_| cx.current(&DevRef::Device(name.to_string())).is_some());
    // A member that already carries something (a filesystem, a partition table, a mount,
    // another dm device) would have it overwritten through the new mapping, except a
    // filesystem larger than the member: that is this device's own, seen through its
    // first member while the device is down (after a reboot), and it comes back.
    let live_members: Vec<crate::actual::Devno> = existing
        .and_then(|dm| parse_table(&dm.table).ok())
        .map(|t| t.iter().flat_map(|l| l.members()).collect())
        .unwrap_or_default();
    let mut old_content = false;
    for m in &spec.members {
        if cx.is_unknown(m) {
            old_content = true;
            continue;
        }
        let Some(bd) = cx.current(m) else { continue };
        if live_members.contains(&bd.devno) {
            continue;
        }
        let spanning =
            cx.a.filesystem(bd.devno)
                .is_some_and(|f| f.size.is_some_and(|s| s > bd.size.bytes()));
        let lost = cx.lost_with(bd);
        if spanning && lost.len() == 1 {
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
        cx.mark_fresh(DevRef::Device(name.to_string()));
        if old_content {
            cx.unknown.insert(DevRef::Device(name.to_string()));
        }
        return;
    };
    let live = parse_table(&dm.table);
    if let (Ok(live), Some(exp)) = (&live, &expected) {
        if live == exp {
            // A matching device is left as it is (a stack built by hand is recognised as
            // converged); if its queue/max_sectors_kb is below the chunk, the DAX audit
            // names the fix. Devices this module creates or reloads get it raised.
            return;
        }
    }
    let grow = match (&live, &expected) {
        (Ok(live), Some(exp)) => {
            spec.target == DmTarget::Linear
                && live.len() < exp.len()
                && exp[..live.len()] == live[..]
                && live
                    .iter()
                    .all(|l| matches!(l.target, Target::Linear { .. }))
        }
        _ => false,
    };
    let was = dm.table.join(" / ");
    let Some(bd) = cx.a.block(dm.devno) else {
        return;
    };
    let lost = if grow { Vec::new() } else { cx.lost_with(bd) };
    if !grow
        && !cx.destroy(
            bd,
            &format!(
                "reloading dm device {name} with another table (now {was}; wanted {table_words})"
            ),
        )
    {
        return;
    }
    cx.step(
        Action::ReloadDm {
            name: name.to_string(),
            target: spec.target,
            members: spec.members.clone(),
            chunk: spec.chunk,
        },
        format!(
            "suspend, load, resume {name}: {was} -> {table_words}{}",
            if grow {
                " (grows the device; data kept)"
            } else {
                ""
            }
        ),
        !lost.is_empty(),
    );
    if !grow {
        cx.mark_fresh(DevRef::Device(name.to_string()));
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
        DmTarget::Striped => format!(" (chunk {} sectors = {})", chunk.0, chunk.bytes()),
        DmTarget::Linear => String::new(),
    }
}
