//! Scenario tests: snapshot before + arguments -> expected plan and after-state, every
//! scenario applied twice (the second plan empty), on the fake system.

mod common;

use common::*;
use pmem_stack::actual::{BlockDevice, Devno, DmDevice, Filesystem, Missing, Mount, NsMount};
use pmem_stack::report::ModuleResult;
use pmem_stack::system::fake::FakeSystem;
use pmem_stack::system::{Op, System};
use pmem_stack::units::Sectors;
use serde_json::{json, Value};

fn linear_ext4() -> Value {
    dm_stack(0..2, "linear", "pmem-linear", "ext4", "/mnt/pmem")
}

#[test]
fn striped_recipe_from_fresh_dimms() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    let r = converge(&mut fake, &striped_xfs());
    assert_eq!(actions(&r), STRIPED_XFS_STEPS);
    let (d0, s0) = ns_block(&fake, "pm0");
    let (d1, s1) = ns_block(&fake, "pm1");
    let per = s0.min(s1) / 4096 * 4096;
    assert_eq!(
        table(&fake, "pmem-striped"),
        vec![format!("0 {} striped 2 4096 {d0} 0 {d1} 0", 2 * per)]
    );
    let fs = dm_filesystem(&fake, "pmem-striped");
    assert_eq!(
        (
            fs.fstype.as_str(),
            fs.stripe_unit,
            fs.stripe_width,
            fs.reflink
        ),
        ("xfs", Some(512), Some(1024), Some(false))
    );
    let m = fake.state.mount_at("/mnt/pmem").expect("mounted");
    assert_eq!(m.dax, Some(pmem_stack::args::DaxMode::Always));
    assert!(m.options.contains(&"noatime".to_string()));
    assert_eq!(
        m.root_extsize.map(|e| (e.size.0, e.inherit)),
        Some((2 << 20, true))
    );
    // the mkfs step carries the DAX geometry
    assert_detail(&r, 3, |d| {
        d.starts_with("mkfs.xfs -q -f -m reflink=0 -d su=2m,sw=2 -L pmemfs")
    });
}

#[test]
fn linear_recipe_from_fresh_dimms() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    let r = converge(&mut fake, &linear_ext4());
    assert_eq!(
        actions(&r),
        [
            "reconfigure_namespace",
            "reconfigure_namespace",
            "create_dm",
            "mkfs",
            "mount"
        ]
    );
    let (d0, s0) = ns_block(&fake, "pm0");
    let (d1, s1) = ns_block(&fake, "pm1");
    assert_eq!(
        table(&fake, "pmem-linear"),
        vec![
            format!("0 {s0} linear {d0} 0"),
            format!("{s0} {s1} linear {d1} 0")
        ]
    );
    let fs = dm_filesystem(&fake, "pmem-linear");
    assert_eq!((fs.stripe_unit, fs.stripe_width), (Some(512), Some(0)));
}

#[test]
fn raw_namespaces_become_named_fsdax() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    let args =
        json!({"namespaces": [{"name": "data", "region": 1, "mode": "fsdax", "align": "2M"}]});
    let r = converge(&mut fake, &args);
    assert_eq!(actions(&r), ["reconfigure_namespace"]);
    assert_detail(&r, 0, |d| {
        d.contains("ndctl create-namespace -f -e namespace1.0 -m fsdax -n data -a 2M -M dev")
    });
    assert!(!r.plan[0].destructive);
    let ns = fake.state.namespace_named("data").expect("named");
    assert_eq!(ns.region, "region1");
    // the other region's raw namespace is not ours: untouched
    assert!(fake
        .state
        .namespaces
        .iter()
        .any(|n| n.dev == "namespace0.0" && n.name.is_none()));
}

#[test]
fn converged_stack_is_a_no_op_and_check_mode_from_fresh_changes_nothing() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    let before = fake.state.clone();
    let c = check(&mut fake, &striped_xfs());
    assert!(c.changed && c.check_mode && c.done.is_empty());
    assert_eq!(fake.state, before);
    assert_eq!(fake.mutations(), 0);
    let diff = c.diff.expect("diff requested");
    assert!(diff
        .iter()
        .any(|d| d.before_header.starts_with("dm table pmem-striped")
            && d.before.is_empty()
            && !d.after.is_empty()));
    converge(&mut fake, &striped_xfs());
    let n = fake.mutations();
    for _ in 0..3 {
        let r = run(&mut fake, &striped_xfs());
        assert!(!r.changed && !r.failed);
    }
    assert_eq!(fake.mutations(), n);
}

#[test]
fn chunk_change_on_a_mounted_device_is_refused_then_done_with_allow_data_loss() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &striped_xfs());
    let mut args = striped_xfs();
    args["devices"][0]["chunk"] = json!("4M");
    let snapshot = fake.state.clone();
    let r = run(&mut fake, &args);
    assert!(r.failed && !r.changed, "{}", r.msg);
    assert_msg(
        &r,
        &[
            "reloading dm device pmem-striped",
            "the xfs filesystem labelled \"pmemfs\" on /dev/mapper/pmem-striped",
            "the mount of /dev/mapper/pmem-striped on /mnt/pmem",
        ],
    );
    assert!(r.msg.contains("allow_data_loss"), "{}", r.msg);
    assert_eq!(fake.state, snapshot, "a refusal changes nothing");

    args["allow_data_loss"] = json!("yes");
    let r = converge(&mut fake, &args);
    assert_eq!(
        actions(&r),
        ["umount", "reload_dm", "mkfs", "mount", "set_extsize"]
    );
    assert!(r.plan[1].destructive, "the reload is what loses the data");
    assert!(
        !r.plan[2].destructive && r.plan[2].detail.contains("mkfs.xfs -q -f"),
        "stale signatures are overwritten: {:?}",
        r.plan[2]
    );
    assert!(table(&fake, "pmem-striped")[0].contains(" striped 2 8192 "));
}

#[test]
fn a_failure_at_any_step_leaves_a_state_a_rerun_converges_from() {
    let steps = 6;
    for k in 1..=steps {
        let mut fake = FakeSystem::fresh_dimms(2, DIMM);
        fake.fail_at = Some(k);
        let r = run(&mut fake, &striped_xfs());
        assert!(r.failed, "step {k}: {}", r.msg);
        let f = r.failed_step.as_ref().expect("failed step reported");
        assert_eq!(f.index, k - 1);
        assert!(f.stderr.contains("injected fault"), "{f:?}");
        assert_eq!(r.done.len(), k - 1);
        assert_eq!(r.changed, k > 1, "changed reports what was done");
        assert!(
            r.msg.contains(&format!("step {k} of {steps} failed")),
            "{}",
            r.msg
        );
        fake.fail_at = None;
        let again = run(&mut fake, &striped_xfs());
        assert!(!again.failed, "rerun after fault at {k}: {}", again.msg);
        assert_eq!(
            again.done.len(),
            steps - (k - 1),
            "rerun after {k} did only what was left"
        );
        let third = run(&mut fake, &striped_xfs());
        assert!(!third.changed && !third.failed);
    }
}

#[test]
fn partition_at_2m_with_ext4() {
    let mut fake = FakeSystem::with_fsdax(1, DIMM);
    let args = json!({
        "namespaces": [{"name": "pm0", "region": "region0", "mode": "fsdax"}],
        "partitions": [{"name": "pmemdata", "disk": "pm0"}],
        "filesystems": [{"device": "pmemdata", "type": "ext4"}],
        "mounts": [{"path": "/mnt/data", "device": "pmemdata", "dax": "always"}]
    });
    let r = converge(&mut fake, &args);
    assert_eq!(
        actions(&r),
        ["create_gpt", "add_partition", "mkfs", "mount"]
    );
    let p = fake.state.block_named("pmem0p1").expect("partition device");
    let part = p.partition.as_ref().expect("is a partition");
    assert_eq!(part.start.0, 4096);
    assert_eq!(p.size.0 % 4096, 0, "size rounded down to 2 MiB");
    assert!(p.dax);
}

#[test]
fn partition_on_a_dm_device_is_mapped_like_kpartx() {
    let mut fake = FakeSystem::with_fsdax(2, DIMM);
    let mut args = striped_xfs();
    args["partitions"] = json!([{"name": "part1", "disk": "pmem-striped", "start": "2M"}]);
    args["filesystems"][0]["device"] = json!("part1");
    args["mounts"][0]["device"] = json!("part1");
    let r = converge(&mut fake, &args);
    assert_eq!(
        actions(&r),
        [
            "create_dm",
            "create_gpt",
            "add_partition",
            "map_partition",
            "mkfs",
            "mount",
            "set_extsize"
        ]
    );
    let t = table(&fake, "pmem-striped1");
    let dm = fake.state.dm("pmem-striped").expect("disk");
    assert!(
        t[0].ends_with(&format!("linear {} 4096", dm.devno)),
        "{t:?}"
    );
}

#[test]
fn existing_partitions_are_kept_and_overlaps_refused() {
    let mut fake = FakeSystem::with_fsdax(1, DIMM);
    let first = json!({"partitions": [{"name": "a", "disk": "/dev/pmem0", "size": "64M"}]});
    converge(&mut fake, &first);
    // a second declaration run that does not mention "a" keeps it and adds "b" after it
    let second =
        json!({"partitions": [{"name": "b", "disk": "/dev/pmem0", "start": "66M", "size": "32M"}]});
    let r = converge(&mut fake, &second);
    assert_eq!(actions(&r), ["add_partition"]);
    assert!(r.plan[0].target.contains("partition 2"), "{:?}", r.plan[0]);
    let t = &fake.state.partition_tables[0];
    assert_eq!(t.partitions.len(), 2);
    let overlap =
        json!({"partitions": [{"name": "c", "disk": "/dev/pmem0", "start": "4M", "size": "8M"}]});
    let r = run(&mut fake, &overlap);
    assert!(
        r.failed && r.msg.contains("overlap partition 1 (\"a\""),
        "{}",
        r.msg
    );
}

