//! Boot persistence: the files that rebuild the stack at boot, rendered purely from the
//! bound view of the desired and the actual state ([`crate::bind`]).
//!
//! Device-mapper tables live only in the kernel and `/dev/pmemN` numbers can change at
//! boot, so with `boot: {persist: true}` the module saves the desired state, installs
//! itself, and enables one instance of a oneshot template service per saved state,
//! `pmem-stack@<stem>.service` for `STATE_DIR/<stem>.json`, which replays that state
//! before `local-fs-pre.target` (dm devices rebuilt from namespace names, never from
//! `/dev/pmemN`), plus one `.mount` unit per declared mount, carrying the DAX options and
//! requiring (and ordered after) its own stack's instance: a stack that cannot be rebuilt
//! (a DIMM removed) fails its own instance and its own mounts, and the other stacks come
//! up. The replay (`pmem_stack --boot FILE`) never destroys data: it runs with
//! `allow_data_loss` off whatever the saved arguments say.
//!
//! Several tasks may each persist their own stack. Each run owns the boot entries of
//! the objects it declares and no others:
//! - its saved state is `/etc/pmem-stack/state.d/<key>.json`, the key derived from the
//!   names of the objects it declares (namespaces, dm devices, partitions, filesystem
//!   devices, mount units): re-running the same task finds its own file; its replay
//!   instance is named after the same key, so it has its own `.wants` link;
//! - a saved state that declares any object this run declares is this run's earlier
//!   self (its declaration grew, shrank or moved, which changes the key; or a host
//!   converged by a version that kept one `/etc/pmem-stack/state.json`): it is replaced
//!   by this run's state (its instance link goes with it), and the mount units it
//!   declared are this run's to keep or remove. A saved state sharing no object with
//!   this run is another task's: never touched, nor are its instance link and the units
//!   of the mounts it declares (a mount unit belongs to the stack that declares its
//!   mount);
//! - the template service and the installed binary are shared: written by any persisted
//!   run, removed by `state: absent` only when no saved state remains.
//!
//! Earlier versions had one shared service, `pmem-stack.service` (`pmem_stack --boot`
//! replaying every saved state), enabled in `local-fs-pre.target.wants/`, and mount
//! units requiring it. See [`legacy_service_needed`] for when a run removes it.
//!
//! Paths here are the machine's paths; the real system prefixes them with
//! `PMEM_STACK_ROOT` when set (tests keep them in a directory that survives a reboot).

use crate::actual::kernel::mount_options;
use crate::actual::{Actual, FileContent, FileState};
use crate::args::validate::Desired;
use crate::args::ModuleArgs;
use crate::bind::Bound;
use std::collections::BTreeSet;

/// The directory of the saved states, one `<key>.json` per persisted stack.
pub const STATE_DIR: &str = "/etc/pmem-stack/state.d";
/// The one saved state of versions before [`STATE_DIR`]: still replayed at boot, and
/// replaced by `STATE_DIR/<key>.json` on the first persisted run of the task that
/// declares its objects (removed by that task's `state: absent`).
pub const LEGACY_STATE_FILE: &str = "/etc/pmem-stack/state.json";
/// Where the module installs its copy of itself for the boot replay: a directory named
/// after the project, which no one else installs into, so a `pmem_stack` an operator
/// installed (`/usr/local/bin`, `/usr/local/sbin`, anywhere on the `PATH`) is never
/// overwritten or removed. Under `/usr`: the replay runs before `local-fs-pre.target`,
/// when only the root filesystem and `/usr` are sure to be there (systemd needs a
/// separate `/usr` mounted by the initramfs, before it starts); `/var` (as
/// `/var/lib/pmem-stack`) may be a filesystem of its own that is mounted only on the
/// way to `local-fs.target`, after the replay. (A `/usr/local` of its own would be
/// mounted late as well: the replay does not support that layout, as before.)
pub const BINARY: &str = "/usr/local/libexec/pmem-stack/pmem_stack";
/// Where earlier versions installed that copy, a directory on every `PATH` where an
/// operator may have installed a `pmem_stack` of their own. A file there is removed
/// only when it is provably the copy such a version installed, and no unit left in
/// place still runs it (see [`legacy_copy_removal`]); anything else there is left alone.
pub const LEGACY_BINARY: &str = "/usr/local/sbin/pmem_stack";
/// systemd's directory for local units.
pub const UNIT_DIR: &str = "/etc/systemd/system";
/// The replay service template: its instance `pmem-stack@<stem>.service` replays
/// `STATE_DIR/<stem>.json` (see [`replay_unit_for`]).
pub const SERVICE_TEMPLATE: &str = "pmem-stack@.service";
/// The one replay service of earlier versions (`pmem_stack --boot`, every saved state),
/// which their mount units require: kept as long as something needs it (see
/// [`legacy_service_needed`]), never written.
pub const LEGACY_SERVICE: &str = "pmem-stack.service";
/// The target whose `.wants/` enables the replay (the instances, and the legacy service).
pub const REPLAY_TARGET: &str = "local-fs-pre.target";
/// Exists from the first unit written or removed until `systemctl daemon-reload` has run:
/// a run stopped between the two leaves it, and the next run plans the reload. It is in
/// /run, which a reboot clears, as a reboot makes systemd read every unit anyway.
pub const RELOAD_PENDING: &str = "/run/pmem-stack/daemon-reload-pending";

