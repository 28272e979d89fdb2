//! LVM scenarios on the fake system: a striped LV over two namespaces from fresh DIMMs,
//! growing, refused re-shapes, PVs that are not ours, a reboot, teardown.

mod common;

use common::*;
use pmem_stack::op::{LvmOp, Op};
use pmem_stack::system::fake::FakeSystem;
use serde_json::{json, Value};

/// Two (or more) fsdax namespaces, VG `vgp` over them, `lvs` of `stripes` stripes taking
/// the rest, xfs on it mounted with DAX.
fn lvm_stack(n: usize, stripes: u32) -> Value {
    let pvs: Vec<String> = (0..n).map(|i| format!("pm{i}")).collect();
    json!({
        "namespaces": fsdax(0..n),
        "volume_groups": [{"name": "vgp", "pvs": pvs}],
        "logical_volumes": [{"name": "lvs", "vg": "vgp", "stripes": stripes}],
        "filesystems": [{"device": "vgp/lvs", "type": "xfs"}],
        "mounts": [{"path": "/mnt/lvm", "device": "vgp/lvs", "dax": "always"}]
    })
}

/// [`lvm_stack`] with a sized LV under ext4 (xfs wants more than a small LV has).
fn sized_ext4(stripes: u32, size: &str) -> Value {
    let mut args = lvm_stack(2, stripes);
    args["logical_volumes"][0]["size"] = json!(size);
    args["filesystems"][0]["type"] = json!("ext4");
    args
}

/// Whether the LV vgp/lvs is active with a filesystem on it.
fn lv_has_filesystem(fake: &FakeSystem) -> bool {
    fake.state
        .lv_dm("vgp", "lvs")
        .is_some_and(|dm| fake.state.filesystem(dm.devno).is_some())
}

