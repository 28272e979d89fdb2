//! Boot persistence and teardown on the fake system: the files written (and only when
//! they differ), a simulated reboot replayed by identity, `state: absent`.

mod common;

use common::*;
use pmem_stack::actual::FileContent;
use pmem_stack::boot::{declared_objects, replay_args, state_path_for, BINARY, UNIT_DIR};
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
