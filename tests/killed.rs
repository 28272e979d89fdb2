//! Runs stopped in the middle of a step (a SIGKILL from Ansible's timeout, the OOM
//! killer, Ctrl-C), on the fake system: no half-done step is taken for a done one, and
//! the next run converges. The real kernel's side is tests/vm/guest/kills.sh.

mod common;

use common::*;
use pmem_stack::actual::{Filesystem, Namespace, Uncleared};
use pmem_stack::args::NamespaceMode;
use pmem_stack::system::fake::FakeSystem;
use pmem_stack::units::Bytes;
use serde_json::json;

/// The xfs a destroyed stack left on the media, which ndctl does not clear.
fn old_xfs() -> Filesystem {
    Filesystem {
        device: pmem_stack::actual::Devno { major: 0, minor: 0 },
        fstype: "xfs".into(),
        uuid: Some("0ld00000-0000-4000-8000-000000000000".into()),
        label: Some("old".into()),
        block_size: Some(Bytes(4096)),
        stripe_unit: Some(512),
        stripe_width: Some(1024),
        reflink: Some(false),
        size: None,
        incomplete: false,
    }
}

#[test]
fn a_namespace_killed_before_its_clearing_is_cleared_by_the_next_run() {
    for k in 1..=2 {
        let mut fake = FakeSystem::fresh_dimms(2, DIMM);
        fake.left_on_media = Some(old_xfs());
        fake.kill_mid_op = Some(k);
        let r = run(&mut fake, &striped_xfs());
        assert!(r.failed, "k={k}: the killed run fails: {}", r.msg);
        let name = format!("pm{}", k - 1);
        let ns = fake.state.namespace_named(&name).expect("ndctl made it");
        assert!(
            fake.state.is_uncleared(ns),
            "k={k}: its marker is still there"
        );
        let (devno, _) = ns_block(&fake, &name);
        assert!(
            fake.state
                .filesystems
                .iter()
                .any(|f| f.device.to_string() == devno && f.label.as_deref() == Some("old")),
            "k={k}: the old xfs shows through the new namespace"
        );
        fake.kill_mid_op = None;
        let r = converge(&mut fake, &striped_xfs());
        let acts = actions(&r);
        assert!(
            acts.contains(&"clear_namespace".to_string()),
            "k={k}: the re-run clears {name} first: {acts:?}"
        );
        assert!(
            !r.plan.iter().any(|s| s.destructive),
            "k={k}: stale content is not data: {:?}",
            r.plan
        );
        assert!(fake.state.uncleared.is_empty(), "k={k}: markers dropped");
        let dm = fake.state.dm("pmem-striped").expect("dm");
        let fs = fake.state.filesystem(dm.devno).expect("fs");
        assert_eq!(fs.label.as_deref(), Some("pmemfs"), "k={k}: a new xfs");
        assert!(
            !fake
                .state
                .filesystems
                .iter()
                .any(|f| f.label.as_deref() == Some("old")),
            "k={k}: nothing of the old xfs is left"
        );
    }
}

/// The namespace named pm0, to alter.
fn pm0(fake: &mut FakeSystem) -> &mut Namespace {
    fake.state
        .namespaces
        .iter_mut()
        .find(|n| n.name.as_deref() == Some("pm0"))
        .expect("pm0")
}

/// A machine whose pm0 is disabled (labels written, never enabled: no block device).
fn with_disabled_pm0(ours: bool) -> FakeSystem {
    let mut fake = FakeSystem::with_fsdax(2, DIMM);
    let ns = pm0(&mut fake);
    let blk = ns.blockdev.take().expect("block device");
    ns.mode = NamespaceMode::Raw;
    ns.align = None;
    ns.map = None;
    let uuid = ns.uuid.clone().expect("uuid");
    fake.state.block_devices.retain(|b| b.name != blk);
    if ours {
        fake.state.uncleared.push(Uncleared {
            uuid,
            name: "pm0".into(),
        });
    }
    fake
}

#[test]
fn a_disabled_namespace_left_by_a_killed_run_is_made_again() {
    let mut fake = with_disabled_pm0(true);
    let r = converge(&mut fake, &striped_xfs());
    assert_eq!(actions(&r)[0], "reconfigure_namespace");
    assert_detail(&r, 0, |d| d.contains("disabled"));
    assert!(!r.plan[0].destructive);
    assert!(fake.state.uncleared.is_empty());
}

