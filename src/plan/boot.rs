//! Boot persistence layer (files: the saved state, the installed binary, the replay
//! service, mount units, their `*.wants` links).
//!
//! | persist | state | file exists | content matches | step |
//! |---|---|---|---|---|
//! | false | present | - | - | nothing (files left as they are) |
//! | true | present | no / yes | - / no | write it (atomically; content derived at apply time when the device is new) |
//! | true | present | yes | yes | nothing |
//! | true | present | ours, not wanted (a mount no longer declared) | - | remove it |
//! | - | absent | yes | - | remove it |
//!
//! Any unit written or removed is followed by `systemctl daemon-reload` (when systemd runs).
//! The system marks the reload pending (`boot::RELOAD_PENDING`) before it touches a unit
//! and clears the mark once the reload has run, so a run killed in between is repaired.

use super::{Action, Ctx};
use crate::actual::FileContent;
use crate::boot::{self, FileKind};

pub(crate) fn plan(cx: &mut Ctx) {
    let wanted = boot::wanted(cx.d, cx.a);
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
    // our units that no longer match a declared mount
    let stale: Vec<String> =
        cx.a.files
            .iter()
            .filter(|f| {
                is_ours(&f.content)
                    && f.path.ends_with(".mount")
                    && !wanted.iter().any(|w| w.path == f.path)
            })
            .map(|f| f.path.clone())
            .collect();
    for path in stale {
        let unit = path.rsplit('/').next().unwrap_or_default().to_string();
        let link = format!("{}/local-fs.target.wants/{unit}", boot::UNIT_DIR);
        if cx.a.file(&link).is_some() {
            cx.step(
                Action::RemoveFile { path: link.clone() },
                format!("remove {link} (mount no longer declared)"),
                false,
            );
        }
        cx.step(
            Action::RemoveFile { path: path.clone() },
            format!("remove {path} (mount no longer declared)"),
            false,
        );
        units_changed = true;
    }
    reload_if_needed(cx, units_changed);
}

/// Plan `systemctl daemon-reload` when this run writes or removes units, or when an
/// earlier run did and stopped before reloading (its marker is still there).
pub(crate) fn reload_if_needed(cx: &mut Ctx, units_changed: bool) {
    if units_changed || cx.a.file(boot::RELOAD_PENDING).is_some() {
        reload(cx);
    }
}

/// `state: absent`: remove every persistence file of the declared stack.
pub(crate) fn plan_absent(cx: &mut Ctx) {
    let mut paths: Vec<String> = Vec::new();
    for m in &cx.d.mounts {
        let unit = boot::mount_unit_name(&m.path);
        paths.push(format!("{}/local-fs.target.wants/{unit}", boot::UNIT_DIR));
        paths.push(format!("{}/{unit}", boot::UNIT_DIR));
    }
    paths.push(format!(
        "{}/local-fs-pre.target.wants/{}",
        boot::UNIT_DIR,
        boot::SERVICE
    ));
    paths.push(format!("{}/{}", boot::UNIT_DIR, boot::SERVICE));
    paths.push(boot::STATE_FILE.into());
    paths.push(boot::BINARY.into());
    let mut units_changed = false;
    for p in paths {
        if cx.a.file(&p).is_some() {
            units_changed |= p.starts_with(boot::UNIT_DIR);
            cx.step(
                Action::RemoveFile { path: p.clone() },
                format!("remove {p}"),
                false,
            );
        }
    }
    reload_if_needed(cx, units_changed);
}

fn reload(cx: &mut Ctx) {
    cx.step(
        Action::DaemonReload,
        "systemctl daemon-reload (skipped when systemd is not running)",
        false,
    );
}

fn is_ours(c: &FileContent) -> bool {
    matches!(c, FileContent::Text { text } if text.starts_with(boot::MARKER))
}

fn describe(k: &FileKind) -> &'static str {
    match k {
        FileKind::State => "save the desired state to",
        FileKind::Binary => "install this pmem_stack as",
        FileKind::Service => "write the boot replay unit",
        FileKind::MountUnit { .. } => "write the mount unit",
        FileKind::WantsLink { .. } => "enable with the link",
    }
}