fn lvm_ops(fake: &FakeSystem) -> Vec<LvmOp> {
    fake.executed
        .iter()
        .filter_map(|op| match op {
            Op::Lvm(l) => Some(l.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_striped_lv_over_two_namespaces_from_fresh_dimms() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    let r = converge(&mut fake, &lvm_stack(2, 2));
    assert_eq!(
        actions(&r),
        [
            "reconfigure_namespace",
            "reconfigure_namespace",
            "create_pv",
            "create_pv",
            "create_vg",
            "create_lv",
            "raise_max_sectors",
            "mkfs",
            "mount",
            "set_extsize"
        ]
    );
    let vg = fake.state.lvm.vg("vgp").expect("vg made");
    assert_eq!(vg.extent_size.0, 4 << 20, "LVM's 4 MiB extents");
    assert!(vg.pvs.iter().all(|p| p.pe_start.0 == 2 << 20), "{vg:?}");
    let (_, lv) = fake.state.lvm.lv("vgp", "lvs").expect("lv made");
    assert_eq!(lv.segments.len(), 1);
    assert_eq!(
        (
            lv.segments[0].stripe_count,
            lv.segments[0].stripe_size.map(|b| b.0)
        ),
        (2, Some(2 << 20))
    );
    // the whole VG in whole stripes
    let all: u64 = vg.pvs.iter().map(|p| p.pe_count).sum();
    assert_eq!(lv.extent_count(), all / 2 * 2);
    // its dm device: found through its dm uuid, its largest I/O raised to the stripe
    let dm = fake.state.lv_dm("vgp", "lvs").expect("active");
    assert_eq!(dm.name, "vgp-lvs");
    let bd = fake.state.block(dm.devno).expect("disk");
    assert_eq!(bd.max_sectors_kb, Some(2048));
    let t = table(&fake, "vgp-lvs");
    assert!(
        t[0].contains(" striped 2 4096 ") && t[0].contains(" 4096 "),
        "{t:?}"
    );
    let fs = fake.state.filesystem(dm.devno).expect("xfs on the LV");
    assert_eq!((fs.stripe_unit, fs.stripe_width), (Some(512), Some(1024)));
    assert!(fake.state.mount_at("/mnt/lvm").is_some());
    // the commands: pvcreate with 2 MiB data alignment, the declared stripes
    let argv: Vec<String> = fake
        .executed
        .iter()
        .filter_map(pmem_stack::op::argv::command_line)
        .map(|v| v.join(" "))
        .filter(|l| l.starts_with("lvm "))
        .collect();
    assert!(
        argv[0].starts_with("lvm pvcreate --dataalignment 2m /dev/pmem"),
        "{argv:?}"
    );
    assert!(
        argv[2].starts_with("lvm vgcreate -s 4096k vgp /dev/pmem"),
        "{argv:?}"
    );
    assert_eq!(
        argv[3],
        "lvm lvcreate -y -n lvs -l 100%FREE -i 2 -I 2048k vgp"
    );
}

#[test]
fn a_sized_linear_lv_is_rounded_up_to_whole_extents_and_grown_in_place() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    let mut args = sized_ext4(1, "257M");
    converge(&mut fake, &args);
    let (_, lv) = fake.state.lvm.lv("vgp", "lvs").expect("lv");
    assert_eq!(
        lv.extent_count(),
        65,
        "257 MiB in 4 MiB extents, rounded up"
    );
    // no raise for a linear LV
    assert!(!fake
        .executed
        .iter()
        .any(|o| matches!(o, Op::SetMaxSectors { .. })));
    args["logical_volumes"][0]["size"] = json!("512M");
    let n = fake.mutations();
    let r = converge(&mut fake, &args);
    assert_eq!(actions(&r), ["extend_lv"]);
    assert!(!r.plan[0].destructive);
    let (_, lv) = fake.state.lvm.lv("vgp", "lvs").expect("lv");
    assert_eq!(lv.extent_count(), 128);
    assert!(lv_has_filesystem(&fake), "the filesystem stays");
    assert_eq!(fake.mutations() - n, 1);
}

#[test]
fn a_linear_lv_taking_the_rest_grows_with_a_third_namespace() {
    let mut fake = FakeSystem::fresh_dimms(3, DIMM);
    converge(&mut fake, &lvm_stack(2, 1));
    let before = fake
        .state
        .lvm
        .lv("vgp", "lvs")
        .expect("lv")
        .1
        .extent_count();
    let r = converge(&mut fake, &lvm_stack(3, 1));
    assert_eq!(
        actions(&r),
        [
            "reconfigure_namespace",
            "create_pv",
            "extend_vg",
            "extend_lv"
        ]
    );
    let (vg, lv) = fake.state.lvm.lv("vgp", "lvs").expect("lv");
    assert_eq!(vg.pvs.len(), 3);
    assert!(
        lv.extent_count() > before,
        "{} > {before}",
        lv.extent_count()
    );
    assert!(lv_has_filesystem(&fake), "the filesystem stays");
}

#[test]
fn a_stripe_change_over_data_is_refused_without_allow_data_loss() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &lvm_stack(2, 2));
    let before = fake.state.clone();
    let n = fake.mutations();
    let r = run_fails(
        &mut fake,
        &lvm_stack(2, 1),
        &[
            "making logical volume vgp/lvs again (it has 2 stripe(s), 1 wanted)",
            "the data on logical volume vgp/lvs",
            "the xfs filesystem on /dev/mapper/vgp-lvs",
            "allow_data_loss",
        ],
    );
    assert!(r.plan.is_empty());
    assert_eq!(fake.mutations(), n, "nothing ran");
    assert_eq!(fake.state, before);
    // allowed: torn down, made again linear, a new filesystem
    let r = converge(&mut fake, &allowing_data_loss(&lvm_stack(2, 1)));
    assert_eq!(
        actions(&r),
        [
            "umount",
            "remove_lv",
            "create_lv",
            "mkfs",
            "mount",
            "set_extsize"
        ]
    );
    assert!(r.plan[1].destructive && r.plan[2].destructive);
    let (_, lv) = fake.state.lvm.lv("vgp", "lvs").expect("lv");
    assert_eq!(lv.segments[0].stripe_count, 1);
}

