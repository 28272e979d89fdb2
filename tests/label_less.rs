//! Scenario tests on the fake system for PMEM without a label area: `memmap=` ranges
//! (legacy e820 regions, the kernel's page-mapped `memory` mode) and DIMMs without a
//! label area. No label can carry a name there: the module keeps it in its own record,
//! by the region's address range, so a second run and a boot that numbers the regions
//! the other way find the same namespace.

mod common;

use common::*;
use pmem_stack::actual::Named;
use pmem_stack::args::{MapMode, NamespaceMode};
use pmem_stack::system::fake::FakeSystem;
use pmem_stack::units::Bytes;
use serde_json::json;

const RANGE: Bytes = Bytes(512 << 20);

/// The striped-xfs recipe on two `memmap=` ranges: each namespace's name recorded
/// before it is converted, both converted in place (page map on the device, 2 MiB),
/// the rest as on NVDIMMs; the second run changes nothing.
#[test]
fn memmap_ranges_take_the_striped_recipe() {
    let mut fake = FakeSystem::memmap(2, RANGE);
    let r = converge(&mut fake, &striped_xfs());
    assert_eq!(
        actions(&r),
        [
            "record_name",
            "reconfigure_namespace",
            "record_name",
            "reconfigure_namespace",
            "create_dm",
            "mkfs",
            "mount",
            "set_extsize"
        ]
    );
    assert_detail(&r, 0, |d| {
        d.starts_with("keep the name pm0 for the namespace of the label-less region at 0x30000000, 512M (region0, namespace0.0 now)")
    });
    assert_detail(&r, 1, |d| {
        d.contains("ndctl create-namespace -f -e namespace0.0 -m fsdax -n pm0 -a 2M -M dev")
            && d.contains("map mem -> dev")
    });
    let records: Vec<(&str, &Named)> = fake
        .state
        .name_records
        .iter()
        .map(|r| (r.name.as_str(), &r.of))
        .collect();
    assert_eq!(records.len(), 2);
    assert!(
        matches!(records[0], ("pm0", Named::Region(id)) if id.start == 0x3000_0000 && id.size == RANGE)
    );
    assert!(matches!(records[1], ("pm1", Named::Region(id)) if id.start == 0x6000_0000));
    let pm0 = fake
        .state
        .namespace_named("pm0")
        .expect("named by the record");
    assert!(pm0.name_recorded && pm0.uuid.is_none() && pm0.info_uuid.is_some());
    assert_eq!(
        (pm0.mode, pm0.map),
        (NamespaceMode::Fsdax, Some(MapMode::Dev))
    );
}

/// Declared with the page map in memory, a `memmap=` range is already what is asked:
/// only its name is recorded.
#[test]
fn a_memmap_range_as_it_is_only_gets_its_name_recorded() {
    let mut fake = FakeSystem::memmap(1, RANGE);
    let args = json!({"namespaces": [{"name": "pm0", "region": "region0", "mode": "fsdax", "map": "mem"}]});
    let r = converge(&mut fake, &args);
    assert_eq!(actions(&r), ["record_name"]);
    assert_eq!(fake.mutations(), 1);
}

/// Swap the numbers of region0 and region1 (and so of their namespaces), as a boot
/// that enumerates label-less DIMMs the other way does; the dm devices and mounts go,
/// as at any boot.
fn enumerate_the_other_way(fake: &mut FakeSystem) {
    fake.reboot();
    let swap = |s: &str| {
        s.replace("region0", "regionX")
            .replace("region1", "region0")
            .replace("regionX", "region1")
            .replace("namespace0.", "namespaceX.")
            .replace("namespace1.", "namespace0.")
            .replace("namespaceX.", "namespace1.")
    };
    for r in &mut fake.state.regions {
        r.name = swap(&r.name);
    }
    fake.state.regions.sort_by(|a, b| a.name.cmp(&b.name));
    for n in &mut fake.state.namespaces {
        n.region = swap(&n.region);
        n.dev = swap(&n.dev);
    }
    // what the fake keeps of a dm device's content across a boot is keyed by its
    // members' namespace devices
    fake.dm_content = std::mem::take(&mut fake.dm_content)
        .into_iter()
        .map(|(k, v)| (swap(&k), v))
        .collect();
}

