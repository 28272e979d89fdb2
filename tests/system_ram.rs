//! PMEM as system RAM on the fake system: a devdax namespace given to the kernel (the
//! auto-online policy set aside around daxctl and put back), idempotent, reported;
//! onlining offline memory; taken back when undeclared or torn down, refused while in
//! use (EBUSY) with nothing half-done; a stopped run's policy put back; a reboot replayed.

mod common;

use common::*;
use pmem_stack::op::Op;
use pmem_stack::plan::replay::replay_args;
use pmem_stack::system::fake::FakeSystem;
use serde_json::{json, Value};

const GIB: pmem_stack::units::Bytes = pmem_stack::units::Bytes(1 << 30);

fn ram(system_ram: Value) -> Value {
    json!({"namespaces": [{"name": "ram0", "region": "region0", "mode": "devdax", "system_ram": system_ram}]})
}

fn devdax_only() -> Value {
    json!({"namespaces": [{"name": "ram0", "region": "region0", "mode": "devdax"}]})
}

fn dax_ops(fake: &FakeSystem) -> Vec<Op> {
    fake.executed
        .iter()
        .filter(|op| {
            matches!(
                op,
                Op::DaxToSystemRam { .. }
                    | Op::DaxOnlineMemory { .. }
                    | Op::DaxToDevdax { .. }
                    | Op::RestoreAutoOnline { .. }
            )
        })
        .cloned()
        .collect()
}

#[test]
fn a_devdax_namespace_becomes_system_ram_movable_and_online() {
    let mut fake = FakeSystem::fresh_dimms(1, GIB);
    let r = converge(&mut fake, &ram(json!({})));
    assert_eq!(actions(&r), ["reconfigure_namespace", "to_system_ram"]);
    assert_eq!(
        dax_ops(&fake),
        [Op::DaxToSystemRam {
            dev: "dax0.0".into(),
            online: true,
            movable: true
        }]
    );
    assert_eq!(
        pmem_stack::system::argv::command_line(&dax_ops(&fake)[0])
            .expect("argv")
            .join(" "),
        "daxctl reconfigure-device --mode=system-ram dax0.0"
    );
    // the policy was set aside around daxctl and is back
    assert_eq!(fake.ram.policy, "online");
    assert_eq!(fake.ram.saved, None);
    // the result says what came online, where, and what the rounding cost
    let rep = &r.system_ram.as_ref().expect("reported")["ram0"];
    assert_eq!(rep.dax, "dax0.0");
    assert_eq!(rep.mode, "system-ram");
    assert_eq!(rep.blocks, 7, "{rep:?}");
    assert_eq!(rep.online_blocks, 7);
    assert_eq!(rep.online_bytes, 7 * (128 << 20));
    assert_eq!(rep.zones, ["Movable"]);
    assert_eq!(rep.nodes, [1]);
    assert_eq!(
        rep.lost_to_rounding,
        ((1u64 << 30) - (16 << 20)) - 7 * (128 << 20)
    );
    // and the facts
    let facts = pmem_stack::facts(&mut fake);
    assert!(
        facts
            .msg
            .contains("1 dax device(s) as system RAM (896M online)"),
        "{}",
        facts.msg
    );
}

#[test]
fn not_movable_and_not_online_are_daxctls_words() {
    let mut fake = FakeSystem::fresh_dimms(1, GIB);
    converge(&mut fake, &ram(json!({"online": false, "movable": "no"})));
    assert_eq!(
        pmem_stack::system::argv::command_line(&dax_ops(&fake)[0])
            .expect("argv")
            .join(" "),
        "daxctl reconfigure-device --mode=system-ram --no-online --no-movable dax0.0"
    );
    // declared online now: the offline blocks are onlined
    let r = converge(&mut fake, &ram(json!({"movable": false})));
    assert_eq!(actions(&r), ["online_memory"]);
    assert_eq!(
        pmem_stack::system::argv::command_line(dax_ops(&fake).last().expect("op"))
            .expect("argv")
            .join(" "),
        "daxctl online-memory --no-movable dax0.0"
    );
    assert_eq!(
        r.system_ram.as_ref().expect("reported")["ram0"].zones,
        ["Normal"]
    );
}

#[test]
fn going_back_offlines_first_and_memory_in_use_fails_with_ebusy_and_nothing_half_done() {
    let mut fake = FakeSystem::fresh_dimms(1, GIB);
    converge(&mut fake, &ram(json!({})));
    fake.ram.in_use.insert("dax0.0".into());
    let n0 = fake.mutations();
    let r = run_fails(&mut fake, &devdax_only(), &["to_devdax", "EBUSY", "dax0.0"]);
    assert_eq!(actions(&r), ["to_devdax"]);
    assert_eq!(fake.mutations(), n0);
    assert!(
        fake.ram.kmem.contains_key("dax0.0"),
        "still memory, all of it"
    );
    assert!(fake.ram.kmem["dax0.0"].iter().all(|b| b.online));
    fake.ram.in_use.clear();
    let r = converge(&mut fake, &devdax_only());
    assert_eq!(actions(&r), ["to_devdax"]);
    assert!(r.plan.iter().all(|p| !p.destructive));
    assert!(fake.ram.kmem.is_empty());
}