#[test]
fn a_shrink_and_a_stripe_size_change_are_refused() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    let mut args = sized_ext4(2, "512M");
    converge(&mut fake, &args);
    args["logical_volumes"][0]["size"] = json!("256M");
    run_fails(
        &mut fake,
        &args,
        &["shrinking cuts off its end", "allow_data_loss"],
    );
    args["logical_volumes"][0]["size"] = json!("512M");
    args["logical_volumes"][0]["stripe_size"] = json!("4M");
    run_fails(
        &mut fake,
        &args,
        &["its stripe size is 2M, 4M wanted", "allow_data_loss"],
    );
}

#[test]
fn a_pv_of_another_volume_group_is_refused_whatever_allow_data_loss_says() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    let other = json!({
        "namespaces": fsdax(0..1),
        "volume_groups": [{"name": "theirs", "pvs": ["pm0"]}],
    });
    converge(&mut fake, &other);
    let n = fake.mutations();
    for args in [lvm_stack(2, 1), allowing_data_loss(&lvm_stack(2, 1))] {
        run_fails(
            &mut fake,
            &args,
            &["is a PV of volume group theirs, which is not this one"],
        );
    }
    assert_eq!(fake.mutations(), n);
}

#[test]
fn a_filesystem_on_a_declared_pv_is_refused_then_replaced_when_allowed() {
    let mut fake = FakeSystem::fresh_dimms(1, DIMM);
    let fs = json!({
        "namespaces": fsdax(0..1),
        "filesystems": [{"device": "pm0", "type": "ext4"}],
    });
    converge(&mut fake, &fs);
    let args = json!({
        "namespaces": fsdax(0..1),
        "volume_groups": [{"name": "vgp", "pvs": ["pm0"]}],
        "logical_volumes": [{"name": "lv", "vg": "vgp"}],
    });
    run_fails(
        &mut fake,
        &args,
        &[
            "making /dev/pmem0 a PV of volume group vgp",
            "the ext4 filesystem on /dev/pmem0",
            "allow_data_loss",
        ],
    );
    let r = converge(&mut fake, &allowing_data_loss(&args));
    assert_eq!(actions(&r), ["create_pv", "create_vg", "create_lv"]);
    assert!(r.plan[0].destructive);
    assert!(lvm_ops(&fake)
        .iter()
        .any(|o| matches!(o, LvmOp::PvCreate { wipe: true, .. })));
}

#[test]
fn after_a_reboot_the_lv_is_back_by_itself_and_nothing_is_done() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &lvm_stack(2, 2));
    fake.reboot();
    // LVM activated it; its largest I/O is the kernel's again, and it is not mounted
    let dm = fake.state.lv_dm("vgp", "lvs").expect("autoactivated");
    let bd = fake.state.block(dm.devno).expect("disk");
    assert!(bd.max_sectors_kb.is_some_and(|k| k < 2048), "{bd:?}");
    let r = converge(&mut fake, &lvm_stack(2, 2));
    assert_eq!(actions(&r), ["raise_max_sectors", "mount", "set_extsize"]);
}

#[test]
fn an_inactive_lv_is_activated_and_what_it_holds_decided_once_it_is_there() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &lvm_stack(2, 1));
    // deactivated behind our back (vgchange -an)
    pmem_stack::system::System::execute(
        &mut fake,
        &Op::Umount {
            target: "/mnt/lvm".into(),
            lazy: false,
            when_busy: String::new(),
        },
    )
    .expect("umount");
    pmem_stack::system::System::execute(
        &mut fake,
        &Op::DmRemove {
            name: "vgp-lvs".into(),
        },
    )
    .expect("deactivated");
    let r = converge(&mut fake, &lvm_stack(2, 1));
    assert_eq!(actions(&r), ["activate_lv", "mkfs", "mount", "set_extsize"]);
    // the mkfs was conditional: the LV's xfs came back with it (and its hint)
    let skipped: Vec<&str> = r
        .skipped_steps
        .iter()
        .map(|s| s.step.action.as_str())
        .collect();
    assert_eq!(skipped, ["mkfs", "set_extsize"]);
}

