//! The binary's contract: argument channels (argv[1] file, stdin), flat and wrapped
//! shapes, one JSON object on stdout, exit codes, the committed schemas, offline plans.

mod common;

use common::DIMM;
use pmem_stack::system::fake::FakeSystem;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pmem_stack"))
}

fn tmp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pmem-stack-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    // tests run in parallel and some write the same file: write aside, then rename, so
    // that a reader never sees it half written
    let part = dir.join(format!("{name}.{:?}", std::thread::current().id()));
    std::fs::write(&part, text).expect("write temp file");
    std::fs::rename(&part, &p).expect("rename temp file");
    p
}

fn with_stdin(mut cmd: Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// Stdout must be exactly one JSON object.
/// `pmem_stack --actual SNAPSHOT ARGS`: an offline plan.
fn offline(snapshot: &Path, args: &Path) -> Output {
    bin()
        .arg("--actual")
        .arg(snapshot)
        .arg(args)
        .output()
        .expect("run")
}

fn one_object(out: &Output) -> Value {
    let text = String::from_utf8(out.stdout.clone()).expect("utf-8");
    let mut stream = serde_json::Deserializer::from_str(&text).into_iter::<Value>();
    let first = stream.next().expect("one value").expect("valid JSON");
    assert!(
        stream.next().is_none(),
        "more than one JSON value on stdout: {text}"
    );
    assert!(first.is_object());
    first
}

fn snapshot() -> PathBuf {
    let fake = FakeSystem::fresh_dimms(2, DIMM);
    tmp(
        "snapshot.json",
        &serde_json::to_string(&fake.state).expect("json"),
    )
}

fn recipe() -> Value {
    json!({
        "namespaces": [{"name": "pm0", "region": "region0", "mode": "fsdax"}, {"name": "pm1", "region": "region1", "mode": "fsdax"}],
        "devices": [{"name": "s", "target": "striped", "members": ["pm0", "pm1"]}],
        "filesystems": [{"device": "s", "type": "xfs"}],
        "mounts": [{"path": "/mnt/s", "device": "s"}]
    })
}

#[test]
fn schemas_in_the_repo_are_the_generated_ones() {
    for (flag, file) in [
        ("--schema", "schemas/pmem_stack.args.schema.json"),
        ("--result-schema", "schemas/pmem_stack.result.schema.json"),
    ] {
        let out = bin().arg(flag).output().expect("run");
        assert!(out.status.success());
        let generated: Value = serde_json::from_slice(&out.stdout).expect("schema is JSON");
        let committed: Value = serde_json::from_str(
            &std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(file))
                .expect("committed schema"),
        )
        .expect("committed schema is JSON");
        assert_eq!(
            generated, committed,
            "{file} is stale: regenerate with `pmem_stack {flag} > {file}`"
        );
    }
}

#[test]
fn file_and_stdin_flat_and_wrapped_give_the_same_plan() {
    let snap = snapshot();
    let mut flat = recipe();
    flat["_ansible_check_mode"] = json!(false);
    flat["_ansible_module_name"] = json!("pmem_stack");
    flat["_ansible_tmpdir"] = json!("/tmp/x");
    let wrapped = json!({"ANSIBLE_MODULE_ARGS": flat.clone()});
    let mut results = Vec::new();
    for (i, input) in [flat, wrapped].iter().enumerate() {
        let f = tmp(&format!("args{i}"), &input.to_string());
        let by_file = offline(&snap, &f);
        let mut cmd = bin();
        cmd.arg("--actual").arg(&snap);
        let by_stdin = with_stdin(cmd, &input.to_string());
        for out in [by_file, by_stdin] {
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );
            let v = one_object(&out);
            assert_eq!(v["failed"], json!(false));
            assert_eq!(v["changed"], json!(true));
            assert_eq!(v["check_mode"], json!(true), "--actual is always a dry run");
            assert!(v["invocation"]["module_args"]
                .get("_ansible_tmpdir")
                .is_none());
            results.push(v["plan"].clone());
        }
    }
    assert_eq!(results.len(), 4);
    assert!(results.windows(2).all(|w| w[0] == w[1]));
    let actions: Vec<&str> = results[0]
        .as_array()
        .expect("plan")
        .iter()
        .map(|s| s["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        actions,
        [
            "reconfigure_namespace",
            "reconfigure_namespace",
            "create_dm",
            "mkfs",
            "mount",
            "set_extsize"
        ]
    );
}

