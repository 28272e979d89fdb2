//! Ownership and removals: which saved states on the machine are this run's (its own,
//! its earlier selves it replaces) and which are other tasks', and from that the boot
//! files a run removes, in order ([`removals`]); when the shared service of earlier
//! versions ([`legacy_service_needed`]) and their boot copy of the binary
//! ([`legacy_copy_removal`]) may go.

use super::names::{
    declared_objects, is_state_path, mount_unit_name, objects_of, replay_link, replay_order,
    replay_unit, replay_unit_of_state, state_of_replay_unit, state_path_for, BINARY, LEGACY_BINARY,
    LEGACY_SERVICE, REPLAY_TARGET, SERVICE_TEMPLATE, UNIT_DIR,
};
use super::render::{is_generated, wanted};
use crate::actual::{Actual, FileContent};
use crate::args::validate::Desired;
use crate::bind::Bound;
use std::collections::BTreeSet;

/// A saved state found on the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedState {
    /// Its path.
    pub path: String,
    /// The objects it declares; `None` when it is not a readable JSON object (then it is
    /// never taken for this run's, and no unit is taken for an orphan while it exists).
    pub objects: Option<BTreeSet<String>>,
}

/// Every saved state in `a`, in replay order.
pub fn saved_states(a: &Actual) -> Vec<SavedState> {
    let mut paths: Vec<String> = a
        .files
        .iter()
        .filter(|f| is_state_path(&f.path))
        .map(|f| f.path.clone())
        .collect();
    replay_order(&mut paths);
    paths.dedup();
    paths
        .into_iter()
        .map(|path| {
            let objects = match a.file(&path).map(|f| &f.content) {
                Some(FileContent::Text { text }) => serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .filter(|v| v.is_object())
                    .map(|v| declared_objects(&v)),
                _ => None,
            };
            SavedState { path, objects }
        })
        .collect()
}

/// Which saved states are this run's and which are other tasks'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    /// This run's saved state.
    pub own: String,
    /// The objects this run declares.
    pub objects: BTreeSet<String>,
    /// Other saved states sharing an object with this run: its earlier self, replaced.
    pub superseded: Vec<SavedState>,
    /// Saved states of other tasks (sharing no object, or unreadable): never touched.
    pub others: Vec<SavedState>,
}

impl Ownership {
    /// Whether another task's saved state declares the mount unit `unit`.
    pub fn others_declare(&self, unit: &str) -> bool {
        let id = format!("mount:{unit}");
        self.others
            .iter()
            .any(|s| s.objects.as_ref().is_some_and(|o| o.contains(&id)))
    }
    /// The replaced saved state that declares the mount unit `unit`, if one does.
    pub fn superseded_declaring(&self, unit: &str) -> Option<&SavedState> {
        let id = format!("mount:{unit}");
        self.superseded
            .iter()
            .find(|s| s.objects.as_ref().is_some_and(|o| o.contains(&id)))
    }
    /// Whether some saved state cannot be read (so whose units are whose is not known).
    pub fn any_unreadable(&self) -> bool {
        self.others.iter().any(|s| s.objects.is_none())
    }
}

/// Split the saved states in `a` into this run's and other tasks'.
pub fn ownership(d: &Desired, a: &Actual) -> Ownership {
    let objects = objects_of(&d.args);
    let own = state_path_for(&objects);
    let (mut superseded, mut others) = (Vec::new(), Vec::new());
    for s in saved_states(a) {
        if s.path == own {
            continue;
        }
        let shares = s.objects.as_ref().is_some_and(|o| !o.is_disjoint(&objects));
        if shares {
            superseded.push(s);
        } else {
            others.push(s);
        }
    }
    Ownership {
        own,
        objects,
        superseded,
        others,
    }
}

/// A boot file this run removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// Path on the machine.
    pub path: String,
    /// Why, for the plan.
    pub why: String,
}