#[test]
fn teardown_removes_lvs_and_vgs_and_pv_labels_only_when_allowed() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &lvm_stack(2, 2));
    let r = converge(&mut fake, &tearing_down(&lvm_stack(2, 2)));
    assert_eq!(actions(&r), ["umount", "remove_lv", "remove_vg"]);
    assert!(fake.state.lvm.vgs.is_empty());
    assert_eq!(fake.state.lvm.pvs.len(), 2, "PV labels left");
    assert_warned(&r, |w| {
        w.contains("the PV label of /dev/pmem") && w.contains("allow_data_loss")
    });
    let r = converge(
        &mut fake,
        &allowing_data_loss(&tearing_down(&lvm_stack(2, 2))),
    );
    assert_eq!(
        actions(&r),
        [
            "remove_pv",
            "remove_pv",
            "destroy_namespace",
            "destroy_namespace"
        ]
    );
    assert!(fake.state.lvm.pvs.is_empty());
}

#[test]
fn a_run_killed_inside_lvcreate_converges_on_the_next() {
    let args = lvm_stack(2, 2);
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    // the 6th operation is the lvcreate: killed after its metadata commit
    fake.kill_mid_op = Some(6);
    let r = run(&mut fake, &args);
    assert!(r.failed, "{}", r.msg);
    assert!(matches!(
        fake.executed.last(),
        Some(Op::Lvm(LvmOp::LvCreate { .. }))
    ));
    // committed, its dm device made with the table loaded, not resumed (no live table)
    assert!(fake.state.lvm.lv("vgp", "lvs").is_some());
    assert!(fake
        .state
        .lv_dm("vgp", "lvs")
        .is_some_and(|d| d.table.is_empty()));
    fake.kill_mid_op = None;
    let r = converge(&mut fake, &args);
    assert_eq!(
        actions(&r),
        [
            "activate_lv",
            "raise_max_sectors",
            "mkfs",
            "mount",
            "set_extsize"
        ]
    );
    assert!(fake.state.mount_at("/mnt/lvm").is_some());
}

#[test]
fn a_vgcreate_killed_after_the_first_pvs_metadata_is_taken_for_done() {
    let args = lvm_stack(2, 2);
    let mut clean = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut clean, &args);
    let k = 1 + clean
        .executed
        .iter()
        .position(|o| matches!(o, Op::Lvm(LvmOp::VgCreate { .. })))
        .expect("a vgcreate");
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    fake.kill_mid_op = Some(k);
    let r = run(&mut fake, &args);
    assert!(r.failed, "{}", r.msg);
    // the VG's metadata (on the first PV) lists both; the second PV's own area is empty
    let vg = fake.state.lvm.vg("vgp").expect("vg");
    assert_eq!(vg.pvs.len(), 2);
    let own: Vec<Option<String>> = fake.state.lvm.pvs.iter().map(|p| p.vg.clone()).collect();
    assert_eq!(own, [Some("vgp".to_string()), None]);
    fake.kill_mid_op = None;
    // the second PV is in vgp as LVM counts it: no vgextend (LVM refuses it), the LV made
    let r = converge(&mut fake, &args);
    assert_eq!(
        actions(&r),
        [
            "create_lv",
            "raise_max_sectors",
            "mkfs",
            "mount",
            "set_extsize"
        ]
    );
    let (_, lv) = fake.state.lvm.lv("vgp", "lvs").expect("lv");
    let (_, want) = clean.state.lvm.lv("vgp", "lvs").expect("lv");
    assert_eq!(lv.segments, want.segments);
    // and the facts place it there too
    let f = pmem_stack::facts::facts(&mut fake);
    let pvs = &f.lvm_summary.as_ref().expect("lvm summary").pvs;
    assert!(
        pvs.iter().all(|p| p.vg.as_deref() == Some("vgp")),
        "{pvs:?}"
    );
}