/// On DIMMs without a label area, the names stay with the address ranges: after a boot
/// that numbers the regions the other way, pm0 is found in region1 (a warning says it
/// is kept where it is), nothing is converted again, and the striped table has pm0
/// first, as declared.
#[test]
fn label_less_names_follow_the_address_ranges_across_a_renumbering_boot() {
    let mut fake = FakeSystem::label_less_dimms(2, DIMM);
    let r = converge(&mut fake, &striped_xfs());
    assert_eq!(
        actions(&r)[..4],
        [
            "record_name",
            "reconfigure_namespace",
            "record_name",
            "reconfigure_namespace"
        ]
    );
    let pm0_dev = fake.state.namespace_named("pm0").expect("pm0").dev.clone();
    enumerate_the_other_way(&mut fake);
    let moved = fake
        .state
        .namespace_named("pm0")
        .expect("pm0 named after the boot");
    assert_ne!(moved.dev, pm0_dev);
    assert_eq!(moved.region, "region1");
    let r = run(&mut fake, &striped_xfs());
    assert!(!r.failed, "{}", r.msg);
    // the dm device is made again over its old data (mkfs only if blank: skipped; the
    // hint is on the filesystem already) and mounted; no namespace step
    let done: Vec<&str> = r.done.iter().map(|s| s.action.as_str()).collect();
    assert_eq!(done, ["create_dm", "mount"]);
    assert_eq!(
        r.skipped_steps
            .iter()
            .map(|s| s.step.action.as_str())
            .collect::<Vec<_>>(),
        ["mkfs", "set_extsize"]
    );
    assert_warned(&r, |w| {
        w.contains("namespace pm0 is in region1, declared in region0: kept where it is")
    });
    let (d0, s0) = ns_block(&fake, "pm0");
    let (d1, _) = ns_block(&fake, "pm1");
    let per = s0 / 4096 * 4096;
    assert_eq!(
        table(&fake, "pmem-striped"),
        vec![format!("0 {} striped 2 4096 {d0} 0 {d1} 0", 2 * per)]
    );
    let again = run(&mut fake, &striped_xfs());
    assert!(!again.changed && !again.failed, "{:?}", again.plan);
}

/// What a label-less region cannot do is refused before anything runs, saying what to
/// do instead: a size smaller than the region, a second namespace in it.
#[test]
fn label_less_regions_refuse_carving_and_a_second_namespace() {
    let mut fake = FakeSystem::label_less_dimms(1, DIMM);
    let small = json!({"namespaces": [{"name": "pm0", "region": "region0", "mode": "fsdax", "size": "128M"}]});
    run_fails(
        &mut fake,
        &small,
        &[
            "namespace pm0: region0 is label-less (its DIMMs have no label area)",
            "spans the whole region (1G) and cannot be made 128M; drop size",
        ],
    );
    assert_eq!(fake.mutations(), 0);
    let two = json!({"namespaces": [
        {"name": "pm0", "region": "region0", "mode": "fsdax"},
        {"name": "pm1", "region": "region0", "mode": "fsdax", "size": "128M"}
    ]});
    run_fails(
        &mut fake,
        &two,
        &[
            "namespace pm1: region0 is label-less",
            "holds exactly one namespace",
            "Declare one namespace per label-less region",
        ],
    );
    assert_eq!(fake.mutations(), 0);
    // the same once pm0 exists: its namespace is named in the refusal
    converge(
        &mut fake,
        &json!({"namespaces": [{"name": "pm0", "region": "region0", "mode": "fsdax"}]}),
    );
    run_fails(
        &mut fake,
        &two,
        &["its namespace namespace0.0 is pm0; namespace pm1 cannot be made there"],
    );
    let mut memmap = FakeSystem::memmap(1, RANGE);
    run_fails(
        &mut memmap,
        &small,
        &["a legacy range such as the kernel's memmap= option makes"],
    );
}