#[test]
fn a_disabled_namespace_not_ours_is_reconfigured_only_with_allow_data_loss() {
    let mut fake = with_disabled_pm0(false);
    let before = fake.state.clone();
    let r = run(&mut fake, &striped_xfs());
    assert!(r.failed);
    assert!(
        r.msg.contains("is disabled") && r.msg.contains("allow_data_loss"),
        "{}",
        r.msg
    );
    assert_eq!(fake.state, before, "nothing changed");
    let r = converge(&mut fake, &allowing_data_loss(&striped_xfs()));
    assert_eq!(actions(&r)[0], "reconfigure_namespace");
    assert!(r.plan[0].destructive);
}

#[test]
fn a_nameless_namespace_of_ours_is_reused_and_a_foreign_one_left_alone() {
    let mut fake = FakeSystem::with_fsdax(2, DIMM);
    let ns = pm0(&mut fake);
    ns.name = None;
    let uuid = ns.uuid.clone().expect("uuid");
    let dev = ns.dev.clone();
    // not ours: the nameless namespace is foreign, pm0 is created anew (and the region
    // has no room left for it)
    run_fails(&mut fake, &striped_xfs(), &["region0 has 0 available"]);
    // ours: reused in place, with its name
    fake.state.uncleared.push(Uncleared {
        uuid,
        name: "pm0".into(),
    });
    let r = converge(&mut fake, &striped_xfs());
    assert_eq!(actions(&r)[0], "reconfigure_namespace");
    assert!(r.plan[0].target.contains(&dev), "{}", r.plan[0].target);
    assert!(r.plan[0].detail.contains("left without its name"));
    assert_eq!(
        fake.state.namespace_named("pm0").map(|n| n.dev.clone()),
        Some(dev)
    );
}

/// The stack converged, then left as a stopped run leaves its dm device: `state` says
/// what the ioctls had done (`"created"`: no table loaded; `"loaded"`: a table loaded,
/// none live; `"suspended"`: table live, device suspended), with the filesystem
/// unmounted. The first two: the device removed (its xfs stays on the members), then
/// made again by a run killed between the table load and the resume.
fn dm_left(state: &str) -> FakeSystem {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &striped_xfs());
    fake.state.mounts.clear();
    let dm = fake.state.dm("pmem-striped").expect("dm").clone();
    if state == "suspended" {
        if let Some(slot) = fake.state.dm_devices.iter_mut().find(|d| d.name == dm.name) {
            slot.suspended = true;
        }
        return fake;
    }
    let remove = pmem_stack::system::Op::DmRemove {
        name: dm.name.clone(),
    };
    pmem_stack::system::System::execute(&mut fake, &remove).expect("removed");
    fake.kill_mid_op = Some(fake.executed.len() + 1);
    let r = run(&mut fake, &striped_xfs());
    assert!(r.failed, "the killed run fails: {}", r.msg);
    fake.kill_mid_op = None;
    let dm = fake.state.dm("pmem-striped").expect("dm made").clone();
    assert!(dm.table.is_empty(), "no table live: {:?}", dm.table);
    let disk = fake
        .state
        .block(dm.devno)
        .expect("the disk came with the table load");
    assert_eq!(disk.size.0, 0, "a disk with no size");
    if state == "created" {
        // no table loaded: nothing holds the members, and the kernel adds a dm
        // device's disk only with its first table
        for b in &mut fake.state.block_devices {
            b.holders.clear();
        }
        fake.state.block_devices.retain(|b| b.devno != dm.devno);
    }
    fake
}

#[test]
fn a_dm_device_left_without_a_live_table_is_loaded_and_its_data_kept() {
    for state in ["created", "loaded"] {
        a_dm_device_left(state);
    }
}

fn a_dm_device_left(state: &str) {
    let mut fake = dm_left(state);
    let r = converge(&mut fake, &striped_xfs());
    let acts = actions(&r);
    assert_eq!(acts[0], "reload_dm", "{acts:?}");
    assert!(!r.plan.iter().any(|s| s.destructive), "{:?}", r.plan);
    // the members still hold the xfs: the mkfs is conditional and skipped
    assert!(
        r.skipped_steps.iter().any(|s| s.step.action == "mkfs"),
        "{:?} / {:?}",
        r.plan,
        r.skipped_steps
    );
}