/// A run killed inside its second `pvcreate`, after the label and before the metadata
/// area's header: LVM refuses that PV in every command (`pvcreate -ff`, `pvremove -ff`,
/// `vgcreate`, as the VM showed). It holds nothing: the next run zeroes its label (no
/// `allow_data_loss` needed) and makes it again; so does a teardown.
#[test]
fn a_pvcreate_killed_before_its_metadata_area_is_made_again() {
    let args = lvm_stack(2, 2);
    let mut clean = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut clean, &args);
    let second_pvcreate = |f: &FakeSystem| {
        1 + f
            .executed
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o, Op::Lvm(LvmOp::PvCreate { .. })))
            .nth(1)
            .map(|(i, _)| i)
            .expect("two pvcreates")
    };
    let k = second_pvcreate(&clean);
    let killed = || {
        let mut fake = FakeSystem::fresh_dimms(2, DIMM);
        fake.kill_mid_op = Some(k);
        let r = run(&mut fake, &args);
        assert!(r.failed, "{}", r.msg);
        fake.kill_mid_op = None;
        let unfinished: Vec<bool> = fake.state.lvm.pvs.iter().map(|p| p.unfinished).collect();
        assert_eq!(unfinished, [false, true]);
        fake
    };
    // the facts say what it is
    let mut fake = killed();
    let f = pmem_stack::facts::facts(&mut fake);
    let pvs = &f.lvm_summary.as_ref().expect("lvm summary").pvs;
    assert!(
        pvs[1]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("pvcreate stopped half-way")),
        "{pvs:?}"
    );
    // converged: its label zeroed (not destructive), the PV made again, the stack built
    let r = converge(&mut fake, &args);
    assert_eq!(
        actions(&r)[..3],
        ["remove_pv", "create_pv", "create_vg"],
        "{:?}",
        actions(&r)
    );
    assert!(r.plan.iter().all(|s| !s.destructive), "{:?}", r.plan);
    let zeroed = fake
        .executed
        .iter()
        .filter(|o| matches!(o, Op::ZeroPvLabel { .. }))
        .count();
    assert_eq!(zeroed, 1);
    // the same LV as a run never killed makes (the second PV has a new uuid)
    let shape = |f: &FakeSystem| {
        let (_, lv) = f.state.lvm.lv("vgp", "lvs").expect("lv");
        lv.segments
            .iter()
            .map(|s| (s.extent_count, s.stripe_count, s.stripe_size))
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(&fake), shape(&clean));
    // torn down from the killed state: the unfinished label zeroed without allow_data_loss
    let mut fake = killed();
    let r = converge(&mut fake, &tearing_down(&args));
    assert!(
        actions(&r).iter().any(|a| a == "remove_pv"),
        "{:?}",
        actions(&r)
    );
    assert_eq!(
        fake.state.lvm.pvs.len(),
        1,
        "the finished PV's label is kept"
    );
    assert!(!fake.state.lvm.pvs[0].unfinished);
}

/// A run killed at any one of its operations (`vgcreate` and `vgextend` half-way: the
/// new metadata on the VG's first PV only; `lvcreate` inside the activation), then run
/// again, ends with the stack a run never killed makes: building a striped stack, and
/// growing a linear one by a third namespace.
#[test]
fn a_run_killed_at_any_operation_of_an_lvm_stack_is_finished_by_the_next_run() {
    let summary = |f: &FakeSystem| {
        let vg = f.state.lvm.vg("vgp").map(|g| (g.pvs.len(), g.lvs.clone()));
        (
            vg,
            f.state.mount_at("/mnt/lvm").is_some(),
            lv_has_filesystem(f),
        )
    };
    for (dimms, before, args) in [
        (2, None, lvm_stack(2, 2)),
        (3, Some(lvm_stack(2, 1)), lvm_stack(3, 1)),
    ] {
        let fresh = || {
            let mut f = FakeSystem::fresh_dimms(dimms, DIMM);
            if let Some(b) = &before {
                converge(&mut f, b);
            }
            f
        };
        let mut clean = fresh();
        let n0 = clean.mutations();
        converge(&mut clean, &args);
        let n = clean.mutations() - n0;
        assert!(n >= 3, "{n} operations");
        for k in 1..=n {
            let mut fake = fresh();
            fake.kill_mid_op = Some(fake.executed.len() + k);
            let r = run(&mut fake, &args);
            assert!(r.failed, "k={k}: the killed run fails");
            fake.kill_mid_op = None;
            let r = run(&mut fake, &args);
            assert!(!r.failed, "k={k}: the next run finishes: {}", r.msg);
            let (want, got) = (summary(&clean), summary(&fake));
            // uuids are new in each fake; compare the LVs by name and extents
            let shape = |s: &(
                Option<(usize, Vec<pmem_stack::actual::lvm::Lv>)>,
                bool,
                bool,
            )| {
                (
                    s.0.as_ref().map(|(n, lvs)| {
                        (
                            *n,
                            lvs.iter()
                                .map(|l| (l.name.clone(), l.extent_count()))
                                .collect::<Vec<_>>(),
                        )
                    }),
                    s.1,
                    s.2,
                )
            };
            assert_eq!(
                shape(&got),
                shape(&want),
                "k={k}: the stack a clean run makes"
            );
            let again = run(&mut fake, &args);
            assert!(!again.changed, "k={k}: then converged: {:?}", again.plan);
        }
    }
}

