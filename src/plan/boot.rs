//! Boot persistence layer (files: the saved state, the installed binary, the replay
//! service template and this stack's instance of it, mount units, their `*.wants`
//! links).
//!
//! | persist | state | file exists | content matches | step |
//! |---|---|---|---|---|
//! | false | present | - | - | nothing (files left as they are) |
//! | true | present | no / yes | - / no | write it (atomically; content derived at apply time when the device is new) |
//! | true | present | yes | yes | nothing |
//! | true | present | ours, not wanted (a mount no longer declared by this task, or by no saved state) | - | remove it |
//! | true | present | another task's (its saved state shares no object with this run; its replay instance link; a unit of a mount it declares) | - | nothing |
//! | true | present | a saved state sharing an object with this run (its earlier self) | - | remove it and its replay instance link (after writing this run's) |
//! | true | present | a replay instance link whose saved state is gone | - | remove it |
//! | - | absent | this run's (its saved state, replaced ones, their replay instance links, units of the mounts they declare) | - | remove it |
//! | - | absent | the shared template, the binary | - | remove them only when no other saved state remains |
//! | true / - | present / absent | the legacy shared `pmem-stack.service` and its link | - | remove them once no mount unit names it and every saved state has its instance (`boot::legacy_service_needed`); else nothing |
//!
//! Which files are whose is decided in `boot::removals` (see `crate::boot`).
//!
//! Any unit written or removed is followed by `systemctl daemon-reload` (when systemd runs).
//! The system marks the reload pending (`boot::RELOAD_PENDING`) before it touches a unit
//! and clears the mark once the reload has run, so a run killed in between is repaired.

use super::{Action, Ctx, Layer, Refused, Resolved};
use crate::actual::FileContent;
use crate::bind::Bound;
use crate::boot::{self, FileKind};
use crate::op::Op;

pub(crate) fn plan(cx: &mut Ctx) {
    let wanted = boot::wanted(&cx.b);
    let mut units_changed = false;
    for w in &wanted {
        let have = cx.a.file(&w.path);
        let same = match (&w.content, have) {
            (Some(c), Some(h)) => {
                *c == h.content
                    && (matches!(c, FileContent::Link { .. })
                        || h.mode.is_none_or(|m| m & 0o7777 == w.mode))
            }
            _ => false,
        };
        if same {
            continue;
        }
        let why = match (have, &w.content) {
            (None, _) => "new",
            (Some(_), None) => "its device is new: content derived when it exists",
            (Some(_), Some(_)) => "content differs",
        };
        units_changed |= !matches!(w.kind, FileKind::State | FileKind::Binary);
        cx.step(
            Action::WriteFile {
                path: w.path.clone(),
                kind: w.kind.clone(),
                mode: w.mode,
            },
            format!("{} {} ({why})", describe(&w.kind), w.path),
            false,
        );
    }
    // what is ours and no longer wanted (stale units, replaced saved states); never
    // what another task's saved state declares
    units_changed |= remove(cx, boot::removals(&cx.b));
    reload_if_needed(cx, units_changed);
}

/// Plan `systemctl daemon-reload` when this run writes or removes units, or when an
/// earlier run did and stopped before reloading (its marker is still there).
pub(crate) fn reload_if_needed(cx: &mut Ctx, units_changed: bool) {
    if units_changed || cx.a.file(boot::RELOAD_PENDING).is_some() {
        reload(cx);
    }
}

/// `state: absent`: remove the persistence files of the declared stack (the shared
/// template and binary only when no other task's saved state remains).
pub(crate) fn plan_absent(cx: &mut Ctx) {
    let units_changed = remove(cx, boot::removals(&cx.b));
    reload_if_needed(cx, units_changed);
}

/// Plan the removals; whether a unit is among them.
fn remove(cx: &mut Ctx, removals: Vec<boot::Removal>) -> bool {
    let mut units_changed = false;
    for r in removals {
        units_changed |= boot::is_unit_path(&r.path);
        cx.step(
            Action::RemoveFile {
                path: r.path.clone(),
            },
            format!("remove {} ({})", r.path, r.why),
            false,
        );
    }
    units_changed
}

fn reload(cx: &mut Ctx) {
    cx.step(
        Action::DaemonReload,
        "systemctl daemon-reload (skipped when systemd is not running)",
        false,
    );
}

fn describe(k: &FileKind) -> &'static str {
    match k {
        FileKind::State => "save the desired state to",
        FileKind::Binary => "install this pmem_stack as",
        FileKind::Service => "write the boot replay unit template",
        FileKind::MountUnit { .. } => "write the mount unit",
        FileKind::WantsLink { .. } => "enable with the link",
    }
}

/// Apply time: a boot step as its op, the file's content rendered from the state as it
/// is now (a device made earlier in this run is named by what identifies it now).
pub(crate) fn resolve(action: &Action, bound: &Bound) -> Result<Resolved, Refused> {
    Ok(Resolved::Run(match action {
        Action::WriteFile { path, kind, mode } => Op::WriteFile {
            path: path.clone(),
            content: boot::content_of(kind, bound).ok_or_else(|| {
                Refused::new(
                    action.doing(),
                    format!("{path}: the device it names does not exist yet"),
                )
            })?,
            mode: *mode,
        },
        Action::RemoveFile { path } => Op::RemoveFile { path: path.clone() },
        Action::DaemonReload => Op::DaemonReload,
        _ => return Err(Refused::not_mine(action, Layer::Boot)),
    }))
}
