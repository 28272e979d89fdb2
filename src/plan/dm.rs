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
//! the live device to the member sector it maps to now (`keeps_data`). So:
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
//! member's layer and counts as not existing. At apply time [`crate::apply::resolve`] builds the
//! table from the members as they are then and, without `allow_data_loss`, refuses one
//! that would move data after all (the members changed between planning and the step).

use super::{Action, Ctx, Layer, Refused, Resolved};
use crate::actual::dm::{
    build_table, linear_table, striped_chunk_kb, table_length, table_text, TableLine, Target,
};
use crate::actual::{Devno, Missing};
use crate::args::validate::DevRef;
use crate::args::DmTarget;
use crate::bind::Bound;
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
        !cx.is_removed_dm(name)
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
        if cx.is_unknown(m) {
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
        cx.mark_fresh(DevRef::Device(name.to_string()));
        if old_content {
            cx.unknown.insert(DevRef::Device(name.to_string()));
        }
        return;
    };
    if dm.table.is_empty() {
        // Made, its table never loaded (a create stopped between DM_DEV_CREATE and the
        // load): nothing maps through it, so nothing is lost; what the members hold
        // shows once the table is live, so the steps over it are conditional.
        cx.unknown.insert(DevRef::Device(name.to_string()));
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
                    cx.unknown.insert(DevRef::Device(name.to_string()));
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
                cx.unknown.insert(DevRef::Device(name.to_string()));
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
            cx.mark_fresh(DevRef::Device(name.to_string()));
        }
    }
}

/// A member of a wanted table: an existing device, or one this run makes (named by its
/// reference; it has no device number yet).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Member {
    /// An existing block device.
    Dev(Devno),
    /// A device that does not exist (or is remade) before the step runs.
    New(String),
}

/// The table a reload would load, as far as it is known when deciding.
struct Wanted {
    /// Target type.
    pub target: DmTarget,
    /// Chunk (striped).
    pub chunk: Sectors,
    /// Members in order.
    pub members: Vec<Member>,
    /// The lines known now: the whole table, or the start of a linear one (the members
    /// before the first one that does not exist yet), or nothing.
    pub mapped: Vec<TableLine>,
    /// `mapped` is the whole table.
    pub complete: bool,
}

/// What loading a new table over a live one does to what the device holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reload {
    /// Every sector of the live device maps to the same member sector in the new table
    /// (the device may be longer): its data stays where it is.
    Keeps,
    /// Some sector maps elsewhere or no longer at all: the data on the device is
    /// scrambled or cut off, whether or not anything on it is recognised.
    Moves {
        /// What changes, for people ("chunk 2M -> 1M", "members reordered (...)").
        reasons: Vec<String>,
        /// The only change is a shrink: data is cut off, not moved.
        cuts_only: bool,
    },
}

/// Decide whether a reload of `live` with `wanted` keeps the data (see the matrix).
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
    if !cx.is_unknown(r) {
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

fn reload_effect(live: &[TableLine], wanted: &Wanted, name: &dyn Fn(&Member) -> String) -> Reload {
    if keeps_data(live, &wanted.mapped) {
        return Reload::Keeps;
    }
    let reasons = move_reasons(live, wanted, name);
    let cuts_only = reasons.len() == 1 && reasons[0].starts_with("shrinks");
    Reload::Moves { reasons, cuts_only }
}

/// "the change moves data already on it (chunk 2M -> 1M): ..." for refusals and details.
fn moves_phrase(reasons: &[String], cuts_only: bool) -> String {
    format!(
        "the change {} data already on it ({}), so whatever the device holds is lost, a filesystem or raw data alike, recognised or not",
        if cuts_only { "cuts off" } else { "moves" },
        reasons.join("; ")
    )
}

/// A device or member for messages: its path, else its number.
fn member_name(a: &crate::actual::Actual, m: &Member) -> String {
    match m {
        Member::Dev(d) => a
            .block(*d)
            .map(|b| b.path.clone())
            .unwrap_or_else(|| d.to_string()),
        Member::New(r) => format!("{r} (made by this run)"),
    }
}

/// A target as far as where its sectors go is concerned: a striped line of one stripe
/// maps like a linear one (the chunk is then irrelevant).
#[derive(Debug, PartialEq, Eq)]
enum Seg<'a> {
    Linear(Devno, Sectors),
    Striped(Sectors, &'a [(Devno, Sectors)]),
    Other,
}

fn seg(t: &Target) -> Seg<'_> {
    match t {
        Target::Linear { dev, offset } => Seg::Linear(*dev, *offset),
        Target::Striped { stripes, .. } if stripes.len() == 1 => match stripes.first() {
            Some((d, o)) => Seg::Linear(*d, *o),
            None => Seg::Other,
        },
        Target::Striped { chunk, stripes } => Seg::Striped(*chunk, stripes),
        Target::Other { .. } => Seg::Other,
    }
}

