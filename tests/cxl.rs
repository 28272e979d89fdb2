//! CXL regions on the fake system: a region assembled from memory devices by serial,
//! the stack on it, a reboot (decoders reset) replayed, firmware regions left alone,
//! regions in the way refused or taken apart, a stopped `cxl create-region`, teardown.

mod common;

use common::*;
use pmem_stack::op::Op;
use pmem_stack::plan::replay::replay_args;
use pmem_stack::system::fake::FakeSystem;
use serde_json::{json, Value};

const MEMDEV: pmem_stack::units::Bytes = pmem_stack::units::Bytes(512 << 20);

/// A 2-way region `cx0` over serials 2 then 1, an fsdax namespace on it, xfs, DAX mount.
fn cxl_stack() -> Value {
    json!({
        "cxl_regions": [{"name": "cx0", "memdevs": ["0x2", 1]}],
        "namespaces": [{"name": "pm0", "region": "cx0", "mode": "fsdax"}],
        "filesystems": [{"device": "pm0", "type": "xfs"}],
        "mounts": [{"path": "/mnt/cx", "device": "pm0", "dax": "always"}]
    })
}

/// The plan of the stack over a region in the way taken apart (nothing on it).
const REMADE: [&str; 6] = [
    "destroy_cxl_region",
    "create_cxl_region",
    "create_namespace",
    "mkfs",
    "mount",
    "set_extsize",
];

/// A run with `args` has nothing to do.
fn settled(fake: &mut FakeSystem, args: &Value) {
    let again = run(fake, args);
    assert!(
        !again.failed && !again.changed,
        "{} {:?}",
        again.msg,
        again.plan
    );
}

fn cxl_ops(fake: &FakeSystem) -> Vec<Op> {
    fake.executed
        .iter()
        .filter(|op| matches!(op, Op::CreateCxlRegion { .. } | Op::DestroyCxlRegion { .. }))
        .cloned()
        .collect()
}

fn region_members(fake: &FakeSystem) -> Vec<Vec<Option<u64>>> {
    fake.state
        .cxl
        .regions
        .iter()
        .map(|r| r.members.iter().map(|m| m.serial).collect())
        .collect()
}

#[test]
fn a_stack_on_a_cxl_region_from_nothing() {
    let mut fake = FakeSystem::cxl_memdevs(2, MEMDEV);
    let r = converge(&mut fake, &cxl_stack());
    assert_eq!(
        actions(&r),
        [
            "create_cxl_region",
            "create_namespace",
            "mkfs",
            "mount",
            "set_extsize"
        ]
    );
    assert_eq!(r.plan[0].target, "CXL region cx0 (0x2, 0x1)");
    assert!(r.plan[1].target.contains("region0"), "{:?}", r.plan[1]);
    assert!(
        r.plan[1].detail.contains("on CXL region cx0"),
        "{:?}",
        r.plan[1]
    );
    // by serial, in the declared order: mem1 is serial 2
    assert_eq!(
        cxl_ops(&fake),
        [Op::CreateCxlRegion {
            decoder: "decoder0.0".into(),
            memdevs: vec!["mem1".into(), "mem0".into()],
            granularity: None,
            size: None,
        }]
    );
    assert_eq!(region_members(&fake), [vec![Some(2), Some(1)]]);
    let ns = fake.state.namespace_named("pm0").expect("made");
    assert_eq!(
        Some(ns.region.as_str()),
        fake.state.cxl.regions[0].nvdimm_region.as_deref()
    );
    assert!(fake.state.mount_at("/mnt/cx").is_some());
}

/// The diff shows the region as declared against nothing, and nothing once it is made
/// (what is not declared reads as what the region found has).
#[test]
fn the_diff_shows_the_cxl_region() {
    let mut fake = FakeSystem::cxl_memdevs(2, MEMDEV);
    let c = check(&mut fake, &cxl_stack());
    let d = serde_json::to_value(&c.diff).expect("json");
    let item = d
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|i| i["after_header"] == "CXL region cx0 (after)")
        })
        .unwrap_or_else(|| panic!("no CXL region in {d}"));
    assert_eq!(item["before"], "");
    assert_eq!(
        item["after"],
        "memdevs: 0x2, 0x1\nroot_decoder: (the first with room)\nsize: (all the memory devices have)\ngranularity: (the root decoder's)\n"
    );
    converge(&mut fake, &cxl_stack());
    let c = check(&mut fake, &cxl_stack());
    assert!(c.diff.as_ref().is_none_or(|d| d.is_empty()), "{:?}", c.diff);
    // torn down, it goes
    let t = check(&mut fake, &allowing_data_loss(&tearing_down(&cxl_stack())));
    let d = serde_json::to_value(&t.diff).expect("json").to_string();
    assert!(
        d.contains("CXL region cx0 (before)") && d.contains("memdevs: 0x2, 0x1"),
        "{d}"
    );
}