#[test]
fn namespace_mode_change_refused_while_held_then_done() {
    let mut fake = FakeSystem::with_fsdax(2, DIMM);
    // a dm device over pm1 that these arguments do not declare
    let foreign =
        json!({"devices": [{"name": "foreign", "target": "linear", "members": ["/dev/pmem1"]}]});
    converge(&mut fake, &foreign);
    let to_devdax = json!({"namespaces": [{"name": "pm1", "region": "region1", "mode": "devdax"}], "allow_data_loss": true});
    run_fails(
        &mut fake,
        &to_devdax,
        &["is held by dm device foreign (dm-0), which these arguments do not declare"],
    );
    assert!(fake.state.dm("foreign").is_some());
    // without the holder: fsdax -> devdax (nothing on it: no data at risk) and back (needs allow)
    let mut sys = fake.clone();
    let removed = pmem_stack::system::Op::DmRemove {
        name: "foreign".into(),
    };
    sys.execute(&removed).expect("remove");
    let r = converge(
        &mut sys,
        &json!({"namespaces": [{"name": "pm1", "region": "region1", "mode": "devdax"}]}),
    );
    assert_eq!(actions(&r), ["reconfigure_namespace"]);
    assert!(sys
        .state
        .namespace_named("pm1")
        .and_then(|n| n.chardev.clone())
        .is_some());
    let back = json!({"namespaces": [{"name": "pm1", "region": "region1", "mode": "fsdax"}]});
    let r = run(&mut sys, &back);
    assert!(
        r.failed && r.msg.contains("devdax namespace pm1") && r.msg.contains("allow_data_loss"),
        "{}",
        r.msg
    );
    let mut back = back;
    back["allow_data_loss"] = json!(true);
    let r = converge(&mut sys, &back);
    assert!(r.plan[0].destructive);
    // the other namespace was never touched
    assert_eq!(
        fake.state.namespace_named("pm0"),
        sys.state.namespace_named("pm0")
    );
}

#[test]
fn another_filesystem_is_refused_and_bad_geometry_only_warned() {
    let mut fake = FakeSystem::with_fsdax(1, DIMM);
    let ext = json!({"filesystems": [{"device": "/dev/pmem0", "type": "ext4", "mkfs_options": ["-E", "stride=16"]}]});
    converge(&mut fake, &ext);
    // same type, wrong geometry (the extra -E overrode stride): warning naming the fix, no step
    let plain = json!({"filesystems": [{"device": "/dev/pmem0", "type": "ext4"}]});
    let r = run(&mut fake, &plain);
    assert!(!r.failed && !r.changed, "{}", r.msg);
    assert_warned(&r, |w| {
        w.contains("stride=16 blocks (want 512)") && w.contains("tune2fs -E stride=512 /dev/pmem0")
    });
    let xfs = json!({"filesystems": [{"device": "/dev/pmem0", "type": "xfs"}]});
    run_fails(
        &mut fake,
        &xfs,
        &["making xfs over the ext4 filesystem on /dev/pmem0"],
    );
    let mut xfs = xfs;
    xfs["allow_data_loss"] = json!(true);
    let r = converge(&mut fake, &xfs);
    assert_eq!(actions(&r), ["mkfs"]);
    assert_detail(&r, 0, |d| d.contains("mkfs.xfs -q -f"));
}

#[test]
fn dax_mount_on_a_device_without_dax_is_refused_before_anything_runs() {
    let mut fake = FakeSystem::fresh_dimms(1, DIMM); // raw label-less: queue/dax = 0
    let args = json!({"filesystems": [{"device": "/dev/pmem0", "type": "xfs"}], "mounts": [{"path": "/mnt/x", "device": "/dev/pmem0"}]});
    let r = run(&mut fake, &args);
    assert!(
        r.failed && r.msg.contains("/dev/pmem0 reports queue/dax=0"),
        "{}",
        r.msg
    );
    assert_eq!(fake.mutations(), 0);
}

#[test]
fn xfs_silent_dax_fallback_fails_the_run() {
    // a device whose queue/dax is 0 behind a path the planner cannot judge: the fake
    // mounts xfs with dax=never like the kernel; the run must fail, not report success.
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    let args = json!({
        "devices": [{"name": "lin", "target": "linear", "members": ["/dev/pmem0"]}],
        "filesystems": [{"device": "lin", "type": "xfs"}],
        "mounts": [{"path": "/mnt/x", "device": "lin", "dax": "always"}]
    });
    run_fails(&mut fake, &args, &["queue/dax=0"]);
}

#[test]
fn growing_a_linear_device_keeps_its_data() {
    let mut fake = FakeSystem::with_fsdax(2, DIMM);
    let ns = fsdax(0..2);
    let one = json!({"namespaces": ns, "devices": [{"name": "lin", "target": "linear", "members": ["pm0"]}],
                     "filesystems": [{"device": "lin", "type": "ext4"}]});
    converge(&mut fake, &one);
    let two = json!({"namespaces": ns, "devices": [{"name": "lin", "target": "linear", "members": ["pm0", "pm1"]}],
                     "filesystems": [{"device": "lin", "type": "ext4"}]});
    let r = converge(&mut fake, &two);
    assert_eq!(actions(&r), ["reload_dm"]);
    assert!(!r.plan[0].destructive && r.plan[0].detail.contains("data kept"));
    let dm = fake.state.dm("lin").expect("dm");
    assert!(
        fake.state.filesystem(dm.devno).is_some(),
        "the filesystem survived"
    );
}

#[test]
fn state_absent_tears_down_in_reverse_and_keeps_namespaces_unless_allowed() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &striped_xfs());
    let absent = tearing_down(&striped_xfs());
    let r = converge(&mut fake, &absent);
    assert_eq!(actions(&r), ["umount", "remove_dm"]);
    assert!(r
        .warnings
        .iter()
        .any(|w| w.contains("namespace pm0") && w.contains("left in place")));
    assert!(fake.state.dm("pmem-striped").is_none() && fake.state.mount_at("/mnt/pmem").is_none());
    let r = converge(&mut fake, &allowing_data_loss(&absent));
    assert_eq!(actions(&r), ["destroy_namespace", "destroy_namespace"]);
    assert!(fake.state.namespace_named("pm0").is_none());
}

#[test]
fn objects_not_declared_are_never_touched() {
    let mut fake = FakeSystem::with_fsdax(2, DIMM);
    converge(
        &mut fake,
        &json!({"devices": [{"name": "other", "target": "linear", "members": ["/dev/pmem1"]}]}),
    );
    let other = fake.state.dm("other").cloned();
    let args = json!({
        "namespaces": [{"name": "pm0", "region": "region0", "mode": "fsdax"}],
        "devices": [{"name": "mine", "target": "linear", "members": ["pm0"]}],
        "filesystems": [{"device": "mine", "type": "ext4"}],
        "allow_data_loss": true
    });
    converge(&mut fake, &args);
    assert_eq!(fake.state.dm("other").cloned(), other);
    assert!(fake.state.namespace_named("pm1").is_some());
}

#[test]
fn offline_plan_against_a_snapshot_equals_the_live_plan() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    let facts = pmem_stack::facts(&mut fake);
    let text = serde_json::to_string(&facts).expect("json");
    let snapshot = pmem_stack::read_snapshot(&text).expect("snapshot reads back");
    assert_eq!(snapshot, fake.state);
    let offline = pmem_stack::run(
        &striped_xfs().to_string(),
        &mut pmem_stack::system::Snapshot(snapshot),
        true,
    );
    assert!(offline.check_mode && offline.changed && !offline.failed);
    let live = run(&mut fake, &striped_xfs());
    assert_eq!(offline.plan, live.plan);
}

#[test]
fn ext4_dax_change_is_umount_and_mount() {
    let (_, r) = converge_changed(&linear_ext4(), |a| {
        a["mounts"][0]["dax"] = json!("never");
    });
    assert_eq!(actions(&r), ["umount", "mount"]);
    assert!(r.plan[0].detail.contains("cannot change dax on remount"));
}

#[test]
fn a_mount_whose_files_get_no_dax_fails_with_the_kernels_reason() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    fake.files_without_dax = true;
    let r = run_fails(
        &mut fake,
        &striped_xfs(),
        &[
            "a file on it has no STATX_ATTR_DAX",
            "kernel: /dev/mapper/pmem-striped: DAX unsupported by block device",
        ],
    );
    assert!(r.changed, "the steps done are reported");
}

#[test]
fn a_label_less_namespace_converts_whole_or_not_at_all() {
    let mut fake = FakeSystem::fresh_dimms(1, pmem_stack::units::Bytes(256 << 20));
    let part =
        json!({"namespaces": [{"name": "half", "region": 0, "mode": "fsdax", "size": "128M"}]});
    run_fails(
        &mut fake,
        &part,
        &["can only be converted whole (256M); drop size"],
    );
    assert_eq!(fake.mutations(), 0);
    let whole =
        json!({"namespaces": [{"name": "whole", "region": 0, "mode": "fsdax", "size": "256M"}]});
    let r = converge(&mut fake, &whole);
    assert!(
        !r.plan[0].detail.contains(" -s "),
        "no -s for a whole conversion: {}",
        r.plan[0].detail
    );
}

#[test]
fn results_carry_the_dax_audit_and_verify_pmd_fails_when_all_faults_fall_back() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    let mut args = striped_xfs();
    args["verify_pmd"] = json!(true);
    let r = converge(&mut fake, &args);
    let audit = r.dax_audit.as_ref().expect("audit in every result");
    assert!(audit.mounts[0].pmd_ok, "{:#?}", audit.mounts[0].layers);
    let again = run(&mut fake, &args);
    let faults = again.pmd_faults.as_ref().expect("counts on request");
    assert_eq!(
        (faults["/mnt/pmem"].nopage, faults["/mnt/pmem"].fallback),
        (8, 0)
    );
    // a 1 MiB chunk: warned at the dm layer, and every fault falls back
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    args["devices"][0]["chunk"] = json!("1M");
    let r = run_fails(
        &mut fake,
        &args,
        &[
            "no 2 MiB DAX faults: /mnt/pmem: 8 faults, all fell back",
            "dm /dev/mapper/pmem-striped: striped 2 x chunk 2048 sectors (1M)",
        ],
    );
    assert_warned(&r, |w| w.starts_with("dax_audit /mnt/pmem: dm"));
}

