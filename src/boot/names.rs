//! Names: where the boot files live and what they are called. The paths of the saved
//! states and of the units, the replay instance of each saved state and the saved state
//! of each instance, mount unit names (as `systemd-escape` makes them), the objects a
//! task declares and the key (stem) of its saved state derived from them, and the
//! replay order. Pure functions of strings: nothing here reads the machine.

use crate::args::ModuleArgs;
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
/// place still runs it (see [`legacy_copy_removal`](super::legacy_copy_removal)); anything else there is left alone.
pub const LEGACY_BINARY: &str = "/usr/local/sbin/pmem_stack";
/// systemd's directory for local units.
pub const UNIT_DIR: &str = "/etc/systemd/system";
/// The replay service template: its instance `pmem-stack@<stem>.service` replays
/// `STATE_DIR/<stem>.json` (see [`replay_unit_for`]).
pub const SERVICE_TEMPLATE: &str = "pmem-stack@.service";
/// The one replay service of earlier versions (`pmem_stack --boot`, every saved state),
/// which their mount units require: kept as long as something needs it (see
/// [`legacy_service_needed`](super::legacy_service_needed)), never written.
pub const LEGACY_SERVICE: &str = "pmem-stack.service";
/// The target whose `.wants/` enables the replay (the instances, and the legacy service).
pub const REPLAY_TARGET: &str = "local-fs-pre.target";
/// Exists from the first unit written or removed until `systemctl daemon-reload` has run:
/// a run stopped between the two leaves it, and the next run plans the reload. It is in
/// /run, which a reboot clears, as a reboot makes systemd read every unit anyway.
pub const RELOAD_PENDING: &str = "/run/pmem-stack/daemon-reload-pending";

/// Whether writing or removing `path` makes a `daemon-reload` necessary.
pub fn is_unit_path(path: &str) -> bool {
    path.strip_prefix(UNIT_DIR)
        .is_some_and(|r| r.starts_with('/'))
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

/// The identities of the objects that arguments (as JSON: a task's options, or a saved
/// state) declare: `namespace:<name>`, `device:<name>`, `partition:<name>`,
/// `filesystem:<device>`, `mount:<unit name>` (so `/mnt/a` and `/mnt/a/` are one),
/// `vg:<name>` and `lv:<vg>/<name>`.
/// Entries without their name are skipped; anything but an object declares nothing.
pub fn declared_objects(args: &serde_json::Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (list, field, kind) in [
        ("namespaces", "name", "namespace"),
        ("devices", "name", "device"),
        ("partitions", "name", "partition"),
        ("filesystems", "device", "filesystem"),
        ("mounts", "path", "mount"),
        ("volume_groups", "name", "vg"),
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
    if let Some(items) = args.get("logical_volumes").and_then(|v| v.as_array()) {
        for it in items {
            if let (Some(vg), Some(lv)) = (
                it.get("vg").and_then(|v| v.as_str()),
                it.get("name").and_then(|v| v.as_str()),
            ) {
                out.insert(format!("lv:{vg}/{lv}"));
            }
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
}