#[test]
fn the_argv_of_the_cxl_ops() {
    let op = Op::CreateCxlRegion {
        decoder: "decoder0.0".into(),
        memdevs: vec!["mem1".into(), "mem0".into()],
        granularity: Some(256),
        size: Some(pmem_stack::units::Bytes(1 << 30)),
    };
    assert_eq!(
        pmem_stack::system::argv::command_line(&op)
            .expect("a command")
            .join(" "),
        "cxl create-region -t pmem -m -d decoder0.0 -w 2 -g 256 -s 1073741824 mem1 mem0"
    );
    let op = Op::DestroyCxlRegion {
        region: "region3".into(),
    };
    assert_eq!(
        pmem_stack::system::argv::command_line(&op)
            .expect("a command")
            .join(" "),
        "cxl destroy-region -f region3"
    );
}

#[test]
fn a_reboot_is_replayed_by_assembling_the_region_again_and_the_data_is_intact() {
    let mut fake = FakeSystem::cxl_memdevs(2, MEMDEV);
    let mut args = cxl_stack();
    converge(&mut fake, &args);
    let fs_uuid = {
        let ns = fake.state.namespace_named("pm0").expect("made");
        let bd = fake
            .state
            .block_named(ns.blockdev.as_deref().expect("a disk"))
            .expect("its disk");
        fake.state.filesystem(bd.devno).expect("xfs").uuid.clone()
    };
    fake.reboot();
    assert!(fake.state.cxl.regions.is_empty(), "the decoders are reset");
    assert!(fake.state.namespace_named("pm0").is_none());
    args["boot"] = json!({"persist": false});
    let replay = replay_args(&args.to_string()).expect("replay args");
    let n0 = fake.mutations();
    let r = pmem_stack::run_replay(&replay, &mut fake);
    assert!(!r.failed, "{}", r.msg);
    // the namespace came back from its labels: nothing made on the media
    assert_eq!(actions(&r), ["create_cxl_region", "mount", "set_extsize"]);
    assert!(
        fake.executed[n0..]
            .iter()
            .all(|op| !matches!(op, Op::CreateNamespace { .. } | Op::Mkfs { .. })),
        "{:?}",
        &fake.executed[n0..]
    );
    let ns = fake
        .state
        .namespace_named("pm0")
        .expect("back from its labels");
    let bd = fake
        .state
        .block_named(ns.blockdev.as_deref().expect("a disk"))
        .expect("its disk");
    assert_eq!(
        fake.state.filesystem(bd.devno).expect("xfs").uuid,
        fs_uuid,
        "the same filesystem"
    );
    // and a run after it has nothing to do
    settled(&mut fake, &cxl_stack());
}

#[test]
fn a_replay_with_a_memory_device_gone_fails_naming_it_and_does_nothing() {
    let mut fake = FakeSystem::cxl_memdevs(2, MEMDEV);
    converge(&mut fake, &cxl_stack());
    fake.reboot();
    fake.state.cxl.memdevs.retain(|m| m.serial != Some(1));
    let n0 = fake.mutations();
    let r = pmem_stack::run_replay(
        &replay_args(&cxl_stack().to_string()).expect("args"),
        &mut fake,
    );
    assert!(r.failed);
    assert_msg(&r, &["cx0", "serial 0x1 not found", "mem1 0x2"]);
    assert_eq!(fake.mutations(), n0);
}

#[test]
fn check_mode_before_a_reboot_replay_takes_the_region_for_blank_and_says_so() {
    let mut fake = FakeSystem::cxl_memdevs(2, MEMDEV);
    converge(&mut fake, &cxl_stack());
    fake.reboot();
    let before = fake.state.clone();
    let c = check(&mut fake, &cxl_stack());
    assert!(!c.failed, "{}", c.msg);
    assert_eq!(fake.state, before);
    assert_warned(&c, |w| {
        w.contains("cx0 is not assembled yet") && w.contains("plans again")
    });
    // the real run makes the region, then plans again: the namespace is back
    let r = run(&mut fake, &cxl_stack());
    assert!(!r.failed, "{}", r.msg);
    assert_eq!(actions(&r), ["create_cxl_region", "mount", "set_extsize"]);
}

