//! Boot persistence and teardown on the fake system: the files written (and only when
//! they differ), a simulated reboot replayed by identity, `state: absent`, and a model
//! of what systemd does with the units at boot.

mod common;

use common::*;
use pmem_stack::actual::{FileContent, FileState};
use pmem_stack::boot::{
    declared_objects, replay_link, replay_unit_for, state_path_for, unit_file_of, BINARY,
    LEGACY_BINARY, LEGACY_SERVICE, LEGACY_STATE_FILE, MARKER, SERVICE_TEMPLATE, STATE_DIR,
    UNIT_DIR,
};
use pmem_stack::plan::replay::replay_args;
use pmem_stack::report::ModuleResult;
use pmem_stack::system::fake::FakeSystem;
use pmem_stack::system::{DevId, Op, System};
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn persisted() -> Value {
    let mut v = dm_stack(0..2, "striped", "pmem-striped", "xfs", "/mnt/pmem");
    v["mounts"][0]["options"] = json!(["noatime"]);
    v["boot"] = json!({"persist": "yes"});
    v["allow_data_loss"] = json!(true);
    v
}

/// The saved state of the task with these arguments (it was the one
/// /etc/pmem-stack/state.json; now one file per stack in /etc/pmem-stack/state.d).
fn state_file(args: &Value) -> String {
    state_path_for(&declared_objects(args))
}

/// The replay instance of the task with these arguments, `pmem-stack@<stem>.service`.
fn instance(args: &Value) -> String {
    replay_unit_for(&declared_objects(args))
}

