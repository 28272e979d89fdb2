//! The binary's contract: argument channels (argv[1] file, stdin), flat and wrapped
//! shapes, one JSON object on stdout, exit codes, the committed schemas, offline plans;
//! the command line's flags (any order, overriding `_ansible_*`), `--help`, `--version`,
//! usage errors, `--detailed-exitcode`, and the CI drift check on captured facts.

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
    common::dm_stack(0..2, "striped", "s", "xfs", "/mnt/s")
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
    assert_eq!(actions, common::STRIPED_XFS_STEPS);
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

    let out = bin().arg("/nonexistent/args").output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let v = one_object(&out);
    assert_eq!(v["failed"], json!(true));
    assert!(v["msg"]
        .as_str()
        .unwrap_or("")
        .starts_with("cannot read the arguments file /nonexistent/args: "));
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

/// Snapshots from `--facts`: an older one (no `unreadable`, no `missing`: the `nolabel`
/// tree's, captured before they existed) loads; one with unreadable devices (the
/// `foreign` tree's: an `error`-table dm device, a suspended one and one stacked on it)
/// plans around them with warnings, and refuses what is stacked on them.
#[test]
fn offline_snapshots_old_and_with_unreadable_devices() {
    let trees = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sysfs-trees");
    let empty = tmp("empty-args2.json", "{}");
    let old = trees.join("nolabel/facts.json");
    let text = std::fs::read_to_string(&old).expect("nolabel facts");
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
    // the lock is free again: the run that follows really runs (on this machine, with
    // nothing declared: a successful check-mode run that has nothing to do)
    let out = run("1");
    let _ = std::fs::remove_file(&lock);
    let v = one_object(&out);
    assert_eq!(out.status.code(), Some(0), "the lock is free again: {v}");
    assert_eq!(v["failed"], json!(false), "the lock is free again: {v}");
    assert_eq!(v["changed"], json!(false), "{v}");
    assert_eq!(v["msg"], json!("No changes."), "{v}");
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
        "cxl",
        "dm",
        "elsewhere",
        "extsize",
        "files",
        "memory",
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
    let root = common::fresh_dir("cli-boot");
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

// ---- the command line -----------------------------------------------------------------

/// Facts captured by `pmem_stack --facts` on the VM rig (tests/fixtures/sysfs-trees
/// "foreign": the "stack" state plus devices that are not ours): pm0 + pm1 under the
/// striped dm device `s`, xfs on /mnt/x; pm2 with a GPT, ext4 on its partition on /mnt/e.
fn captured() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sysfs-trees/foreign/facts.json")
}

/// The arguments that declare the stack of [`captured`] as it is.
fn captured_stack() -> Value {
    json!({
        "namespaces": [
            {"name": "pm0", "region": "region0", "mode": "fsdax", "size": "512M", "map": "mem"},
            {"name": "pm1", "region": "region1", "mode": "fsdax", "size": "512M"},
            {"name": "pm2", "region": "region1", "mode": "fsdax", "size": "256M"}
        ],
        "devices": [{"name": "s", "target": "striped", "members": ["pm0", "pm1"]}],
        "partitions": [{"name": "pmemdata", "disk": "pm2", "start": "2M", "size": "200M"}],
        "filesystems": [
            {"device": "s", "type": "xfs", "label": "stripefs"},
            {"device": "pmemdata", "type": "ext4", "label": "extfs"}
        ],
        "mounts": [{"path": "/mnt/x", "device": "s"}, {"path": "/mnt/e", "device": "pmemdata"}]
    })
}