/// The text of a boot file in the fake.
fn file_text(fake: &FakeSystem, path: &str) -> String {
    match fake.state.file(path).map(|f| &f.content) {
        Some(pmem_stack::actual::FileContent::Text { text }) => text.clone(),
        other => panic!("{path}: {other:?}"),
    }
}

#[test]
fn a_persisted_lvm_stack_is_brought_back_at_boot_without_making_anything() {
    let mut args = lvm_stack(2, 2);
    args["boot"] = json!({"persist": true});
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &args);
    let objects = pmem_stack::boot::declared_objects(&args);
    assert!(
        objects.contains("vg:vgp") && objects.contains("lv:vgp/lvs"),
        "{objects:?}"
    );
    // the mount unit mounts the LV by the link udev makes for it
    let unit = file_text(
        &fake,
        &format!(
            "{}/{}",
            pmem_stack::boot::UNIT_DIR,
            pmem_stack::boot::mount_unit_name("/mnt/lvm")
        ),
    );
    assert!(unit.contains("What=/dev/vgp/lvs"), "{unit}");
    let saved = file_text(&fake, &pmem_stack::boot::state_path_for(&objects));
    fake.reboot();
    // LVM activated it at boot; the replay raises its largest I/O and mounts it
    let states = [("state".to_string(), Ok(saved.clone()))];
    let r = pmem_stack::replay(&states, &mut fake);
    assert!(!r.failed, "{}", r.msg);
    let done: Vec<&str> = r.done.iter().map(|s| s.action.as_str()).collect();
    assert_eq!(done, ["raise_max_sectors", "mount"], "{:?}", r.plan);
    let dm = fake.state.lv_dm("vgp", "lvs").expect("active");
    assert_eq!(
        fake.state.block(dm.devno).and_then(|b| b.max_sectors_kb),
        Some(2048)
    );
    // a PV gone: the replay makes nothing and says what is missing
    let mut fake2 = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake2, &args);
    fake2.state.lvm.vgs.clear();
    fake2.state.lvm.pvs.clear();
    for d in fake2.state.dm_devices.clone() {
        let _ = pmem_stack::system::System::execute(
            &mut fake2,
            &Op::Umount {
                target: "/mnt/lvm".into(),
                lazy: false,
                when_busy: String::new(),
            },
        );
        let _ = pmem_stack::system::System::execute(&mut fake2, &Op::DmRemove { name: d.name });
    }
    let n = fake2.mutations();
    let r = pmem_stack::replay(&states, &mut fake2);
    assert!(r.failed, "{:?} {:?}", r.msg, r.plan);
    assert!(
        r.msg.contains("create_vg volume group vgp (it is missing"),
        "{}",
        r.msg
    );
    assert_eq!(fake2.mutations(), n, "nothing done");
}