#[test]
fn a_striped_device_below_its_chunk_in_max_sectors_kb_is_named_by_the_audit() {
    // 6.1 gives a dm device pmem's 1280 KiB; dm-striped then maps no 2 MiB page. Devices
    // the module creates get the chunk; one found below it (built by hand) is left as it
    // is (recognised as converged) and the audit names the fix.
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &striped_xfs());
    let devno = fake.state.dm("pmem-striped").expect("dm").devno;
    let bd = fake
        .state
        .block_devices
        .iter_mut()
        .find(|b| b.devno == devno)
        .expect("bd");
    assert_eq!(bd.max_sectors_kb, Some(2048), "created with the chunk");
    bd.max_sectors_kb = Some(1280);
    let r = run(&mut fake, &striped_xfs());
    assert!(!r.changed && r.plan.is_empty(), "{:?}", r.plan);
    assert_warned(&r, |w| {
        w.contains("max_sectors_kb 1280")
            && w.contains("echo 2048 > /sys/block/dm-0/queue/max_sectors_kb")
    });
    assert!(!r.dax_audit.expect("audit").mounts[0].pmd_ok);
}

#[test]
fn one_device_named_two_ways_in_two_roles_is_refused_before_anything_runs() {
    // validation cannot see that pm0 is /dev/pmem0; the planner compares device numbers
    let mut fake = FakeSystem::with_fsdax(1, DIMM);
    let blk = fake
        .state
        .namespace_named("pm0")
        .and_then(|n| n.blockdev.clone())
        .expect("pm0 has a block device");
    let args = json!({
        "namespaces": [{"name": "pm0", "region": "region0", "mode": "fsdax"}],
        "devices": [{"name": "lin", "target": "linear", "members": ["pm0"]}],
        "filesystems": [{"device": format!("/dev/{blk}"), "type": "ext4"}]
    });
    let before = fake.state.clone();
    let r = run(&mut fake, &args);
    assert!(r.failed, "{}", r.msg);
    assert!(
        r.msg.contains(&format!(
            "filesystems[0].device: /dev/{blk} is a member of dm device \"lin\" (devices[0]); a filesystem on it would overwrite that"
        )),
        "{}",
        r.msg
    );
    assert!(r.done.is_empty() && fake.executed.is_empty());
    assert_eq!(fake.state, before, "nothing changed");
    // two filesystems on it, by name and by path (found by the fault property)
    let args = json!({
        "namespaces": [{"name": "pm0", "region": "region0", "mode": "fsdax"}],
        "filesystems": [{"device": format!("/dev/{blk}"), "type": "xfs"}, {"device": "pm0", "type": "xfs"}]
    });
    let r = run(&mut fake, &args);
    assert!(
        r.failed && r.msg.contains("filesystems[1].device: namespace pm0 is the device of the filesystem at filesystems[0]"),
        "{}",
        r.msg
    );
    assert!(fake.executed.is_empty() && fake.state == before);
}

/// One DIMM with its labels initialised: the region is empty and can hold several
/// namespaces.
fn labels_initialised() -> FakeSystem {
    let mut fake = FakeSystem::fresh_dimms(1, DIMM);
    fake.state.namespaces.clear();
    fake.state.block_devices.clear();
    let r0 = &mut fake.state.regions[0];
    r0.available_size = r0.size;
    fake
}

#[test]
fn a_size_off_the_region_alignment_is_refused_before_ndctl_would_fail() {
    // found on the real kernel: 8 DIMMs with label areas have a 16 MiB region alignment
    let mut fake = labels_initialised();
    let args = json!({"namespaces": [{"name": "n0", "region": "region0", "mode": "fsdax", "size": "120M"}]});
    let r = run(&mut fake, &args);
    assert!(r.failed && fake.executed.is_empty(), "{}", r.msg);
    assert_msg(
        &r,
        &["namespace n0: size 120M is not a multiple of 16M, the alignment of region0"],
    );
    assert!(r.msg.contains("use 112M or 128M"), "{}", r.msg);
}

/// A fake machine whose kernel is `release` (the fake refuses `dax=MODE` before 5.8 and
/// shows a bare `dax` in its mountinfo, as such a kernel does).
fn on_kernel(release: Option<&str>) -> FakeSystem {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    if let Some(p) = fake.state.platform.as_mut() {
        p.kernel = release.map(String::from);
    }
    fake
}

/// A kernel before 5.8, which knows only a bare `dax` mount option.
const KERNEL_5_4: &str = "5.4.0-150-generic";

/// [`linear_ext4`] mounted with `dax: <mode>`.
fn linear_ext4_dax(mode: &str) -> Value {
    let mut args = linear_ext4();
    args["mounts"][0]["dax"] = json!(mode);
    args
}

/// Assert that the detail of some step of the run's plan starts with `prefix`.
fn assert_a_step_starts(r: &ModuleResult, prefix: &str) {
    assert!(
        r.plan.iter().any(|s| s.detail.starts_with(prefix)),
        "{:?}",
        r.plan
    );
}