/// The boot files this run removes, in order (each exists in `a`).
///
/// - `state: present` (with `persist`): the mount units (and their links) no longer
///   wanted that were declared by a replaced saved state of this task, or by no saved
///   state at all (left by a run stopped part-way; kept while a saved state is
///   unreadable); replay instance links whose saved state is gone; the replaced saved
///   states, each after its instance link. Units of mounts another task's saved state
///   declares, and the instance links of other tasks' saved states, are never removed.
/// - `state: absent`: the units and links of the declared mounts and of the mounts the
///   replaced saved states declared; this run's instance link and the replaced states'
///   (and any whose saved state is gone); the template and the installed binary only
///   when no other task's saved state remains (and then any unit or instance link of
///   ours left, which could not come up without them); this run's saved state and the
///   replaced ones.
/// - both: the legacy shared service and its link, once nothing needs them
///   ([`legacy_service_needed`]).
pub fn removals(b: &Bound) -> Vec<Removal> {
    let (d, a) = (b.desired(), b.actual());
    let own = ownership(d, a);
    let present = d.state == crate::args::State::Present;
    let wanted_paths: Vec<String> = if present {
        wanted(b).into_iter().map(|w| w.path).collect()
    } else {
        Vec::new()
    };
    let mut out = Removals {
        a,
        list: Vec::new(),
    };
    let unit_files: Vec<String> = our_mount_units(a)
        .map(|(unit, _)| unit.to_string())
        .collect();
    // the replay instances enabled, with the saved state each replays; those whose state
    // is gone (a file removed by hand) replay nothing and belong to no one
    let instance_links: Vec<(String, Option<String>)> = a
        .files
        .iter()
        .filter_map(|f| {
            let unit = f
                .path
                .strip_prefix(UNIT_DIR)?
                .strip_prefix(&format!("/{REPLAY_TARGET}.wants/"))?;
            let instance = unit
                .strip_prefix(SERVICE_TEMPLATE.split_once('@')?.0)?
                .strip_prefix('@')?
                .strip_suffix(".service")?;
            (matches!(f.content, FileContent::Link { .. })
                && !instance.is_empty()
                && !unit.contains('/'))
            .then(|| (f.path.clone(), state_of_replay_unit(unit)))
        })
        .collect();
    let orphans: Vec<(String, String)> = instance_links
        .iter()
        .filter_map(|(link, state)| {
            let state = state.as_ref()?;
            (a.file(state).is_none() && !wanted_paths.contains(link))
                .then(|| (link.clone(), format!("its saved state {state} is gone")))
        })
        .collect();
    let replaced = |s: &SavedState| {
        format!(
            "replaced by {}: it declares {}, as this task does",
            own.own,
            s.objects
                .as_ref()
                .map(|o| o
                    .intersection(&own.objects)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        )
    };
    let replaced_link =
        |s: &SavedState| replay_unit_of_state(&s.path).map(|u| (replay_link(&u), replaced(s)));
    // where the legacy service's removal goes: before the saved states
    let legacy_at;
    if present {
        for unit in &unit_files {
            if wanted_paths.contains(&format!("{UNIT_DIR}/{unit}")) || own.others_declare(unit) {
                continue;
            }
            if let Some(s) = own.superseded_declaring(unit) {
                let why = format!("mount no longer declared; was in {}", s.path);
                out.unit(unit, &why);
            } else if !own.any_unreadable() {
                out.unit(unit, "mount no longer declared by any saved state");
            }
        }
        for (link, why) in &orphans {
            out.push(link.clone(), why.clone());
        }
        legacy_at = out.list.len();
        for s in &own.superseded {
            if let Some((link, why)) = replaced_link(s) {
                out.push(link, why);
            }
            out.push(s.path.clone(), replaced(s));
        }
    } else {
        let none_left = own.others.is_empty();
        for m in &d.mounts {
            out.unit(&mount_unit_name(&m.path), "state: absent");
        }
        for unit in &unit_files {
            if own.superseded_declaring(unit).is_some() {
                out.unit(unit, "state: absent (declared by a replaced saved state)");
            } else if none_left {
                out.unit(unit, "state: absent, and no saved state declares it");
            }
        }
        out.push(replay_link(&replay_unit(&d.args)), "state: absent".into());
        for s in &own.superseded {
            if let Some((link, why)) = replaced_link(s) {
                out.push(link, why);
            }
        }
        for (link, why) in &orphans {
            out.push(link.clone(), why.clone());
        }
        if none_left {
            let why = "no other saved state remains";
            for (link, _) in &instance_links {
                out.push(link.clone(), why.into());
            }
            out.push(format!("{UNIT_DIR}/{SERVICE_TEMPLATE}"), why.into());
        }
        legacy_at = out.list.len();
        out.push(own.own.clone(), "state: absent".into());
        for s in &own.superseded {
            out.push(s.path.clone(), replaced(s));
        }
        if none_left {
            out.push(BINARY.into(), "no other saved state remains".into());
        }
    }
    let removed: Vec<String> = out.list.iter().map(|r| r.path.clone()).collect();
    let legacy_service_goes = legacy_service_needed(a, &wanted_paths, &removed).is_none();
    if legacy_service_goes {
        let service = format!("{UNIT_DIR}/{LEGACY_SERVICE}");
        let ours = matches!(a.file(&service).map(|f| &f.content),
            Some(FileContent::Text { text }) if is_generated(text));
        let why = "the shared replay service of earlier versions: no mount unit names it and every saved state has its own instance";
        let mut legacy = Vec::new();
        let link = replay_link(LEGACY_SERVICE);
        // the link when it is the one we made (to our service, or dangling)
        let linked_to_ours = matches!(a.file(&link).map(|f| &f.content),
            Some(FileContent::Link { target }) if *target == service)
            && (ours || a.file(&service).is_none());
        if linked_to_ours {
            legacy.push(Removal {
                path: link,
                why: why.into(),
            });
        }
        if ours {
            legacy.push(Removal {
                path: service,
                why: why.into(),
            });
        }
        out.list.splice(legacy_at..legacy_at, legacy);
    }
    let removed: Vec<String> = out.list.iter().map(|r| r.path.clone()).collect();
    out.list
        .extend(legacy_copy_removal(a, &wanted_paths, &removed));
    out.list
}

/// Whether the text of a unit runs [`LEGACY_BINARY`] (an `ExecStart=` naming it).
fn runs_legacy_copy(text: &str) -> bool {
    text.lines().any(|l| {
        l.strip_prefix("ExecStart=")
            .and_then(|v| v.split_whitespace().next())
            .is_some_and(|w| w.trim_start_matches(['-', '@', ':', '+', '!']) == LEGACY_BINARY)
    })
}

/// The removal of the boot copy earlier versions installed at [`LEGACY_BINARY`], when
/// this run (which writes `wanted` and removes `removed`) leaves no unit running it.
///
/// The file there is taken for that copy only when it is provably one: a regular file,
/// run by an `ExecStart=` of one of our own units found on the machine (the replay
/// template, or the shared service of earlier versions, both carrying our marker).
/// Those versions wrote the copy there before those units, in the same run, and rewrote
/// it at every persisted run: while their units run it, the file is theirs. Anything
/// else at that path (an operator's `pmem_stack`, a link, a file no unit of ours runs)
/// is never removed. A unit that stays and still runs it (the shared service of earlier
/// versions, kept while another task's units require it; the template, until a
/// persisted run rewrites it) keeps the copy too. A run stopped after rewriting the
/// units and before this removal leaves the copy in place (never a boot without it);
/// nothing then proves it ours any more, and it stays.
pub fn legacy_copy_removal(a: &Actual, wanted: &[String], removed: &[String]) -> Option<Removal> {
    let units = [
        format!("{UNIT_DIR}/{SERVICE_TEMPLATE}"),
        format!("{UNIT_DIR}/{LEGACY_SERVICE}"),
    ];
    let running: Vec<&String> = units
        .iter()
        .filter(|u| {
            matches!(a.file(u).map(|f| &f.content),
                Some(FileContent::Text { text }) if is_generated(text) && runs_legacy_copy(text))
        })
        .collect();
    let is_copy = matches!(
        a.file(LEGACY_BINARY).map(|f| &f.content),
        Some(FileContent::Binary { .. })
    );
    // a unit rewritten by this run runs [`BINARY`]
    let stays = running
        .iter()
        .any(|u| !removed.contains(u) && !wanted.contains(u));
    (is_copy && !running.is_empty() && !stays).then(|| Removal {
        path: LEGACY_BINARY.into(),
        why: format!(
            "the boot copy of earlier versions, run by their {}, which this run {}; the copy is {BINARY} now",
            running
                .iter()
                .map(|u| u.trim_start_matches(&format!("{UNIT_DIR}/")))
                .collect::<Vec<_>>()
                .join(" and "),
            if running.iter().all(|u| removed.contains(u)) {
                "removes"
            } else {
                "rewrites or removes"
            }
        ),
    })
}

/// The removals being gathered: each path once, and only when it exists.
struct Removals<'a> {
    a: &'a Actual,
    list: Vec<Removal>,
}