#[test]
fn a_region_set_up_by_firmware_is_never_taken_apart() {
    let mut fake = FakeSystem::cxl_memdevs(2, MEMDEV);
    // firmware assembled serial 1 alone and locked it
    let one = json!({"cxl_regions": [{"name": "fw", "memdevs": [1]}]});
    converge(&mut fake, &one);
    fake.state.cxl.regions[0].locked = true;
    let n0 = fake.mutations();
    let r = run(&mut fake, &allowing_data_loss(&cxl_stack()));
    assert!(r.failed);
    assert_msg(
        &r,
        &["set up by firmware", "not this module's to take apart"],
    );
    assert_eq!(fake.mutations(), n0);
    // declared as it is, it is the declared one: nothing to do
    let r = run(&mut fake, &one);
    assert!(!r.failed && !r.changed, "{} {:?}", r.msg, r.plan);
    // and a teardown leaves it
    let r = run(&mut fake, &allowing_data_loss(&tearing_down(&one)));
    assert!(!r.failed && !r.changed, "{} {:?}", r.msg, r.plan);
}

#[test]
fn a_region_in_the_way_with_namespaces_is_refused_without_allow_data_loss() {
    let mut fake = FakeSystem::cxl_memdevs(2, MEMDEV);
    // the same devices the other way round, with a namespace and xfs on it
    let mut other = cxl_stack();
    other["cxl_regions"][0]["memdevs"] = json!([1, 2]);
    converge(&mut fake, &other);
    refused_alike(
        &fake,
        &cxl_stack(),
        "the region the other way round",
        &[
            "destroying CXL region region0 for cx0",
            "its members are 0x1, 0x2, not 0x2, 0x1",
            "namespace pm0",
            "xfs",
            "allow_data_loss",
        ],
    );
    // allowed: what is on it goes first, then the region, then it is made as declared
    let r = run(&mut fake, &allowing_data_loss(&cxl_stack()));
    assert!(!r.failed, "{}", r.msg);
    assert_eq!(
        actions(&r),
        [
            "umount",
            "destroy_namespace",
            "destroy_cxl_region",
            "create_cxl_region",
            "create_namespace",
            "mkfs",
            "mount",
            "set_extsize"
        ]
    );
    assert!(r
        .plan
        .iter()
        .any(|p| p.action == "destroy_cxl_region" && p.destructive));
    assert_eq!(region_members(&fake), [vec![Some(2), Some(1)]]);
    settled(&mut fake, &cxl_stack());
}

#[test]
fn an_empty_region_in_the_way_is_taken_apart_without_allow_data_loss() {
    let mut fake = FakeSystem::cxl_memdevs(2, MEMDEV);
    converge(
        &mut fake,
        &json!({"cxl_regions": [{"name": "cx0", "memdevs": [1, 2]}]}),
    );
    let r = converge(&mut fake, &cxl_stack());
    assert_eq!(actions(&r), REMADE);
    assert!(r.plan.iter().all(|p| !p.destructive), "{:?}", r.plan);
}

#[test]
fn a_stopped_cxl_create_region_is_taken_apart_and_made_again() {
    let mut fake = FakeSystem::cxl_memdevs(2, MEMDEV);
    fake.kill_mid_op = Some(1);
    let r = run(&mut fake, &cxl_stack());
    assert!(r.failed);
    assert_eq!(fake.state.cxl.regions.len(), 1);
    assert!(!fake.state.cxl.regions[0].committed, "left half-made");
    fake.kill_mid_op = None;
    let r = run(&mut fake, &cxl_stack());
    assert!(!r.failed, "{}", r.msg);
    assert_eq!(actions(&r), REMADE);
    assert!(r.plan.iter().all(|p| !p.destructive), "{:?}", r.plan);
    assert!(r.plan[0].detail.contains("half-made"), "{:?}", r.plan[0]);
    let again = run(&mut fake, &cxl_stack());
    assert!(!again.failed && !again.changed);
}

#[test]
fn a_run_killed_at_any_operation_of_a_cxl_stack_is_finished_by_the_next_run() {
    let steps = {
        let mut fake = FakeSystem::cxl_memdevs(2, MEMDEV);
        run(&mut fake, &cxl_stack()).done.len()
    };
    for k in 1..=steps {
        let mut fake = FakeSystem::cxl_memdevs(2, MEMDEV);
        fake.kill_mid_op = Some(k);
        let r = run(&mut fake, &cxl_stack());
        assert!(r.failed, "k={k}");
        fake.kill_mid_op = None;
        let r = run(&mut fake, &cxl_stack());
        assert!(!r.failed, "k={k}: {}", r.msg);
        assert!(r.plan.iter().all(|p| !p.destructive), "k={k}: {:?}", r.plan);
        let again = run(&mut fake, &cxl_stack());
        assert!(!again.failed && !again.changed, "k={k}: {:?}", again.plan);
        assert!(fake.state.mount_at("/mnt/cx").is_some(), "k={k}");
    }
}