/// The options of every mount(2) and remount the fake executed.
fn mount_options(fake: &FakeSystem) -> Vec<Vec<String>> {
    fake.executed
        .iter()
        .filter_map(|op| match op {
            pmem_stack::system::Op::Mount { options, .. }
            | pmem_stack::system::Op::Remount { options, .. } => Some(options.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_kernel_before_5_8_mounts_with_a_bare_dax() {
    use pmem_stack::args::DaxMode;
    // ext4, dax: always (the default)
    let mut fake = on_kernel(Some(KERNEL_5_4));
    let r = converge(&mut fake, &linear_ext4());
    assert_a_step_starts(&r, "mount -t ext4 -o dax dm device pmem-linear /mnt/pmem");
    assert_eq!(mount_options(&fake), [["dax"]]);
    let m = fake.state.mount_at("/mnt/pmem").expect("mounted");
    assert_eq!(m.dax, Some(DaxMode::Always));
    assert!(m.options.iter().any(|o| o == "dax"), "{:?}", m.options);
    // xfs with other options: `dax` first, the extent size hint still set
    let mut fake = on_kernel(Some("4.18.0-553.el8_10.x86_64"));
    let r = converge(&mut fake, &striped_xfs());
    assert_eq!(mount_options(&fake), [["dax", "noatime"]]);
    assert!(actions(&r).iter().any(|a| a == "set_extsize"));
    // remount for a new option keeps the bare dax
    let mut args = striped_xfs();
    args["mounts"][0]["options"] = json!(["noatime", "nodev"]);
    let r = converge(&mut fake, &args);
    assert_eq!(actions(&r), ["remount"]);
    assert_eq!(
        mount_options(&fake).last().map(Vec::as_slice),
        Some(&["dax".to_string(), "noatime".into(), "nodev".into()][..])
    );
}

#[test]
fn a_kernel_before_5_8_mounts_never_without_a_dax_option() {
    use pmem_stack::args::DaxMode;
    let mut fake = on_kernel(Some(KERNEL_5_4));
    let r = converge(&mut fake, &linear_ext4_dax("never"));
    assert_a_step_starts(&r, "mount -t ext4 dm device pmem-linear /mnt/pmem (");
    assert_eq!(mount_options(&fake), [Vec::<String>::new()]);
    let m = fake.state.mount_at("/mnt/pmem").expect("mounted");
    assert_eq!(m.dax, Some(DaxMode::Never));
    // never -> always: umount and mount with dax, then a no-op
    let r = converge(&mut fake, &linear_ext4());
    assert_eq!(actions(&r), ["umount", "mount"]);
    assert_eq!(
        mount_options(&fake).last().map(Vec::as_slice),
        Some(&["dax".to_string()][..])
    );
}

#[test]
fn dax_inode_is_refused_on_a_kernel_before_5_8() {
    let mut fake = on_kernel(Some(KERNEL_5_4));
    let args = linear_ext4_dax("inode");
    run_fails(
        &mut fake,
        &args,
        &[
            "mounts[0].dax: inode does not exist on this kernel (5.4.0-150-generic)",
            "Linux 5.8",
        ],
    );
    assert_eq!(fake.mutations(), 0, "refused before anything runs");
    // the same on 5.8 and later works
    let mut fake = on_kernel(Some("5.8.0"));
    converge(&mut fake, &args);
    assert_eq!(mount_options(&fake), [["dax=inode"]]);
}

#[test]
fn a_snapshot_without_a_kernel_keeps_the_dax_mode_form() {
    for release in [None, Some("6.1.0-27-amd64"), Some("not a version")] {
        let mut fake = on_kernel(release);
        converge(&mut fake, &linear_ext4());
        assert_eq!(mount_options(&fake), [["dax=always"]], "{release:?}");
    }
    // a snapshot from before the kernel was recorded reads back (no `kernel` key)
    let fake = on_kernel(None);
    let mut facts = serde_json::to_value(&fake.state).expect("json");
    let platform = facts["platform"].as_object_mut().expect("platform");
    platform.remove("kernel");
    let snapshot = pmem_stack::read_snapshot(&facts.to_string()).expect("old snapshot reads");
    assert_eq!(snapshot.kernel(), None);
    assert_eq!(snapshot, fake.state);
}

/// Three fsdax namespaces pm0..pm2 and a device over `members`, nothing on it.
fn raw_dm(target: &str, members: &[&str], chunk: Option<&str>) -> Value {
    let mut dev = json!({"name": "raw", "target": target, "members": members});
    if let Some(c) = chunk {
        dev["chunk"] = json!(c);
    }
    json!({"namespaces": fsdax(0..3), "devices": [dev]})
}

/// 8 MiB of raw application data (no signature) from the start of the device.
const RAW_SECTORS: u64 = 8 << 11;

#[test]
fn raw_data_on_a_striped_device_is_never_moved_without_allow_data_loss() {
    let mut base = FakeSystem::with_fsdax(3, DIMM);
    converge(&mut base, &raw_dm("striped", &["pm0", "pm1"], Some("2M")));
    assert!(base.write_raw("raw", RAW_SECTORS));
    let dm = base.state.dm("raw").expect("dm").devno;
    assert!(
        base.state.filesystem(dm).is_none() && base.state.gpt(dm).is_none(),
        "nothing recognisable on it"
    );
    let cases = [
        (
            "chunk 2M -> 1M",
            raw_dm("striped", &["pm0", "pm1"], Some("1M")),
            "chunk 2M -> 1M",
        ),
        (
            "members reordered",
            raw_dm("striped", &["pm1", "pm0"], Some("2M")),
            "members reordered (/dev/pmem0, /dev/pmem1 -> /dev/pmem1, /dev/pmem0)",
        ),
        (
            "stripe count",
            raw_dm("striped", &["pm0", "pm1", "pm2"], Some("2M")),
            "stripes 2 -> 3",
        ),
        (
            "member set",
            raw_dm("striped", &["pm0", "pm2"], Some("2M")),
            "member set changed (/dev/pmem0, /dev/pmem1 -> /dev/pmem0, /dev/pmem2)",
        ),
        (
            "striped -> linear",
            raw_dm("linear", &["pm0", "pm1"], None),
            "striped -> linear",
        ),
    ];
    for (what, args, reason) in cases {
        let mut fake = refused_alike(
            &base,
            &args,
            what,
            &[
                "refusing reloading dm device raw",
                "the change moves data already on it (",
                reason,
                "raw data alike, recognised or not",
                "Set allow_data_loss: true",
            ],
        );
        assert!(fake.raw_intact("raw"), "{what}: the data is where it was");

        let r = converge(&mut fake, &allowing_data_loss(&args));
        assert_eq!(actions(&r), ["reload_dm"], "{what}");
        assert!(r.plan[0].destructive, "{what}: {:?}", r.plan[0]);
        assert!(
            r.plan[0].detail.contains(reason) && r.plan[0].detail.contains("allow_data_loss"),
            "{what}: {}",
            r.plan[0].detail
        );
        assert!(
            !fake.raw_intact("raw"),
            "{what}: the fake's own sector map agrees the data moved"
        );
    }
}

#[test]
fn a_linear_device_grows_by_appending_without_allow_data_loss_and_keeps_raw_data() {
    let mut fake = FakeSystem::with_fsdax(3, DIMM);
    converge(&mut fake, &raw_dm("linear", &["pm0"], None));
    assert!(fake.write_raw("raw", RAW_SECTORS));
    let r = converge(&mut fake, &raw_dm("linear", &["pm0", "pm1"], None));
    assert_eq!(actions(&r), ["reload_dm"]);
    assert!(!r.plan[0].destructive, "{:?}", r.plan[0]);
    assert!(r.plan[0].detail.contains("grows the device; data kept"));
    assert!(fake.raw_intact("raw"));
    // one more, and the same members named by path: the same table, nothing to do
    converge(&mut fake, &raw_dm("linear", &["pm0", "pm1", "pm2"], None));
    let same = json!({"devices": [{"name": "raw", "target": "linear", "members": ["/dev/pmem0", "pm1", "/dev/pmem2"]}],
                      "namespaces": [{"name": "pm1", "region": "region1", "mode": "fsdax"}]});
    let r = run(&mut fake, &same);
    assert!(
        !r.failed && !r.changed && r.plan.is_empty(),
        "{} {:?}",
        r.msg,
        r.plan
    );
    assert!(fake.raw_intact("raw"));
    // reordering, dropping the last member (a shrink) or one in the middle: refused
    for (args, reason) in [
        (
            raw_dm("linear", &["pm1", "pm0", "pm2"], None),
            "members reordered",
        ),
        (
            raw_dm("linear", &["pm0", "pm1"], None),
            "cutting off the data past sector",
        ),
        (
            raw_dm("linear", &["pm0", "pm2"], None),
            "member set changed",
        ),
    ] {
        let n = fake.mutations();
        let r = run(&mut fake, &args);
        assert!(
            r.failed && r.msg.contains(reason) && r.msg.contains("allow_data_loss"),
            "{reason}: {}",
            r.msg
        );
        assert_eq!(fake.mutations(), n, "{reason}: nothing executed");
        assert!(fake.raw_intact("raw"));
    }
}

#[test]
fn appending_a_namespace_this_run_makes_keeps_the_linear_data() {
    // pm1 does not exist when planning: the reload compares the members before it
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    let one = json!({"namespaces": [{"name": "pm0", "region": "region0", "mode": "fsdax"}],
                     "devices": [{"name": "raw", "target": "linear", "members": ["pm0"]}]});
    converge(&mut fake, &one);
    assert!(fake.write_raw("raw", RAW_SECTORS));
    let two = json!({"namespaces": fsdax(0..2),
                     "devices": [{"name": "raw", "target": "linear", "members": ["pm0", "pm1"]}]});
    let r = converge(&mut fake, &two);
    assert_eq!(actions(&r), ["reconfigure_namespace", "reload_dm"]);
    assert!(r.plan.iter().all(|s| !s.destructive), "{:?}", r.plan);
    assert!(fake.raw_intact("raw"));
    // striped over a namespace this run makes: refused (every row spans every member)
    let mut fake = FakeSystem::fresh_dimms(3, DIMM);
    let two = json!({"namespaces": fsdax(0..2),
                     "devices": [{"name": "raw", "target": "striped", "members": ["pm0", "pm1"]}]});
    converge(&mut fake, &two);
    let mut three = two.clone();
    three["namespaces"]
        .as_array_mut()
        .expect("list")
        .push(json!({"name": "pm2", "region": "region2", "mode": "fsdax"}));
    three["devices"][0]["members"] = json!(["pm0", "pm1", "pm2"]);
    let r = run(&mut fake, &three);
    assert!(
        r.failed
            && r.msg.contains("stripes 2 -> 3")
            && r.msg.contains("namespace pm2 (made by this run)"),
        "{}",
        r.msg
    );
}

#[test]
fn a_reload_that_would_move_data_at_apply_time_is_refused_there_too() {
    // the plan saw a reload that keeps the data; by the time the step runs a member has
    // another size (remade by someone else): the table built then moves data
    let mut fake = FakeSystem::with_fsdax(2, DIMM);
    let two = json!({"devices": [{"name": "raw", "target": "linear", "members": ["/dev/pmem0", "/dev/pmem1"]}]});
    converge(
        &mut fake,
        &json!({"devices": [{"name": "raw", "target": "linear", "members": ["/dev/pmem0"]}]}),
    );
    let desired = validated(&two);
    let plan = pmem_stack::plan::plan(&desired, &fake.state).expect("plan");
    assert!(!plan.steps[0].destructive, "{:?}", plan.steps);
    let ok = pmem_stack::apply::resolve(&plan.steps[0].action, &desired, &fake.state);
    assert!(
        matches!(ok, Ok(pmem_stack::apply::Resolved::Run(_))),
        "{ok:?}"
    );
    // pmem0 shrinks by 2 MiB before the step: the appended member would start earlier
    // and the end of the live device would be cut off
    let mut later = fake.state.clone();
    let p0 = later
        .block_devices
        .iter_mut()
        .find(|b| b.name == "pmem0")
        .expect("pmem0");
    p0.size = pmem_stack::units::Sectors(p0.size.0 - 4096);
    let err = pmem_stack::apply::resolve(&plan.steps[0].action, &desired, &later)
        .expect_err("refused at apply time");
    assert!(err.data_loss, "{err}");
    let err = err.to_string();
    assert!(
        err.contains("refusing to reload dm device raw")
            && err.contains("the change moves data already on it")
            && err.contains("Set allow_data_loss: true"),
        "{err}"
    );
    let mut allowed = desired.clone();
    allowed.allow_data_loss = true;
    assert!(pmem_stack::apply::resolve(&plan.steps[0].action, &allowed, &later).is_ok());
}

// ---- probe scope: devices that cannot be read ----------------------------------------

const EIO: &str = "Input/output error (os error 5)";

/// Add a dm device that no argument declares, over nothing (an `error` or `zero` table).
fn foreign_dm(fake: &mut FakeSystem, name: &str, suspended: bool) -> Devno {
    let minor = fake
        .state
        .block_devices
        .iter()
        .filter(|b| b.devno.major == 253)
        .map(|b| b.devno.minor + 1)
        .max()
        .unwrap_or(0);
    let devno = Devno { major: 253, minor };
    fake.state.dm_devices.push(DmDevice {
        name: name.into(),
        devno,
        uuid: None,
        table: pmem_stack::actual::DmTable::read(vec!["0 8192 error".into()]),
        suspended,
        open_count: 0,
    });
    fake.state.block_devices.push(BlockDevice {
        name: format!("dm-{minor}"),
        devno,
        path: format!("/dev/mapper/{name}"),
        aliases: vec![format!("/dev/dm-{minor}")],
        size: Sectors(8192),
        dax: false,
        holders: vec![],
        partition: None,
        max_sectors_kb: None,
    });
    devno
}

/// A disk that is not PMEM (what /dev/vda is to a cloud VM).
fn foreign_disk(fake: &mut FakeSystem, name: &str) -> Devno {
    let devno = Devno {
        major: 254,
        minor: 0,
    };
    fake.state.block_devices.push(BlockDevice {
        name: name.into(),
        devno,
        path: format!("/dev/{name}"),
        aliases: vec![],
        size: Sectors(1 << 24),
        dax: false,
        holders: vec![],
        partition: None,
        max_sectors_kb: None,
    });
    fake.state.filesystems.push(Filesystem {
        device: devno,
        fstype: "ext4".into(),
        uuid: None,
        label: Some("root".into()),
        block_size: None,
        stripe_unit: None,
        stripe_width: None,
        reflink: None,
        size: None,
        incomplete: false,
    });
    devno
}

#[test]
fn a_run_reads_no_foreign_disk_or_dm_device_and_facts_read_every_dm_device() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    let vda = foreign_disk(&mut fake, "vda");
    fake.read_errors
        .insert(vda, "Operation not permitted (os error 1)".into());
    let err = foreign_dm(&mut fake, "foreign-err", false);
    fake.read_errors.insert(err, EIO.into());
    foreign_dm(&mut fake, "foreign-susp", true);
    let r = converge(&mut fake, &striped_xfs());
    assert!(
        r.warnings
            .iter()
            .all(|w| !w.contains("foreign") && !w.contains("vda")),
        "{:?}",
        r.warnings
    );
    // never read by a run: vda (not PMEM, no dm), the dm devices the arguments do not name
    for p in [
        "/dev/vda",
        "/dev/mapper/foreign-err",
        "/dev/mapper/foreign-susp",
    ] {
        assert!(!fake.reads.iter().any(|x| x == p), "{p} was read");
    }
    assert!(fake.reads.iter().any(|x| x == "/dev/mapper/pmem-striped"));
    // `{}` reads only PMEM and what holds it: ok, unchanged
    fake.reads.clear();
    let r = run(&mut fake, &json!({}));
    assert!(
        !r.failed && !r.changed && r.warnings.is_empty(),
        "{} {:?}",
        r.msg,
        r.warnings
    );
    assert!(
        fake.reads
            .iter()
            .all(|p| p.starts_with("/dev/pmem") || p == "/dev/mapper/pmem-striped"),
        "{:?}",
        fake.reads
    );
    // --facts: every dm device; the broken ones are warnings, vda is not read
    fake.reads.clear();
    let f = pmem_stack::facts(&mut fake);
    assert!(!f.failed, "{}", f.msg);
    assert_eq!(f.warnings.len(), 2, "{:?}", f.warnings);
    assert!(
        f.warnings[0].starts_with("could not read /dev/mapper/foreign-err: ")
            && f.warnings[0].contains(EIO)
    );
    assert!(
        f.warnings[1].contains("dm device foreign-susp is suspended"),
        "{:?}",
        f.warnings
    );
    assert!(fake.reads.iter().any(|p| p == "/dev/mapper/foreign-err"));
    assert!(!fake
        .reads
        .iter()
        .any(|p| p == "/dev/mapper/foreign-susp" || p == "/dev/vda"));
    let facts = f.ansible_facts.expect("facts");
    let unreadable = &facts["pmem_stack"]["unreadable"];
    assert_eq!(unreadable.as_array().map(Vec::len), Some(2), "{unreadable}");
    assert!(facts["pmem_stack"]["filesystems"]
        .as_array()
        .is_some_and(|v| v.iter().all(|f| f["label"] != "root")));
}

/// An unreadable device in scope that the plan does not need: a warning, the run goes
/// on. Here an undeclared namespace that fails to read (bad blocks on a DIMM) and a
/// suspended dm device that no argument declares, over another undeclared namespace.
#[test]
fn an_unreadable_device_the_plan_does_not_need_is_a_warning() {
    let mut fake = FakeSystem::fresh_dimms(4, DIMM);
    let (pmem2, _) = ns_dev(&fake, 2);
    fake.read_errors.insert(pmem2, EIO.into());
    let over =
        json!({"devices": [{"name": "foreign", "target": "linear", "members": ["/dev/pmem3"]}]});
    converge(&mut fake, &over);
    let foreign = fake.state.dm("foreign").expect("foreign").devno;
    fake.state
        .dm_devices
        .iter_mut()
        .for_each(|d| d.suspended = d.devno == foreign);
    fake.reads.clear();
    let r = converge(&mut fake, &striped_xfs());
    let w = r.warnings.join(" | ");
    assert!(w.contains(&format!("could not read /dev/pmem2: reading the start of /dev/pmem2: {EIO}; it is not part of this stack")), "{w}");
    assert!(
        w.contains("could not read /dev/mapper/foreign: dm device foreign is suspended"),
        "{w}"
    );
    assert!(!fake.reads.iter().any(|p| p == "/dev/mapper/foreign"));
}

/// A declared object whose device cannot be read: refused before anything runs, naming
/// the device and the error (its content is unknown, not empty).
#[test]
fn an_unreadable_declared_device_is_refused_naming_it() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &striped_xfs());
    let dm = fake.state.dm("pmem-striped").expect("dm").devno;
    fake.read_errors.insert(dm, EIO.into());
    let n = fake.mutations();
    let r = run(&mut fake, &striped_xfs());
    assert!(r.failed, "{}", r.msg);
    assert!(
        r.msg.contains(&format!("dm device pmem-striped (/dev/mapper/pmem-striped) could not be read: reading the start of /dev/mapper/pmem-striped: {EIO}")),
        "{}",
        r.msg
    );
    assert_eq!(fake.mutations(), n, "nothing ran");
    // check mode says the same
    let c = check(&mut fake, &striped_xfs());
    assert!(c.failed && c.msg == r.msg, "{}", c.msg);
    // suspended (a reload killed half-way, say): never read, but a declared dm device is
    // the run's own to resume (tests/killed.rs), so only the resume is done
    fake.read_errors.clear();
    fake.state
        .dm_devices
        .iter_mut()
        .for_each(|d| d.suspended = d.devno == dm);
    let r = run(&mut fake, &striped_xfs());
    assert!(!r.failed, "{}", r.msg);
    assert_eq!(actions(&r)[0], "reload_dm", "{:?}", r.plan);
    assert!(r.plan[0].detail.starts_with("resume pmem-striped"));
    // a declared mount point with something unreadable mounted on it
    fake.state
        .dm_devices
        .iter_mut()
        .for_each(|d| d.suspended = false);
    let mut other = striped_xfs();
    other["mounts"][0]["path"] = json!("/mnt/other");
    let vda = foreign_disk(&mut fake, "vda");
    fake.read_errors
        .insert(vda, "Operation not permitted (os error 1)".into());
    fake.state.mounts.push(Mount {
        target: "/mnt/other".into(),
        devno: vda,
        source: "/dev/vda".into(),
        fstype: "ext4".into(),
        options: vec![],
        dax: None,
        root_extsize: None,
    });
    run_fails(
        &mut fake,
        &other,
        &["/mnt/other: the device mounted there (/dev/vda) could not be read"],
    );
}

/// What a step would destroy must be known: converting a label-less namespace whose
/// block device cannot be read is refused even with allow_data_loss.
#[test]
fn destroying_over_an_unreadable_device_is_refused_even_with_allow_data_loss() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    let (pmem0, _) = ns_dev(&fake, 0);
    fake.read_errors.insert(pmem0, EIO.into());
    let mut args = striped_xfs();
    args["allow_data_loss"] = json!(true);
    let n = fake.mutations();
    let r = run(&mut fake, &args);
    assert!(r.failed, "{}", r.msg);
    assert!(
        r.refusals.iter().map(|x| x.to_string()).any(|x| x.starts_with("refusing converting label-less namespace namespace0.0")
            && x.contains(&format!("what it would destroy is unknown: /dev/pmem0 could not be read (reading the start of /dev/pmem0: {EIO})"))),
        "{:?}",
        r.refusals
    );
    assert_eq!(fake.mutations(), n);
    // readable again: converges
    fake.read_errors.clear();
    converge(&mut fake, &striped_xfs());
}