/// Whether every sector of `old` maps to the same member sector in `new`.
/// Linear: each old sector `s` of a line must fall in a linear line of `new` over the
/// same member with the same `offset - start` (lines may be split, merged or extended).
/// Striped: dm-stripe maps a sector from the line's start, its chunk and its stripes
/// (member, offset) in order, not from its length; so a line with the same start,
/// chunk and stripes that is at least as long keeps every sector. Anything else: only
/// the very same line.
fn keeps_data(old: &[TableLine], new: &[TableLine]) -> bool {
    old.iter().all(|l| {
        let Some(end) = l.start.0.checked_add(l.length.0) else {
            return false;
        };
        match seg(&l.target) {
            Seg::Linear(dev, offset) => {
                let mut pos = l.start.0;
                while pos < end {
                    let Some(n) = new
                        .iter()
                        .find(|n| n.start.0 <= pos && pos - n.start.0 < n.length.0)
                    else {
                        return false;
                    };
                    let Seg::Linear(d2, o2) = seg(&n.target) else {
                        return false;
                    };
                    // the member sector of `pos` under both lines
                    let before = offset.0.checked_add(pos - l.start.0);
                    let after = o2.0.checked_add(pos - n.start.0);
                    if d2 != dev || before.is_none() || before != after {
                        return false;
                    }
                    pos = end.min(n.start.0.saturating_add(n.length.0));
                }
                true
            }
            s @ Seg::Striped(..) => new
                .iter()
                .any(|n| n.start == l.start && n.length >= l.length && seg(&n.target) == s),
            Seg::Other => new.contains(l),
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Linear,
    Striped(Sectors),
    Mixed,
}

fn kind_word(k: Kind) -> &'static str {
    match k {
        Kind::Linear => "linear",
        Kind::Striped(_) => "striped",
        Kind::Mixed => "a table of other targets",
    }
}

/// The kind and members (in mapping order) of a live table.
fn shape(t: &[TableLine]) -> (Kind, Vec<Member>) {
    let segs: Vec<Seg> = t.iter().map(|l| seg(&l.target)).collect();
    let all: Vec<Member> = t
        .iter()
        .flat_map(|l| l.members())
        .map(Member::Dev)
        .collect();
    if !segs.is_empty() && segs.iter().all(|s| matches!(s, Seg::Linear(..))) {
        return (Kind::Linear, all);
    }
    match segs.as_slice() {
        [Seg::Striped(chunk, _)] => (Kind::Striped(*chunk), all),
        _ => (Kind::Mixed, all),
    }
}

/// What a reload that does not keep the data changes, in words.
fn move_reasons(live: &[TableLine], w: &Wanted, name: &dyn Fn(&Member) -> String) -> Vec<String> {
    let (old_kind, old) = shape(live);
    let new_kind = match w.target {
        DmTarget::Striped if w.members.len() > 1 => Kind::Striped(w.chunk),
        _ => Kind::Linear,
    };
    let list = |ms: &[Member]| ms.iter().map(name).collect::<Vec<_>>().join(", ");
    let set = |ms: &[Member]| {
        ms.iter()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
    };
    let mut why = Vec::new();
    match (old_kind, new_kind) {
        (Kind::Striped(a), Kind::Striped(b)) => {
            if a != b {
                why.push(format!("chunk {} -> {}", a.bytes(), b.bytes()));
            }
            if old.len() != w.members.len() {
                why.push(format!("stripes {} -> {}", old.len(), w.members.len()));
            }
        }
        (a, b) if a != b => why.push(format!("{} -> {}", kind_word(a), kind_word(b))),
        _ => {}
    }
    if set(&old) == set(&w.members) {
        if old != w.members {
            why.push(format!(
                "members reordered ({} -> {})",
                list(&old),
                list(&w.members)
            ));
        }
    } else if !(old_kind == Kind::Linear && new_kind == Kind::Linear && w.members.starts_with(&old))
    {
        why.push(format!(
            "member set changed ({} -> {})",
            list(&old),
            list(&w.members)
        ));
    }
    let old_len = table_length(live);
    let new_len = table_length(&w.mapped);
    if w.complete && new_len < old_len {
        why.push(format!(
            "shrinks from {old_len} to {new_len} sectors, cutting off the data past sector {new_len}"
        ));
    }
    if why.is_empty() {
        // same kind, same members in the same order: a member's size or offset changed
        let resized = (old_kind == Kind::Linear && w.complete)
            .then(|| {
                live.iter()
                    .zip(&w.mapped)
                    .take(live.len().saturating_sub(1))
                    .find(|(o, n)| o.length != n.length)
            })
            .flatten();
        why.push(match resized {
            Some((o, n)) => format!(
                "{} changed size from {} to {} sectors, which shifts everything mapped after it",
                o.members()
                    .first()
                    .map(|d| name(&Member::Dev(*d)))
                    .unwrap_or_default(),
                o.length,
                n.length
            ),
            None => "the members' sectors are mapped to other places".to_string(),
        });
    }
    why
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
    let wanted = Wanted {
        target,
        chunk,
        members: table
            .iter()
            .flat_map(|l| l.members())
            .map(Member::Dev)
            .collect(),
        mapped: table.to_vec(),
        complete: true,
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(minor: u32) -> Devno {
        Devno { major: 259, minor }
    }

    /// Where sector `s` lives, sector by sector (a second model of dm-linear/dm-stripe).
    fn place(t: &[TableLine], s: u64) -> Option<(Devno, u64)> {
        let l = t
            .iter()
            .find(|l| l.start.0 <= s && s < l.start.0 + l.length.0)?;
        let rel = s - l.start.0;
        match &l.target {
            Target::Linear { dev, offset } => Some((*dev, offset.0 + rel)),
            Target::Striped { chunk, stripes } => {
                let n = stripes.len() as u64;
                let c = rel / chunk.0;
                let (d, o) = stripes[(c % n) as usize];
                Some((d, o.0 + (c / n) * chunk.0 + rel % chunk.0))
            }
            Target::Other { .. } => None,
        }
    }

    fn all_tables(sizes: [u64; 3]) -> Vec<Vec<TableLine>> {
        let mut seqs: Vec<Vec<usize>> = Vec::new();
        for a in 0..3 {
            seqs.push(vec![a]);
            for b in (0..3).filter(|b| *b != a) {
                seqs.push(vec![a, b]);
                for c in (0..3).filter(|c| *c != a && *c != b) {
                    seqs.push(vec![a, b, c]);
                }
            }
        }
        let mut out = Vec::new();
        for seq in &seqs {
            let members: Vec<(Devno, Sectors)> = seq
                .iter()
                .map(|i| (dn(*i as u32), Sectors(sizes[*i])))
                .collect();
            for (target, chunk) in [
                (DmTarget::Linear, 8),
                (DmTarget::Striped, 8),
                (DmTarget::Striped, 16),
            ] {
                if let Some(t) = build_table(target, Sectors(chunk), &members) {
                    out.push(t);
                }
            }
        }
        out
    }

    #[test]
    fn keeps_data_agrees_with_sector_by_sector_mapping() {
        let size_sets = [[32, 32, 32], [48, 32, 32], [32, 48, 48], [48, 48, 48]];
        let mut kept = 0;
        let mut moved = 0;
        for old_sizes in size_sets {
            for new_sizes in size_sets {
                for old in all_tables(old_sizes) {
                    for new in all_tables(new_sizes) {
                        let brute =
                            (0..table_length(&old).0).all(|s| place(&old, s) == place(&new, s));
                        assert_eq!(
                            keeps_data(&old, &new),
                            brute,
                            "{:?} -> {:?}",
                            table_text(&old),
                            table_text(&new)
                        );
                        if brute {
                            kept += 1;
                        } else {
                            moved += 1;
                        }
                    }
                }
            }
        }
        // both sides are exercised, including grows that are not identities
        assert!(kept > 200 && moved > 10_000, "kept {kept}, moved {moved}");
    }

    fn wanted(target: DmTarget, chunk: u64, t: &[TableLine]) -> Wanted {
        Wanted {
            target,
            chunk: Sectors(chunk),
            members: t
                .iter()
                .flat_map(|l| l.members())
                .map(Member::Dev)
                .collect(),
            mapped: t.to_vec(),
            complete: true,
        }
    }

    fn reasons(old: &[TableLine], w: &Wanted) -> Vec<String> {
        match reload_effect(old, w, &|m| match m {
            Member::Dev(d) => format!("m{}", d.minor),
            Member::New(r) => format!("{r} (new)"),
        }) {
            Reload::Keeps => Vec::new(),
            Reload::Moves { reasons, .. } => reasons,
        }
    }

    #[test]
    fn each_data_moving_change_is_named() {
        let m = |s: &[(u32, u64)]| -> Vec<(Devno, Sectors)> {
            s.iter().map(|(i, z)| (dn(*i), Sectors(*z))).collect()
        };
        let striped = |s: &[(u32, u64)], c: u64| {
            build_table(DmTarget::Striped, Sectors(c), &m(s)).expect("table")
        };
        let linear =
            |s: &[(u32, u64)]| build_table(DmTarget::Linear, Sectors(8), &m(s)).expect("table");
        let old = striped(&[(0, 64), (1, 64)], 16);
        let cases: [(Vec<TableLine>, DmTarget, u64, &str); 6] = [
            (
                striped(&[(0, 64), (1, 64)], 8),
                DmTarget::Striped,
                8,
                "chunk 8K -> 4K",
            ),
            (
                striped(&[(1, 64), (0, 64)], 16),
                DmTarget::Striped,
                16,
                "members reordered (m0, m1 -> m1, m0)",
            ),
            (
                striped(&[(0, 64), (1, 64), (2, 64)], 16),
                DmTarget::Striped,
                16,
                "stripes 2 -> 3",
            ),
            (
                striped(&[(0, 64), (2, 64)], 16),
                DmTarget::Striped,
                16,
                "member set changed (m0, m1 -> m0, m2)",
            ),
            (
                linear(&[(0, 64), (1, 64)]),
                DmTarget::Linear,
                8,
                "striped -> linear",
            ),
            (
                striped(&[(0, 32), (1, 32)], 16),
                DmTarget::Striped,
                16,
                "shrinks from 128 to 64 sectors",
            ),
        ];
        for (new, target, chunk, want) in cases {
            let got = reasons(&old, &wanted(target, chunk, &new));
            assert!(got.iter().any(|r| r.starts_with(want)), "{want}: {got:?}");
        }
        // the same members grown: dm-stripe keeps every sector
        let grown = striped(&[(0, 96), (1, 96)], 16);
        assert!(reasons(&old, &wanted(DmTarget::Striped, 16, &grown)).is_empty());
        // linear: appending, and the last member growing, keep; the first growing moves
        let lin = linear(&[(0, 64), (1, 64)]);
        for keeps in [
            linear(&[(0, 64), (1, 64), (2, 64)]),
            linear(&[(0, 64), (1, 96)]),
        ] {
            assert!(reasons(&lin, &wanted(DmTarget::Linear, 8, &keeps)).is_empty());
        }
        let got = reasons(
            &lin,
            &wanted(DmTarget::Linear, 8, &linear(&[(0, 96), (1, 64)])),
        );
        assert_eq!(
            got,
            ["m0 changed size from 64 to 96 sectors, which shifts everything mapped after it"]
        );
        let got = reasons(&lin, &wanted(DmTarget::Linear, 8, &linear(&[(0, 64)])));
        assert_eq!(
            got,
            [
                "member set changed (m0, m1 -> m0)",
                "shrinks from 128 to 64 sectors, cutting off the data past sector 64"
            ]
        );
        // a member this run makes: linear appended keeps, striped moves
        let mut w = wanted(DmTarget::Linear, 8, &lin);
        w.members.push(Member::New("namespace pm2".into()));
        w.complete = false;
        assert!(reasons(&lin, &w).is_empty());
        let mut w = wanted(DmTarget::Striped, 16, &old);
        w.members.push(Member::New("namespace pm2".into()));
        w.mapped.clear();
        w.complete = false;
        assert_eq!(
            reasons(&old, &w),
            [
                "stripes 2 -> 3",
                "member set changed (m0, m1 -> m0, m1, namespace pm2 (new))"
            ]
        );
    }
}
