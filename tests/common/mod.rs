//! Helpers shared by the scenario tests: run the module against the fake system.
#![allow(dead_code)]

use pmem_stack::report::ModuleResult;
use pmem_stack::system::fake::FakeSystem;
use pmem_stack::units::Bytes;
use serde_json::{json, Value};

/// 1 GiB DIMMs, like the VM rig (mkfs.xfs wants more than 512 MiB with the DAX stripe unit).
pub const DIMM: Bytes = Bytes(1 << 30);

/// An empty directory for a test, under the temp directory, named for `what` and this
/// process.
pub fn fresh_dir(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pmem-stack-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The keys of the JSON object `v` (`what` names it when it is not one).
pub fn key_set<'a>(v: &'a Value, what: &str) -> std::collections::BTreeSet<&'a str> {
    v.as_object()
        .unwrap_or_else(|| panic!("{what} is not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// The arguments (a JSON value), parsed and validated.
pub fn validated(args: &Value) -> pmem_stack::args::validate::Desired {
    pmem_stack::args::validate::validate(
        &pmem_stack::args::parse_input(&args.to_string())
            .map_err(|e| e.errors)
            .expect("parses")
            .args,
    )
    .expect("valid")
}

/// Run with the given arguments (a JSON value) against the fake.
pub fn run(fake: &mut FakeSystem, args: &Value) -> ModuleResult {
    pmem_stack::run(&args.to_string(), fake, false)
}

/// Same arguments in check mode.
pub fn check(fake: &mut FakeSystem, args: &Value) -> ModuleResult {
    let mut a = args.clone();
    a["_ansible_check_mode"] = Value::Bool(true);
    a["_ansible_diff"] = Value::Bool(true);
    pmem_stack::run(&a.to_string(), fake, false)
}

/// The plan's actions, in order.
pub fn actions(r: &ModuleResult) -> Vec<String> {
    r.plan.iter().map(|p| p.action.clone()).collect()
}

/// Apply, expect success and `changed`, then apply again: unchanged, nothing executed.
/// Check mode first must predict exactly what the real run then does.
pub fn converge(fake: &mut FakeSystem, args: &Value) -> ModuleResult {
    let before = fake.state.clone();
    let c = check(fake, args);
    assert!(!c.failed, "check mode failed: {}", c.msg);
    assert_eq!(fake.state, before, "check mode changed the machine");
    let n0 = fake.mutations();
    let r = run(fake, args);
    assert!(!r.failed, "run failed: {} {:?}", r.msg, r.failed_step);
    assert_eq!(
        r.plan, c.plan,
        "check mode's plan differs from the real run's"
    );
    let mut accounted: Vec<_> = r.done.clone();
    accounted.extend(r.skipped_steps.iter().map(|s| s.step.clone()));
    accounted.sort_by_key(|s| r.plan.iter().position(|p| p == s));
    assert_eq!(
        accounted, r.plan,
        "every planned step was done or (conditional) skipped"
    );
    assert_eq!(
        fake.mutations() - n0,
        r.done.len(),
        "one operation per step"
    );
    assert_eq!(r.changed, !r.done.is_empty());
    let n1 = fake.mutations();
    let again = run(fake, args);
    assert!(!again.failed, "second run failed: {}", again.msg);
    assert!(!again.changed, "second run changed: {:?}", again.plan);
    assert!(again.plan.is_empty());
    assert_eq!(again.msg, "No changes.");
    assert_eq!(fake.mutations(), n1, "second run executed something");
    r
}

/// The steps that make the striped-xfs recipe on fresh DIMMs, in order.
pub const STRIPED_XFS_STEPS: [&str; 6] = [
    "reconfigure_namespace",
    "reconfigure_namespace",
    "create_dm",
    "mkfs",
    "mount",
    "set_extsize",
];

/// Assert that the run's message has every one of `fragments`.
pub fn assert_msg(r: &ModuleResult, fragments: &[&str]) {
    for f in fragments {
        assert!(r.msg.contains(f), "{}", r.msg);
    }
}

/// Run with the given arguments: it fails, with every one of `fragments` in its message.
pub fn run_fails(fake: &mut FakeSystem, args: &Value, fragments: &[&str]) -> ModuleResult {
    let r = run(fake, args);
    assert!(r.failed, "{}", r.msg);
    assert_msg(&r, fragments);
    r
}

/// Assert that one of the run's warnings is `wanted`.
pub fn assert_warned(r: &ModuleResult, wanted: impl Fn(&str) -> bool) {
    assert!(r.warnings.iter().any(|w| wanted(w)), "{:?}", r.warnings);
}

/// The filesystem on the dm device `name` in the fake.
pub fn dm_filesystem<'a>(fake: &'a FakeSystem, name: &str) -> &'a pmem_stack::actual::Filesystem {
    let dm = fake.state.dm(name).expect("dm");
    fake.state.filesystem(dm.devno).expect("fs")
}