#[test]
fn teardown_takes_the_memory_back_before_the_namespace() {
    let mut fake = FakeSystem::fresh_dimms(1, GIB);
    converge(&mut fake, &ram(json!({})));
    let r = run(
        &mut fake,
        &allowing_data_loss(&tearing_down(&ram(json!({})))),
    );
    assert!(!r.failed, "{}", r.msg);
    assert_eq!(actions(&r), ["to_devdax", "destroy_namespace"]);
    assert!(fake.ram.kmem.is_empty());
    // without allow_data_loss the namespace stays, its memory is taken back all the same
    let mut fake = FakeSystem::fresh_dimms(1, GIB);
    converge(&mut fake, &ram(json!({})));
    let r = run(&mut fake, &tearing_down(&ram(json!({}))));
    assert!(!r.failed, "{}", r.msg);
    assert_eq!(actions(&r), ["to_devdax"]);
}

#[test]
fn a_run_stopped_with_the_policy_set_aside_is_put_back_by_the_next() {
    let mut fake = FakeSystem::fresh_dimms(1, GIB);
    converge(&mut fake, &devdax_only());
    fake.kill_mid_op = Some(fake.mutations() + 1);
    let r = run(&mut fake, &ram(json!({})));
    assert!(r.failed);
    assert_eq!(fake.ram.saved.as_deref(), Some("online"));
    assert_eq!(fake.ram.policy, "offline");
    fake.kill_mid_op = None;
    let r = converge(&mut fake, &ram(json!({})));
    assert_eq!(actions(&r), ["restore_auto_online", "to_system_ram"]);
    assert_eq!(fake.ram.policy, "online");
    assert_eq!(fake.ram.saved, None);
}

#[test]
fn a_reboot_is_replayed_by_giving_the_memory_again() {
    let mut fake = FakeSystem::fresh_dimms(1, GIB);
    let mut args = ram(json!({}));
    converge(&mut fake, &args);
    fake.reboot();
    assert!(fake.ram.kmem.is_empty(), "kmem does not outlive a boot");
    args["boot"] = json!({"persist": true});
    let r = pmem_stack::run_replay(&replay_args(&args.to_string()).expect("args"), &mut fake);
    assert!(!r.failed, "{}", r.msg);
    assert_eq!(actions(&r), ["to_system_ram"]);
    assert!(fake.ram.kmem["dax0.0"].iter().all(|b| b.online));
}

#[test]
fn system_ram_is_for_devdax_namespaces() {
    let mut fake = FakeSystem::fresh_dimms(1, GIB);
    for (bad, path) in [
        (
            json!({"online": "maybe"}),
            "namespaces[0].system_ram.online",
        ),
        (json!({"zone": 1}), "namespaces[0].system_ram.zone"),
    ] {
        let args = json!({"namespaces": [{"name": "p", "region": "region0", "mode": "devdax", "system_ram": bad}]});
        let r = run(&mut fake, &args);
        assert!(r.failed);
        let text = serde_json::to_value(&r).expect("json").to_string();
        assert!(text.contains(path), "{path} not in {text}");
    }
    let args = json!({"namespaces": [{"name": "p", "region": "region0", "mode": "fsdax", "system_ram": {}}]});
    let r = run(&mut fake, &args);
    assert!(r.failed);
    let text = serde_json::to_value(&r).expect("json").to_string();
    assert!(
        text.contains("namespaces[0].system_ram") && text.contains("applies to devdax namespaces"),
        "{text}"
    );
    assert_eq!(fake.mutations(), 0);
}

/// A kill in any operation: giving the memory (the policy set aside), onlining it (one
/// block online, the rest not), taking it back (all offline, still system-ram): the next
/// run finishes, nothing destructive, and the run after has nothing to do.
#[test]
fn a_run_killed_at_any_operation_of_system_ram_is_finished_by_the_next_run() {
    let cases: [(&str, Value, Value); 3] = [
        ("given", devdax_only(), ram(json!({}))),
        ("onlined", ram(json!({"online": false})), ram(json!({}))),
        ("taken back", ram(json!({})), devdax_only()),
    ];
    for (what, before, after) in cases {
        let steps = {
            let mut fake = FakeSystem::fresh_dimms(1, GIB);
            converge(&mut fake, &before);
            let n0 = fake.mutations();
            run(&mut fake, &after);
            fake.mutations() - n0
        };
        assert!(steps > 0, "{what}");
        for k in 1..=steps {
            let mut fake = FakeSystem::fresh_dimms(1, GIB);
            converge(&mut fake, &before);
            fake.kill_mid_op = Some(fake.mutations() + k);
            let r = run(&mut fake, &after);
            assert!(r.failed, "{what} k={k}");
            fake.kill_mid_op = None;
            let r = run(&mut fake, &after);
            assert!(!r.failed, "{what} k={k}: {} {:?}", r.msg, r.plan);
            assert!(r.plan.iter().all(|p| !p.destructive), "{what} k={k}");
            let again = run(&mut fake, &after);
            assert!(
                !again.failed && !again.changed,
                "{what} k={k}: {:?}",
                again.plan
            );
            // as declared: all of it online, or none of it memory
            let as_declared = match after["namespaces"][0].get("system_ram") {
                Some(_) => fake
                    .ram
                    .kmem
                    .get("dax0.0")
                    .is_some_and(|bl| bl.iter().all(|b| b.online)),
                None => fake.ram.kmem.is_empty(),
            };
            assert!(as_declared, "{what} k={k}: {:?}", fake.ram.kmem);
            assert_eq!(
                (fake.ram.policy.as_str(), &fake.ram.saved),
                ("online", &None),
                "{what} k={k}"
            );
        }
    }
}