/// A machine without PMEM or without the drivers: facts explain, `{}` is a no-op,
/// declaring a namespace names the missing region and the modules to load.
#[test]
fn a_machine_without_pmem_or_device_mapper() {
    let mut fake = FakeSystem::default();
    fake.state.missing = vec![Missing::Nvdimm, Missing::DeviceMapper];
    foreign_disk(&mut fake, "vda");
    let f = pmem_stack::facts(&mut fake);
    assert!(!f.failed, "{}", f.msg);
    assert!(
        f.msg
            .starts_with("0 region(s), 0 namespace(s), 0 dm device(s), 0 mount(s), 0 PV(s), 0 VG(s), 0 LV(s); no NVDIMM bus")
            && f.msg.contains("modprobe nfit nd_pmem")
            && f.msg.contains("modprobe dm_mod"),
        "{}",
        f.msg
    );
    let r = run(&mut fake, &json!({}));
    assert!(
        !r.failed && !r.changed && r.msg == "No changes.",
        "{}",
        r.msg
    );
    let r = run(&mut fake, &striped_xfs());
    assert!(r.failed);
    assert!(
        r.msg.contains(
            "namespace pm0: region0 does not exist on this machine (regions: none): no NVDIMM bus"
        ) && r.msg.contains("modprobe nfit nd_pmem")
            && r.msg.contains("dm device pmem-striped: no device-mapper")
            && r.msg.contains("modprobe dm_mod"),
        "{}",
        r.msg
    );
    assert_eq!(fake.mutations(), 0);
    // device-mapper there but out of reach (a container's device cgroup denies its node)
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    fake.state.missing = vec![Missing::DeviceMapperAccess];
    let r = run(&mut fake, &striped_xfs());
    assert!(
        r.failed
            && r.msg.contains("dm device pmem-striped: device-mapper cannot be used from here: opening /dev/mapper/control is not permitted"),
        "{}",
        r.msg
    );
    let ns_only = json!({"namespaces": striped_xfs()["namespaces"].clone()});
    converge(&mut fake, &ns_only);
}

/// The devno and size of the block device of the `i`-th (label-less) namespace.
fn ns_dev(fake: &FakeSystem, i: usize) -> (Devno, u64) {
    let ns = &fake.state.namespaces[i];
    let bd = fake
        .state
        .block_named(ns.blockdev.as_deref().expect("block device"))
        .expect("listed");
    (bd.devno, bd.size.0)
}

