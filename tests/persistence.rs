//! Boot persistence and teardown on the fake system: the files written (and only when
//! they differ), a simulated reboot replayed by identity, `state: absent`.

mod common;

use common::*;
use pmem_stack::actual::{FileContent, FileState};
use pmem_stack::boot::{
    declared_objects, replay_args, state_path_for, BINARY, LEGACY_STATE_FILE, MARKER, STATE_DIR,
    UNIT_DIR,
};
use pmem_stack::system::fake::FakeSystem;
use serde_json::{json, Value};

fn persisted() -> Value {
    json!({
        "namespaces": [
            {"name": "pm0", "region": "region0", "mode": "fsdax"},
            {"name": "pm1", "region": "region1", "mode": "fsdax"}
        ],
        "devices": [{"name": "pmem-striped", "target": "striped", "members": ["pm0", "pm1"]}],
        "filesystems": [{"device": "pmem-striped", "type": "xfs"}],
        "mounts": [{"path": "/mnt/pmem", "device": "pmem-striped", "options": ["noatime"]}],
        "boot": {"persist": "yes"},
        "allow_data_loss": true
    })
}

/// The saved state of the task with these arguments (it was the one
/// /etc/pmem-stack/state.json; now one file per stack in /etc/pmem-stack/state.d).
fn state_file(args: &Value) -> String {
    state_path_for(&declared_objects(args))
}

fn text(fake: &FakeSystem, path: &str) -> String {
    match fake.state.file(path).map(|f| &f.content) {
        Some(FileContent::Text { text }) => text.clone(),
        other => panic!("{path}: {other:?}"),
    }
}

#[test]
fn persistence_writes_state_units_and_links_once() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    let r = converge(&mut fake, &persisted());
    let tail: Vec<String> = actions(&r).into_iter().skip(6).collect();
    assert_eq!(
        tail,
        ["write_file"; 6]
            .iter()
            .map(|s| s.to_string())
            .chain(["daemon_reload".to_string()])
            .collect::<Vec<_>>()
    );
    let state: Value =
        serde_json::from_str(&text(&fake, &state_file(&persisted()))).expect("state is JSON");
    assert_eq!(
        state["allow_data_loss"],
        json!(false),
        "the saved state never allows data loss"
    );
    assert_eq!(
        state["devices"][0]["members"],
        json!(["pm0", "pm1"]),
        "members by name, not /dev/pmemN"
    );
    assert_eq!(
        fake.state
            .file(&state_file(&persisted()))
            .and_then(|f| f.mode),
        Some(0o600)
    );
    let unit = text(&fake, &format!("{UNIT_DIR}/mnt-pmem.mount"));
    assert!(unit.contains("What=/dev/mapper/pmem-striped\n"), "{unit}");
    assert!(
        unit.contains("Options=dax=always,noatime\n")
            && unit.contains("Type=xfs\n")
            && unit.contains("After=pmem-stack.service\n"),
        "{unit}"
    );
    assert_eq!(
        fake.state
            .file(&format!(
                "{UNIT_DIR}/local-fs-pre.target.wants/pmem-stack.service"
            ))
            .map(|f| f.content.clone()),
        Some(FileContent::Link {
            target: format!("{UNIT_DIR}/pmem-stack.service")
        })
    );
    assert_eq!(
        fake.state.file(BINARY).map(|f| f.content.clone()),
        Some(FileContent::Binary { matches_self: true })
    );
    // a changed option rewrites only the mount unit
    let mut args = persisted();
    args["mounts"][0]["options"] = json!(["noatime", "nodev"]);
    let r = converge(&mut fake, &args);
    assert_eq!(
        actions(&r),
        ["remount", "write_file", "write_file", "daemon_reload"],
        "{:?}",
        r.plan
    );
    assert!(r.plan[2].target.ends_with("mnt-pmem.mount"));
}

#[test]
fn a_moved_mount_point_removes_the_old_unit() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &persisted());
    let mut args = persisted();
    args["mounts"][0]["path"] = json!("/srv/pmem");
    let r = converge(&mut fake, &args);
    let a = actions(&r);
    assert!(a.contains(&"remove_file".to_string()), "{a:?}");
    assert!(fake
        .state
        .file(&format!("{UNIT_DIR}/mnt-pmem.mount"))
        .is_none());
    assert!(fake
        .state
        .file(&format!("{UNIT_DIR}/srv-pmem.mount"))
        .is_some());
}