#[test]
fn a_missing_memory_device_or_decoder_is_refused_naming_it() {
    let mut fake = FakeSystem::cxl_memdevs(1, MEMDEV);
    let r = run_fails(
        &mut fake,
        &cxl_stack(),
        &["cxl_regions[0] (cx0)", "serial 0x2 not found", "mem0 0x1"],
    );
    assert!(r.plan.is_empty());
    let mut args =
        json!({"cxl_regions": [{"name": "cx0", "memdevs": [1], "root_decoder": "decoder9.0"}]});
    run_fails(
        &mut fake,
        &args,
        &["root decoder decoder9.0 not found", "decoder0.0"],
    );
    let mut two = FakeSystem::cxl_memdevs(2, MEMDEV);
    args = json!({"cxl_regions": [{"name": "cx0", "memdevs": [1, 2], "granularity": 512}]});
    run_fails(
        &mut two,
        &args,
        &["granularity 512 B", "256 B (decoder0.0)"],
    );
    let mut none = FakeSystem::fresh_dimms(1, MEMDEV);
    run_fails(
        &mut none,
        &cxl_stack(),
        &["no CXL memory device", "modprobe -a cxl_acpi"],
    );
    assert_eq!(none.mutations(), 0);
}

#[test]
fn bad_cxl_arguments_name_their_fields() {
    let mut fake = FakeSystem::cxl_memdevs(2, MEMDEV);
    let args = json!({
        "cxl_regions": [
            {"name": "region1", "memdevs": [1, 1, 2, 3, 4]},
            {"name": "ok", "memdevs": [], "granularity": 300, "size": "100M", "root_decoder": "d0"},
            {"name": "z", "memdevs": ["0xzz"], "type": "ram"}
        ],
        "namespaces": [{"name": "pm0", "region": "nope", "mode": "fsdax"}]
    });
    let r = run(&mut fake, &args);
    assert!(r.failed);
    let v = serde_json::to_value(&r).expect("json");
    let text = v.to_string();
    for path in [
        "cxl_regions[0].name",
        "cxl_regions[0].memdevs",
        "cxl_regions[0].memdevs[1]",
        "cxl_regions[1].memdevs",
        "cxl_regions[1].granularity",
        "cxl_regions[1].size",
        "cxl_regions[1].root_decoder",
        "cxl_regions[2].memdevs[0]",
        "cxl_regions[2].type",
    ] {
        assert!(text.contains(path), "{path} not in {text}");
    }
    assert_eq!(fake.mutations(), 0);
    // once the CXL regions read, a namespace naming none of them is named too
    let args = json!({
        "cxl_regions": [{"name": "cx0", "memdevs": [1]}],
        "namespaces": [{"name": "pm0", "region": "nope", "mode": "fsdax"}]
    });
    let r = run(&mut fake, &args);
    assert!(r.failed);
    let text = serde_json::to_value(&r).expect("json").to_string();
    assert!(
        text.contains("namespaces[0].region") && text.contains("cx0"),
        "{text}"
    );
}

#[test]
fn teardown_destroys_the_region_once_its_namespaces_are_gone() {
    let mut fake = FakeSystem::cxl_memdevs(2, MEMDEV);
    converge(&mut fake, &cxl_stack());
    // without allow_data_loss the namespace and the region stay
    let r = run(&mut fake, &tearing_down(&cxl_stack()));
    assert!(!r.failed, "{}", r.msg);
    assert_eq!(actions(&r), ["umount"]);
    assert_warned(&r, |w| w.contains("CXL region cx0 (region0) left in place"));
    let r = run(&mut fake, &allowing_data_loss(&tearing_down(&cxl_stack())));
    assert!(!r.failed, "{}", r.msg);
    assert_eq!(actions(&r), ["destroy_namespace", "destroy_cxl_region"]);
    assert!(fake.state.cxl.regions.is_empty());
    assert!(fake.state.regions.is_empty());
    let again = run(&mut fake, &allowing_data_loss(&tearing_down(&cxl_stack())));
    assert!(!again.failed && !again.changed, "{:?}", again.plan);
}