#[test]
fn a_suspended_dm_device_of_the_stack_is_resumed() {
    let mut fake = dm_left("suspended");
    let r = converge(&mut fake, &striped_xfs());
    let acts = actions(&r);
    assert_eq!(acts[0], "reload_dm", "{:?}", r.plan);
    // nothing on it could be read while suspended: the mkfs is conditional, and skipped
    // once the device is back and shows its xfs
    assert!(
        r.skipped_steps.iter().any(|s| s.step.action == "mkfs"),
        "{:?}",
        r.skipped_steps
    );
    assert!(acts.contains(&"mount".to_string()));
    assert!(r.plan[0].detail.starts_with("resume pmem-striped"));
    assert!(!fake.state.dm("pmem-striped").expect("dm").suspended);
}

/// The machine's stack as a comparable summary: dm tables, mounts with their DAX, the
/// filesystems with their geometry and label by the path of their device, partition
/// entries, and each dm device's largest I/O.
fn stack_summary(fake: &FakeSystem) -> Vec<String> {
    let a = &fake.state;
    let path = |d: pmem_stack::actual::Devno| {
        a.block(d)
            .map(|b| b.path.clone())
            .unwrap_or_else(|| d.to_string())
    };
    let mut v: Vec<String> = a
        .dm_devices
        .iter()
        .map(|d| {
            format!(
                "dm {} {:?} suspended={} max_sectors_kb={:?}",
                d.name,
                table(fake, &d.name),
                d.suspended,
                a.block(d.devno).and_then(|b| b.max_sectors_kb)
            )
        })
        .collect();
    v.extend(
        a.mounts
            .iter()
            .map(|m| format!("mount {} {} {:?}", m.target, m.source, m.dax)),
    );
    v.extend(a.filesystems.iter().map(|f| {
        format!(
            "fs {} {} {:?} bs={:?} su={:?} sw={:?}",
            path(f.device),
            f.fstype,
            f.label,
            f.block_size,
            f.stripe_unit,
            f.stripe_width
        )
    }));
    v.extend(a.partition_tables.iter().flat_map(|t| {
        t.partitions.iter().map(move |p| {
            format!(
                "gpt {} {} {} {}+{}",
                path(t.disk),
                p.number,
                p.name,
                p.start,
                p.size
            )
        })
    }));
    v.extend(
        a.block_devices
            .iter()
            .filter(|b| b.partition.is_some())
            .map(|b| format!("partition {}", b.path)),
    );
    v.sort();
    v
}

/// A run killed at any one of its operations, half-way where the real operation can be
/// left half-done (a namespace made and not cleared, a dm table loaded and not resumed,
/// a reload suspended, mkfs or a new GPT with the old content wiped and the new one
/// incomplete, a GPT entry the kernel was not told of), then run again, ends with the
/// stack a run never killed makes.
#[test]
fn a_run_killed_at_any_operation_is_finished_by_the_next_run() {
    let mut partitioned = json!({
        "namespaces": fsdax(0..1),
        "partitions": [{"name": "pmemdata", "disk": "pm0", "start": "2M", "size": "256M"}],
        "filesystems": [{"device": "pmemdata", "type": "ext4", "label": "data"}],
        "mounts": [{"path": "/mnt/data", "device": "pmemdata"}]
    });
    partitioned["verify_pmd"] = json!(true);
    let mut striped = striped_xfs();
    striped["verify_pmd"] = json!(true);
    for args in [striped, partitioned] {
        let mut clean = FakeSystem::fresh_dimms(2, DIMM);
        converge(&mut clean, &args);
        let want = stack_summary(&clean);
        let n = clean.mutations();
        for k in 1..=n {
            let mut fake = FakeSystem::fresh_dimms(2, DIMM);
            fake.kill_mid_op = Some(k);
            let r = run(&mut fake, &args);
            assert!(r.failed, "k={k}: the killed run fails");
            let killed = fake.executed.len();
            fake.kill_mid_op = None;
            let r = run(&mut fake, &args);
            assert!(
                !r.failed,
                "k={k} ({:?}): the next run finishes: {}",
                clean.executed.get(k - 1).map(|o| format!("{o:?}")),
                r.msg
            );
            assert_eq!(
                stack_summary(&fake),
                want,
                "k={k} (killed after {killed} ops): the stack a clean run makes"
            );
            let again = run(&mut fake, &args);
            assert!(!again.changed, "k={k}: then converged: {:?}", again.plan);
        }
    }
}