/// The `RELOAD_PENDING` marker written before the unit at `unit` changes (it names the
/// first unit changed, for whoever finds it).
pub fn reload_pending_marker(unit: &str) -> FileState {
    FileState {
        path: RELOAD_PENDING.to_string(),
        content: FileContent::Text {
            text: format!("{unit}\n"),
        },
        mode: Some(0o600),
    }
}

/// Whether writing or removing `path` makes a `daemon-reload` necessary.
pub fn is_unit_path(path: &str) -> bool {
    path.strip_prefix(UNIT_DIR)
        .is_some_and(|r| r.starts_with('/'))
}

/// First line of every unit we generate.
pub const MARKER: &str =
    "# Generated by pmem_stack; do not edit (it is rewritten from the saved states in /etc/pmem-stack).";
/// How we recognise our units: the start of [`MARKER`], which earlier versions' first
/// line shares (theirs named `/etc/pmem-stack/state.json`).
pub const MARKER_PREFIX: &str = "# Generated by pmem_stack; do not edit";

/// Whether `text` is a unit we generated (this version or an earlier one).
pub fn is_generated(text: &str) -> bool {
    text.starts_with(MARKER_PREFIX)
}

/// A file the boot layer manages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FileKind {
    /// The saved arguments.
    State,
    /// The module's own binary.
    Binary,
    /// The replay service template ([`SERVICE_TEMPLATE`]).
    Service,
    /// A mount unit for the mount at `mount`.
    MountUnit {
        /// Mount point.
        mount: String,
    },
    /// A `*.wants/` symlink enabling `unit` for `target` (to the unit's file: the
    /// template's for an instance, as `systemctl enable` links it).
    WantsLink {
        /// Target unit (local-fs-pre.target, local-fs.target).
        target: String,
        /// The unit enabled.
        unit: String,
    },
}

/// A file as it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// Path on the machine.
    pub path: String,
    /// What it is.
    pub kind: FileKind,
    /// Its content, when it can be known now (`None`: derived once the device exists).
    pub content: Option<FileContent>,
    /// Permissions of a regular file.
    pub mode: u32,
}