impl Removals<'_> {
    fn push(&mut self, path: String, why: String) {
        if self.a.file(&path).is_some() && !self.list.iter().any(|r| r.path == path) {
            self.list.push(Removal { path, why });
        }
    }
    /// A mount unit and its link (the link first).
    fn unit(&mut self, unit: &str, why: &str) {
        self.push(
            format!("{UNIT_DIR}/local-fs.target.wants/{unit}"),
            why.to_string(),
        );
        self.push(format!("{UNIT_DIR}/{unit}"), why.to_string());
    }
}

/// Our mount units in `a` (generated by this version or an earlier one): `(unit name,
/// text)`.
fn our_mount_units(a: &Actual) -> impl Iterator<Item = (&str, &str)> {
    a.files.iter().filter_map(|f| {
        let unit = f.path.strip_prefix(UNIT_DIR)?.strip_prefix('/')?;
        let FileContent::Text { text } = &f.content else {
            return None;
        };
        (is_generated(text) && unit.ends_with(".mount") && !unit.contains('/'))
            .then_some((unit, text.as_str()))
    })
}

/// Whether a unit's text names `unit` in a dependency (`Requires=`, `After=`, ...).
fn names_unit(text: &str, unit: &str) -> bool {
    text.lines().any(|l| {
        l.split_once('=')
            .is_some_and(|(_, v)| v.split_whitespace().any(|w| w == unit))
    })
}