/// The link enabling that instance.
fn instance_link(args: &Value) -> String {
    replay_link(&instance(args))
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
    // its own stack's replay instance, named after the saved state
    let inst = instance(&persisted());
    let stem = state_file(&persisted())
        .trim_start_matches(&format!("{STATE_DIR}/"))
        .trim_end_matches(".json")
        .to_string();
    assert!(stem.starts_with("pmem-striped-"), "{stem}");
    assert_eq!(inst, format!("pmem-stack@{stem}.service"));
    assert!(
        unit.contains("Options=dax=always,noatime\n")
            && unit.contains("Type=xfs\n")
            && unit.contains(&format!("Requires={inst}\n"))
            && unit.contains(&format!("After={inst}\n"))
            && !unit.contains(LEGACY_SERVICE),
        "{unit}"
    );
    // the instance is enabled by a link to the template, as `systemctl enable` makes it
    assert_eq!(
        fake.state
            .file(&format!(
                "{UNIT_DIR}/local-fs-pre.target.wants/pmem-stack@{stem}.service"
            ))
            .map(|f| f.content.clone()),
        Some(FileContent::Link {
            target: format!("{UNIT_DIR}/pmem-stack@.service")
        })
    );
    let template = text(&fake, &format!("{UNIT_DIR}/{SERVICE_TEMPLATE}"));
    assert!(
        template.contains(
            "ExecStart=/usr/local/libexec/pmem-stack/pmem_stack --boot /etc/pmem-stack/state.d/%i.json\n"
        ),
        "{template}"
    );
    assert!(fake
        .state
        .file(&format!("{UNIT_DIR}/{LEGACY_SERVICE}"))
        .is_none());
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
    let (fake, r) = converge_changed(&persisted(), |a| {
        a["mounts"][0]["path"] = json!("/srv/pmem");
    });
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
        let t = dm.table.lines().expect("table");
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
    assert_detail(&r, 1, |d| {
        d.contains("only if the device is blank when it appears")
    });
    let done: Vec<&str> = r.done.iter().map(|s| s.action.as_str()).collect();
    assert_eq!(
        done,
        ["create_dm", "mount"],
        "rebuilt and mounted; the filesystem found, not made"
    );
    let skipped: Vec<&str> = r
        .skipped_steps
        .iter()
        .map(|s| s.step.action.as_str())
        .collect();
    assert_eq!(skipped, ["mkfs", "set_extsize"], "{:?}", r.skipped_steps);
    assert!(
        r.skipped_steps[0].why.contains("already holds xfs"),
        "{:?}",
        r.skipped_steps
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
    let r = converge(&mut fake, &absent(&persisted()));
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
    let op = pmem_stack::system::Op::DmCreate {
        name: "someone-else".into(),
        max_sectors_kb: None,
        table: vec![format!("0 {} linear {} 0", size.0, dm.devno)
            .parse()
            .expect("line")],
    };
    pmem_stack::system::System::execute(&mut fake, &op).expect("foreign dm");
    args["state"] = json!("absent");
    run_fails(&mut fake, &args, &["is held by someone-else"]);
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
    assert_warned(&r, |w| {
        w.starts_with("namespace pm0 is in region0, declared in region1: kept where it is")
    });
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

/// The last stack torn down: not one boot file is left (template, binary, links...).
fn no_boot_file_left(fake: &FakeSystem) {
    assert!(
        fake.state.files.is_empty(),
        "{:?}",
        fake.state.files.iter().map(|f| &f.path).collect::<Vec<_>>()
    );
}

/// Four fresh DIMMs with task A, then task B, converged; and their arguments.
fn a_and_b() -> (FakeSystem, Value, Value) {
    let mut fake = FakeSystem::fresh_dimms(4, DIMM);
    let (a, b) = (stack_a(), stack_b());
    converge(&mut fake, &a);
    converge(&mut fake, &b);
    (fake, a, b)
}

/// Task A: striped xfs over pm0 and pm1 on /mnt/a.
fn stack_a() -> Value {
    persisted_task(dm_stack(0..2, "striped", "pmem-a", "xfs", "/mnt/a"))
}

/// Task B: linear ext4 over pm2 on /mnt/b.
fn stack_b() -> Value {
    let mut v = dm_stack(2..3, "linear", "pmem-b", "ext4", "/mnt/b");
    v["mounts"][0]["options"] = json!(["noatime"]);
    persisted_task(v)
}

/// Task B without its filesystem and mount: a dm device alone.
fn stack_b_without_mount() -> Value {
    let mut b = stack_b();
    b["filesystems"] = json!([]);
    b["mounts"] = json!([]);
    b
}

/// Task C: a GPT partition on pm3, xfs, on /mnt/c (its unit names the partition uuid).
fn stack_c() -> Value {
    persisted_task(json!({
        "namespaces": fsdax(3..4),
        "partitions": [{"name": "pmem-c", "disk": "pm3"}],
        "filesystems": [{"device": "pmem-c", "type": "xfs"}],
        "mounts": [{"path": "/mnt/c", "device": "pmem-c"}]
    }))
}

/// A task's arguments, persisted at boot and allowed to destroy data.
fn persisted_task(mut args: Value) -> Value {
    args["boot"] = json!({"persist": true});
    args["allow_data_loss"] = json!(true);
    args
}

fn absent(args: &Value) -> Value {
    let mut a = args.clone();
    a["state"] = json!("absent");
    a["allow_data_loss"] = json!(false);
    a
}

/// The paths of the boot files of one task: its saved state, the link enabling its
/// replay instance, its mount unit and the unit's link.
fn own_paths(args: &Value, unit: &str) -> [String; 4] {
    [
        state_file(args),
        instance_link(args),
        format!("{UNIT_DIR}/{unit}"),
        format!("{UNIT_DIR}/local-fs.target.wants/{unit}"),
    ]
}

/// The boot files of one task (see [`own_paths`]).
fn own_files(fake: &FakeSystem, args: &Value, unit: &str) -> Vec<Option<FileState>> {
    own_paths(args, unit)
        .iter()
        .map(|p| fake.state.file(p).cloned())
        .collect()
}

/// The files a run removes, in plan order.
fn removed_files(r: &ModuleResult) -> Vec<String> {
    r.plan
        .iter()
        .filter(|s| s.action == "remove_file")
        .map(|s| s.target.clone())
        .collect()
}

/// Assert that the run removes exactly the boot files of one task (see [`own_paths`]).
fn assert_removes_own_files(r: &ModuleResult, args: &Value, unit: &str) {
    let mut removed = removed_files(r);
    removed.sort();
    let mut want = own_paths(args, unit).to_vec();
    want.sort();
    assert_eq!(removed, want, "{:?}", r.plan);
}

/// Assert that a boot (as systemd runs the units) runs exactly the replay instances of
/// `tasks` and the `others`, each done.
fn assert_boot_runs(fake: &mut FakeSystem, tasks: &[&Value], others: &[&str]) {
    let units = tasks.iter().map(|t| instance(t));
    let want: BTreeMap<String, Job> = units
        .chain(others.iter().map(|u| u.to_string()))
        .map(|u| (u, Job::Done))
        .collect();
    assert_eq!(systemd_boot(fake), want);
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

// ---- what systemd does with the units at boot ----

/// How a unit's start job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Job {
    /// Started (a service that exited 0; a mount that is mounted).
    Done,
    /// A condition failed: not started, and not a failure (dependents go on).
    Skipped,
    /// Failed on its own (a replay that failed; a unit file not found; not mounted).
    Failed(String),
    /// Not started: a unit it `Requires=` failed ("Dependency failed").
    Dependency(String),
}

/// The boot of the fake, as systemd runs our units (the model these tests need, not
/// systemd): after [`FakeSystem::reboot`], every unit enabled in
/// `local-fs-pre.target.wants/` is started, in name order (the replays would run in
/// parallel, but never interleave: the run lock); then every mount unit enabled in
/// `local-fs.target.wants/`. Starting a unit loads its file (an instance's from its
/// template, `%i` replaced by the instance), starts first each unit it `Requires=`
/// (pulled in even when not enabled; a unit without a file is "not found"), and fails
/// with "dependency" when one of them failed. A service checks its conditions
/// (`ConditionPathExists=`, `ConditionDirectoryNotEmpty=`, `|` for triggering ones),
/// then runs its `ExecStart=`, which must be `pmem_stack --boot [FILE]` of the installed
/// binary: the replay of that file, or of every saved state as `main.rs` orders them.
/// A mount unit is done when its `Where=` is mounted (the replay mounted it).
struct Systemd<'a> {
    fake: &'a mut FakeSystem,
    jobs: BTreeMap<String, Job>,
}

fn systemd_boot(fake: &mut FakeSystem) -> BTreeMap<String, Job> {
    fake.reboot();
    let wants = |fake: &FakeSystem, target: &str| -> Vec<String> {
        let dir = format!("{UNIT_DIR}/{target}.wants/");
        let mut v: Vec<String> = fake
            .state
            .files
            .iter()
            .filter_map(|f| f.path.strip_prefix(&dir).map(String::from))
            .collect();
        v.sort();
        v
    };
    let pre = wants(fake, "local-fs-pre.target");
    let mounts = wants(fake, "local-fs.target");
    let mut sd = Systemd {
        fake,
        jobs: BTreeMap::new(),
    };
    for unit in pre.iter().chain(&mounts) {
        sd.start(unit);
    }
    sd.jobs
}

impl Systemd<'_> {
    fn unit_text(&self, unit: &str) -> Option<String> {
        match self
            .fake
            .state
            .file(&unit_file_of(unit))
            .map(|f| &f.content)
        {
            Some(FileContent::Text { text }) => {
                let instance = unit
                    .split_once('@')
                    .and_then(|(_, rest)| rest.rsplit_once('.'))
                    .map(|(i, _)| i)
                    .unwrap_or_default();
                Some(text.replace("%i", instance))
            }
            _ => None,
        }
    }

    fn start(&mut self, unit: &str) -> Job {
        if let Some(j) = self.jobs.get(unit) {
            return j.clone();
        }
        let job = self.run(unit);
        self.jobs.insert(unit.to_string(), job.clone());
        job
    }

    fn run(&mut self, unit: &str) -> Job {
        let Some(text) = self.unit_text(unit) else {
            return Job::Failed(format!("{unit}: unit not found"));
        };
        let values = |key: &str| -> Vec<String> {
            text.lines()
                .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .flat_map(|v| v.split_whitespace().map(String::from).collect::<Vec<_>>())
                .collect()
        };
        for dep in values("Requires") {
            match self.start(&dep) {
                Job::Done | Job::Skipped => {}
                other => return Job::Dependency(format!("{dep}: {other:?}")),
            }
        }
        if unit.ends_with(".mount") {
            let target = values("Where").concat();
            return if self.fake.state.mount_at(&target).is_some() {
                Job::Done
            } else {
                Job::Failed(format!("{target} not mounted"))
            };
        }
        // conditions: all plain ones must hold, and one of the triggering ones if any
        let files = &self.fake.state.files;
        let mut triggering = Vec::new();
        for (key, holds) in [
            (
                "ConditionPathExists",
                &(|p: &str| files.iter().any(|f| f.path == p)) as &dyn Fn(&str) -> bool,
            ),
            ("ConditionDirectoryNotEmpty", &|d: &str| {
                files.iter().any(|f| f.path.starts_with(&format!("{d}/")))
            }),
        ] {
            for v in values(key) {
                match v.strip_prefix('|') {
                    Some(t) => triggering.push(holds(t)),
                    None if !holds(&v) => return Job::Skipped,
                    None => {}
                }
            }
        }
        if !triggering.is_empty() && !triggering.contains(&true) {
            return Job::Skipped;
        }
        let exec = values("ExecStart");
        // the copy of this version, or the one earlier versions installed
        let installed = |bin: &str| {
            [BINARY, LEGACY_BINARY].contains(&bin) && self.fake.state.file(bin).is_some()
        };
        let states = match exec
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            [bin, "--boot"] if installed(bin) => self.fake.saved_states(),
            [bin, "--boot", file] if installed(bin) => {
                let t = match self.fake.state.file(file).map(|f| &f.content) {
                    Some(FileContent::Text { text }) => Ok(text.clone()),
                    _ => Err(format!("{file}: no such file")),
                };
                vec![(file.to_string(), t)]
            }
            _ => return Job::Failed(format!("{unit}: cannot run {exec:?}")),
        };
        let r = pmem_stack::replay(&states, self.fake);
        if r.failed {
            Job::Failed(r.msg)
        } else {
            Job::Done
        }
    }
}