/// A device that cannot be read when a conditional step on it is about to run (it came
/// up over existing data, and the read failed): the step fails naming it instead of
/// taking unknown content for blank; once readable, a rerun finds the data and keeps it.
#[test]
fn a_step_never_runs_over_a_device_that_turned_out_unreadable() {
    use pmem_stack::system::Op;
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &linear_ext4());
    let dm = fake.state.dm("pmem-linear").expect("dm").devno;
    // the stack goes down (a reboot would do the same): the ext4 stays on the members
    for op in [
        Op::Umount {
            target: "/mnt/pmem".into(),
            lazy: false,
            when_busy: String::new(),
        },
        Op::DmRemove {
            name: "pmem-linear".into(),
        },
    ] {
        fake.execute(&op).expect("teardown");
    }
    // the device comes back with the same number, and reads of it fail
    fake.read_errors.insert(dm, EIO.into());
    let n = fake.executed.len();
    let r = run(&mut fake, &linear_ext4());
    assert!(r.failed, "{}", r.msg);
    assert_eq!(actions(&r), ["create_dm", "mkfs", "mount"]);
    assert!(
        r.msg.starts_with("step 2 of 3 failed (mkfs dm device pmem-linear)")
            && r.msg.contains(&format!(
                "/dev/mapper/pmem-linear could not be read: reading the start of /dev/mapper/pmem-linear: {EIO}; what it holds is unknown"
            )),
        "{}",
        r.msg
    );
    // reported as a refusal of the step, which ran no command
    let f = r.failed_step.as_ref().expect("failed step");
    assert!(
        f.index == 1
            && f.argv.is_none()
            && f.rc.is_none()
            && f.stderr
                .starts_with("refusing making ext4 on dm device pmem-linear: /dev/mapper/pmem-linear could not be read"),
        "{f:?}"
    );
    let mkfs = |f: &FakeSystem| f.executed[n..].iter().any(|o| matches!(o, Op::Mkfs { .. }));
    assert!(!mkfs(&fake));
    // readable again: the ext4 is found and kept
    fake.read_errors.clear();
    let r = run(&mut fake, &linear_ext4());
    assert!(!r.failed, "{}", r.msg);
    assert!(!mkfs(&fake), "{:?}", r.plan);
    assert!(fake.state.mount_at("/mnt/pmem").is_some());
}

/// A raw partition "data" (nothing on it) on pm0, or on a linear dm device "raw" over it.
fn raw_part(on_dm: bool, part: Value) -> Value {
    let mut part = part;
    part["name"] = json!("data");
    part["disk"] = json!(if on_dm { "raw" } else { "pm0" });
    let mut v = json!({
        "namespaces": [{"name": "pm0", "region": "region0", "mode": "fsdax"}],
        "partitions": [part]
    });
    if on_dm {
        v["devices"] = json!([{"name": "raw", "target": "linear", "members": ["pm0"]}]);
    }
    v
}

#[test]
fn raw_data_on_a_partition_is_never_moved_without_allow_data_loss() {
    for on_dm in [false, true] {
        // the partition's device: the kernel's pmem0p1, or the kpartx-style mapping raw1
        let dev = if on_dm { "raw1" } else { "pmem0p1" };
        let mut base = FakeSystem::with_fsdax(1, DIMM);
        converge(
            &mut base,
            &raw_part(on_dm, json!({"start": "2M", "size": "64M"})),
        );
        // the whole partition written raw: nothing recognisable on it
        assert!(base.write_raw(dev, 64 << 11), "{dev}");
        let bd = base
            .state
            .dm(dev)
            .map(|d| d.devno)
            .or_else(|| base.state.block_named(dev).map(|b| b.devno))
            .expect("the partition's device");
        assert!(base.state.filesystem(bd).is_none() && base.state.gpt(bd).is_none());
        let cases = [
            ("number", json!({"start": "2M", "size": "64M", "number": 2}), "number 1 -> 2", true),
            ("start", json!({"start": "4M", "size": "64M"}), "start 4096 -> 8192", true),
            ("shrink", json!({"start": "2M", "size": "32M"}), "size 131072 -> 65536 sectors: shrinking cuts off its end", true),
            // no in-place resize: growing re-makes the entry too (the data stays put)
            ("grow", json!({"start": "2M", "size": "96M"}), "size 131072 -> 196608 sectors: growing is done by deleting the entry and adding it again", false),
        ];
        for (what, part, change, moves) in cases {
            let what = format!("{what} (on_dm {on_dm})");
            let args = raw_part(on_dm, part);
            let mut fake = refused_alike(
                &base,
                &args,
                &what,
                &[
                    "refusing changing partition data on ",
                    change,
                    "whatever is or is not recognised on it (raw data counts)",
                    "Set allow_data_loss: true",
                ],
            );
            assert!(fake.raw_intact(dev), "{what}: the data is where it was");

            let r = converge(&mut fake, &allowing_data_loss(&args));
            let want: &[&str] = if on_dm {
                &[
                    "remove_dm",
                    "delete_partition",
                    "add_partition",
                    "map_partition",
                ]
            } else {
                &["delete_partition", "add_partition"]
            };
            assert_eq!(actions(&r), want, "{what}");
            for s in &r.plan {
                assert_eq!(
                    s.destructive,
                    s.action == "remove_dm" || s.action == "delete_partition",
                    "{what}: {s:?}"
                );
            }
            let delete = r
                .plan
                .iter()
                .find(|s| s.action == "delete_partition")
                .expect("delete");
            assert!(
                delete.detail.contains(change) && delete.detail.contains("allow_data_loss"),
                "{what}: {}",
                delete.detail
            );
            if moves {
                assert!(
                    !fake.raw_intact(dev),
                    "{what}: the fake's own sector map agrees the data moved"
                );
            }
        }
    }
}

#[test]
fn a_partition_kept_as_it_is_keeps_raw_data_and_is_mapped_again_in_place() {
    // nothing changes: no step; a dm disk's mapping removed by hand is made again over
    // the same entry, so the data reads back
    let mut fake = FakeSystem::with_fsdax(1, DIMM);
    let args = raw_part(true, json!({"start": "2M", "size": "64M"}));
    converge(&mut fake, &args);
    assert!(fake.write_raw("raw1", 64 << 11));
    let r = run(&mut fake, &args);
    assert!(!r.failed && !r.changed, "{}", r.msg);
    fake.execute(&pmem_stack::system::Op::DmRemove {
        name: "raw1".into(),
    })
    .expect("dmsetup remove");
    let r = converge(&mut fake, &args);
    assert_eq!(actions(&r), ["map_partition"]);
    assert!(!r.plan[0].destructive);
    assert!(fake.raw_intact("raw1"));
}

#[test]
fn deleting_a_gpt_entry_under_state_present_is_refused_at_apply_time_without_allow_data_loss() {
    use pmem_stack::apply::resolve;
    use pmem_stack::args::validate::DevRef;
    use pmem_stack::plan::Action;
    let mut fake = FakeSystem::with_fsdax(1, DIMM);
    let args = raw_part(false, json!({"start": "2M", "size": "64M"}));
    converge(&mut fake, &args);
    let desired = validated(&args);
    let delete = Action::DeletePartition {
        disk: DevRef::Namespace("pm0".into()),
        number: 1,
    };
    let err = resolve(&delete, &desired, &fake.state).expect_err("refused");
    assert!(err.data_loss, "{err}");
    let err = err.to_string();
    assert!(
        err.contains("refusing to delete partition 1 of")
            && err.contains("Set allow_data_loss: true"),
        "{err}"
    );
    let mut allowed = desired.clone();
    allowed.allow_data_loss = true;
    assert!(resolve(&delete, &allowed, &fake.state).is_ok());
    // and a mapping is made only over an entry a declared partition names
    let map = Action::MapPartition {
        disk: DevRef::Namespace("pm0".into()),
        number: 1,
        dm_name: "pmem0p1".into(),
    };
    assert!(resolve(&map, &desired, &fake.state).is_ok());
    let mut other = desired.clone();
    other.partitions[0].name = "other".into();
    let err = resolve(&map, &other, &fake.state)
        .expect_err("not ours")
        .to_string();
    assert!(
        err.contains("which these arguments do not declare"),
        "{err}"
    );
}

/// A filesystem made on a namespace, later carried by a new linear device over it
/// (`/dev/pmemN` as its member), is not striped over by a second new device without
/// `allow_data_loss`: the striped mapping would overwrite what the linear one shows.
#[test]
fn a_new_device_over_a_new_device_that_carries_a_filesystem_is_refused() {
    let mut fake = FakeSystem::fresh_dimms(2, pmem_stack::units::Bytes(512 << 20));
    converge(
        &mut fake,
        &json!({"namespaces":[{"name":"pm0","region":"region0","mode":"sector"},{"name":"pm1","region":"region1","mode":"fsdax"}],"filesystems":[{"device":"pm1","type":"ext4"}]}),
    );
    let uuid = |fake: &FakeSystem| -> Vec<Option<String>> {
        fake.state
            .filesystems
            .iter()
            .map(|f| f.uuid.clone())
            .collect()
    };
    let before = uuid(&fake);
    assert_eq!(before.len(), 1);
    // pm0, a sector namespace, is the btt disk pmem0s
    let later = json!({"devices":[
        {"name":"dv0","target":"linear","members":["/dev/pmem1"]},
        {"name":"dv1","target":"striped","members":["dv0","/dev/pmem0s"]}]});
    let r = run_fails(
        &mut fake,
        &later,
        &[
            "refusing using dm device dv0 (it will show the ext4 filesystem on /dev/pmem1) as a member of dm device dv1",
            "allow_data_loss",
        ],
    );
    assert!(r.plan.is_empty(), "{:?}", r.plan);
    assert_eq!(uuid(&fake), before, "the filesystem is still there");
    assert!(fake.state.dm("dv0").is_none() && fake.state.dm("dv1").is_none());
    // one linear device over it keeps showing it: not refused
    let r = run(
        &mut fake,
        &json!({"devices":[{"name":"dv0","target":"linear","members":["/dev/pmem1"]}]}),
    );
    assert!(!r.failed, "{}", r.msg);
    assert_eq!(uuid(&fake), before);
    // with allow_data_loss the striped device is made
    let mut fake2 = FakeSystem::fresh_dimms(2, pmem_stack::units::Bytes(512 << 20));
    converge(
        &mut fake2,
        &json!({"namespaces":[{"name":"pm0","region":"region0","mode":"sector"},{"name":"pm1","region":"region1","mode":"fsdax"}],"filesystems":[{"device":"pm1","type":"ext4"}]}),
    );
    let r = run(&mut fake2, &allowing_data_loss(&later));
    assert!(!r.failed, "{}", r.msg);
    assert!(fake2.state.dm("dv1").is_some());
}