/// `/mnt/pmem` -> `mnt-pmem.mount`, as `systemd-escape --path --suffix=mount` does.
pub fn mount_unit_name(path: &str) -> String {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return "-.mount".into();
    }
    let mut out = String::new();
    for (i, b) in trimmed.bytes().enumerate() {
        match b {
            b'/' => out.push('-'),
            b'.' if i == 0 => out.push_str("\\x2e"),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b':' | b'_' | b'.' => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push_str(".mount");
    out
}

/// The saved arguments: the options as parsed, data loss disallowed.
pub fn state_text(args: &ModuleArgs) -> String {
    let mut saved = args.clone();
    saved.allow_data_loss = crate::args::AnsibleBool(false);
    saved.verify_pmd = crate::args::AnsibleBool(false);
    let mut text = serde_json::to_string_pretty(&saved).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    text
}

/// The arguments a boot replay runs with: the saved options, data loss disallowed
/// whatever they say, and boot files left alone (they are what is running).
pub fn replay_args(saved: &str) -> Result<String, String> {
    replay_args_with(saved, &|_| false)
}

/// [`replay_args`], without the mounts for which `by_unit(path)` is true: at a boot
/// under systemd, a mount that has its mount unit is mounted by that unit, after the
/// replay service (`Requires=`/`After=` it), so that systemd knows the mount from its
/// start and orders whatever needs it (`RequiresMountsFor=`) after it. Were the replay to
/// mount it, the mount would appear while the service still runs and its consumers could
/// start before the replay ends. Without systemd (an init script runs `--boot`) there is
/// no unit to do it and the replay mounts everything.
pub fn replay_args_with(saved: &str, by_unit: &dyn Fn(&str) -> bool) -> Result<String, String> {
    let mut v: serde_json::Value = serde_json::from_str(saved)
        .map_err(|e| format!("the saved state is not valid JSON: {e}"))?;
    let obj = v
        .as_object_mut()
        .ok_or("the saved state is not a JSON object")?;
    if let Some(serde_json::Value::Array(mounts)) = obj.get_mut("mounts") {
        mounts.retain(|m| !m.get("path").and_then(|p| p.as_str()).is_some_and(by_unit));
    }
    obj.insert("allow_data_loss".into(), serde_json::Value::Bool(false));
    obj.insert("boot".into(), serde_json::json!({"persist": false}));
    obj.insert("state".into(), serde_json::Value::String("present".into()));
    obj.retain(|k, _| !k.starts_with("_ansible_"));
    Ok(v.to_string())
}

/// The identities of the objects that arguments (as JSON: a task's options, or a saved
/// state) declare: `namespace:<name>`, `device:<name>`, `partition:<name>`,
/// `filesystem:<device>` and `mount:<unit name>` (so `/mnt/a` and `/mnt/a/` are one).
/// Entries without their name are skipped; anything but an object declares nothing.
pub fn declared_objects(args: &serde_json::Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (list, field, kind) in [
        ("namespaces", "name", "namespace"),
        ("devices", "name", "device"),
        ("partitions", "name", "partition"),
        ("filesystems", "device", "filesystem"),
        ("mounts", "path", "mount"),
    ] {
        let Some(items) = args.get(list).and_then(|v| v.as_array()) else {
            continue;
        };
        for name in items
            .iter()
            .filter_map(|it| it.get(field).and_then(|v| v.as_str()))
        {
            let id = if kind == "mount" {
                mount_unit_name(name)
            } else {
                name.to_string()
            };
            out.insert(format!("{kind}:{id}"));
        }
    }
    out
}

/// The objects a run's arguments declare.
pub fn objects_of(args: &ModuleArgs) -> BTreeSet<String> {
    serde_json::to_value(args)
        .map(|v| declared_objects(&v))
        .unwrap_or_default()
}

/// Where the stack declaring `objects` keeps its saved state:
/// `STATE_DIR/<name>-<hash>.json`, the stem from [`state_stem_for`].
pub fn state_path_for(objects: &BTreeSet<String>) -> String {
    format!("{STATE_DIR}/{}.json", state_stem_for(objects))
}

/// The stem of the saved state of the stack declaring `objects`: `<name>-<hash>`.
/// `<name>` is for people (the first dm device's name, else the first namespace's,
/// partition's or mount unit's, in sorted order; characters outside `[A-Za-z0-9._-]` as
/// `_`, a leading `.` as `_`; at most 40); `<hash>` is the 64-bit FNV-1a hash of the
/// sorted identities, one a line, in hex: stable across versions and machines, so a
/// task run again with the same declaration finds its own file, and one whose
/// declaration changed writes a new one and replaces the old (which shares objects).
///
/// The stem is also the instance of its replay service (`pmem-stack@<stem>.service`,
/// whose `%i` is the instance as written): it holds only characters valid in a unit
/// instance (`[A-Za-z0-9._-]`, never empty, far below systemd's 255), so it needs no
/// escaping, and `%i` names the file back (systemd-escape would have turned `-` into
/// `\x2d`, which `%i` would keep).
pub fn state_stem_for(objects: &BTreeSet<String>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for id in objects {
        for b in id.bytes().chain(std::iter::once(b'\n')) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    let name = ["device:", "namespace:", "partition:", "mount:"]
        .iter()
        .find_map(|k| objects.iter().find_map(|o| o.strip_prefix(k)))
        .unwrap_or("stack");
    let mut readable: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '_',
        })
        .take(40)
        .collect();
    if readable.starts_with('.') {
        readable.replace_range(0..1, "_");
    }
    format!("{readable}-{hash:016x}")
}