/// The previous release's shared replay service, as it wrote it.
fn old_service_text() -> String {
    format!(
        "{MARKER}
[Unit]
Description=Rebuild the persistent-memory stacks (device-mapper tables) saved in {STATE_DIR}
Documentation=man:ndctl(1) man:dmsetup(8)
DefaultDependencies=no
Wants=systemd-udev-settle.service
After=systemd-udev-settle.service systemd-modules-load.service
Before=local-fs-pre.target shutdown.target
Conflicts=shutdown.target
ConditionDirectoryNotEmpty=|{STATE_DIR}
ConditionPathExists=|{LEGACY_STATE_FILE}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={LEGACY_BINARY} --boot
StandardOutput=journal
StandardError=journal

[Install]
WantedBy=local-fs-pre.target
"
    )
}

/// Turn the boot files into what the previous release left: no template and no
/// instance links, the one shared `pmem-stack.service` (replaying every saved state) and
/// its link, mount units requiring it.
fn to_previous_release(fake: &mut FakeSystem) {
    to_legacy_copy(fake);
    let template = format!("{UNIT_DIR}/{SERVICE_TEMPLATE}");
    fake.state.files.retain(|f| {
        f.path != template
            && !matches!(&f.content, FileContent::Link { target } if *target == template)
    });
    for f in &mut fake.state.files {
        if let FileContent::Text { text } = &mut f.content {
            if f.path.ends_with(".mount") {
                *text = text
                    .lines()
                    .map(|l| match l.split_once('=') {
                        Some((k @ ("Requires" | "After"), _)) => format!("{k}={LEGACY_SERVICE}\n"),
                        _ => format!("{l}\n"),
                    })
                    .collect();
            }
        }
    }
    fake.state.files.push(FileState {
        path: format!("{UNIT_DIR}/{LEGACY_SERVICE}"),
        content: FileContent::Text {
            text: old_service_text(),
        },
        mode: Some(0o644),
    });
    fake.state.files.push(FileState {
        path: replay_link(LEGACY_SERVICE),
        content: FileContent::Link {
            target: format!("{UNIT_DIR}/{LEGACY_SERVICE}"),
        },
        mode: None,
    });
}

/// Turn the boot copy into what releases before the move to [`BINARY`] left: the copy
/// at [`LEGACY_BINARY`], and the template running it.
fn to_legacy_copy(fake: &mut FakeSystem) {
    for f in &mut fake.state.files {
        if f.path == BINARY {
            f.path = LEGACY_BINARY.to_string();
        }
        if let FileContent::Text { text } = &mut f.content {
            *text = text.replace(
                &format!("ExecStart={BINARY} "),
                &format!("ExecStart={LEGACY_BINARY} "),
            );
        }
    }
}

/// The units that name the legacy service.
fn naming_legacy_service(fake: &FakeSystem) -> Vec<String> {
    let mut v: Vec<String> = fake
        .state
        .files
        .iter()
        .filter(|f| matches!(&f.content, FileContent::Text { text } if text.contains(&format!("={LEGACY_SERVICE}\n"))))
        .map(|f| f.path.clone())
        .collect();
    v.sort();
    v
}