/// A partition declared without a number or a size, once made, is not shown as changing
/// in a check-mode diff made for another change: the desired side says the number and the
/// size it has (the rest of the disk, rounded down to 2 MiB), not placeholders.
#[test]
fn a_partition_without_number_or_size_shows_no_false_diff() {
    let mut fake = FakeSystem::with_fsdax(1, DIMM);
    let mut args = json!({
        "namespaces": [{"name": "pm0", "region": "region0", "mode": "fsdax"}],
        "partitions": [{"name": "pmemdata", "disk": "pm0"}],
        "filesystems": [{"device": "pmemdata", "type": "ext4"}],
        "mounts": [{"path": "/mnt/data", "device": "pmemdata", "dax": "always"}]
    });
    converge(&mut fake, &args);
    args["mounts"][0]["options"] = json!(["noatime"]);
    let r = check(&mut fake, &args);
    assert!(r.changed && !r.failed, "{}", r.msg);
    let diff = r.diff.expect("diff");
    assert!(
        diff.iter().any(|d| d.before_header.contains("/mnt/data")),
        "the mount's change is shown: {diff:?}"
    );
    assert!(
        !diff.iter().any(|d| d.before_header.contains("partition")),
        "no partition line changes: {diff:?}"
    );
}

/// The mount namespace of systemd-logind in these tests (a service with
/// `ProtectSystem=strict`, started after the stack was mounted).
const LOGIND_NS: u64 = 4_026_532_212;

/// After a boot where systemd mounted the stack, a sandboxed service started later
/// (systemd-logind) holds a copy of the mount in its own mount namespace, which our umount
/// does not reach, and the dm device stays busy. `state: absent` unmounts the copy there
/// too, after its own umount and before the dm removal; only a run that may tear down
/// looks at other namespaces at all.
#[test]
fn state_absent_unmounts_the_copies_other_mount_namespaces_hold() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &striped_xfs());
    fake.start_sandboxed_service("systemd-logind", 345, LOGIND_NS);
    // a copy of an unrelated mount in the same namespace is none of our business
    fake.state.elsewhere.push(NsMount {
        ns: LOGIND_NS,
        pid: 345,
        comm: "systemd-logind".into(),
        target: "/".into(),
        devno: Devno {
            major: 254,
            minor: 1,
        },
    });
    assert!(
        !fake.scope.elsewhere,
        "a converge without allow_data_loss walks no /proc"
    );
    let absent = allowing_data_loss(&tearing_down(&striped_xfs()));
    let r = converge(&mut fake, &absent);
    assert_eq!(
        actions(&r),
        [
            "umount",
            "umount_elsewhere",
            "remove_dm",
            "destroy_namespace",
            "destroy_namespace"
        ]
    );
    assert_eq!(r.plan[1].target, "/mnt/pmem");
    assert_detail(&r, 1, |d| {
        d.contains("systemd-logind (pid 345, mnt:[4026532212])")
            && d.contains("/dev/mapper/pmem-striped stays busy")
    });
    assert!(fake.scope.elsewhere);
    assert!(fake.state.dm("pmem-striped").is_none());
    assert_eq!(
        fake.state
            .elsewhere
            .iter()
            .map(|m| m.target.as_str())
            .collect::<Vec<_>>(),
        ["/"],
        "only the copy of the torn-down device is unmounted"
    );
    let lazy = fake.executed.iter().any(|op| {
        matches!(op, Op::UmountElsewhere { target, lazy: true, copies, .. }
            if target == "/mnt/pmem" && copies.len() == 1 && copies[0].ns == LOGIND_NS)
    });
    assert!(lazy, "{:?}", fake.executed);
    // and the stack converges again
    let r = converge(&mut fake, &striped_xfs());
    assert!(r.changed);
}

/// Without the umount in the other namespace the dm removal fails as busy, naming the
/// namespace; a run stopped right after its own umount leaves the copy, and the next run
/// unmounts it and goes on (nothing is left half-done).
#[test]
fn a_copy_left_by_a_stopped_teardown_is_unmounted_by_the_next_run() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &striped_xfs());
    fake.start_sandboxed_service("systemd-logind", 345, LOGIND_NS);
    let absent = tearing_down(&striped_xfs());
    // the second operation (the umount in logind's namespace) is stopped before it runs
    fake.kill_mid_op = Some(fake.executed.len() + 2);
    let r = run(&mut fake, &absent);
    assert!(r.failed, "{}", r.msg);
    fake.kill_mid_op = None;
    assert!(fake.state.mount_at("/mnt/pmem").is_none());
    assert_eq!(fake.state.elsewhere.len(), 1);
    let r = converge(&mut fake, &absent);
    assert_eq!(actions(&r), ["umount_elsewhere", "remove_dm"]);
    let umount = fake.executed.iter().rev().find_map(|op| match op {
        Op::UmountElsewhere { lazy, .. } => Some(*lazy),
        _ => None,
    });
    assert_eq!(umount, Some(false), "not lazy without allow_data_loss");
    assert!(fake.state.elsewhere.is_empty() && fake.state.dm("pmem-striped").is_none());
}

/// A copy at a path the arguments do not declare (a container's bind mount of it) is
/// someone else's use of the device: the teardown is refused, naming the namespace; a
/// re-made device (allow_data_loss, present) unmounts its copies as it does its mounts.
#[test]
fn a_copy_elsewhere_at_an_undeclared_path_is_refused_and_a_remade_device_loses_its_copies() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &striped_xfs());
    let devno = fake.state.mount_at("/mnt/pmem").expect("mounted").devno;
    fake.state.elsewhere.push(NsMount {
        ns: 4_026_532_300,
        pid: 900,
        comm: "containerd-shim".into(),
        target: "/data".into(),
        devno,
    });
    let absent = tearing_down(&striped_xfs());
    let before = fake.state.clone();
    let r = run(&mut fake, &absent);
    assert!(r.failed && !r.changed, "{}", r.msg);
    assert_msg(
        &r,
        &["/dev/mapper/pmem-striped is mounted on /data in the mount namespace of containerd-shim (pid 900, mnt:[4026532300])"],
    );
    assert_eq!(fake.state, before, "a refusal changes nothing");

    fake.state.elsewhere.clear();
    fake.start_sandboxed_service("systemd-logind", 345, LOGIND_NS);
    let mut args = striped_xfs();
    args["devices"][0]["chunk"] = json!("4M");
    args["allow_data_loss"] = json!(true);
    let r = converge(&mut fake, &args);
    assert_eq!(
        actions(&r),
        [
            "umount",
            "umount_elsewhere",
            "reload_dm",
            "mkfs",
            "mount",
            "set_extsize"
        ]
    );
    assert!(fake.state.elsewhere.is_empty());
}

/// A copy no mountinfo shows (systemd before 253 keeps one under the root of each service
/// it sandboxes, reached only by mount propagation): after unmounting the copies it can
/// see, the run fails at the dm removal, naming the namespaces whose services hold it
/// and what releases it.
#[test]
fn a_device_still_busy_after_the_copies_elsewhere_names_their_namespaces() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &striped_xfs());
    fake.start_sandboxed_service("systemd-logind", 345, LOGIND_NS);
    let devno = fake.state.dm("pmem-striped").expect("dm").devno;
    fake.held_unseen
        .insert(devno, "a hidden copy in mnt:[4026532212]".into());
    let absent = tearing_down(&striped_xfs());
    held_until_released(
        &mut fake,
        &absent,
        &[
            "step 3 of 3 failed (remove_dm /dev/mapper/pmem-striped)",
            "copies of its mount were unmounted in the mount namespaces of systemd-logind (pid 345, mnt:[4026532212])",
            "restarting that service releases it",
        ],
        |fake| fake.held_unseen.clear(),
    );
}

/// The teardown `absent` stops at the dm removal (its message has every one of
/// `fragments`) while something holds the device; once `release` lets it go, the next
/// run finishes the teardown: the dm removal alone.
fn held_until_released(
    fake: &mut FakeSystem,
    absent: &Value,
    fragments: &[&str],
    release: impl FnOnce(&mut FakeSystem),
) {
    run_fails(fake, absent, fragments);
    release(fake);
    let r = converge(fake, absent);
    assert_eq!(actions(&r), ["remove_dm"]);
}

/// A teardown meets files held open: a file open on the mount fails the umount as busy,
/// with allow_data_loss too (a lazy detach would leave the filesystem alive, holding the
/// dm device the teardown removes), saying to close the files; a plain open of the dm
/// device's node fails its removal as busy too. Once closed, the next run ends the
/// teardown.
#[test]
fn open_files_keep_a_mount_and_its_device_busy() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &striped_xfs());
    let absent = tearing_down(&striped_xfs());
    assert!(fake.open_file("/mnt/pmem/db/log", "postgres (pid 77)"));
    run_fails(
        &mut fake,
        &absent,
        &["target is busy", "/mnt/pmem/db/log", "postgres (pid 77)"],
    );
    assert!(fake.state.mount_at("/mnt/pmem").is_some(), "still mounted");

    let r = run(&mut fake, &allowing_data_loss(&absent));
    assert!(r.failed, "{}", r.msg);
    assert!(fake.state.mount_at("/mnt/pmem").is_some(), "not detached");
    assert_msg(
        &r,
        &["umount", "/mnt/pmem/db/log is open", "close them first"],
    );
    assert!(r.done.is_empty(), "nothing done: {:?}", r.done);
    assert!(fake.state.dm("pmem-striped").is_some());

    fake.open_files.clear();
    assert!(fake.open_file("/dev/mapper/pmem-striped", "dd (pid 88)"));
    held_until_released(
        &mut fake,
        &absent,
        &[
            "remove_dm",
            "busy",
            "/dev/mapper/pmem-striped is open (dd (pid 88))",
        ],
        |fake| fake.open_files.clear(),
    );
    assert!(fake.state.dm("pmem-striped").is_none());
}