/// `dimm` (one DIMM) holding an fsdax namespace made by hand, or by another tool: no
/// name and no record of one; and the uuid that adopts it: its label's, or without a
/// label area (only an info block) its info block's.
fn unnamed_fsdax(mut dimm: FakeSystem) -> (FakeSystem, String) {
    converge(&mut dimm, &json!({"namespaces": fsdax(0..1)}));
    dimm.state.namespaces[0].name = None;
    dimm.state.name_records.clear();
    dimm.state.apply_name_records();
    let ns = &dimm.state.namespaces[0];
    let uuid = ns.uuid.clone().or_else(|| ns.info_uuid.clone());
    (dimm, uuid.expect("a label or an info block"))
}

/// An fsdax namespace made by hand in a label-less region (an info block, no record)
/// is never reformatted on a guess: refused, naming the uuid that would adopt it.
#[test]
fn a_hand_made_label_less_namespace_is_refused_with_the_way_to_adopt_it() {
    let (mut fake, info) = unnamed_fsdax(FakeSystem::label_less_dimms(1, DIMM));
    let r = run_fails(
        &mut fake,
        &json!({"namespaces": [{"name": "pm0", "region": "region0", "mode": "devdax"}]}),
        &[
            "namespace0.0 of label-less region0 is already fsdax",
            "it is never reformatted on a guess",
            &format!("add uuid: {info}"),
        ],
    );
    assert!(r.done.is_empty());
}

/// `state: absent` with allow_data_loss destroys a label-less namespace (it stays,
/// raw, as fresh DIMMs have it) and forgets its name; then nothing is left to do, and
/// the stack converges again.
#[test]
fn label_less_teardown_forgets_the_name_and_converges_again() {
    let mut fake = FakeSystem::label_less_dimms(2, DIMM);
    converge(&mut fake, &striped_xfs());
    let absent = tearing_down(&allowing_data_loss(&striped_xfs()));
    let r = converge(&mut fake, &absent);
    let acts = actions(&r);
    assert_eq!(
        acts[acts.len() - 4..],
        [
            "destroy_namespace",
            "forget_name",
            "destroy_namespace",
            "forget_name"
        ]
    );
    assert!(fake.state.name_records.is_empty());
    assert!(fake
        .state
        .namespaces
        .iter()
        .all(|n| n.mode == NamespaceMode::Raw && n.name.is_none() && n.blockdev.is_some()));
    let r = converge(&mut fake, &striped_xfs());
    assert_eq!(actions(&r)[..2], ["record_name", "reconfigure_namespace"]);
}

/// A kill after the name was recorded and ndctl converted the namespace, before its
/// ends were cleared: the next run clears them (what shows there is not data), and
/// does not convert it again.
#[test]
fn a_label_less_namespace_killed_before_clearing_is_cleared_not_converted() {
    let mut fake = FakeSystem::label_less_dimms(1, DIMM);
    let args = json!({"namespaces": [{"name": "pm0", "region": "region0", "mode": "fsdax"}]});
    fake.kill_mid_op = Some(2);
    let r = run(&mut fake, &args);
    assert!(r.failed, "{}", r.msg);
    fake.kill_mid_op = None;
    let pm0 = fake
        .state
        .namespace_named("pm0")
        .expect("named by its record");
    assert!(fake.state.is_uncleared(pm0));
    let r = converge(&mut fake, &args);
    assert_eq!(actions(&r), ["clear_namespace"]);
}