/// A DIMM pulled out while the machine was off: its region, namespaces and their block
/// devices are gone.
fn remove_dimm(fake: &mut FakeSystem, region: &str) {
    let blocks: Vec<String> = fake
        .state
        .namespaces
        .iter()
        .filter(|n| n.region == region)
        .filter_map(|n| n.blockdev.clone())
        .collect();
    let devnos: Vec<_> = blocks
        .iter()
        .filter_map(|b| fake.state.block_named(b).map(|b| b.devno))
        .collect();
    fake.state.regions.retain(|r| r.name != region);
    fake.state.namespaces.retain(|n| n.region != region);
    fake.state
        .block_devices
        .retain(|b| !devnos.contains(&b.devno));
    fake.state
        .filesystems
        .retain(|f| !devnos.contains(&f.device));
    fake.state
        .partition_tables
        .retain(|t| !devnos.contains(&t.disk));
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

    // each task has its own replay instance, and its mount unit requires that one
    let links: Vec<String> = [&a, &b, &c].iter().map(|t| instance_link(t)).collect();
    assert_eq!(links.len(), 3);
    assert!(links[0] != links[1] && links[1] != links[2] && links[0] != links[2]);
    for (args, unit) in [
        (&a, "mnt-a.mount"),
        (&b, "mnt-b.mount"),
        (&c, "mnt-c.mount"),
    ] {
        let t = text(&fake, &format!("{UNIT_DIR}/{unit}"));
        assert!(
            t.contains(&format!("Requires={}\n", instance(args))),
            "{unit}: {t}"
        );
    }
    let templates: Vec<&str> = fake
        .state
        .files
        .iter()
        .filter(|f| f.path.ends_with(".service") && !f.path.contains(".wants/"))
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(
        templates,
        [format!("{UNIT_DIR}/{SERVICE_TEMPLATE}")],
        "one template"
    );

    // a reboot: `pmem_stack --boot` with no file replays every saved state (what the
    // shared service of earlier versions runs); all three come back
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

    // B torn down: its state, instance link, unit and link go; A's and C's stay, and
    // so do the shared template and binary
    let template = format!("{UNIT_DIR}/{SERVICE_TEMPLATE}");
    let r = converge(&mut fake, &absent(&b));
    assert_removes_own_files(&r, &b, "mnt-b.mount");
    assert!(own_files(&fake, &b, "mnt-b.mount")
        .iter()
        .all(Option::is_none));
    assert_eq!(own_files(&fake, &a, "mnt-a.mount"), a_files, "A's files");
    assert_eq!(own_files(&fake, &c, "mnt-c.mount"), c_files, "C's files");
    for p in [&template, &BINARY.to_string()] {
        assert!(fake.state.file(p).is_some(), "{p} is shared: kept");
    }
    assert!(mounted(&fake, "/mnt/a") && mounted(&fake, "/mnt/c"));
    unchanged(&mut fake, &a, "A");
    unchanged(&mut fake, &c, "C");

    // the next boot (as systemd runs the units) brings A and C back, not B
    assert_boot_runs(&mut fake, &[&a, &c], &["mnt-a.mount", "mnt-c.mount"]);
    assert!(mounted(&fake, "/mnt/a") && mounted(&fake, "/mnt/c") && !mounted(&fake, "/mnt/b"));
    assert!(fake.state.dm("pmem-b").is_none());

    // the last stack torn down takes the template and the binary with it
    converge(&mut fake, &absent(&a));
    assert!(fake.state.file(&template).is_some(), "C still persisted");
    assert!(fake.state.file(&instance_link(&c)).is_some());
    converge(&mut fake, &absent(&c));
    no_boot_file_left(&fake);
}

#[test]
fn a_task_whose_declaration_grows_or_shrinks_replaces_only_its_own_state() {
    let mut fake = FakeSystem::fresh_dimms(4, DIMM);
    let a = stack_a();
    converge(&mut fake, &a);
    let a_files = own_files(&fake, &a, "mnt-a.mount");
    // B first without its filesystem and mount
    let small = stack_b_without_mount();
    converge(&mut fake, &small);
    // then it grows: a new key; its old state (sharing pm2 and pmem-b) is replaced
    let big = stack_b();
    let r = converge(&mut fake, &big);
    assert_eq!(
        removed_files(&r),
        [instance_link(&small), state_file(&small)],
        "its old instance link, then its old state: {:?}",
        r.plan
    );
    assert!(fake.state.file(&instance_link(&big)).is_some());
    assert!(text(&fake, &format!("{UNIT_DIR}/mnt-b.mount"))
        .contains(&format!("Requires={}\n", instance(&big))));
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
    assert_removes_own_files(&r, &big, "mnt-b.mount");
    assert!(fake.state.file(&instance_link(&small)).is_some());
    assert_eq!(own_files(&fake, &a, "mnt-a.mount"), a_files, "A's files");
    unchanged(&mut fake, &a, "A");
}