#[test]
fn a_reboot_is_replayed_by_identity_without_data_loss() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &persisted());
    let member_ns = |f: &FakeSystem| -> Vec<String> {
        let dm = f.state.dm("pmem-striped").expect("dm");
        let t = pmem_stack::actual::dm::parse_table(&dm.table).expect("table");
        t[0].members()
            .iter()
            .map(|d| {
                let b = f.state.block(*d).expect("member");
                f.state
                    .namespace_of_block(&b.name)
                    .and_then(|n| n.name.clone())
                    .unwrap_or_default()
            })
            .collect()
    };
    let before = member_ns(&fake);
    let pm0_before = fake
        .state
        .namespace_named("pm0")
        .and_then(|n| n.blockdev.clone());
    fake.reboot();
    assert_ne!(
        fake.state
            .namespace_named("pm0")
            .and_then(|n| n.blockdev.clone()),
        pm0_before,
        "pmem names swapped"
    );
    assert!(fake.state.dm("pmem-striped").is_none());
    let saved = text(&fake, &state_file(&persisted()));
    let replay = replay_args(&saved).expect("replay args");
    let r = pmem_stack::run(&replay, &mut fake, false);
    assert!(!r.failed, "{}", r.msg);
    assert_eq!(
        actions(&r),
        ["create_dm", "mkfs", "mount", "set_extsize"],
        "{:?}",
        r.plan
    );
    assert!(
        r.plan[1]
            .detail
            .contains("only if the device is blank when it appears"),
        "{}",
        r.plan[1].detail
    );
    let done: Vec<&str> = r.done.iter().map(|s| s.action.as_str()).collect();
    assert_eq!(
        done,
        ["create_dm", "mount"],
        "rebuilt and mounted; the filesystem found, not made"
    );
    let skipped: Vec<&str> = r.skipped.iter().map(|s| s.step.action.as_str()).collect();
    assert_eq!(skipped, ["mkfs", "set_extsize"], "{:?}", r.skipped);
    assert!(
        r.skipped[0].why.contains("already holds xfs"),
        "{:?}",
        r.skipped
    );
    assert!(r.plan.iter().all(|s| !s.destructive));
    assert_eq!(
        member_ns(&fake),
        before,
        "the same namespaces in the same order"
    );
    let again = run(&mut fake, &persisted());
    assert!(!again.changed, "{:?}", again.plan);
}

#[test]
fn the_replay_refuses_what_would_destroy_data() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &persisted());
    // someone changed the saved chunk: the replay must not reload a table under data
    let mut saved: Value =
        serde_json::from_str(&text(&fake, &state_file(&persisted()))).expect("json");
    saved["devices"][0]["chunk"] = json!("4M");
    saved["allow_data_loss"] = json!(true);
    let r = pmem_stack::run(
        &replay_args(&saved.to_string()).expect("args"),
        &mut fake,
        false,
    );
    assert!(r.failed && r.msg.contains("allow_data_loss"), "{}", r.msg);
    assert!(r.done.is_empty());
}

#[test]
fn absent_removes_the_boot_files_after_the_umount() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &persisted());
    let mut args = persisted();
    args["state"] = json!("absent");
    args["allow_data_loss"] = json!(false);
    let r = converge(&mut fake, &args);
    let a = actions(&r);
    assert_eq!(a[0], "umount");
    assert_eq!(
        &a[1..7],
        ["remove_file"; 6].map(String::from).as_slice(),
        "{a:?}"
    );
    assert_eq!(&a[7..], ["daemon_reload", "remove_dm"]);
    assert!(fake.state.files.is_empty());
    assert!(
        fake.state.namespace_named("pm0").is_some(),
        "namespaces stay without allow_data_loss"
    );
}

#[test]
fn a_foreign_holder_blocks_teardown_and_is_named() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    let mut args = persisted();
    args["boot"] = json!({"persist": false});
    converge(&mut fake, &args);
    let dm = fake.state.dm("pmem-striped").expect("dm").clone();
    let size = fake.state.block(dm.devno).expect("bd").size;
    let op = pmem_stack::plan::Op::DmCreate {
        name: "someone-else".into(),
        table: vec![format!("0 {} linear {} 0", size.0, dm.devno)
            .parse()
            .expect("line")],
    };
    pmem_stack::system::System::execute(&mut fake, &op).expect("foreign dm");
    args["state"] = json!("absent");
    let r = run(&mut fake, &args);
    assert!(r.failed, "{}", r.msg);
    assert!(r.msg.contains("is held by someone-else"), "{}", r.msg);
    assert!(
        fake.state.dm("pmem-striped").is_some() && fake.state.mount_at("/mnt/pmem").is_some(),
        "nothing torn down"
    );
}