/// Fresh DIMMs (two) with `args` converged, then `args` as `change` leaves them
/// converged: the machine and that second run.
pub fn converge_changed(
    args: &Value,
    change: impl FnOnce(&mut Value),
) -> (FakeSystem, ModuleResult) {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, args);
    let mut changed = args.clone();
    change(&mut changed);
    let r = converge(&mut fake, &changed);
    (fake, r)
}

/// Assert that the detail of step `i` of the run's plan is `wanted`.
pub fn assert_detail(r: &ModuleResult, i: usize, wanted: impl Fn(&str) -> bool) {
    assert!(wanted(&r.plan[i].detail), "{}", r.plan[i].detail);
}

/// Assert that `args` are refused on a copy of `base` in check mode and in a live run
/// alike (`what` names the case): failed, nothing planned or done, every one of
/// `fragments` in the message, nothing executed, nothing changed. The copy.
pub fn refused_alike(
    base: &FakeSystem,
    args: &Value,
    what: &str,
    fragments: &[&str],
) -> FakeSystem {
    let mut fake = base.clone();
    let before = fake.state.clone();
    let n = fake.mutations();
    for r in [check(&mut fake, args), run(&mut fake, args)] {
        assert!(r.failed && !r.changed, "{what}: {}", r.msg);
        assert!(
            r.plan.is_empty() && r.done.is_empty(),
            "{what}: {:?}",
            r.plan
        );
        assert!(
            fragments.iter().all(|f| r.msg.contains(f)),
            "{what}: {}",
            r.msg
        );
    }
    assert_eq!(fake.mutations(), n, "{what}: nothing executed");
    assert_eq!(fake.state, before, "{what}: nothing changed");
    fake
}

/// `args` with `allow_data_loss: true`.
pub fn allowing_data_loss(args: &Value) -> Value {
    let mut allowed = args.clone();
    allowed["allow_data_loss"] = json!(true);
    allowed
}

/// `args` with `state: absent`.
pub fn tearing_down(args: &Value) -> Value {
    let mut absent = args.clone();
    absent["state"] = json!("absent");
    absent
}

/// The live table of a dm device in the fake.
pub fn table(fake: &FakeSystem, name: &str) -> Vec<String> {
    fake.state
        .dm(name)
        .map(|d| d.table.text())
        .unwrap_or_default()
}

/// Block device (devno, size in sectors) of a namespace by name.
pub fn ns_block(fake: &FakeSystem, name: &str) -> (String, u64) {
    let ns = fake.state.namespace_named(name).expect("namespace exists");
    let bd = fake
        .state
        .block_named(ns.blockdev.as_deref().expect("has a block device"))
        .expect("block device");
    (bd.devno.to_string(), bd.size.0)
}

/// fsdax namespaces, `pm<i>` in `region<i>` for each `i` of `ids`.
pub fn fsdax(ids: std::ops::Range<usize>) -> Value {
    ids.map(|i| json!({"name": format!("pm{i}"), "region": format!("region{i}"), "mode": "fsdax"}))
        .collect()
}

/// The fsdax namespaces `ids` (see [`fsdax`]), the dm device `name` of `target` over all
/// of them, an `fstype` filesystem on it, mounted on `path`.
pub fn dm_stack(
    ids: std::ops::Range<usize>,
    target: &str,
    name: &str,
    fstype: &str,
    path: &str,
) -> Value {
    let members: Vec<String> = ids.clone().map(|i| format!("pm{i}")).collect();
    json!({
        "namespaces": fsdax(ids),
        "devices": [{"name": name, "target": target, "members": members}],
        "filesystems": [{"device": name, "type": fstype}],
        "mounts": [{"path": path, "device": name}]
    })
}

/// The striped-xfs recipe: two fsdax namespaces, a striped device, xfs, a DAX mount.
pub fn striped_xfs() -> Value {
    let mut v = dm_stack(0..2, "striped", "pmem-striped", "xfs", "/mnt/pmem");
    v["devices"][0]["chunk"] = json!("2M");
    v["filesystems"][0]["label"] = json!("pmemfs");
    v["mounts"][0]["options"] = json!(["noatime"]);
    v
}