#[test]
fn the_single_state_of_an_earlier_version_is_replayed_then_migrated_by_its_task() {
    let mut fake = FakeSystem::fresh_dimms(4, DIMM);
    let (a, b) = (stack_a(), stack_b());
    converge(&mut fake, &a);
    // make it what an early version left: /etc/pmem-stack/state.json, one shared
    // service that replays that file, units whose marker names it and that require the
    // service
    to_previous_release(&mut fake);
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
    let service = format!("{UNIT_DIR}/{LEGACY_SERVICE}");
    let old_service = fake.state.file(&service).cloned();
    let old_a_unit = fake.state.file(&format!("{UNIT_DIR}/mnt-a.mount")).cloned();
    let legacy = fake.state.file(LEGACY_STATE_FILE).cloned();
    assert!(legacy.is_some() && states_in_dir(&fake).is_empty());

    // another task persists its stack: the legacy state, A's unit and the shared
    // service that replays the legacy state (A's unit requires it) are untouched
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
    assert_eq!(
        fake.state.file(&service).cloned(),
        old_service,
        "never rewritten"
    );
    assert!(fake.state.file(&replay_link(LEGACY_SERVICE)).is_some());
    assert!(fake.state.file(&instance_link(&b)).is_some());
    unchanged(&mut fake, &b, "B");

    // a reboot: the old service replays the legacy state, B's instance B's state
    let states = fake.saved_states();
    assert_eq!(states[0].0, LEGACY_STATE_FILE);
    assert_eq!(states[1].0, state_file(&b));
    assert_boot_runs(
        &mut fake,
        &[&b],
        &[LEGACY_SERVICE, "mnt-a.mount", "mnt-b.mount"],
    );
    assert!(mounted(&fake, "/mnt/a") && mounted(&fake, "/mnt/b"));

    // A's own task migrates its state into state.d, enables its instance, rewrites its
    // unit (marker, requirement); then nothing needs the old service: it goes
    let r = converge(&mut fake, &a);
    let a_plan: Vec<(String, String)> = r
        .plan
        .iter()
        .map(|s| (s.action.clone(), s.target.clone()))
        .collect();
    for step in [
        ("write_file", own.clone()),
        ("write_file", instance_link(&a)),
        ("write_file", format!("{UNIT_DIR}/mnt-a.mount")),
        ("remove_file", replay_link(LEGACY_SERVICE)),
        ("remove_file", service.clone()),
        ("remove_file", LEGACY_STATE_FILE.to_string()),
    ] {
        assert!(
            a_plan.contains(&(step.0.to_string(), step.1.clone())),
            "{step:?} in {a_plan:?}"
        );
    }
    assert!(fake.state.file(LEGACY_STATE_FILE).is_none());
    assert!(naming_legacy_service(&fake).is_empty());
    let mut want = vec![own.clone(), state_file(&b)];
    want.sort();
    assert_eq!(states_in_dir(&fake), want);
    unchanged(&mut fake, &b, "B");
    unchanged(&mut fake, &a, "A");
    assert_boot_runs(&mut fake, &[&a, &b], &["mnt-a.mount", "mnt-b.mount"]);
}

#[test]
fn the_shared_service_of_the_previous_release_stays_until_no_unit_or_state_needs_it() {
    let (mut fake, a, b) = a_and_b();
    to_previous_release(&mut fake);
    let service = format!("{UNIT_DIR}/{LEGACY_SERVICE}");
    let service_link = replay_link(LEGACY_SERVICE);
    let (unit_a, unit_b) = (
        format!("{UNIT_DIR}/mnt-a.mount"),
        format!("{UNIT_DIR}/mnt-b.mount"),
    );
    assert_eq!(
        naming_legacy_service(&fake),
        [unit_a.clone(), unit_b.clone()]
    );
    let b_before: Vec<Option<FileState>> = [state_file(&b), unit_b.clone()]
        .iter()
        .map(|p| fake.state.file(p).cloned())
        .collect();

    // A, run once by the new version: its unit requires its own instance now; B's unit
    // still requires the old service, so that stays, as found, and so does the copy
    // of the binary it runs
    let r = converge(&mut fake, &a);
    assert_eq!(
        files_changed(&r),
        [
            ("write_file", BINARY.to_string()),
            ("write_file", format!("{UNIT_DIR}/{SERVICE_TEMPLATE}")),
            ("write_file", instance_link(&a)),
            ("write_file", unit_a.clone()),
        ],
        "{:?}",
        r.plan
    );
    assert_eq!(
        actions(&r).last().map(String::as_str),
        Some("daemon_reload")
    );
    assert_eq!(naming_legacy_service(&fake), std::slice::from_ref(&unit_b));
    assert!(text(&fake, &unit_a).contains(&format!("Requires={}\n", instance(&a))));
    assert_eq!(
        [state_file(&b), unit_b.clone()]
            .iter()
            .map(|p| fake.state.file(p).cloned())
            .collect::<Vec<_>>(),
        b_before,
        "B's files untouched"
    );
    assert_eq!(text(&fake, &service), old_service_text());
    assert!(fake.state.file(&service_link).is_some());
    assert!(
        fake.state.file(&instance_link(&b)).is_none(),
        "B has not run"
    );
    assert!(
        fake.state.file(LEGACY_BINARY).is_some() && fake.state.file(BINARY).is_some(),
        "the old service still runs the old copy"
    );

    // a boot in between: both come up (A by its instance, B by the old service, which
    // replays A again: nothing to do then)
    assert_boot_runs(
        &mut fake,
        &[&a],
        &[LEGACY_SERVICE, "mnt-a.mount", "mnt-b.mount"],
    );
    unchanged(&mut fake, &a, "A");

    // B, run by the new version: it moves too, and with it the last unit naming the
    // old service: that run removes the service and its link
    let r = converge(&mut fake, &b);
    assert_eq!(
        files_changed(&r),
        [
            ("write_file", instance_link(&b)),
            ("write_file", unit_b.clone()),
            ("remove_file", service_link.clone()),
            ("remove_file", service.clone()),
            ("remove_file", LEGACY_BINARY.to_string()),
        ],
        "{:?}",
        r.plan
    );
    assert!(
        r.plan
            .iter()
            .any(|s| s.target == service && s.detail.contains("earlier versions")),
        "{:?}",
        r.plan
    );
    assert!(naming_legacy_service(&fake).is_empty());
    unchanged(&mut fake, &a, "A");
    unchanged(&mut fake, &b, "B");
    assert_boot_runs(&mut fake, &[&a, &b], &["mnt-a.mount", "mnt-b.mount"]);
}