#[test]
fn a_namespace_found_by_name_in_another_region_is_kept() {
    // moving DIMMs renumbers regions: the name is the identity, the region only says
    // where to create a namespace that does not exist
    let mut fake = FakeSystem::with_fsdax(2, DIMM);
    let args = json!({"namespaces": [{"name": "pm0", "region": "region1", "mode": "fsdax"},
                                     {"name": "pm1", "region": "region0", "mode": "fsdax"}]});
    let r = converge(&mut fake, &args);
    assert!(r.plan.is_empty(), "{:?}", r.plan);
    assert!(
        r.warnings
            .iter()
            .any(|w| w
                .starts_with("namespace pm0 is in region0, declared in region1: kept where it is")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn a_run_stopped_at_any_step_of_the_persisted_stack_is_repaired_including_the_reload() {
    // the steps after the last unit write: only the daemon-reload, whose need is
    // remembered by a marker in /run (a stop there used to leave it undone forever)
    let n = {
        let mut fake = FakeSystem::fresh_dimms(2, DIMM);
        check(&mut fake, &persisted()).plan.len()
    };
    assert!(n > 7, "the persisted stack has {n} steps");
    for k in 1..=n {
        let mut fake = FakeSystem::fresh_dimms(2, DIMM);
        fake.fail_at = Some(k);
        let r = run(&mut fake, &persisted());
        assert!(r.failed && r.done.len() == k - 1, "step {k}: {}", r.msg);
        let pending = fake.state.file(pmem_stack::boot::RELOAD_PENDING).is_some();
        let units_written = r
            .done
            .iter()
            .any(|s| serde_json::to_string(s).is_ok_and(|j| j.contains(UNIT_DIR)));
        assert_eq!(pending, units_written, "step {k}: the reload marker");
        fake.fail_at = None;
        let plan = check(&mut fake, &persisted());
        assert_eq!(plan.plan.len(), n - (k - 1), "step {k}: the steps left");
        if k == n {
            assert_eq!(actions(&plan), ["daemon_reload"]);
        }
        let again = run(&mut fake, &persisted());
        assert!(!again.failed && again.changed, "step {k}: {}", again.msg);
        assert!(
            fake.state.file(pmem_stack::boot::RELOAD_PENDING).is_none(),
            "step {k}: the marker is cleared by the reload"
        );
        let third = run(&mut fake, &persisted());
        assert!(!third.changed && third.plan.is_empty(), "step {k}");
    }
}

#[test]
fn mount_units_spell_dax_for_the_running_kernel() {
    for (release, dax, options) in [
        (Some("5.4.0-150-generic"), "always", "Options=dax,noatime\n"),
        (Some("5.4.0-150-generic"), "never", "Options=noatime\n"),
        (
            Some("6.1.0-27-amd64"),
            "always",
            "Options=dax=always,noatime\n",
        ),
        (None, "never", "Options=dax=never,noatime\n"),
    ] {
        let mut fake = FakeSystem::fresh_dimms(2, DIMM);
        if let Some(p) = fake.state.platform.as_mut() {
            p.kernel = release.map(String::from);
        }
        let mut args = persisted();
        args["mounts"][0]["dax"] = json!(dax);
        converge(&mut fake, &args);
        let unit = text(&fake, &format!("{UNIT_DIR}/mnt-pmem.mount"));
        assert!(unit.contains(options), "{release:?} {dax}: {unit}");
    }
    // no option at all: `defaults`
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    if let Some(p) = fake.state.platform.as_mut() {
        p.kernel = Some("5.4.0-150-generic".into());
    }
    let mut args = persisted();
    args["mounts"][0]["dax"] = json!("never");
    args["mounts"][0]["options"] = json!([]);
    converge(&mut fake, &args);
    let unit = text(&fake, &format!("{UNIT_DIR}/mnt-pmem.mount"));
    assert!(unit.contains("Options=defaults\n"), "{unit}");
}

// ---- several persisted stacks, each declared by its own task ----

/// Task A: striped xfs over pm0 and pm1 on /mnt/a.
fn stack_a() -> Value {
    json!({
        "namespaces": [
            {"name": "pm0", "region": "region0", "mode": "fsdax"},
            {"name": "pm1", "region": "region1", "mode": "fsdax"}
        ],
        "devices": [{"name": "pmem-a", "target": "striped", "members": ["pm0", "pm1"]}],
        "filesystems": [{"device": "pmem-a", "type": "xfs"}],
        "mounts": [{"path": "/mnt/a", "device": "pmem-a"}],
        "boot": {"persist": true},
        "allow_data_loss": true
    })
}

/// Task B: linear ext4 over pm2 on /mnt/b.
fn stack_b() -> Value {
    json!({
        "namespaces": [{"name": "pm2", "region": "region2", "mode": "fsdax"}],
        "devices": [{"name": "pmem-b", "target": "linear", "members": ["pm2"]}],
        "filesystems": [{"device": "pmem-b", "type": "ext4"}],
        "mounts": [{"path": "/mnt/b", "device": "pmem-b", "options": ["noatime"]}],
        "boot": {"persist": true},
        "allow_data_loss": true
    })
}

/// Task C: a GPT partition on pm3, xfs, on /mnt/c (its unit names the partition uuid).
fn stack_c() -> Value {
    json!({
        "namespaces": [{"name": "pm3", "region": "region3", "mode": "fsdax"}],
        "partitions": [{"name": "pmem-c", "disk": "pm3"}],
        "filesystems": [{"device": "pmem-c", "type": "xfs"}],
        "mounts": [{"path": "/mnt/c", "device": "pmem-c"}],
        "boot": {"persist": true},
        "allow_data_loss": true
    })
}

fn absent(args: &Value) -> Value {
    let mut a = args.clone();
    a["state"] = json!("absent");
    a["allow_data_loss"] = json!(false);
    a
}

/// The boot files of one task: its saved state, its mount unit and the unit's link.
fn own_files(fake: &FakeSystem, args: &Value, unit: &str) -> Vec<Option<FileState>> {
    [
        state_file(args),
        format!("{UNIT_DIR}/{unit}"),
        format!("{UNIT_DIR}/local-fs.target.wants/{unit}"),
    ]
    .iter()
    .map(|p| fake.state.file(p).cloned())
    .collect()
}

fn unchanged(fake: &mut FakeSystem, args: &Value, who: &str) {
    let r = run(fake, args);
    assert!(
        !r.failed && !r.changed && r.plan.is_empty(),
        "{who}: {} {:?}",
        r.msg,
        r.plan
    );
}

fn mounted(fake: &FakeSystem, path: &str) -> bool {
    fake.state.mount_at(path).is_some()
}

fn states_in_dir(fake: &FakeSystem) -> Vec<String> {
    let mut v: Vec<String> = fake
        .state
        .files
        .iter()
        .filter(|f| f.path.starts_with(&format!("{STATE_DIR}/")))
        .map(|f| f.path.clone())
        .collect();
    v.sort();
    v
}

#[test]
fn two_then_three_persisted_stacks_keep_their_own_boot_files() {
    let mut fake = FakeSystem::fresh_dimms(4, DIMM);
    let (a, b, c) = (stack_a(), stack_b(), stack_c());
    converge(&mut fake, &a);
    let a_files = own_files(&fake, &a, "mnt-a.mount");
    assert!(a_files.iter().all(Option::is_some), "{a_files:?}");

    // a second task: its own state and unit; nothing of A's removed or rewritten
    let r = converge(&mut fake, &b);
    assert!(
        !actions(&r).contains(&"remove_file".to_string()),
        "{:?}",
        r.plan
    );
    assert_eq!(own_files(&fake, &a, "mnt-a.mount"), a_files, "A's files");
    let b_files = own_files(&fake, &b, "mnt-b.mount");
    assert!(b_files.iter().all(Option::is_some), "{b_files:?}");
    assert_ne!(state_file(&a), state_file(&b));
    // each task, run again: unchanged (they used to rewrite each other's forever)
    for _ in 0..2 {
        unchanged(&mut fake, &a, "A");
        unchanged(&mut fake, &b, "B");
    }

    // a third
    converge(&mut fake, &c);
    assert_eq!(own_files(&fake, &a, "mnt-a.mount"), a_files, "A's files");
    assert_eq!(own_files(&fake, &b, "mnt-b.mount"), b_files, "B's files");
    let c_files = own_files(&fake, &c, "mnt-c.mount");
    assert!(c_files.iter().all(Option::is_some), "{c_files:?}");
    let c_unit = text(&fake, &format!("{UNIT_DIR}/mnt-c.mount"));
    assert!(c_unit.contains("What=/dev/disk/by-partuuid/"), "{c_unit}");
    assert_eq!(
        states_in_dir(&fake),
        {
            let mut v = vec![state_file(&a), state_file(&b), state_file(&c)];
            v.sort();
            v
        },
        "one saved state per task"
    );
    for (args, who) in [(&a, "A"), (&b, "B"), (&c, "C")] {
        unchanged(&mut fake, args, who);
    }
    // each saved state holds its own task's arguments only
    let saved_b: Value = serde_json::from_str(&text(&fake, &state_file(&b))).expect("json");
    assert_eq!(saved_b["devices"][0]["name"], "pmem-b");
    assert_eq!(saved_b["mounts"].as_array().map(Vec::len), Some(1));

    // a reboot: the one service replays every saved state; all three come back
    fake.reboot();
    assert!(fake.state.dm("pmem-a").is_none() && fake.state.dm("pmem-b").is_none());
    assert!(!mounted(&fake, "/mnt/a") && !mounted(&fake, "/mnt/b") && !mounted(&fake, "/mnt/c"));
    let states = fake.saved_states();
    assert_eq!(states.len(), 3);
    let r = pmem_stack::replay(&states, &mut fake);
    assert!(!r.failed && r.changed, "{}", r.msg);
    assert!(r.plan.iter().all(|s| !s.destructive), "{:?}", r.plan);
    assert!(
        !r.done.iter().any(|s| s.action == "mkfs"),
        "filesystems found, not made: {:?}",
        r.done
    );
    for p in ["/mnt/a", "/mnt/b", "/mnt/c"] {
        assert!(mounted(&fake, p), "{p} after the replay: {}", r.msg);
    }
    for (args, who) in [(&a, "A"), (&b, "B"), (&c, "C")] {
        unchanged(&mut fake, args, who);
    }

    // B torn down: its state, unit and link go; A's and C's stay, and so do the
    // shared service and binary
    let service = format!("{UNIT_DIR}/pmem-stack.service");
    let service_link = format!("{UNIT_DIR}/local-fs-pre.target.wants/pmem-stack.service");
    let r = converge(&mut fake, &absent(&b));
    let removed: Vec<&str> = r
        .plan
        .iter()
        .filter(|s| s.action == "remove_file")
        .map(|s| s.target.as_str())
        .collect();
    let mut want = vec![
        format!("{UNIT_DIR}/local-fs.target.wants/mnt-b.mount"),
        format!("{UNIT_DIR}/mnt-b.mount"),
        state_file(&b),
    ];
    want.sort();
    let mut got: Vec<String> = removed.iter().map(|s| s.to_string()).collect();
    got.sort();
    assert_eq!(got, want, "{:?}", r.plan);
    assert!(own_files(&fake, &b, "mnt-b.mount")
        .iter()
        .all(Option::is_none));
    assert_eq!(own_files(&fake, &a, "mnt-a.mount"), a_files, "A's files");
    assert_eq!(own_files(&fake, &c, "mnt-c.mount"), c_files, "C's files");
    for p in [&service, &service_link, &BINARY.to_string()] {
        assert!(fake.state.file(p).is_some(), "{p} is shared: kept");
    }
    assert!(mounted(&fake, "/mnt/a") && mounted(&fake, "/mnt/c"));
    unchanged(&mut fake, &a, "A");
    unchanged(&mut fake, &c, "C");

    // the next boot brings A and C back, not B
    fake.reboot();
    let r = pmem_stack::replay(&fake.saved_states(), &mut fake);
    assert!(!r.failed, "{}", r.msg);
    assert!(mounted(&fake, "/mnt/a") && mounted(&fake, "/mnt/c") && !mounted(&fake, "/mnt/b"));
    assert!(fake.state.dm("pmem-b").is_none());

    // the last stack torn down takes the service and the binary with it
    converge(&mut fake, &absent(&a));
    assert!(fake.state.file(&service).is_some(), "C still persisted");
    converge(&mut fake, &absent(&c));
    assert!(
        fake.state.files.is_empty(),
        "{:?}",
        fake.state.files.iter().map(|f| &f.path).collect::<Vec<_>>()
    );
}

#[test]
fn a_task_whose_declaration_grows_or_shrinks_replaces_only_its_own_state() {
    let mut fake = FakeSystem::fresh_dimms(4, DIMM);
    let a = stack_a();
    converge(&mut fake, &a);
    let a_files = own_files(&fake, &a, "mnt-a.mount");
    // B first without its filesystem and mount
    let mut small = stack_b();
    small["filesystems"] = json!([]);
    small["mounts"] = json!([]);
    converge(&mut fake, &small);
    // then it grows: a new key; its old state (sharing pm2 and pmem-b) is replaced
    let big = stack_b();
    let r = converge(&mut fake, &big);
    let removed: Vec<&str> = r
        .plan
        .iter()
        .filter(|s| s.action == "remove_file")
        .map(|s| s.target.as_str())
        .collect();
    assert_eq!(removed, [state_file(&small)], "{:?}", r.plan);
    assert!(
        r.plan
            .iter()
            .any(|s| s.detail.contains("replaced by") && s.detail.contains("device:pmem-b")),
        "{:?}",
        r.plan
    );
    let mut want = vec![state_file(&a), state_file(&big)];
    want.sort();
    assert_eq!(states_in_dir(&fake), want);
    // and shrinks back: its mount unit goes (the replaced state declared it), A's stays
    let r = converge(&mut fake, &small);
    let mut removed: Vec<String> = r
        .plan
        .iter()
        .filter(|s| s.action == "remove_file")
        .map(|s| s.target.clone())
        .collect();
    removed.sort();
    let mut want = vec![
        format!("{UNIT_DIR}/local-fs.target.wants/mnt-b.mount"),
        format!("{UNIT_DIR}/mnt-b.mount"),
        state_file(&big),
    ];
    want.sort();
    assert_eq!(removed, want, "{:?}", r.plan);
    assert_eq!(own_files(&fake, &a, "mnt-a.mount"), a_files, "A's files");
    unchanged(&mut fake, &a, "A");
}

#[test]
fn the_single_state_of_an_earlier_version_is_replayed_then_migrated_by_its_task() {
    let mut fake = FakeSystem::fresh_dimms(4, DIMM);
    let (a, b) = (stack_a(), stack_b());
    converge(&mut fake, &a);
    // make it what an earlier version left: /etc/pmem-stack/state.json, a service that
    // replays that file, units whose marker names it
    let old_marker =
        "# Generated by pmem_stack; do not edit (it is rewritten from /etc/pmem-stack/state.json).";
    let own = state_file(&a);
    for f in &mut fake.state.files {
        if f.path == own {
            f.path = LEGACY_STATE_FILE.to_string();
        }
        if let FileContent::Text { text } = &mut f.content {
            if let Some(rest) = text.strip_prefix(MARKER) {
                *text = format!("{old_marker}{rest}");
            }
            *text = text.replace(
                "ExecStart=/usr/local/sbin/pmem_stack --boot\n",
                "ExecStart=/usr/local/sbin/pmem_stack --boot /etc/pmem-stack/state.json\n",
            );
        }
    }
    let old_a_unit = fake.state.file(&format!("{UNIT_DIR}/mnt-a.mount")).cloned();
    let legacy = fake.state.file(LEGACY_STATE_FILE).cloned();
    assert!(legacy.is_some() && states_in_dir(&fake).is_empty());

    // another task persists its stack: the legacy state and A's unit are A's, untouched
    // (the shared service is rewritten to replay every saved state)
    let r = converge(&mut fake, &b);
    assert!(
        !actions(&r).contains(&"remove_file".to_string()),
        "{:?}",
        r.plan
    );
    assert_eq!(fake.state.file(LEGACY_STATE_FILE).cloned(), legacy);
    assert_eq!(
        fake.state.file(&format!("{UNIT_DIR}/mnt-a.mount")).cloned(),
        old_a_unit
    );
    assert!(text(&fake, &format!("{UNIT_DIR}/pmem-stack.service"))
        .contains("ExecStart=/usr/local/sbin/pmem_stack --boot\n"));
    unchanged(&mut fake, &b, "B");

    // a reboot: the legacy state is replayed first, then B's
    fake.reboot();
    let states = fake.saved_states();
    assert_eq!(states[0].0, LEGACY_STATE_FILE);
    assert_eq!(states[1].0, state_file(&b));
    let r = pmem_stack::replay(&states, &mut fake);
    assert!(!r.failed, "{}", r.msg);
    assert!(mounted(&fake, "/mnt/a") && mounted(&fake, "/mnt/b"));

    // A's own task migrates its state into state.d (and rewrites its unit's marker)
    let r = converge(&mut fake, &a);
    let a_plan: Vec<(String, String)> = r
        .plan
        .iter()
        .map(|s| (s.action.clone(), s.target.clone()))
        .collect();
    assert!(
        a_plan.contains(&("write_file".into(), own.clone()))
            && a_plan.contains(&("remove_file".into(), LEGACY_STATE_FILE.into()))
            && a_plan.contains(&("write_file".into(), format!("{UNIT_DIR}/mnt-a.mount"))),
        "{a_plan:?}"
    );
    assert!(fake.state.file(LEGACY_STATE_FILE).is_none());
    let mut want = vec![own.clone(), state_file(&b)];
    want.sort();
    assert_eq!(states_in_dir(&fake), want);
    unchanged(&mut fake, &b, "B");
    unchanged(&mut fake, &a, "A");
}

#[test]
fn a_legacy_state_is_torn_down_by_its_task_alone() {
    let mut fake = FakeSystem::fresh_dimms(4, DIMM);
    let (a, b) = (stack_a(), stack_b());
    converge(&mut fake, &a);
    converge(&mut fake, &b);
    let own = state_file(&a);
    for f in &mut fake.state.files {
        if f.path == own {
            f.path = LEGACY_STATE_FILE.to_string();
        }
    }
    let b_files = own_files(&fake, &b, "mnt-b.mount");
    let r = converge(&mut fake, &absent(&a));
    assert!(
        r.plan
            .iter()
            .any(|s| s.action == "remove_file" && s.target == LEGACY_STATE_FILE),
        "{:?}",
        r.plan
    );
    assert!(fake.state.file(LEGACY_STATE_FILE).is_none());
    assert!(fake
        .state
        .file(&format!("{UNIT_DIR}/mnt-a.mount"))
        .is_none());
    assert_eq!(own_files(&fake, &b, "mnt-b.mount"), b_files, "B's files");
    assert!(
        fake.state.file(BINARY).is_some(),
        "B still needs the binary"
    );
    unchanged(&mut fake, &b, "B");
}

#[test]
fn an_unreadable_saved_state_is_left_alone_and_does_not_stop_the_others() {
    let mut fake = FakeSystem::fresh_dimms(4, DIMM);
    let (a, b) = (stack_a(), stack_b());
    converge(&mut fake, &a);
    converge(&mut fake, &b);
    let junk = format!("{STATE_DIR}/000-junk.json");
    fake.state.files.push(FileState {
        path: junk.clone(),
        content: FileContent::Text {
            text: "not json".into(),
        },
        mode: Some(0o600),
    });
    unchanged(&mut fake, &a, "A");
    unchanged(&mut fake, &b, "B");
    fake.reboot();
    let states = fake.saved_states();
    assert_eq!(states[0].0, junk, "replayed in name order");
    let r = pmem_stack::replay(&states, &mut fake);
    assert!(r.failed && r.msg.contains(&junk), "{}", r.msg);
    assert!(
        mounted(&fake, "/mnt/a") && mounted(&fake, "/mnt/b"),
        "the others came back: {}",
        r.msg
    );
    // torn down, a task leaves the junk (and so the service and binary) in place
    converge(&mut fake, &absent(&a));
    converge(&mut fake, &absent(&b));
    assert!(fake.state.file(&junk).is_some());
    assert!(fake.state.file(BINARY).is_some());
}

#[test]
fn the_boot_replay_with_no_saved_state_does_nothing() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    let r = pmem_stack::replay(&fake.saved_states(), &mut fake);
    assert!(!r.failed && !r.changed, "{}", r.msg);
    assert!(r.msg.contains("nothing to replay"), "{}", r.msg);
}