/// The replay service instance of the stack declaring `objects`:
/// `pmem-stack@<stem>.service`.
pub fn replay_unit_for(objects: &BTreeSet<String>) -> String {
    instance_unit(&state_stem_for(objects))
}

/// `pmem-stack@<instance>.service`.
fn instance_unit(instance: &str) -> String {
    let (prefix, suffix) = SERVICE_TEMPLATE
        .split_once('@')
        .unwrap_or(("pmem-stack", ".service"));
    format!("{prefix}@{instance}{suffix}")
}

/// The replay instance of the saved state at `path`, if it can have one: a file of
/// `STATE_DIR` whose stem is a valid unit instance as written (every stem this module
/// makes is; a file put there by hand may not be, and the legacy file has none: both
/// are replayed by the legacy service alone).
pub fn replay_unit_of_state(path: &str) -> Option<String> {
    let stem = path
        .strip_prefix(STATE_DIR)?
        .strip_prefix('/')?
        .strip_suffix(".json")?;
    let valid = !stem.is_empty()
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    let unit = instance_unit(stem);
    // systemd's limit on a unit name
    (valid && unit.len() <= 255 && is_state_path(path)).then_some(unit)
}

/// The saved state an instance `pmem-stack@<stem>.service` replays, if `unit` is one.
pub fn state_of_replay_unit(unit: &str) -> Option<String> {
    let (prefix, suffix) = SERVICE_TEMPLATE.split_once('@')?;
    let stem = unit
        .strip_prefix(prefix)?
        .strip_prefix('@')?
        .strip_suffix(suffix)?;
    let path = format!("{STATE_DIR}/{stem}.json");
    (replay_unit_of_state(&path).as_deref() == Some(unit)).then_some(path)
}

/// The file a unit is loaded from: the template's for an instance (`a@b.service` ->
/// `a@.service`), else its own; what a `.wants` link points to.
pub fn unit_file_of(unit: &str) -> String {
    match unit.split_once('@') {
        Some((prefix, rest)) => match rest.rfind('.') {
            Some(dot) => format!("{UNIT_DIR}/{prefix}@{}", &rest[dot..]),
            None => format!("{UNIT_DIR}/{unit}"),
        },
        None => format!("{UNIT_DIR}/{unit}"),
    }
}

/// The path of the link enabling the replay instance `unit`.
pub fn replay_link(unit: &str) -> String {
    format!("{UNIT_DIR}/{REPLAY_TARGET}.wants/{unit}")
}

/// This run's saved state.
pub fn state_path(args: &ModuleArgs) -> String {
    state_path_for(&objects_of(args))
}

/// This run's replay instance.
pub fn replay_unit(args: &ModuleArgs) -> String {
    replay_unit_for(&objects_of(args))
}

/// Whether `path` is a saved state: the legacy file or `STATE_DIR/<x>.json` (temp files
/// of an atomic write start with a dot and are not).
pub fn is_state_path(path: &str) -> bool {
    path == LEGACY_STATE_FILE
        || path
            .strip_prefix(STATE_DIR)
            .and_then(|r| r.strip_prefix('/'))
            .is_some_and(|n| {
                !n.contains('/')
                    && !n.starts_with('.')
                    && n.len() > ".json".len()
                    && n.ends_with(".json")
            })
}

/// Put saved-state paths in replay order: the legacy file first, then the others by
/// name (a deterministic order, the same on every boot).
pub fn replay_order(paths: &mut [String]) {
    paths.sort_by(|a, b| {
        (a != LEGACY_STATE_FILE, a.as_str()).cmp(&(b != LEGACY_STATE_FILE, b.as_str()))
    });
}

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