/// [`captured`] as the host is after a reboot without `boot.persist`: the dm device `s`
/// (dm-0, 254:0), its xfs and its mount on /mnt/x are gone (the namespaces and the xfs
/// on their media are not: the stack drifted, nothing was lost).
fn drifted() -> PathBuf {
    let text = std::fs::read_to_string(captured()).expect("captured facts");
    let mut v: Value = serde_json::from_str(&text).expect("JSON");
    let a = &mut v["ansible_facts"]["pmem_stack"];
    let keep = |key: &str, a: &mut Value, f: &dyn Fn(&Value) -> bool| {
        let list = a[key].as_array_mut().expect("a list");
        let before = list.len();
        list.retain(|x| f(x));
        assert_eq!(list.len() + 1, before, "{key}: one entry removed");
    };
    keep("mounts", a, &|m| m["target"] != "/mnt/x");
    keep("dm_devices", a, &|d| d["name"] != "s");
    keep("block_devices", a, &|b| b["name"] != "dm-0");
    keep("filesystems", a, &|f| f["device"] != "254:0");
    for b in a["block_devices"].as_array_mut().expect("block devices") {
        if let Some(h) = b["holders"].as_array_mut() {
            h.retain(|x| x != "dm-0");
        }
    }
    tmp("drifted-facts.json", &v.to_string())
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_and_version_print_to_stdout_and_exit_0() {
    for flag in ["--help", "-h"] {
        let out = bin().arg(flag).output().expect("run");
        assert_eq!(out.status.code(), Some(0), "{flag}");
        assert!(out.stderr.is_empty(), "{flag}: {}", stderr(&out));
        let text = stdout(&out);
        for want in [
            "Usage: pmem_stack [--check] [--diff] [--detailed-exitcode] [--format json|text] [ARGS_FILE]",
            "--format <FORMAT>",
            "pmem_stack --actual SNAPSHOT",
            "pmem_stack --facts",
            "pmem_stack --boot",
            "pmem_stack --schema | --result-schema",
            "pmem_stack_info [ARGS_FILE]",
            "--check",
            "--diff",
            "--detailed-exitcode",
            "_ansible_check_mode",
            "_ansible_diff",
            "Flags and ARGS_FILE may come in any order",
            "usage errors never exit 2",
        ] {
            assert!(text.contains(want), "{flag}: no {want:?} in\n{text}");
        }
    }
    // help wins over everything else on the line, as with any clap program
    let out = bin()
        .args(["--actual", "x", "--help"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    for flag in ["--version", "-V"] {
        let out = bin().arg(flag).output().expect("run");
        assert_eq!(out.status.code(), Some(0), "{flag}");
        assert_eq!(
            stdout(&out),
            format!("pmem_stack {}\n", env!("CARGO_PKG_VERSION")),
            "{flag}"
        );
        assert!(out.stderr.is_empty());
    }
}

/// A command line that does not read is said on stderr, naming the flag, with the usage;
/// nothing on stdout, exit 1 (not clap's 2: `--detailed-exitcode` gives 2 to changes).
#[test]
fn usage_errors_exit_1_on_stderr_naming_the_flag() {
    let snap = captured();
    let snap = snap.to_str().expect("utf-8 path");
    let cases: &[(&[&str], &str)] = &[
        (&["--bogus"], "'--bogus'"),
        (&["--check", "--bogus", "args.json"], "'--bogus'"),
        (&["a.json", "b.json"], "'b.json'"),
        (
            &["--check", "--facts"],
            "'--check' cannot be used with '--facts'",
        ),
        (
            &["--facts", "--diff"],
            "'--facts' cannot be used with '--diff'",
        ),
        (
            &["--boot", "--check"],
            "'--check' cannot be used with '--boot'",
        ),
        (
            &["--facts", "--actual", snap],
            "'--facts' cannot be used with '--actual <SNAPSHOT>'",
        ),
        (
            &["--facts", "--boot"],
            "'--facts' cannot be used with '--boot'",
        ),
        (
            &["--schema", "--result-schema"],
            "'--schema' cannot be used with '--result-schema'",
        ),
        (
            &["--schema", "args.json"],
            "'--schema' cannot be used with '[ARGS_FILE]'",
        ),
        (
            &["--facts", "args.json"],
            "'--facts' cannot be used with '[ARGS_FILE]'",
        ),
        (
            &["--result-schema", "--detailed-exitcode"],
            "'--detailed-exitcode' cannot be used with '--result-schema'",
        ),
        (
            &["--actual"],
            "a value is required for '--actual <SNAPSHOT>'",
        ),
        (&["--boot", "a", "b"], "'b'"),
        (&["--check=yes"], "'--check'"),
    ];
    for (args, want) in cases {
        let out = bin().args(*args).output().expect("run");
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}: {}", stdout(&out));
        let err = stderr(&out);
        // a conflict is said naming both flags, in either order
        let swapped = want
            .split_once(" cannot be used with ")
            .map(|(a, b)| format!("{b} cannot be used with {a}"))
            .unwrap_or_else(|| want.to_string());
        assert!(
            err.starts_with("error: ") && (err.contains(want) || err.contains(&swapped)),
            "{args:?}: no {want:?} in\n{err}"
        );
        assert!(
            err.contains("Usage: pmem_stack") || want.contains("a value is required"),
            "{err}"
        );
    }
}

/// Every order of the flags and the arguments file gives the same result and status.
#[test]
fn flags_and_the_arguments_file_in_any_order() {
    let snap = snapshot();
    let snap = snap.to_str().expect("utf-8 path");
    let args = tmp("order-args.json", &recipe().to_string());
    let args = args.to_str().expect("utf-8 path");
    let lines: [&[&str]; 6] = [
        &[
            "--actual",
            snap,
            "--diff",
            "--detailed-exitcode",
            "--check",
            args,
        ],
        &[
            args,
            "--actual",
            snap,
            "--diff",
            "--detailed-exitcode",
            "--check",
        ],
        &[
            "--detailed-exitcode",
            args,
            "--check",
            "--actual",
            snap,
            "--diff",
        ],
        &[
            "--diff",
            "--check",
            "--detailed-exitcode",
            &format!("--actual={snap}"),
            args,
        ],
        &[
            "--check",
            "--actual",
            snap,
            "--diff",
            "--detailed-exitcode",
            "--",
            args,
        ],
        // a flag given twice is the flag once
        &[
            "--diff",
            "--diff",
            "--actual",
            snap,
            args,
            "--detailed-exitcode",
            "--check",
        ],
    ];
    let mut seen = Vec::new();
    for line in lines {
        let out = bin().args(line).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{line:?}: {}", stdout(&out));
        let v = one_object(&out);
        assert_eq!(v["changed"], json!(true));
        assert!(v["diff"].as_array().is_some_and(|d| !d.is_empty()), "{v}");
        seen.push(stdout(&out));
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:#?}");
}

/// `--check` and `--diff` win over `_ansible_check_mode` / `_ansible_diff` in the arguments;
/// without them the arguments decide, as under Ansible.
#[test]
fn flags_override_the_ansible_keys() {
    let snap = snapshot();
    // --diff over `_ansible_diff: false` (an offline plan)
    let mut args = recipe();
    args["_ansible_diff"] = json!(false);
    let f = tmp("no-diff.json", &args.to_string());
    let v = one_object(&offline(&snap, &f));
    assert!(v.get("diff").is_none(), "{v}");
    let v = one_object(
        &bin()
            .arg("--diff")
            .arg("--actual")
            .arg(&snap)
            .arg(&f)
            .output()
            .expect("run"),
    );
    assert!(v["diff"].as_array().is_some_and(|d| !d.is_empty()), "{v}");
    assert_eq!(
        v["invocation"]["module_args"],
        recipe(),
        "the flags are not options"
    );

    // --check over `_ansible_check_mode: false`: a live run on this machine that declares
    // nothing (so nothing is done either way); the result says which mode it ran in
    let lock = std::env::temp_dir().join(format!("pmem-stack-cli-o{}.lock", std::process::id()));
    let live = |flags: &[&str], args: &Value| {
        let f = tmp("live-override.json", &args.to_string());
        let out = bin()
            .env("PMEM_STACK_LOCK", &lock)
            .args(flags)
            .arg(&f)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        one_object(&out)
    };
    let args = json!({"_ansible_check_mode": false, "_ansible_diff": false});
    let v = live(&[], &args);
    assert_eq!(
        (&v["check_mode"], v.get("diff")),
        (&json!(false), None),
        "{v}"
    );
    let v = live(&["--check", "--diff"], &args);
    assert_eq!(
        (&v["check_mode"], &v["diff"]),
        (&json!(true), &json!([])),
        "{v}"
    );
    assert_eq!(v["changed"], json!(false), "{v}");
    // the facts module, run by hand under its name, reports the check mode it was given
    {
        use std::os::unix::process::CommandExt;
        let f = tmp(
            "info-override.json",
            &json!({"_ansible_check_mode": false}).to_string(),
        );
        let out = bin()
            .arg0("/usr/local/bin/pmem_stack_info")
            .arg("--check")
            .arg(&f)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        let v = one_object(&out);
        assert_eq!(v["check_mode"], json!(true), "{v}");
        assert_eq!(v["changed"], json!(false), "{v}");
    }
    let _ = std::fs::remove_file(&lock);
}

/// `--detailed-exitcode`, as `terraform plan -detailed-exitcode`: 0 nothing to do, 2 changes
/// pending (or made), 1 failure. Without it 0 and 0 and 1, as always.
#[test]
fn detailed_exit_codes_on_captured_facts() {
    let same = tmp("captured-stack.json", &captured_stack().to_string());
    let mut chunk = captured_stack();
    chunk["devices"][0]["chunk"] = json!("4M");
    let refused = tmp("captured-chunk.json", &chunk.to_string());
    let cases = [
        (captured(), &same, 0, 0, false),
        (drifted(), &same, 2, 0, false),
        (captured(), &refused, 1, 1, true),
    ];
    for (facts, args, detailed, plain, failed) in cases {
        let out = offline(&facts, args);
        assert_eq!(out.status.code(), Some(plain), "{}", stdout(&out));
        let v = one_object(&out);
        assert_eq!(v["failed"], json!(failed), "{v}");
        let out = bin()
            .arg("--detailed-exitcode")
            .arg("--actual")
            .arg(&facts)
            .arg(args)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(detailed), "{}", stdout(&out));
        assert_eq!(one_object(&out), v, "the flag changes the status only");
    }
    // bad arguments and a snapshot that does not read are failures: 1
    let bad = tmp("captured-bad.json", r#"{"devices": [{"name": "s"}]}"#);
    for (facts, args) in [
        (captured(), bad),
        (PathBuf::from("/nonexistent/facts.json"), same),
    ] {
        let out = bin()
            .args(["--detailed-exitcode", "--actual"])
            .arg(&facts)
            .arg(&args)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        assert_eq!(one_object(&out)["failed"], json!(true));
    }
}

/// The CI drift check (README "CI drift check"): facts captured on the host, the
/// arguments from the repository, `--actual FACTS ARGS --detailed-exitcode` without root:
/// 0 while the host is as declared, 2 with the plan once it drifted.
#[test]
fn ci_drift_check_on_captured_facts() {
    let args = tmp("drift-args.json", &captured_stack().to_string());
    let check = |facts: &Path| {
        bin()
            .arg("--actual")
            .arg(facts)
            .arg(&args)
            .arg("--detailed-exitcode")
            .stdin(Stdio::null())
            .output()
            .expect("run")
    };
    let out = check(&captured());
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let v = one_object(&out);
    assert_eq!(v["msg"], json!("No changes."));
    let out = check(&drifted());
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let v = one_object(&out);
    let plan: Vec<(String, String)> = v["plan"]
        .as_array()
        .expect("plan")
        .iter()
        .map(|s| {
            (
                s["action"].as_str().unwrap_or_default().to_string(),
                s["target"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        plan,
        [
            ("create_dm", "/dev/mapper/s"),
            ("mkfs", "dm device s"),
            ("mount", "/mnt/x"),
            ("set_extsize", "/mnt/x")
        ]
        .map(|(a, t)| (a.to_string(), t.to_string()))
    );
    assert_eq!(
        v["msg"],
        json!("4 steps would run (offline plan against a captured snapshot); nothing was changed")
    );
}

/// `comment` is `msg` again (Salt's stateful `cmd.run` reads it), on every kind of result.
#[test]
fn comment_is_msg() {
    let same = tmp("comment-stack.json", &captured_stack().to_string());
    let outs = [
        offline(&captured(), &same),
        offline(&drifted(), &same),
        bin().arg("/nonexistent/args").output().expect("run"),
        bin().arg("--facts").output().expect("run"),
    ];
    for out in outs {
        let v = one_object(&out);
        assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert_eq!(v["comment"], v["msg"], "{v}");
    }
}

/// Ansible's way (`pmem_stack ARGS_FILE`, no flags) prints what the library's result
/// serializes to, byte for byte: one JSON object on one line.
#[test]
fn without_flags_stdout_is_the_result_json() {
    let same = tmp("bytes-stack.json", &captured_stack().to_string());
    for facts in [captured(), drifted()] {
        let out = offline(&facts, &same);
        let actual = pmem_stack::read_snapshot(&std::fs::read_to_string(&facts).expect("facts"))
            .expect("snapshot");
        let r = pmem_stack::run(
            &captured_stack().to_string(),
            &mut pmem_stack::system::Snapshot(actual),
            true,
        );
        assert_eq!(stdout(&out), format!("{}\n", r.to_json()));
    }
}

/// What `--check` does to a run that would change something: nothing is done, the plan
/// is reported; and an override to false (no flag says it today) runs what the arguments
/// would only plan.
#[test]
fn the_check_override_keeps_a_live_run_from_changing_anything() {
    use pmem_stack::Overrides;
    let mut args = recipe();
    args["_ansible_check_mode"] = json!(false);
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    let before = serde_json::to_value(&fake.state).expect("json");
    let check = Overrides {
        check_mode: Some(true),
        diff: None,
    };
    let r = pmem_stack::run_with(&args.to_string(), &mut fake, false, check);
    assert!(!r.failed, "{}", r.msg);
    assert!(r.changed && r.check_mode && r.done.is_empty() && !r.plan.is_empty());
    assert_eq!(serde_json::to_value(&fake.state).expect("json"), before);
    args["_ansible_check_mode"] = json!(true);
    let live = Overrides {
        check_mode: Some(false),
        diff: Some(true),
    };
    let r = pmem_stack::run_with(&args.to_string(), &mut fake, false, live);
    assert!(!r.failed, "{}", r.msg);
    assert!(!r.check_mode && r.done.len() == r.plan.len() && r.diff.is_some());
    assert_ne!(serde_json::to_value(&fake.state).expect("json"), before);
}

// ---- --format text ----------------------------------------------------------------------

fn text_run(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let out = bin().args(args).stdin(Stdio::null()).output().expect("run");
    let text = stdout(&out);
    assert!(
        serde_json::from_str::<Value>(&text).is_err(),
        "--format text printed JSON: {text}"
    );
    (out.status.code(), text)
}

/// [`text_run`] of `flags`, then `--actual` with the [`captured`] facts, then `args`.
fn text_on_captured(flags: &[&str], args: &Path) -> (Option<i32>, String) {
    let captured = captured();
    let mut argv: Vec<&std::ffi::OsStr> = flags.iter().map(|f| f.as_ref()).collect();
    argv.extend([
        std::ffi::OsStr::new("--actual"),
        captured.as_ref(),
        args.as_ref(),
    ]);
    text_run(&argv)
}

fn os<'a>(parts: &'a [&'a dyn AsRef<std::ffi::OsStr>]) -> Vec<&'a std::ffi::OsStr> {
    parts.iter().map(|p| p.as_ref()).collect()
}

/// The CI drift check as people read it: the plan with each step's target and detail,
/// the diffs, the audit tree; exit 2 once drifted, 0 and "nothing to do" before.
#[test]
fn text_plan_of_a_drifted_host_from_captured_facts() {
    let args = tmp("text-drift-args.json", &captured_stack().to_string());
    let drifted = drifted();
    let (code, text) = text_run(&os(&[
        &"--actual",
        &drifted,
        &args,
        &"--detailed-exitcode",
        &"--format",
        &"text",
        &"--diff",
    ]));
    assert_eq!(code, Some(2), "{text}");
    for want in [
        "CHANGES PENDING (check mode: nothing was run): 4 steps would run (offline plan against a captured snapshot); nothing was changed\n",
        "\nPlan: 4 steps\n",
        "  1/4  create_dm    /dev/mapper/s  would run\n         dmsetup create s: 0 2056192 striped 2 4096 259:0 0 259:2 0\n",
        "  2/4  mkfs         dm device s    would run\n         mkfs.xfs -q -m reflink=0 -d su=2m,sw=2 -L stripefs <dm device s>",
        "  3/4  mount        /mnt/x         would run\n",
        "  4/4  set_extsize  /mnt/x         would run\n",
        "\nDiff:\n",
        "  --- mount /mnt/x (before)\n  +++ mount /mnt/x (after)\n  +source: dm device s\n  +fstype: xfs\n  +dax: always\n",
        "\nWarnings:\n  - could not read /dev/mapper/foreign-err: ",
        "  /mnt/e                  mount       ok   dax=always\n  └─/dev/pmem1.1p1        filesystem  ok   ext4 block size 4K",
        "    └─/dev/pmem1.1p1      partition   ok   /dev/pmem1.1p1 starts at sector 4096 (2M)",
        "      └─pm2               namespace   ok   fsdax namespace pm2 (/dev/pmem1.1)",
    ] {
        assert!(text.contains(want), "no {want:?} in\n{text}");
    }
    assert!(
        !text.contains("Timing:"),
        "an offline plan is not timed: {text}"
    );
    let (code, text) = text_on_captured(&["--format=text", "--detailed-exitcode"], &args);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.starts_with("OK, nothing to do (check mode): No changes.\n"),
        "{text}"
    );
    assert!(!text.contains("\nPlan:"), "{text}");
}

/// The audit tree of the converged stack: mount, filesystem, dm device, its namespaces,
/// each layer ok or with its fix (here the dm device's max_sectors_kb, as captured).
#[test]
fn text_audit_tree_from_captured_facts() {
    let args = tmp("text-tree-args.json", &captured_stack().to_string());
    let captured = captured();
    let (code, text) = text_run(&os(&[&"--actual", &captured, &"--format", &"text", &args]));
    assert_eq!(code, Some(0), "{text}");
    let tree = "\
DAX audit (2 MiB page faults, layer by layer):
  NAME                    LAYER       2M   FOUND
  platform                            ok
  ├─page size             platform    ok   4K
  ├─cpu pse               platform    ok   2 MiB pages supported
  ├─cpu pdpe1gb           platform    ok   1 GiB pages supported
  └─transparent_hugepage  platform    ok   always
  /mnt/x                  mount       ok   dax=always
  └─/dev/mapper/s         filesystem  ok   xfs block size 4K, stripe unit 512 blocks (2M), root extsize 2M inherited
    └─/dev/mapper/s       dm          FIX  striped 2 x chunk 4096 sectors (2M), max_sectors_kb 1280
      │                                    fix: echo 2048 > /sys/block/dm-0/queue/max_sectors_kb (pmem_stack sets it on striped devices it creates or reloads)
      ├─pm0               namespace   ok   fsdax namespace pm0 (/dev/pmem0), physical start 0x140000000, align 2M, map mem
      └─pm1               namespace   ok   fsdax namespace pm1 (/dev/pmem1), physical start 0x100000000, align 2M, map dev
  /mnt/e                  mount       ok   dax=always
";
    assert!(text.contains(tree), "{text}");
    // the dm layer's warning is drawn in the tree, not listed again
    assert!(!text.contains("- dax_audit /mnt/x: dm"), "{text}");
}

/// A refusal names the option that would allow it; allowed, the destructive step is
/// marked.
#[test]
fn text_refusal_and_destructive_steps() {
    let mut chunk = captured_stack();
    chunk["devices"][0]["chunk"] = json!("4M");
    let refused = tmp("text-chunk.json", &chunk.to_string());
    let (code, text) = text_on_captured(&["--format", "text"], &refused);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.starts_with("FAILED: 1 refusal, nothing was done\n\nRefused (nothing was done):\n  - refusing reloading dm device s with another table"), "{text}");
    assert!(
        text.contains(
            ". Set allow_data_loss: true to allow it\n    allowed by: allow_data_loss: true\n"
        ),
        "{text}"
    );
    chunk["allow_data_loss"] = json!(true);
    let allowed = tmp("text-chunk-allowed.json", &chunk.to_string());
    let flags = ["--detailed-exitcode", "--format", "text"];
    let (code, text) = text_on_captured(&flags, &allowed);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("\nPlan: 5 steps, 1 destroying data (DESTRUCTIVE)\n"),
        "{text}"
    );
    assert!(text.contains("  2/5  reload_dm    /dev/mapper/s  would run  DESTRUCTIVE\n         suspend, load, resume s: "), "{text}");
    assert!(
        text.contains("  1/5  umount       /mnt/x         would run\n"),
        "{text}"
    );
}

/// A live run in text ends with the timing line; bad arguments list their paths.
#[test]
fn text_live_run_timing_and_input_errors() {
    let lock = std::env::temp_dir().join(format!("pmem-stack-cli-x{}.lock", std::process::id()));
    let nothing = tmp("text-live.json", r#"{"_ansible_check_mode": true}"#);
    let out = bin()
        .env("PMEM_STACK_LOCK", &lock)
        .args(["--format", "text"])
        .arg(&nothing)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    let _ = std::fs::remove_file(&lock);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with("OK, nothing to do (check mode): No changes.\n"),
        "{text}"
    );
    let timing = text
        .lines()
        .find(|l| l.starts_with("Timing: "))
        .unwrap_or_default();
    assert!(
        timing.contains(" ms wall, 0.0 ms in 0 external programs, 1 probe (")
            && timing.contains(" 0 operations"),
        "{text}"
    );
    let bad = tmp(
        "text-bad.json",
        r#"{"devices": [{"name": "s", "target": "striped", "members": ["/dev/pmem0"]}], "what": 1}"#,
    );
    let snap = snapshot();
    let (code, text) = text_run(&os(&[&"--actual", &snap, &bad, &"--format", &"text"]));
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.starts_with("FAILED: 2 problems in the arguments\n\nErrors in the arguments:\n"),
        "{text}"
    );
    assert!(
        text.contains("  - devices[0].members: a striped device needs at least 2 members"),
        "{text}"
    );
}

/// `--format json` is the default, byte for byte; other values, or a format for a
/// schema, are usage errors.
#[test]
fn format_json_is_the_default_and_bad_formats_are_usage_errors() {
    let args = tmp("format-args.json", &captured_stack().to_string());
    let plain = offline(&drifted(), &args);
    let json = bin()
        .args(["--format", "json", "--actual"])
        .arg(drifted())
        .arg(&args)
        .output()
        .expect("run");
    assert_eq!(stdout(&plain), stdout(&json));
    one_object(&json);
    for (line, want) in [
        (
            vec!["--format", "yaml"],
            "invalid value 'yaml' for '--format <FORMAT>'",
        ),
        (
            vec!["--format"],
            "a value is required for '--format <FORMAT>'",
        ),
        (vec!["--schema", "--format", "text"], "cannot be used with"),
    ] {
        let out = bin().args(&line).output().expect("run");
        assert_eq!(out.status.code(), Some(1), "{line:?}");
        assert!(out.stdout.is_empty(), "{line:?}");
        assert!(stderr(&out).contains(want), "{line:?}: {}", stderr(&out));
    }
}

/// A live run tells its observer about each step as it starts and as it ends, in order,
/// the failed one included; the result is the same as without an observer.
#[test]
fn a_live_run_reports_each_step_as_it_starts_and_ends() {
    use pmem_stack::{Overrides, Progress, StepOutcome};
    for fail_at in [None, Some(3)] {
        let mut fake = FakeSystem::fresh_dimms(2, DIMM);
        fake.fail_at = fail_at;
        let mut events = Vec::new();
        let mut printed = Vec::new();
        let r = {
            let mut live = pmem_stack::text::LiveSteps::new(&mut printed);
            pmem_stack::run_observed(
                &recipe().to_string(),
                &mut fake,
                false,
                Overrides::default(),
                &mut |p| {
                    events.push(match p {
                        Progress::Started { index, total, step } => {
                            format!("start {}/{total} {}", index + 1, step.action)
                        }
                        Progress::Ended {
                            index,
                            total,
                            step,
                            outcome,
                        } => format!(
                            "end {}/{total} {} {}",
                            index + 1,
                            step.action,
                            match outcome {
                                StepOutcome::Done => "done",
                                StepOutcome::Skipped(_) => "skipped",
                                StepOutcome::Failed(_) => "failed",
                            }
                        ),
                    });
                    live.on(p);
                },
            )
        };
        let mut again = FakeSystem::fresh_dimms(2, DIMM);
        again.fail_at = fail_at;
        let quiet = pmem_stack::run(&recipe().to_string(), &mut again, false);
        assert_eq!(r.to_json(), quiet.to_json());
        let n = r.plan.len();
        let ran = r.done.len() + r.skipped_steps.len() + usize::from(r.failed_step.is_some());
        assert_eq!(events.len(), 2 * ran, "{events:#?}");
        for (i, pair) in events.chunks(2).enumerate() {
            let action = &r.plan[i].action;
            assert_eq!(pair[0], format!("start {}/{n} {action}", i + 1));
            assert!(
                pair[1].starts_with(&format!("end {}/{n} {action} ", i + 1)),
                "{pair:?}"
            );
        }
        let text = String::from_utf8(printed).expect("utf-8");
        assert_eq!(text.lines().count(), events.len(), "{text}");
        if fail_at.is_some() {
            assert!(r.failed, "{}", r.msg);
            assert!(
                events.last().is_some_and(|e| e.ends_with(" failed")),
                "{events:#?}"
            );
            assert!(
                text.lines()
                    .last()
                    .is_some_and(|l| l.contains(": FAILED (")),
                "{text}"
            );
        } else {
            assert!(!r.failed, "{}", r.msg);
            assert!(
                text.lines()
                    .all(|l| l.ends_with(" ...") || l.contains(": done (")),
                "{text}"
            );
        }
    }
}

/// `boot.persist` plans the boot copy in the module's own directory; an operator's own
/// `/usr/local/sbin/pmem_stack` (run by no unit of ours) is in no step, whatever the
/// state asked.
#[test]
fn the_boot_copy_is_planned_apart_from_an_operators_pmem_stack() {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    fake.state.files.push(pmem_stack::actual::FileState {
        path: "/usr/local/sbin/pmem_stack".into(),
        content: pmem_stack::actual::FileContent::Binary {
            matches_self: false,
        },
        mode: Some(0o755),
    });
    let snap = tmp(
        "operators-own.json",
        &serde_json::to_string(&fake.state).expect("json"),
    );
    let mut args = recipe();
    args["boot"] = json!({"persist": true});
    for state in ["present", "absent"] {
        args["state"] = json!(state);
        let out = offline(&snap, &tmp("persist-args.json", &args.to_string()));
        let v = one_object(&out);
        assert!(out.status.success(), "{v}");
        let targets: Vec<&str> = v["plan"]
            .as_array()
            .expect("plan")
            .iter()
            .filter_map(|s| s["target"].as_str())
            .collect();
        assert!(
            !targets.contains(&"/usr/local/sbin/pmem_stack"),
            "{state}: {targets:?}"
        );
        if state == "present" {
            assert!(
                targets.contains(&"/usr/local/libexec/pmem-stack/pmem_stack"),
                "{targets:?}"
            );
        }
    }
}