/// A namespace made by hand without a name is adopted only when the user says which,
/// by its uuid: its name is recorded, its data kept (nothing is converted), and the dm
/// device above it is built over it; a second run changes nothing. On a label-less
/// region the record follows the address range.
#[test]
fn a_hand_made_namespace_is_adopted_by_its_uuid_with_its_data() {
    let (mut fake, info) = unnamed_fsdax(FakeSystem::label_less_dimms(1, DIMM));
    let args = json!({
        "namespaces": [{"name": "data", "region": "region0", "mode": "fsdax", "uuid": info.to_uppercase()}],
        "devices": [{"name": "lin", "target": "linear", "members": ["data"]}]
    });
    let r = converge(&mut fake, &args);
    assert_eq!(actions(&r), ["record_name", "create_dm"]);
    assert_detail(&r, 0, |d| {
        d.starts_with("adopt namespace0.0 (the namespace of the label-less region at")
    });
    assert!(matches!(fake.state.name_records[0].of, Named::Region(_)));
    // not as declared: refused, nothing done
    let (mut fake, _) = unnamed_fsdax(FakeSystem::label_less_dimms(1, DIMM));
    let n = fake.mutations();
    run_fails(
        &mut fake,
        &json!({"namespaces": [{"name": "data", "region": "region0", "mode": "devdax", "uuid": info}]}),
        &["is adopted as it is, with its data, and it is not as declared (mode fsdax -> devdax)"],
    );
    run_fails(
        &mut fake,
        &json!({"namespaces": [{"name": "data", "region": "region0", "mode": "fsdax", "uuid": "00000000-0000-4000-8000-00000000ffff"}]}),
        &["no namespace has uuid 00000000-0000-4000-8000-00000000ffff"],
    );
    assert_eq!(fake.mutations(), n);
}

/// On labelled DIMMs too: an unnamed namespace is adopted by its label uuid and found
/// by it from then on; a uuid that is not a uuid fails with its path.
#[test]
fn an_unnamed_labelled_namespace_is_adopted_by_its_label_uuid() {
    let (mut fake, label) = unnamed_fsdax(FakeSystem::fresh_dimms(1, DIMM));
    let r = converge(
        &mut fake,
        &json!({"namespaces": [{"name": "keep", "region": "region0", "mode": "fsdax", "uuid": label}]}),
    );
    assert_eq!(actions(&r), ["record_name"]);
    assert!(matches!(&fake.state.name_records[0].of, Named::Uuid(u) if *u == label));
    let bad = run(
        &mut fake,
        &json!({"namespaces": [{"name": "keep", "region": "region0", "mode": "fsdax", "uuid": "nope"}]}),
    );
    assert!(bad.failed);
    assert_msg(&bad, &["namespaces[0].uuid: \"nope\" is not a uuid"]);
}

/// On labelled DIMMs an unnamed namespace made by hand is left alone; when the region
/// has no room for the declared one, the refusal names it and the uuid that adopts it.
#[test]
fn a_full_region_names_its_unnamed_namespaces_and_their_uuids() {
    let (mut fake, label) = unnamed_fsdax(FakeSystem::fresh_dimms(1, DIMM));
    let n = fake.mutations();
    run_fails(
        &mut fake,
        &json!({"namespaces": [{"name": "other", "region": "region0", "mode": "fsdax"}]}),
        &[
            "namespace other: missing",
            &format!("region0 holds namespaces without a name, left alone: namespace0.0 (fsdax, 1G; uuid: {label})"),
        ],
    );
    assert_eq!(fake.mutations(), n);
}

/// The DAX audit walks a stack on `memmap=` ranges like one on NVDIMMs: every layer
/// lets DAX map 2 MiB pages, and the namespace layer names each range by its recorded
/// name.
#[test]
fn the_dax_audit_walks_a_memmap_stack() {
    let mut fake = FakeSystem::memmap(2, RANGE);
    let r = converge(&mut fake, &striped_xfs());
    let audit = r.dax_audit.as_ref().expect("audit in every result");
    let stack = &audit.mounts[0];
    assert!(stack.pmd_ok, "{:#?}", stack.layers);
    let namespaces: Vec<&str> = stack
        .layers
        .iter()
        .filter(|l| l.layer == "namespace")
        .map(|l| l.object.as_str())
        .collect();
    assert_eq!(namespaces.len(), 2, "{:#?}", stack.layers);
    assert!(
        namespaces.iter().any(|o| o.contains("pm0"))
            && namespaces.iter().any(|o| o.contains("pm1")),
        "{namespaces:?}"
    );
}