#[test]
fn the_diff_shows_the_vg_and_lv_made_grown_and_nothing_once_converged() {
    let mut fake = FakeSystem::fresh_dimms(3, DIMM);
    let c = check(&mut fake, &lvm_stack(2, 2));
    let diff = c.diff.expect("diff");
    let item = |h: &str| {
        diff.iter()
            .find(|d| d.after_header == format!("{h} (after)"))
            .unwrap_or_else(|| panic!("no {h} in {diff:?}"))
            .clone()
    };
    let vg = item("volume group vgp");
    assert_eq!(vg.before, "");
    assert_eq!(
        vg.after,
        "extent_size: 4M\npvs: namespace pm0, namespace pm1\n"
    );
    let lv = item("logical volume vgp/lvs");
    assert_eq!(
        lv.after,
        "stripes: 2\nstripe_size: 2M\nextents: (all the VG has free)\n"
    );
    converge(&mut fake, &lvm_stack(2, 2));
    let c = check(&mut fake, &lvm_stack(2, 2));
    assert_eq!(c.diff.map(|d| d.len()), Some(0), "converged: no diff");
    // a linear LV taking the rest, grown by a third PV
    let mut fake = FakeSystem::fresh_dimms(3, DIMM);
    converge(&mut fake, &lvm_stack(2, 1));
    let c = check(&mut fake, &lvm_stack(3, 1));
    let diff = c.diff.expect("diff");
    let vg = diff
        .iter()
        .find(|d| d.after_header == "volume group vgp (after)")
        .expect("vg in the diff");
    assert!(
        vg.before.ends_with("/dev/pmem1\n") && vg.after.ends_with(", namespace pm2\n"),
        "{vg:?}"
    );
}

#[test]
fn a_pv_that_is_not_dax_capable_is_refused_whatever_allow_data_loss_says() {
    let mut fake = FakeSystem::fresh_dimms(1, DIMM);
    fake.state
        .block_devices
        .push(pmem_stack::actual::BlockDevice {
            name: "loop0".into(),
            devno: pmem_stack::actual::Devno { major: 7, minor: 0 },
            path: "/dev/loop0".into(),
            aliases: vec![],
            size: pmem_stack::units::Sectors(1 << 21),
            dax: false,
            holders: vec![],
            partition: None,
            max_sectors_kb: None,
        });
    let args = json!({
        "namespaces": fsdax(0..1),
        "volume_groups": [{"name": "vgp", "pvs": ["pm0", "/dev/loop0"]}],
        "logical_volumes": [{"name": "lv", "vg": "vgp"}],
    });
    let n = fake.mutations();
    for a in [args.clone(), allowing_data_loss(&args)] {
        run_fails(
            &mut fake,
            &a,
            &["PV /dev/loop0 (/dev/loop0) is not DAX-capable (queue/dax is 0)"],
        );
    }
    assert_eq!(fake.mutations(), n, "nothing ran");
}

#[test]
fn a_suspended_lv_is_resumed_by_activating_it_and_nothing_is_made_over_it() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &lvm_stack(2, 2));
    // a refresh or a reload LVM started and did not finish
    for d in &mut fake.state.dm_devices {
        if d.name == "vgp-lvs" {
            d.suspended = true;
        }
    }
    let r = converge(&mut fake, &lvm_stack(2, 2));
    // resumed (its largest I/O raised again if the kernel set it anew); nothing made
    let done: Vec<&str> = r.done.iter().map(|s| s.action.as_str()).collect();
    assert_eq!(done[0], "activate_lv", "{:?}", r.plan);
    assert!(
        done[1..].iter().all(|a| *a == "raise_max_sectors"),
        "{done:?}"
    );
    assert!(r.plan[0].detail.contains("suspended"), "{:?}", r.plan[0]);
    assert!(fake.state.lv_dm("vgp", "lvs").is_some_and(|d| !d.suspended));
    assert!(lv_has_filesystem(&fake) && fake.state.mount_at("/mnt/lvm").is_some());
}

#[test]
fn a_filesystem_over_a_pv_is_refused_naming_its_volume_group() {
    let mut fake = FakeSystem::fresh_dimms(1, DIMM);
    converge(
        &mut fake,
        &json!({
            "namespaces": fsdax(0..1),
            "volume_groups": [{"name": "vgp", "pvs": ["pm0"]}],
        }),
    );
    let fs = json!({
        "namespaces": fsdax(0..1),
        "filesystems": [{"device": "pm0", "type": "ext4"}],
    });
    let n = fake.mutations();
    run_fails(
        &mut fake,
        &fs,
        &[
            "making ext4 on /dev/pmem0",
            "the LVM PV on /dev/pmem0 (of volume group vgp)",
            "allow_data_loss",
        ],
    );
    assert_eq!(fake.mutations(), n);
}