/// The replay service template: instance `<stem>` runs `pmem_stack --boot
/// STATE_DIR/<stem>.json` (that state alone), when the file exists. Each saved state has
/// its own instance, so a stack that cannot be rebuilt fails only its own instance and
/// the mount units that require it.
pub fn service_text() -> String {
    format!(
        "{MARKER}
[Unit]
Description=Rebuild the persistent-memory stack (device-mapper tables) saved in {STATE_DIR}/%i.json
Documentation=man:ndctl(1) man:dmsetup(8)
DefaultDependencies=no
Wants=systemd-udev-settle.service
After=systemd-udev-settle.service systemd-modules-load.service
Before={REPLAY_TARGET} shutdown.target
Conflicts=shutdown.target
ConditionPathExists={STATE_DIR}/%i.json

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={BINARY} --boot {STATE_DIR}/%i.json
StandardOutput=journal
StandardError=journal

[Install]
WantedBy={REPLAY_TARGET}
"
    )
}

/// The mount unit for the declared mount at `mount`, if its device path is known now.
pub fn mount_unit_text(b: &Bound, mount: &str) -> Option<String> {
    let (d, a) = (b.desired(), b.actual());
    let m = d.mounts.iter().find(|m| m.path == mount)?;
    let what = b.stable_path(&m.device)?;
    let fstype = b.fstype(&m.device)?;
    // the DAX option as this kernel spells it (a bare `dax`, or none for never, before
    // 5.8); `inode` there is refused by the planner
    a.dax_syntax().option(m.dax).ok()?;
    let opts = mount_options(a.dax_syntax(), m.dax, &m.options);
    let opts = if opts.is_empty() {
        vec!["defaults".to_string()]
    } else {
        opts
    };
    // the replay of this stack alone: another stack that cannot be rebuilt does not
    // fail this mount
    let service = replay_unit(&d.args);
    Some(format!(
        "{MARKER}
[Unit]
Description=pmem-stack mount of {mount}
Requires={service}
After={service}

[Mount]
What={what}
Where={mount}
Type={fstype}
Options={}

[Install]
WantedBy=local-fs.target
",
        opts.join(",")
    ))
}

/// Every file persistence wants, in the order they are written.
pub fn wanted(b: &Bound) -> Vec<Wanted> {
    let d = b.desired();
    // each file's content is what `content_of` says for its kind: one mapping, used at
    // planning (here) and at apply time
    let want = |path: String, kind: FileKind, mode: u32| Wanted {
        content: content_of(&kind, b),
        path,
        kind,
        mode,
    };
    let link = |target: &str, unit: &str| {
        want(
            format!("{UNIT_DIR}/{target}.wants/{unit}"),
            FileKind::WantsLink {
                target: target.into(),
                unit: unit.into(),
            },
            0o777,
        )
    };
    let mut out = vec![
        want(BINARY.into(), FileKind::Binary, 0o755),
        want(state_path(&d.args), FileKind::State, 0o600),
        want(
            format!("{UNIT_DIR}/{SERVICE_TEMPLATE}"),
            FileKind::Service,
            0o644,
        ),
        link(REPLAY_TARGET, &replay_unit(&d.args)),
    ];
    for m in &d.mounts {
        let unit = mount_unit_name(&m.path);
        out.push(want(
            format!("{UNIT_DIR}/{unit}"),
            FileKind::MountUnit {
                mount: m.path.clone(),
            },
            0o644,
        ));
        out.push(link("local-fs.target", &unit));
    }
    out
}