#[test]
fn failures_exit_1_with_one_json_object() {
    let snap = snapshot();
    let mut cmd = bin();
    cmd.arg("--actual").arg(&snap);
    let out = with_stdin(
        cmd,
        r#"{"devices":[{"name":"s","target":"striped","members":["/dev/pmem0"]}],"what":1}"#,
    );
    assert_eq!(out.status.code(), Some(1));
    let v = one_object(&out);
    assert_eq!(v["failed"], json!(true));
    assert_eq!(v["changed"], json!(false));
    let msg = v["msg"].as_str().expect("msg");
    assert!(
        msg.contains("Unsupported parameters for (pmem_stack) module: what"),
        "{msg}"
    );
    assert!(
        msg.contains("devices[0].members: a striped device needs at least 2 members"),
        "{msg}"
    );

    for args in [vec!["--bogus"], vec!["a", "b"], vec!["/nonexistent/args"]] {
        let out = bin().args(&args).output().expect("run");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(one_object(&out)["failed"], json!(true));
    }
    let mut cmd = bin();
    cmd.arg("--actual").arg(&snap);
    let out = with_stdin(cmd, "");
    assert_eq!(out.status.code(), Some(1));
    assert!(one_object(&out)["msg"]
        .as_str()
        .unwrap_or("")
        .contains("no module arguments"));
    let bad_snap = tmp("bad-snapshot.json", r#"{"namespaces": [{"dev": 5}]}"#);
    let out = bin().arg("--actual").arg(&bad_snap).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(one_object(&out)["msg"]
        .as_str()
        .unwrap_or("")
        .contains("does not describe a system at namespaces[0]"));
}

/// `--facts` on the machine running the tests (as root). It succeeds whatever the
/// machine has: no NVDIMMs or no drivers, no device-mapper, a disk root may not read (a
/// sandbox's device cgroup): the probe opens only PMEM and dm devices, and says in `msg`
/// what is missing. Without root (no /dev/mapper/control access) it may fail, cleanly.
#[test]
fn facts_print_one_object_and_succeed_without_pmem() {
    let out = bin().arg("--facts").output().expect("run");
    let v = one_object(&out);
    let failed = v["failed"].as_bool().expect("failed is set");
    assert_eq!(out.status.code(), Some(i32::from(failed)));
    let root = is_root();
    assert!(!failed || !root, "--facts failed as root: {v}");
    if !failed {
        let a = &v["ansible_facts"]["pmem_stack"];
        assert!(a.is_object());
        let msg = v["msg"].as_str().unwrap_or_default();
        let missing = a["missing"].as_array().cloned().unwrap_or_default();
        if missing.contains(&json!("nvdimm")) {
            assert!(msg.contains("modprobe nfit nd_pmem"), "{msg}");
        }
        if missing.contains(&json!("device_mapper")) {
            assert!(msg.contains("modprobe dm_mod"), "{msg}");
        }
        if missing.contains(&json!("device_mapper_access")) {
            assert!(
                msg.contains("/dev/mapper/control is not permitted"),
                "{msg}"
            );
        }
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A snapshot of a machine without PMEM or device-mapper (what `--facts` says on a cloud
/// VM): `{}` is ok and unchanged; declaring a namespace fails naming the region and the
/// modules to load.
#[test]
fn offline_without_pmem_empty_arguments_are_ok_and_a_namespace_names_the_modules() {
    let snap = tmp(
        "no-pmem.json",
        &json!({
            "block_devices": [{"name": "vda", "devno": "254:0", "path": "/dev/vda", "size": 536870912}],
            "mounts": [{"target": "/", "devno": "254:0", "source": "/dev/vda", "fstype": "ext4", "options": ["rw"]}],
            "missing": ["nvdimm", "device_mapper"]
        })
        .to_string(),
    );
    let empty = tmp("empty-args.json", "{}");
    let out = offline(&snap, &empty);
    let v = one_object(&out);
    assert!(out.status.success(), "{v}");
    assert_eq!(
        (&v["failed"], &v["changed"]),
        (&json!(false), &json!(false)),
        "{v}"
    );
    assert_eq!(v["msg"], json!("No changes."));
    let ns = tmp(
        "ns-args.json",
        &json!({"namespaces": [{"name": "a", "region": "region0", "mode": "fsdax"}]}).to_string(),
    );
    let out = offline(&snap, &ns);
    let v = one_object(&out);
    assert_eq!(out.status.code(), Some(1), "{v}");
    let msg = v["msg"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with(
            "namespace a: region0 does not exist on this machine (regions: none): no NVDIMM bus"
        ) && msg.contains("modprobe nfit nd_pmem"),
        "{msg}"
    );
}

/// Snapshots from `--facts`: an older one (no `unreadable`, no `missing`: the `stack`
/// tree's, captured before they existed) loads; one with unreadable devices (the
/// `foreign` tree's: an `error`-table dm device, a suspended one and one stacked on it)
/// plans around them with warnings, and refuses what is stacked on them.
#[test]
fn offline_snapshots_old_and_with_unreadable_devices() {
    let trees = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sysfs-trees");
    let empty = tmp("empty-args2.json", "{}");
    let old = trees.join("stack/facts.json");
    let text = std::fs::read_to_string(&old).expect("stack facts");
    assert!(!text.contains("\"unreadable\"") && !text.contains("\"missing\""));
    let v = one_object(&offline(&old, &empty));
    assert_eq!(
        (&v["failed"], &v["changed"]),
        (&json!(false), &json!(false)),
        "{v}"
    );

    let foreign = trees.join("foreign/facts.json");
    let v = one_object(&offline(&foreign, &empty));
    assert_eq!(
        (&v["failed"], &v["changed"]),
        (&json!(false), &json!(false)),
        "{v}"
    );
    let warnings: Vec<String> = v["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w.as_str().map(String::from))
        .collect();
    for dm in ["foreign-err", "foreign-susp", "foreign-on-susp"] {
        assert!(
            warnings.iter().any(
                |w| w.starts_with(&format!("could not read /dev/mapper/{dm}: "))
                    && w.ends_with("it is not part of this stack, so it was left alone")
            ),
            "{dm}: {warnings:?}"
        );
    }
    // declaring the suspended device (as a path) is refused, naming it
    let args = tmp(
        "susp-args.json",
        &json!({"filesystems": [{"device": "/dev/mapper/foreign-susp", "type": "ext4"}]})
            .to_string(),
    );
    let v = one_object(&offline(&foreign, &args));
    let msg = v["msg"].as_str().unwrap_or_default();
    assert!(
        v["failed"] == json!(true)
            && msg.contains("/dev/mapper/foreign-susp (/dev/mapper/foreign-susp) could not be read: dm device foreign-susp is suspended"),
        "{v}"
    );
}

#[test]
fn a_refusal_names_the_option_and_changes_nothing_offline() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    let r = pmem_stack::run(&recipe().to_string(), &mut fake, false);
    assert!(!r.failed, "{}", r.msg);
    let snap = tmp(
        "converged.json",
        &serde_json::to_string(&fake.state).expect("json"),
    );
    let mut args = recipe();
    args["devices"][0]["chunk"] = json!("4M");
    let f = tmp("chunk.json", &args.to_string());
    let out = offline(&snap, &f);
    assert_eq!(out.status.code(), Some(1));
    let v = one_object(&out);
    assert!(v["msg"]
        .as_str()
        .unwrap_or("")
        .contains("Set allow_data_loss: true"));
    assert!(!v["refusals"].as_array().expect("refusals").is_empty());
    args["_ansible_diff"] = json!(true);
    let f = tmp("same.json", &recipe().to_string());
    let out = offline(&snap, &f);
    let v = one_object(&out);
    assert_eq!(
        (v["changed"].clone(), v["msg"].clone()),
        (json!(false), json!("No changes."))
    );
}

#[test]
fn two_runs_never_interleave() {
    use std::io::Write as _;
    use std::os::fd::AsRawFd;
    let lock = std::env::temp_dir().join(format!("pmem-stack-cli-{}.lock", std::process::id()));
    let mut f = std::fs::File::create(&lock).expect("lock file");
    // SAFETY: flock on a descriptor we own; the lock is what the module waits for.
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
    write!(f, "4242").expect("holder pid");
    let run = |wait: &str| {
        let mut cmd = bin();
        cmd.env("PMEM_STACK_LOCK", &lock)
            .env("PMEM_STACK_LOCK_WAIT", wait);
        with_stdin(cmd, r#"{"_ansible_check_mode": true}"#)
    };
    let started = std::time::Instant::now();
    let out = run("1");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "it waited"
    );
    assert_eq!(out.status.code(), Some(1));
    let msg = one_object(&out)["msg"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.contains("another pmem_stack run (pid 4242), or a program it started that is still running, is working"),
        "{msg}"
    );
    drop(f);
    let out = run("1");
    let v = one_object(&out);
    assert_ne!(
        v["msg"].as_str().unwrap_or_default(),
        msg,
        "the lock is free again"
    );
    let _ = std::fs::remove_file(&lock);
}

#[test]
fn a_live_run_reports_its_timing_and_a_no_op_runs_no_program() {
    // on this machine (no NVDIMMs): nothing declared, nothing to do, nothing run
    let lock = std::env::temp_dir().join(format!("pmem-stack-cli-t{}.lock", std::process::id()));
    let mut cmd = bin();
    cmd.env("PMEM_STACK_LOCK", &lock);
    let out = with_stdin(cmd, r#"{"_ansible_check_mode": true}"#);
    let _ = std::fs::remove_file(&lock);
    let v = one_object(&out);
    assert_eq!(v["changed"], json!(false), "{v}");
    let t = &v["timing"];
    let wall = t["wall_ms"].as_f64().expect("timing.wall_ms");
    assert!(wall > 0.0, "{t}");
    assert_eq!(t["external_ms"].to_string(), "0.0", "not -0.0: {t}");
    assert_eq!(t["external"], json!([]), "no program was run: {t}");
    assert_eq!(t["operations"], json!([]), "no operation was run: {t}");
    assert_eq!(t["probes"], json!(1), "{t}");
    // the probe's parts, each timed, add up to at most the whole probe; the probe runs
    // to its end even on a host whose disks root may not read (a sandbox's device
    // cgroup): it opens none of them
    let parts = t["probe_parts_ms"]
        .as_object()
        .expect("timing.probe_parts_ms");
    let known = [
        "block",
        "contents",
        "dm",
        "extsize",
        "files",
        "mounts",
        "namespaces",
        "platform",
    ];
    assert!(
        ["namespaces", "dm", "contents", "platform"]
            .iter()
            .all(|k| parts.contains_key(*k)),
        "{t}"
    );
    assert!(parts.keys().all(|k| known.contains(&k.as_str())), "{t}");
    let sum: f64 = parts.values().filter_map(|v| v.as_f64()).sum();
    let probe_ms = t["probe_ms"].as_f64().expect("timing.probe_ms");
    assert!(sum > 0.0 && sum <= probe_ms + 0.01, "{t}");
    let rss = t["peak_rss_kib"].as_u64().expect("timing.peak_rss_kib");
    assert!(rss > 100 && rss < 1 << 20, "{t}");
    // an offline plan is not a run: no timing
    let snap = snapshot();
    let args = tmp("timing-args.json", &recipe().to_string());
    let out = offline(&snap, &args);
    assert!(one_object(&out).get("timing").is_none());
}

#[test]
fn boot_with_a_file_replays_that_file_under_the_root() {
    // what each `pmem-stack@<stem>.service` instance runs: the named file alone, read
    // under PMEM_STACK_ROOT; one that cannot be read fails that instance (exit 1) with
    // one JSON object and a journal line naming it, and nothing is probed
    let root = std::env::temp_dir().join(format!("pmem-stack-cli-boot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("etc/pmem-stack/state.d");
    std::fs::create_dir_all(&dir).expect("state.d");
    std::fs::write(dir.join("a-0000000000000001.json"), "not json").expect("state");
    for (file, want) in [
        (
            "/etc/pmem-stack/state.d/a-0000000000000001.json",
            "the saved state is not valid JSON",
        ),
        (
            "/etc/pmem-stack/state.d/gone-0000000000000002.json",
            "cannot read the saved state",
        ),
    ] {
        let out = bin()
            .env("PMEM_STACK_ROOT", &root)
            .args(["--boot", file])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1), "{file}");
        let v = one_object(&out);
        let msg = v["msg"].as_str().unwrap_or_default();
        assert!(msg.starts_with(&format!("{file}: ")), "{msg}");
        assert!(msg.contains(want), "{msg}");
        let journal = String::from_utf8_lossy(&out.stderr);
        assert!(
            journal.starts_with("pmem_stack --boot: ") && journal.contains(file),
            "{journal}"
        );
    }
    let out = bin().args(["--boot", "a", "b"]).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&root);
}

/// Run the binary the way Ansible runs a binary module: `argv[0]` the remote copy
/// (`AnsiballZ_<module file>`), `argv[1]` the args file, stdin at EOF.
fn as_module(argv0: &str, name: &str, args: &Value) -> (Output, Value) {
    use std::os::unix::process::CommandExt;
    let f = tmp(name, &args.to_string());
    let out = bin()
        .arg0(argv0)
        .arg(&f)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    let v = one_object(&out);
    (out, v)
}

/// What Ansible adds to every binary module's args file besides the options.
fn internal_keys(module_name: &str) -> Value {
    json!({
        "_ansible_check_mode": false, "_ansible_no_log": false, "_ansible_debug": false,
        "_ansible_diff": false, "_ansible_verbosity": 0, "_ansible_version": "2.19.14",
        "_ansible_module_name": module_name, "_ansible_syslog_facility": "LOG_USER",
        "_ansible_selinux_special_fs": ["fuse", "nfs"], "_ansible_string_conversion_action": "warn",
        "_ansible_socket": null, "_ansible_shell_executable": "/bin/sh",
        "_ansible_keep_remote_files": false, "_ansible_tmpdir": "/root/.ansible/tmp/ansible-tmp-1/",
        "_ansible_remote_tmp": "~/.ansible/tmp", "_ansible_ignore_unknown_opts": false,
        "_ansible_target_log_info": null
    })
}

/// `pmem_stack_info`: the same binary, run by Ansible under that module name (short, FQCN
/// or `ansible.legacy.`), reports what `--facts` reports, changes nothing and takes no
/// options; `_ansible_module_name` decides, and without it the program's file name.
#[test]
fn run_as_pmem_stack_info_it_reports_the_facts() {
    let facts = one_object(&bin().arg("--facts").output().expect("run"));
    let root = is_root();
    let mut keys: Vec<&String> = facts.as_object().expect("object").keys().collect();
    keys.sort();
    for name in [
        "pmem_stack_info",
        "pmemstack.pmem.pmem_stack_info",
        "ansible.legacy.pmem_stack_info",
    ] {
        let mut args = internal_keys(name);
        args["_ansible_check_mode"] = json!(true);
        // the remote copy of the collection's pmem_stack_info file
        let (out, v) = as_module(
            "/root/.ansible/tmp/ansible-tmp-1/AnsiballZ_pmem_stack_info",
            "info-args",
            &args,
        );
        let failed = v["failed"].as_bool().expect("failed is set");
        assert_eq!(out.status.code(), Some(i32::from(failed)), "{v}");
        assert!(!failed || !root, "{name} failed as root: {v}");
        assert_eq!(v["changed"], json!(false), "{v}");
        assert_eq!(v["check_mode"], json!(true), "{v}");
        assert_eq!(v["invocation"], json!({"module_args": {}}), "{v}");
        assert_eq!(v["plan"], json!([]), "{v}");
        if !failed {
            let mut got: Vec<&String> = v.as_object().expect("object").keys().collect();
            got.sort();
            assert_eq!(got, keys, "{name}: not the keys of --facts: {v}");
            assert!(v["ansible_facts"]["pmem_stack"].is_object(), "{v}");
            assert!(v["dax_audit"]["platform"].is_array(), "{v}");
            assert_eq!(
                v["ansible_facts"]["pmem_stack"]["missing"],
                facts["ansible_facts"]["pmem_stack"]["missing"]
            );
        }
    }
    // run by hand under that name: no arguments at all (stdin at EOF) are no options
    {
        use std::os::unix::process::CommandExt;
        let out = bin()
            .arg0("/usr/local/bin/pmem_stack_info")
            .stdin(Stdio::null())
            .output()
            .expect("run");
        let v = one_object(&out);
        assert!(v["ansible_facts"]["pmem_stack"].is_object() || !root, "{v}");
        assert_eq!(v["changed"], json!(false));
    }
}

/// Options given to `pmem_stack_info` fail the run before anything is probed, naming each
/// one; which module runs follows `_ansible_module_name`, then the program's file name.
#[test]
fn pmem_stack_info_takes_no_options_and_the_module_name_decides() {
    let info_msg = |v: &Value| {
        let msg = v["msg"].as_str().unwrap_or_default().to_string();
        assert_eq!(v["failed"], json!(true), "{v}");
        assert!(v.get("ansible_facts").is_none(), "probed anyway: {v}");
        msg
    };
    let mut args = internal_keys("pmemstack.pmem.pmem_stack_info");
    args["namespaces"] = json!([]);
    args["gather"] = json!("all");
    let (out, v) = as_module("/tmp/AnsiballZ_pmem_stack_info", "info-bad", &args);
    assert_eq!(out.status.code(), Some(1));
    let msg = info_msg(&v);
    assert!(
        msg.starts_with("Unsupported parameters for (pmem_stack_info) module: "),
        "{msg}"
    );
    assert!(
        msg.contains("namespaces") && msg.contains("gather"),
        "{msg}"
    );
    assert!(msg.contains("takes no options"), "{msg}");
    assert_eq!(
        v["invocation"]["module_args"]["gather"],
        json!("all"),
        "{v}"
    );

    // the Python-module shape too
    let wrapped = json!({"ANSIBLE_MODULE_ARGS": {"state": "absent", "_ansible_module_name": "pmem_stack_info"}});
    let (_, v) = as_module("/tmp/AnsiballZ_pmem_stack_info", "info-wrapped", &wrapped);
    assert!(info_msg(&v).contains("module: state."), "{v}");

    // `_ansible_module_name` wins over the file name, both ways; without it the file name
    let cases = [
        (
            "/tmp/AnsiballZ_pmem_stack_info",
            Some("pmem_stack"),
            "pmem_stack",
        ),
        (
            "/tmp/AnsiballZ_pmem_stack",
            Some("pmemstack.pmem.pmem_stack_info"),
            "pmem_stack_info",
        ),
        ("/tmp/AnsiballZ_pmem_stack_info", None, "pmem_stack_info"),
        ("/tmp/pmem_stack_info", None, "pmem_stack_info"),
        ("/tmp/AnsiballZ_pmem_stack", None, "pmem_stack"),
        (
            "pmem_stack",
            Some("my_pmem_stack_info_wrapper"),
            "pmem_stack",
        ),
    ];
    for (argv0, name, runs) in cases {
        let mut args = json!({"bogus": 1});
        if let Some(n) = name {
            args["_ansible_module_name"] = json!(n);
        }
        let (_, v) = as_module(argv0, "which", &args);
        let msg = v["msg"].as_str().unwrap_or_default();
        assert!(
            msg.starts_with(&format!(
                "Unsupported parameters for ({runs}) module: bogus"
            )),
            "{argv0} {name:?}: {msg}"
        );
    }
}