/// The files a run writes or removes, in plan order: `(action, path)`.
fn files_changed(r: &pmem_stack::report::ModuleResult) -> Vec<(&'static str, String)> {
    r.plan
        .iter()
        .filter_map(|s| match s.action.as_str() {
            "write_file" => Some(("write_file", s.target.clone())),
            "remove_file" => Some(("remove_file", s.target.clone())),
            _ => None,
        })
        .collect()
}
#[test]
fn a_legacy_state_is_torn_down_by_its_task_alone() {
    let (mut fake, a, b) = a_and_b();
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
    let (mut fake, a, b) = a_and_b();
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

#[test]
fn a_stack_that_cannot_be_rebuilt_fails_only_its_own_instance_and_mounts() {
    let (mut fake, a, b) = a_and_b();
    // B's DIMM is pulled out while the machine is off
    fake.reboot();
    remove_dimm(&mut fake, "region2");
    assert!(fake.state.namespace_named("pm2").is_none());
    let jobs = systemd_boot(&mut fake);
    assert_eq!(jobs.get(&instance(&a)), Some(&Job::Done), "{jobs:?}");
    assert_eq!(jobs.get("mnt-a.mount"), Some(&Job::Done), "{jobs:?}");
    assert!(
        matches!(jobs.get(&instance(&b)), Some(Job::Failed(m)) if m.contains("pm2")),
        "{jobs:?}"
    );
    assert!(
        matches!(jobs.get("mnt-b.mount"), Some(Job::Dependency(d)) if d.starts_with(&instance(&b))),
        "{jobs:?}"
    );
    assert!(mounted(&fake, "/mnt/a") && !mounted(&fake, "/mnt/b"));
    assert_eq!(jobs.len(), 4, "{jobs:?}");
}

#[test]
fn with_the_shared_service_of_the_previous_release_one_missing_dimm_failed_every_mount() {
    // what the instances fix, in the same model: the one service fails when any stack
    // fails, and every mount unit requiring it fails with it
    let (mut fake, _, _) = a_and_b();
    to_previous_release(&mut fake);
    fake.reboot();
    remove_dimm(&mut fake, "region2");
    let jobs = systemd_boot(&mut fake);
    assert!(
        matches!(jobs.get(LEGACY_SERVICE), Some(Job::Failed(_))),
        "{jobs:?}"
    );
    for unit in ["mnt-a.mount", "mnt-b.mount"] {
        assert!(
            matches!(jobs.get(unit), Some(Job::Dependency(_))),
            "{unit}: {jobs:?}"
        );
    }
    // A's stack itself was rebuilt by that replay: only its mount unit failed
    assert!(fake.state.dm("pmem-a").is_some());
}

#[test]
fn state_absent_on_a_host_of_the_previous_release_removes_the_shared_service_with_the_last_user() {
    let mut fake = FakeSystem::fresh_dimms(4, DIMM);
    let (a, b, c) = (stack_a(), stack_b(), stack_c());
    converge(&mut fake, &a);
    converge(&mut fake, &b);
    converge(&mut fake, &c);
    to_previous_release(&mut fake);
    let service = format!("{UNIT_DIR}/{LEGACY_SERVICE}");
    let template = format!("{UNIT_DIR}/{SERVICE_TEMPLATE}");
    // C moves to its instance; A and B still rely on the old service
    converge(&mut fake, &c);
    assert!(fake.state.file(&service).is_some());
    // A torn down: B's unit still names the old service: kept
    let r = converge(&mut fake, &absent(&a));
    assert!(!r.plan.iter().any(|s| s.target == service), "{:?}", r.plan);
    assert_eq!(
        naming_legacy_service(&fake),
        [format!("{UNIT_DIR}/mnt-b.mount")]
    );
    // B torn down: nothing needs the old service any more; the template stays for C
    let r = converge(&mut fake, &absent(&b));
    assert_eq!(
        files_changed(&r),
        [
            (
                "remove_file",
                format!("{UNIT_DIR}/local-fs.target.wants/mnt-b.mount")
            ),
            ("remove_file", format!("{UNIT_DIR}/mnt-b.mount")),
            ("remove_file", replay_link(LEGACY_SERVICE)),
            ("remove_file", service.clone()),
            ("remove_file", state_file(&b)),
            // the copy the old service ran: no unit runs it any more
            ("remove_file", LEGACY_BINARY.to_string()),
        ],
        "{:?}",
        r.plan
    );
    for p in [&template, &instance_link(&c), &BINARY.to_string()] {
        assert!(fake.state.file(p).is_some(), "{p}");
    }
    unchanged(&mut fake, &c, "C");
    assert_boot_runs(&mut fake, &[&c], &["mnt-c.mount"]);
    converge(&mut fake, &absent(&c));
    no_boot_file_left(&fake);
}

#[test]
fn a_stack_without_mounts_keeps_the_shared_service_until_its_task_moves() {
    // no unit shows that B needs the old service: its saved state without an instance
    // link does
    let mut fake = FakeSystem::fresh_dimms(4, DIMM);
    let (a, b) = (stack_a(), stack_b_without_mount());
    converge(&mut fake, &a);
    converge(&mut fake, &b);
    to_previous_release(&mut fake);
    let service = format!("{UNIT_DIR}/{LEGACY_SERVICE}");
    converge(&mut fake, &a);
    assert!(naming_legacy_service(&fake).is_empty());
    assert!(fake.state.file(&service).is_some(), "B's state needs it");
    let jobs = systemd_boot(&mut fake);
    assert_eq!(jobs.get(LEGACY_SERVICE), Some(&Job::Done), "{jobs:?}");
    assert!(
        fake.state.dm("pmem-b").is_some(),
        "B rebuilt by the old service"
    );
    let r = converge(&mut fake, &b);
    assert_eq!(
        files_changed(&r),
        [
            ("write_file", instance_link(&b)),
            ("remove_file", replay_link(LEGACY_SERVICE)),
            ("remove_file", service.clone()),
            ("remove_file", LEGACY_BINARY.to_string()),
        ],
        "{:?}",
        r.plan
    );
    unchanged(&mut fake, &a, "A");
}

#[test]
fn a_replay_instance_whose_saved_state_is_gone_is_disabled() {
    let (mut fake, a, b) = a_and_b();
    // B's saved state removed by hand: its instance link replays nothing, and its
    // mount unit is declared by no saved state: the next run of any task removes them
    fake.state.files.retain(|f| f.path != state_file(&b));
    let r = converge(&mut fake, &a);
    assert_eq!(
        files_changed(&r),
        [
            (
                "remove_file",
                format!("{UNIT_DIR}/local-fs.target.wants/mnt-b.mount")
            ),
            ("remove_file", format!("{UNIT_DIR}/mnt-b.mount")),
            ("remove_file", instance_link(&b)),
        ],
        "{:?}",
        r.plan
    );
    assert!(r.plan[2].detail.contains("is gone"), "{:?}", r.plan);
    assert!(fake.state.file(&instance_link(&a)).is_some());
    unchanged(&mut fake, &a, "A");
}

#[test]
fn a_move_stopped_at_any_step_boots_every_stack_and_is_finished_by_the_next_run() {
    // the previous release's layout, A and B; each task's first run stopped after each
    // of its steps: a boot then brings both stacks and both mounts up, and running the
    // task again finishes the move
    let (a, b) = (stack_a(), stack_b());
    let old_host = {
        let mut fake = FakeSystem::fresh_dimms(4, DIMM);
        converge(&mut fake, &a);
        converge(&mut fake, &b);
        to_previous_release(&mut fake);
        fake
    };
    for (first, then) in [(&a, &b), (&b, &a)] {
        for moved_before in [false, true] {
            let mut host = old_host.clone();
            if moved_before {
                converge(&mut host, then);
            }
            let n = check(&mut host, first).plan.len();
            assert!(n >= 3, "{n}");
            for k in 1..=n {
                let mut fake = host.clone();
                fake.fail_at = Some(fake.executed.len() + k);
                let r = run(&mut fake, first);
                assert!(r.failed && r.done.len() == k - 1, "step {k}: {}", r.msg);
                fake.fail_at = None;
                let jobs = systemd_boot(&mut fake);
                for unit in ["mnt-a.mount", "mnt-b.mount"] {
                    assert_eq!(jobs.get(unit), Some(&Job::Done), "step {k}: {jobs:?}");
                }
                assert!(jobs.values().all(|j| *j == Job::Done), "step {k}: {jobs:?}");
                let again = run(&mut fake, first);
                assert!(!again.failed, "step {k}: {}", again.msg);
                unchanged(&mut fake, first, "the task");
                let old_left = |f: &FakeSystem| {
                    f.state
                        .file(&format!("{UNIT_DIR}/{LEGACY_SERVICE}"))
                        .is_some()
                };
                // the old service goes with the last task to move
                assert_eq!(old_left(&fake), !moved_before, "step {k}");
                if !moved_before {
                    converge(&mut fake, then);
                    assert!(!old_left(&fake), "step {k}");
                }
                unchanged(&mut fake, then, "the other task");
                assert!(naming_legacy_service(&fake).is_empty(), "step {k}");
            }
        }
    }
}

#[test]
fn under_systemd_the_replay_leaves_the_mounts_to_their_units() {
    let (mut fake, a, _) = a_and_b();
    fake.reboot();
    // A's mount has its unit (systemd mounts it after the replay); B's is left to the
    // replay (as when `--boot` runs without systemd)
    let by_unit = |path: &str| path == "/mnt/a";
    let r = pmem_stack::replay_with(&fake.saved_states(), &mut fake, &by_unit);
    assert!(!r.failed, "{}", r.msg);
    assert!(
        fake.state.dm("pmem-a").is_some() && fake.state.dm("pmem-b").is_some(),
        "both devices rebuilt: {}",
        r.msg
    );
    assert!(!mounted(&fake, "/mnt/a"), "the replay did not mount /mnt/a");
    assert!(
        !r.plan.iter().any(|s| s.target == "/mnt/a"),
        "nothing planned at /mnt/a: {:?}",
        r.plan
    );
    assert!(mounted(&fake, "/mnt/b"), "the replay mounted /mnt/b");
    // what the unit then mounts is what the task declared: the task's run is unchanged
    // once /mnt/a is mounted as its unit says
    let unit = text(&fake, &format!("{UNIT_DIR}/mnt-a.mount"));
    let value = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_string)
    };
    let need = |key: &str| value(key).unwrap_or_else(|| panic!("no {key}= in A's unit: {unit}"));
    let (what, at, fstype) = (need("What"), need("Where"), need("Type"));
    assert_eq!(at, "/mnt/a", "{unit}");
    let options: Vec<String> = value("Options")
        .map(|o| o.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let devno = fake
        .state
        .block_at(&what)
        .map(|b| b.devno)
        .unwrap_or_else(|| panic!("What={what} is no device: {unit}"));
    // as systemd mounts it: mount(2) of What= on Where= as Type= with Options=
    fake.execute(&Op::Mount {
        source: DevId { path: what, devno },
        target: at,
        fstype,
        options,
    })
    .unwrap_or_else(|e| panic!("mounting /mnt/a as its unit says: {e:?}\n{unit}"));
    assert!(mounted(&fake, "/mnt/a"));
    let n = fake.mutations();
    unchanged(&mut fake, &a, "A, /mnt/a mounted by its unit");
    assert_eq!(fake.mutations(), n, "A's run executed something");
}