/// A dm device removed leaves nothing under its device number, which the next dm device
/// gets again (the kernel hands out the lowest free minor): a new device over another
/// table shows no filesystem and gets its own mkfs, while the same table made again shows
/// the xfs its members still hold.
#[test]
fn a_removed_dm_devices_filesystem_does_not_show_on_the_next_device() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &striped_xfs());
    let old = fake.state.dm("pmem-striped").expect("dm").devno;
    let absent = tearing_down(&striped_xfs());
    converge(&mut fake, &absent);
    // the striped table again: its xfs is still on the members
    let r = converge(&mut fake, &striped_xfs());
    assert!(
        r.skipped_steps.iter().any(|s| s.step.action == "mkfs"),
        "{:?}",
        r.plan
    );
    assert_eq!(
        dm_filesystem(&fake, "pmem-striped").label.as_deref(),
        Some("pmemfs")
    );
    converge(&mut fake, &absent);
    // pm1 alone: its start held the second chunk, no superblock
    let other = json!({
        "namespaces": fsdax(0..2),
        "devices": [{"name": "lin", "target": "linear", "members": ["pm1"]}],
        "filesystems": [{"device": "lin", "type": "ext4", "label": "new"}],
    });
    let r = converge(&mut fake, &other);
    let lin = fake.state.dm("lin").expect("lin").devno;
    assert_eq!(lin, old, "the lowest free minor again");
    assert!(actions(&r).contains(&"mkfs".to_string()), "{:?}", r.plan);
    assert_eq!(dm_filesystem(&fake, "lin").label.as_deref(), Some("new"));
}

/// A dm device left with no live table (a create killed between its table load and its
/// resume) and then loaded with another table shows no content of its own: the new
/// table maps other data, so the filesystem is made.
#[test]
fn a_reload_into_a_device_with_no_table_brings_no_old_content() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &striped_xfs());
    let old = dm_filesystem(&fake, "pmem-striped").uuid.clone();
    fake.state.mounts.clear();
    let remove = Op::DmRemove {
        name: "pmem-striped".into(),
    };
    pmem_stack::system::System::execute(&mut fake, &remove).expect("removed");
    fake.kill_mid_op = Some(fake.executed.len() + 1);
    assert!(run(&mut fake, &striped_xfs()).failed);
    fake.kill_mid_op = None;
    let mut args = allowing_data_loss(&striped_xfs());
    args["devices"][0]["chunk"] = json!("4M");
    let r = converge(&mut fake, &args);
    assert_eq!(actions(&r)[0], "reload_dm", "{:?}", r.plan);
    assert!(
        fake.executed
            .iter()
            .rev()
            .take(4)
            .any(|o| matches!(o, Op::Mkfs { .. })),
        "the xfs is made again: {:?}",
        r.plan
    );
    assert_ne!(dm_filesystem(&fake, "pmem-striped").uuid, old, "a new xfs");
}

/// Namespaces get the kernel's names: the lowest free id in their region, and the disk
/// `pmemX` for id 0, `pmemX.Y` for the others; a namespace made after one was destroyed
/// collides with none.
#[test]
fn namespaces_made_after_a_destroy_get_free_kernel_names() {
    let mut fake = labels_initialised();
    let two = json!({"namespaces": [
        {"name": "a", "region": "region0", "mode": "fsdax", "size": "256M"},
        {"name": "b", "region": "region0", "mode": "fsdax", "size": "256M"}]});
    converge(&mut fake, &allowing_data_loss(&two));
    let dev = |f: &FakeSystem, n: &str| {
        let ns = f.state.namespace_named(n).expect("namespace");
        (ns.dev.clone(), ns.blockdev.clone().unwrap_or_default())
    };
    let (a_dev, a_blk) = dev(&fake, "a");
    let (b_dev, b_blk) = dev(&fake, "b");
    assert_ne!(a_dev, b_dev);
    let blks = [a_blk.clone(), b_blk.clone()];
    assert!(blks.contains(&"pmem0".to_string()), "{blks:?}");
    assert!(blks.iter().any(|b| b.starts_with("pmem0.")), "{blks:?}");
    // a destroyed, c made: c takes a's free id, b keeps its own
    let first = if a_blk == "pmem0" { "a" } else { "b" };
    let keep = if first == "a" { "b" } else { "a" };
    let destroy = json!({"namespaces": [
        {"name": first, "region": "region0", "mode": "fsdax"}],
        "state": "absent", "allow_data_loss": true});
    converge(&mut fake, &destroy);
    let next = json!({"namespaces": [
        {"name": keep, "region": "region0", "mode": "fsdax", "size": "256M"},
        {"name": "c", "region": "region0", "mode": "fsdax", "size": "256M"}]});
    converge(&mut fake, &next);
    let (mut devs, mut disks): (Vec<_>, Vec<_>) = (
        fake.state.namespaces.iter().map(|n| &n.dev).collect(),
        fake.state.block_devices.iter().map(|b| &b.name).collect(),
    );
    let (nd, nb) = (devs.len(), disks.len());
    devs.dedup();
    disks.sort();
    disks.dedup();
    assert_eq!((devs.len(), disks.len()), (nd, nb), "no name taken twice");
    assert_eq!(dev(&fake, "c").1, "pmem0", "the free id 0 again");
}

/// The kernel's own largest I/O for a new striped device: 6.1 stacks pmem's 1280 KiB,
/// which the module raises to the chunk; 6.12 gives the optimal I/O size (chunk x
/// stripes) itself. A reload to a larger chunk raises it again.
#[test]
fn max_sectors_kb_is_what_the_kernel_gives_raised_by_the_module() {
    for (kernel, created) in [(None, 2048), (Some("6.12.117+deb12-amd64"), 4096)] {
        let mut fake = FakeSystem::fresh_dimms(2, DIMM);
        if let Some(p) = fake.state.platform.as_mut() {
            p.kernel = kernel.map(String::from);
        }
        converge(&mut fake, &striped_xfs());
        let devno = fake.state.dm("pmem-striped").expect("dm").devno;
        let msk = |f: &FakeSystem| f.state.block(devno).and_then(|b| b.max_sectors_kb);
        assert_eq!(msk(&fake), Some(created), "{kernel:?}");
        let mut args = allowing_data_loss(&striped_xfs());
        args["devices"][0]["chunk"] = json!("4M");
        args["verify_pmd"] = json!(true);
        let r = converge(&mut fake, &args);
        assert!(actions(&r).contains(&"reload_dm".to_string()));
        assert!(msk(&fake) >= Some(4096), "{kernel:?}: {:?}", msk(&fake));
    }
}

/// The fake's own model of the 2 MiB DAX fault answers `verify_pmd` from the stack as
/// built: each layer that breaks the 2 MiB path makes the faults fall back, and an
/// aligned stack maps them all.
#[test]
fn pmd_faults_follow_the_stack_as_built() {
    // the counts, checked against the module's audit of the same stack: it must call
    // the stack fine exactly where the faults map 2 MiB pages
    let faults = |fake: &mut FakeSystem, args: &Value, path: &str| {
        let mut a = args.clone();
        a["verify_pmd"] = json!(true);
        let r = run(fake, &a);
        let f = r
            .pmd_faults
            .as_ref()
            .and_then(|p| p.get(path))
            .unwrap_or_else(|| panic!("counts for {path}: {}", r.msg));
        let audit = r.dax_audit.as_ref().expect("audit");
        let stack = audit
            .mounts
            .iter()
            .find(|m| m.mount == path)
            .expect("audited");
        assert_eq!(
            stack.pmd_ok,
            f.fallback == 0 && f.nopage > 0,
            "the audit of {path} and the faults disagree: {:?} / {:#?}",
            (f.nopage, f.fallback),
            stack.layers
        );
        (f.nopage, f.fallback)
    };
    let part = |start: &str, opts: Value| {
        json!({
            "namespaces": fsdax(0..1),
            "partitions": [{"name": "data", "disk": "pm0", "start": start, "size": "256M"}],
            "filesystems": [{"device": "data", "type": "ext4", "mkfs_options": opts}],
            "mounts": [{"path": "/mnt/data", "device": "data"}],
            "allow_data_loss": true
        })
    };
    let mut fake = FakeSystem::fresh_dimms(1, DIMM);
    assert_eq!(
        faults(&mut fake, &part("2M", json!([])), "/mnt/data"),
        (8, 0)
    );
    let mut fake = FakeSystem::fresh_dimms(1, DIMM);
    assert_eq!(
        faults(&mut fake, &part("1M", json!([])), "/mnt/data"),
        (0, 8)
    );
    // the user's stride of 1 MiB: the allocator aligns files on 1 MiB
    let mut fake = FakeSystem::fresh_dimms(1, DIMM);
    let stride = part("2M", json!(["-E", "stride=256"]));
    assert_eq!(faults(&mut fake, &stride, "/mnt/data"), (0, 8));
    // a linear device over two namespaces
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    let linear = dm_stack(0..2, "linear", "lin", "xfs", "/mnt/lin");
    assert_eq!(faults(&mut fake, &linear, "/mnt/lin"), (8, 0));
    // the striped device's largest I/O lowered below its chunk by hand
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &striped_xfs());
    let devno = fake.state.dm("pmem-striped").expect("dm").devno;
    fake.write_sysfs(
        &format!("/sys/dev/block/{devno}/queue/max_sectors_kb"),
        "1280",
    )
    .expect("written");
    assert_eq!(faults(&mut fake, &striped_xfs(), "/mnt/pmem"), (0, 8));
}