/// The content of a wanted file computed against `a` (apply time).
pub fn content_of(kind: &FileKind, b: &Bound) -> Option<FileContent> {
    let d = b.desired();
    match kind {
        FileKind::State => Some(FileContent::Text {
            text: state_text(&d.args),
        }),
        FileKind::Binary => Some(FileContent::Binary { matches_self: true }),
        FileKind::Service => Some(FileContent::Text {
            text: service_text(),
        }),
        FileKind::MountUnit { mount } => {
            mount_unit_text(b, mount).map(|text| FileContent::Text { text })
        }
        FileKind::WantsLink { unit, .. } => Some(FileContent::Link {
            target: unit_file_of(unit),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_escape_like_systemd() {
        // values from `systemd-escape --path --suffix=mount`
        assert_eq!(mount_unit_name("/mnt/pmem"), "mnt-pmem.mount");
        assert_eq!(
            mount_unit_name("/mnt/pmem-linear/"),
            "mnt-pmem\\x2dlinear.mount"
        );
        assert_eq!(mount_unit_name("/srv/a b"), "srv-a\\x20b.mount");
        assert_eq!(mount_unit_name("/.hidden/x"), "\\x2ehidden-x.mount");
        assert_eq!(mount_unit_name("/"), "-.mount");
    }

    #[test]
    fn a_replay_never_allows_data_loss() {
        let r = replay_args(r#"{"allow_data_loss": true, "state": "absent", "boot": {"persist": true}, "_ansible_check_mode": true, "devices": []}"#)
            .expect("replay args");
        let v: serde_json::Value = serde_json::from_str(&r).expect("json");
        assert_eq!(v["allow_data_loss"], false);
        assert_eq!(v["state"], "present");
        assert_eq!(v["boot"]["persist"], false);
        assert!(v.get("_ansible_check_mode").is_none());
        assert!(replay_args("[1]").is_err());
    }

    #[test]
    fn the_template_replays_its_own_state_before_local_fs() {
        let s = service_text();
        assert!(s.starts_with(MARKER));
        for line in [
            "Description=Rebuild the persistent-memory stack (device-mapper tables) saved in /etc/pmem-stack/state.d/%i.json",
            "DefaultDependencies=no",
            "Wants=systemd-udev-settle.service",
            "After=systemd-udev-settle.service systemd-modules-load.service",
            "Before=local-fs-pre.target shutdown.target",
            "Conflicts=shutdown.target",
            "ConditionPathExists=/etc/pmem-stack/state.d/%i.json",
            "Type=oneshot",
            "RemainAfterExit=yes",
            // its own saved state alone (the shared service of earlier versions replayed
            // every one, so one stack that failed failed all the mounts)
            "ExecStart=/usr/local/libexec/pmem-stack/pmem_stack --boot /etc/pmem-stack/state.d/%i.json",
            "StandardOutput=journal",
            "StandardError=journal",
            "WantedBy=local-fs-pre.target",
        ] {
            assert!(s.lines().any(|l| l == line), "{line}\n{s}");
        }
        assert_eq!(SERVICE_TEMPLATE, "pmem-stack@.service");
        assert_eq!(LEGACY_SERVICE, "pmem-stack.service");
    }

    #[test]
    fn each_saved_state_has_its_instance_and_an_instance_names_its_state_back() {
        let objects: BTreeSet<String> = ["device:pmem-striped", "mount:mnt-pmem.mount"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let stem = state_stem_for(&objects);
        let unit = replay_unit_for(&objects);
        assert_eq!(unit, format!("pmem-stack@{stem}.service"));
        assert_eq!(
            replay_unit_of_state(&state_path_for(&objects)).as_deref(),
            Some(unit.as_str())
        );
        assert_eq!(state_of_replay_unit(&unit), Some(state_path_for(&objects)));
        // enabled as `systemctl enable` links an instance: to the template's file
        assert_eq!(
            unit_file_of(&unit),
            "/etc/systemd/system/pmem-stack@.service"
        );
        assert_eq!(
            unit_file_of("mnt-a.mount"),
            "/etc/systemd/system/mnt-a.mount"
        );
        assert_eq!(
            replay_link(&unit),
            format!("/etc/systemd/system/local-fs-pre.target.wants/{unit}")
        );
        // no instance: the legacy file, a stem that is not a valid instance as written
        // (only files put there by hand), other names
        for p in [
            LEGACY_STATE_FILE.to_string(),
            format!("{STATE_DIR}/my stack.json"),
            format!("{STATE_DIR}/a\\x2db.json"),
            format!("{STATE_DIR}/{}.json", "x".repeat(240)),
            format!("{STATE_DIR}/.hidden.json"),
        ] {
            assert_eq!(replay_unit_of_state(&p), None, "{p}");
        }
        for u in [
            "pmem-stack.service",
            "pmem-stack@.service",
            "pmem-stack@a b.service",
            "other@x.service",
            "pmem-stack@x.mount",
        ] {
            assert_eq!(state_of_replay_unit(u), None, "{u}");
        }
    }

    /// Whether `s` is valid as a unit's instance string as written, by systemd's rules
    /// (`unit_instance_is_valid`: `[A-Za-z0-9:_.\\@-]`, not empty); our stems keep to
    /// the part that `%i` and `%I` both leave alone but for `-`.
    fn systemd_instance_valid(s: &str) -> bool {
        !s.is_empty()
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'.' | b'\\' | b'@' | b'-')
            })
    }

    #[test]
    fn stems_of_any_declared_name_are_valid_instances_without_escaping() {
        // names the arguments may hold: spaces, slashes, non-ASCII, a leading dot,
        // escapes, `@`, very long
        let long = "n".repeat(300);
        for name in [
            "pmem-striped",
            "pmem a/b",
            "données",
            ".hidden",
            "a\\x2db",
            "x@y",
            "-",
            "",
            long.as_str(),
        ] {
            for kind in ["device", "namespace", "partition", "mount"] {
                let objects: BTreeSet<String> = std::iter::once(format!("{kind}:{name}")).collect();
                let stem = state_stem_for(&objects);
                assert!(systemd_instance_valid(&stem), "{name}: {stem}");
                assert!(
                    stem.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')),
                    "{name}: {stem}: `%i` gives it back as written, the file's stem"
                );
                let unit = replay_unit_for(&objects);
                assert!(unit.len() <= 255, "{unit}");
                assert_eq!(
                    state_of_replay_unit(&unit),
                    Some(state_path_for(&objects)),
                    "{name}"
                );
            }
        }
        // no declared object at all still makes a stem
        assert!(state_stem_for(&BTreeSet::new()).starts_with("stack-"));
    }

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

    #[test]
    fn the_state_key_is_stable_and_follows_the_declared_names_only() {
        let a = serde_json::json!({
            "namespaces": [{"name": "pm0", "region": "region0", "mode": "fsdax"}],
            "devices": [{"name": "pmem a/b", "target": "linear", "members": ["pm0"]}],
            "mounts": [{"path": "/mnt/a/", "device": "pmem a/b"}],
            "boot": {"persist": true}
        });
        let objects = declared_objects(&a);
        assert_eq!(
            objects.iter().map(String::as_str).collect::<Vec<_>>(),
            ["device:pmem a/b", "mount:mnt-a.mount", "namespace:pm0"]
        );
        let path = state_path_for(&objects);
        // pinned (FNV-1a checked with Python): a new version must find the files an
        // earlier one wrote
        assert_eq!(
            path,
            "/etc/pmem-stack/state.d/pmem_a_b-6ce0be455cdc4da3.json"
        );
        assert!(is_state_path(&path));
        // options other than the names do not move it; the mount path's spelling neither
        let mut b = a.clone();
        b["boot"] = serde_json::json!({"persist": "yes"});
        b["mounts"][0]["path"] = serde_json::json!("/mnt/a");
        b["mounts"][0]["dax"] = serde_json::json!("never");
        assert_eq!(state_path_for(&declared_objects(&b)), path);
        b["mounts"][0]["path"] = serde_json::json!("/mnt/b");
        assert_ne!(state_path_for(&declared_objects(&b)), path);
        assert!(declared_objects(&serde_json::json!([1])).is_empty());
        for not in [
            "/etc/pmem-stack/state.d/.x.json.pmem-stack.1",
            "/etc/pmem-stack/state.d/x.txt",
            "/etc/pmem-stack/state.d/.json",
            "/etc/pmem-stack/state.d/a/b.json",
            "/etc/pmem-stack/other.json",
        ] {
            assert!(!is_state_path(not), "{not}");
        }
        let mut order = vec![
            format!("{STATE_DIR}/b.json"),
            LEGACY_STATE_FILE.to_string(),
            format!("{STATE_DIR}/a.json"),
        ];
        replay_order(&mut order);
        assert_eq!(order[0], LEGACY_STATE_FILE);
        assert_eq!(order[1], format!("{STATE_DIR}/a.json"));
    }

    #[test]
    fn units_of_earlier_versions_are_recognised() {
        assert!(is_generated(MARKER));
        assert!(is_generated(
            "# Generated by pmem_stack; do not edit (it is rewritten from /etc/pmem-stack/state.json).\n"
        ));
        assert!(!is_generated("[Mount]\n"));
    }
}