/// The namespace named `name` gone (its labels lost, or its DIMM replaced by a blank
/// one in the same slot): its region stays, with the space free.
fn lose_namespace(fake: &mut FakeSystem, name: &str) {
    let block = fake
        .state
        .namespace_named(name)
        .and_then(|n| n.blockdev.clone())
        .expect("the namespace's block device");
    let devno = fake.state.block_named(&block).expect("block").devno;
    let ns = fake.state.namespace_named(name).expect("namespace").clone();
    if let Some(r) = fake.state.regions.iter_mut().find(|r| r.name == ns.region) {
        r.available_size.0 += ns.size.0;
    }
    fake.state
        .namespaces
        .retain(|n| n.name.as_deref() != Some(name));
    fake.state.block_devices.retain(|b| b.devno != devno);
    fake.state.filesystems.retain(|f| f.device != devno);
}

#[test]
fn the_boot_replay_never_makes_a_missing_member_anew_nor_a_filesystem_over_the_survivors() {
    let (mut fake, a, _) = a_and_b();
    fake.reboot();
    // pm1 is gone but region1 is there with room for a new one: a task run would create
    // it; the replay must not (a new blank member under the striped device, then a
    // filesystem made over it and the surviving pm0)
    lose_namespace(&mut fake, "pm1");
    let before = fake.state.namespaces.len();
    let r = pmem_stack::replay(&fake.saved_states(), &mut fake);
    assert!(r.failed, "{}", r.msg);
    assert!(
        r.msg.contains("create_namespace") && r.msg.contains("pm1") && r.msg.contains("missing"),
        "says what is missing: {}",
        r.msg
    );
    assert_eq!(fake.state.namespaces.len(), before, "no namespace made");
    assert!(fake.state.dm("pmem-a").is_none(), "A not assembled");
    assert!(
        !r.done
            .iter()
            .any(|s| s.action == "mkfs" || s.action == "create_namespace"),
        "{:?}",
        r.done
    );
    // B is independent: back as saved
    assert!(fake.state.dm("pmem-b").is_some() && mounted(&fake, "/mnt/b"));
    // the task itself may rebuild it (its own run, its own allow_data_loss)
    let r = converge(&mut fake, &a);
    assert!(!r.failed, "{}", r.msg);
    assert!(mounted(&fake, "/mnt/a"));
}