/// Why the legacy shared service (`pmem-stack.service`, which replays every saved
/// state, and its link in `local-fs-pre.target.wants/`) is still needed once a run has
/// written `wanted` and removed `removed`, or `None` when nothing needs it any more.
///
/// The rule, so that no boot loses a stack during the move to one instance per saved
/// state: it is needed while
/// - a mount unit of ours that stays names it (`Requires=`/`After=pmem-stack.service`):
///   another task's units written by an earlier version, which this run never touches;
///   without the service systemd would fail them at boot (a required unit not found),
///   though their stack was rebuilt; or
/// - a saved state that stays would have no instance link to replay it: the legacy
///   `/etc/pmem-stack/state.json` (never one), a state of `STATE_DIR` of a task not run
///   since the upgrade (a stack without mounts has no unit to show it), or a file put
///   there by hand; only `pmem_stack --boot` with no argument replays those.
///
/// So runs after an upgrade leave it for the tasks not yet run again, and whichever run
/// moves the last of them (any task, `state: absent` too) removes it. Until then it is
/// left exactly as found, never rewritten: it replays the migrated states as well, a
/// second replay of a stack already up changes nothing, and runs never interleave (the
/// run lock); its failure fails only the units that still require it, as it did.
pub fn legacy_service_needed(a: &Actual, wanted: &[String], removed: &[String]) -> Option<String> {
    let stays = |p: &String| (a.file(p).is_some() || wanted.contains(p)) && !removed.contains(p);
    for (unit, text) in our_mount_units(a) {
        let path = format!("{UNIT_DIR}/{unit}");
        // a unit this run writes is rewritten to require its own instance
        if stays(&path) && !wanted.contains(&path) && names_unit(text, LEGACY_SERVICE) {
            return Some(format!("{path} requires it"));
        }
    }
    for s in saved_states(a) {
        if !stays(&s.path) {
            continue;
        }
        let replayed = replay_unit_of_state(&s.path).is_some_and(|u| stays(&replay_link(&u)));
        if !replayed {
            return Some(format!("{} has no replay instance enabled", s.path));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_names_another_in_its_dependencies_only_as_a_whole_word() {
        let old = "[Unit]\nRequires=pmem-stack.service\nAfter=pmem-stack.service\n";
        assert!(names_unit(old, LEGACY_SERVICE));
        let new = "[Unit]\nRequires=pmem-stack@a-0123456789abcdef.service\n";
        assert!(!names_unit(new, LEGACY_SERVICE));
        assert!(names_unit(
            "After=x.service pmem-stack.service\n",
            LEGACY_SERVICE
        ));
        assert!(!names_unit("# pmem-stack.service\n", LEGACY_SERVICE));
    }
}