/// An operator's own `pmem_stack` where earlier versions put their boot copy.
fn operators_own() -> FileState {
    FileState {
        path: LEGACY_BINARY.to_string(),
        content: FileContent::Binary {
            matches_self: false,
        },
        mode: Some(0o755),
    }
}

/// The boot copy lives in the module's own directory: an operator's own
/// /usr/local/sbin/pmem_stack (other content, run by no unit of ours) is never
/// overwritten, nor removed by the teardown of the last persisted stack.
#[test]
fn an_operators_own_pmem_stack_survives_persist_and_teardown() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    fake.state.files.push(operators_own());
    let r = converge(&mut fake, &persisted());
    assert!(
        !r.plan.iter().any(|s| s.target == LEGACY_BINARY),
        "{:?}",
        r.plan
    );
    assert!(r
        .plan
        .iter()
        .any(|s| s.action == "write_file" && s.target == BINARY));
    assert_eq!(fake.state.file(LEGACY_BINARY), Some(&operators_own()));
    let template = text(&fake, &format!("{UNIT_DIR}/{SERVICE_TEMPLATE}"));
    assert!(template.contains(&format!("ExecStart={BINARY} --boot ")));
    assert!(!template.contains(LEGACY_BINARY));
    // a reboot replays with the module's copy
    fake.reboot();
    let jobs = systemd_boot(&mut fake);
    assert!(
        jobs.values().all(|j| *j == Job::Done) && mounted(&fake, "/mnt/pmem"),
        "{jobs:?}"
    );
    let mut gone = persisted();
    gone["state"] = json!("absent");
    let r = converge(&mut fake, &gone);
    assert!(removed_files(&r).contains(&BINARY.to_string()));
    assert!(!removed_files(&r).contains(&LEGACY_BINARY.to_string()));
    assert_eq!(
        fake.state.files,
        vec![operators_own()],
        "only the operator's file is left"
    );
}

/// A host persisted by a release that kept the boot copy at /usr/local/sbin: the next
/// persisted run installs the copy in its own directory, points the template at it and
/// removes the old copy, which the old template proved ours; a boot then runs the new
/// copy. Were the file there a link, or not run by a unit of ours, it would stay.
#[test]
fn the_boot_copy_of_an_earlier_release_moves_to_its_own_directory() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &persisted());
    to_legacy_copy(&mut fake);
    assert!(fake.state.file(BINARY).is_none());
    assert_boot_runs(&mut fake, &[&persisted()], &["mnt-pmem.mount"]);
    let template = format!("{UNIT_DIR}/{SERVICE_TEMPLATE}");

    // the old copy is a link an operator made: not a copy of ours, left alone
    let mut linked = fake.clone();
    for f in &mut linked.state.files {
        if f.path == LEGACY_BINARY {
            f.content = FileContent::Link {
                target: "/opt/pmem/bin/pmem_stack".into(),
            };
        }
    }
    let r = converge(&mut linked, &persisted());
    assert!(!removed_files(&r).contains(&LEGACY_BINARY.to_string()));
    assert!(linked.state.file(LEGACY_BINARY).is_some());

    let r = converge(&mut fake, &persisted());
    assert_eq!(
        files_changed(&r),
        [
            ("write_file", BINARY.to_string()),
            ("write_file", template.clone()),
            ("remove_file", LEGACY_BINARY.to_string()),
        ],
        "{:?}",
        r.plan
    );
    let removal = r
        .plan
        .iter()
        .find(|s| s.target == LEGACY_BINARY)
        .map(|s| s.detail.clone())
        .unwrap_or_default();
    assert!(
        removal.contains("run by their pmem-stack@.service") && removal.contains(BINARY),
        "{removal}"
    );
    // the copy goes after the template that ran it was rewritten
    let at = |t: &str| r.plan.iter().position(|s| s.target == t);
    assert!(at(&template) < at(LEGACY_BINARY));
    assert!(fake.state.file(LEGACY_BINARY).is_none());
    assert!(text(&fake, &template).contains(&format!("ExecStart={BINARY} --boot ")));
    fake.reboot();
    assert_boot_runs(&mut fake, &[&persisted()], &["mnt-pmem.mount"]);
    unchanged(&mut fake, &persisted(), "the moved stack");
}
