//! The result as Ansible reads it: the keys Ansible interprets keep Ansible's meaning and
//! shape (checked on the result schema, so a new key is reviewed here), and through the
//! real client: `ansible-playbook` runs tiny local modules that print results made by
//! this crate, against localhost, once from each venv scripts/install-deps.sh makes: the
//! newest ansible-core (target/ansible-venv) and the oldest the collection supports
//! (target/ansible-venv-2.14); both print these results alike.
//! No PMEM is needed: one result comes from a real run against the fake system, one from
//! the built binary's offline plan (`pmem_stack --actual SNAPSHOT ARGS`).
//!
//! Without a venv the Ansible tests fail, unless `PMEM_STACK_SKIP_ANSIBLE=1` is set
//! outside CI: they then skip that venv, say so and record the skip in
//! target/test-report/skipped.

mod common;
#[path = "common/report.rs"]
mod report;

use common::*;
use pmem_stack::report::{result_schema, ModuleResult};
use pmem_stack::system::fake::FakeSystem;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

// ---- the keys Ansible interprets ----------------------------------------------------

/// Return keys with a meaning in ansible-core (2.19: executor/task_result.py,
/// executor/task_executor.py, plugins/action/__init__.py, vars/clean.py, the callbacks)
/// or in the common return values of modules, that a result must not carry unless it
/// means the same thing in the same shape.
const ANSIBLE_KEYS: &[&str] = &[
    "skipped",
    "changed",
    "failed",
    "msg",
    "rc",
    "results",
    "stdout",
    "stderr",
    "stdout_lines",
    "stderr_lines",
    "invocation",
    "warnings",
    "deprecations",
    "exception",
    "ansible_facts",
    "backup_file",
    "diff",
    "item",
    "attempts",
    "retries",
    "skip_reason",
    "unreachable",
    "failed_when_result",
    "changed_when_result",
    "module_stdout",
    "module_stderr",
    "add_host",
    "add_group",
];

/// The keys of ours that Ansible interprets: each one's shape is checked below.
const SHARED: &[&str] = &[
    "changed",
    "failed",
    "msg",
    "invocation",
    "warnings",
    "diff",
    "ansible_facts",
];

/// Every top-level key of the result, each reviewed against Ansible's: the shared ones,
/// and ours, which Ansible passes through untouched (registered variables, `-v` output).
const ALL_KEYS: &[&str] = &[
    "changed",
    "failed",
    "msg",
    // the same text as `msg`, for Salt's stateful `cmd.run`; no meaning in ansible-core
    "comment",
    "plan",
    "done",
    "skipped_steps",
    "check_mode",
    "diff",
    "warnings",
    "errors",
    "refusals",
    "failed_step",
    "dax_audit",
    "pmd_faults",
    // devdax namespaces as system RAM: what came online, where (no Ansible key)
    "system_ram",
    // --facts / pmem_stack_info: every PV, VG and LV with its alignment (no Ansible key)
    "lvm_summary",
    "ansible_facts",
    "timing",
    "invocation",
];

fn schema() -> Value {
    serde_json::to_value(result_schema()).expect("schema is JSON")
}

/// `{"$ref": "#/$defs/X"}` resolved in `schema`.
fn deref<'a>(schema: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => schema
            .pointer(&r.replacen("#/", "/", 1))
            .unwrap_or_else(|| panic!("{r} not in the schema")),
        None => v,
    }
}

/// The fields of a diff item, as Ansible's callbacks read them.
const DIFF_FIELDS: [&str; 4] = ["after", "after_header", "before", "before_header"];

#[test]
fn every_result_key_is_reviewed_and_no_other_ansible_key_is_used() {
    let s = schema();
    let keys = key_set(&s["properties"], "properties");
    assert_eq!(
        keys,
        ALL_KEYS.iter().copied().collect(),
        "the result's top-level keys changed: review each new one against Ansible's return keys (ANSIBLE_KEYS), then list it in ALL_KEYS"
    );
    for k in &keys {
        assert!(
            !k.starts_with("_ansible_"),
            "{k}: Ansible strips `_ansible_` keys from module results"
        );
        assert!(
            !k.starts_with("ansible_") || *k == "ansible_facts",
            "{k}: `ansible_` keys are Ansible's"
        );
        assert!(
            !ANSIBLE_KEYS.contains(k) || SHARED.contains(k),
            "{k} is an Ansible return key that this result does not use in Ansible's sense"
        );
    }
    assert!(
        !keys.contains("skipped"),
        "a truthy `skipped` makes Ansible report the whole task as skipped"
    );
}

#[test]
fn the_keys_ansible_interprets_have_ansible_shapes() {
    let s = schema();
    let p = &s["properties"];
    // bool flags, as TaskResult reads them (`_check_key`: truthiness)
    for k in ["changed", "failed"] {
        assert_eq!(p[k]["type"], "boolean", "{k}");
    }
    assert_eq!(p["msg"]["type"], "string");
    // a list of strings: each becomes a WarningSummary (task_executor
    // `_apply_task_result_compat`); anything but a list is itself warned about
    assert_eq!(p["warnings"]["type"], "array");
    assert_eq!(p["warnings"]["items"]["type"], "string");
    // `{module_args: {...}}`, as AnsibleModule reports it (shown with -vvv)
    let inv = deref(&s, &p["invocation"]);
    assert_eq!(inv["type"], "object");
    assert_eq!(inv["required"], json!(["module_args"]));
    assert_eq!(inv["properties"]["module_args"]["type"], "object");
    // a list of dicts the callbacks' `_get_diff` renders from before/after and the
    // headers; no `prepared` (it would be printed after Ansible's own rendering)
    assert_eq!(p["diff"]["type"], json!(["array", "null"]));
    let item = deref(&s, &p["diff"]["items"]);
    let fields = key_set(&item["properties"], "diff item properties");
    assert_eq!(fields, BTreeSet::from(DIFF_FIELDS));
    for f in &fields {
        assert_eq!(item["properties"][f]["type"], "string", "diff item {f}");
    }
    // the list of conditional steps not needed
    assert_eq!(p["skipped_steps"]["type"], "array");
}

#[test]
fn facts_are_a_dict_of_one_key_that_ansible_keeps() {
    // `--facts` nests the snapshot under `ansible_facts.pmem_stack`: a dict, and a name
    // vars/clean.py `clean_facts` keeps (not a magic or connection variable, no
    // `ansible_` prefix)
    let mut r = ModuleResult::new(Default::default());
    r.ansible_facts = Some(json!({"pmem_stack": {"regions": []}}));
    let v: Value = serde_json::from_str(&r.to_json()).expect("json");
    let facts = v["ansible_facts"].as_object().expect("a dict");
    assert_eq!(facts.keys().collect::<Vec<_>>(), ["pmem_stack"]);
}

// ---- results of our real shape ----------------------------------------------------

fn stack(persist: bool) -> Value {
    let mut args = striped_xfs();
    args["boot"] = json!({ "persist": persist });
    args
}

/// The machine after a reboot that took the stack's dm device and mount away (the
/// stack was converged without `boot.persist`): the xfs is still on the members.
fn rebooted() -> FakeSystem {
    let mut fake = FakeSystem::fresh_dimms(2, DIMM);
    converge(&mut fake, &stack(false));
    fake.reboot();
    fake
}

/// A real run with `--diff` after such a reboot, now with `boot.persist`: the dm device
/// is rebuilt and mounted, the mkfs (conditional: only on a blank device) is not needed,
/// the boot files are written. Changed, with skipped steps, and a diff of the dm table
/// and the files. One warning added, to see how Ansible shows it.
fn live_result() -> ModuleResult {
    let mut fake = rebooted();
    let mut args = stack(true);
    args["_ansible_diff"] = json!(true);
    let mut r = run(&mut fake, &args);
    assert!(!r.failed, "{}", r.msg);
    assert!(r.changed);
    assert!(
        r.skipped_steps.iter().any(|s| s.step.action == "mkfs"),
        "{:?}",
        r.skipped_steps
    );
    let diff = r.diff.as_ref().expect("diff asked for");
    assert!(diff
        .iter()
        .any(|d| d.before_header.starts_with("dm table ")));
    assert!(diff.iter().any(|d| d.before_header.starts_with("file ")));
    r.warnings.push("a warning from pmem_stack".into());
    r
}

#[test]
fn the_result_json_says_skipped_steps_and_diffs_have_no_prepared_text() {
    let v: Value = serde_json::from_str(&live_result().to_json()).expect("json");
    assert!(v.get("skipped").is_none(), "{v}");
    let steps = v["skipped_steps"].as_array().expect("skipped_steps");
    assert!(steps
        .iter()
        .any(|s| s["step"]["action"] == "mkfs" && s["why"].as_str().is_some()));
    for d in v["diff"].as_array().expect("diff") {
        assert_eq!(key_set(d, "diff item"), BTreeSet::from(DIFF_FIELDS), "{d}");
    }
}

/// The result as the module printed it before, with `skipped` for `skipped_steps`.
fn old_skipped(r: &ModuleResult) -> Value {
    let mut v: Value = serde_json::from_str(&r.to_json()).expect("json");
    let o = v.as_object_mut().expect("object");
    let steps = o.remove("skipped_steps").expect("skipped_steps");
    o.insert("skipped".into(), steps);
    v
}

/// The result as the module printed it before, with each dm table and file diff also
/// as a `prepared` unified diff.
fn old_prepared(r: &ModuleResult) -> Value {
    let mut v: Value = serde_json::from_str(&r.to_json()).expect("json");
    for d in v["diff"].as_array_mut().expect("diff") {
        let h = d["before_header"].as_str().unwrap_or_default().to_string();
        if h.starts_with("dm table ") || h.starts_with("file ") {
            let p = whole_diff(
                &h,
                d["after_header"].as_str().unwrap_or_default(),
                d["before"].as_str().unwrap_or_default(),
                d["after"].as_str().unwrap_or_default(),
            );
            d["prepared"] = json!(p);
        }
    }
    v
}

/// A unified diff of `before` to `after` as one hunk (every line removed, then added).
fn whole_diff(bh: &str, ah: &str, before: &str, after: &str) -> String {
    let range = |t: &str| match t.lines().count() {
        0 => "0,0".to_string(),
        n => format!("1,{n}"),
    };
    let mut s = format!(
        "--- {bh}\n+++ {ah}\n@@ -{} +{} @@\n",
        range(before),
        range(after)
    );
    s.extend(before.lines().map(|l| format!("-{l}\n")));
    s.extend(after.lines().map(|l| format!("+{l}\n")));
    s
}

// ---- through ansible-playbook ---------------------------------------------------------

/// The venvs `test` runs on: the newest ansible-core (`PMEM_STACK_ANSIBLE_VENV`, default
/// target/ansible-venv) and the oldest the collection supports
/// (`PMEM_STACK_ANSIBLE_OLDEST_VENV`, default target/ansible-venv-2.14); a missing one
/// fails the test, unless skipping is allowed (see [`report::skip_or_fail_ansible`]).
fn venvs(test: &str) -> Vec<PathBuf> {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let mut found = Vec::new();
    for (var, default) in [
        ("PMEM_STACK_ANSIBLE_VENV", "ansible-venv"),
        ("PMEM_STACK_ANSIBLE_OLDEST_VENV", "ansible-venv-2.14"),
    ] {
        let venv = std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| target.join(default));
        if venv.join("bin/ansible-playbook").is_file() {
            found.push(venv);
            continue;
        }
        let why = format!(
            "{} has no bin/ansible-playbook (or set {var})",
            venv.display()
        );
        report::skip_or_fail_ansible(test, &why);
    }
    found
}

/// A scratch directory with `library/`, and the ansible-playbook runs made in it.
struct Play {
    venv: PathBuf,
    dir: PathBuf,
}

impl Play {
    fn new(venv: &Path, name: &str) -> Play {
        let venv = venv.to_path_buf();
        let dir = std::env::temp_dir().join(format!(
            "pmem-stack-ansible-{}-{name}-{}",
            std::process::id(),
            venv.file_name()
                .map_or("venv".into(), |n| n.to_string_lossy())
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["library", "tmp/local", "tmp/remote", "home"] {
            std::fs::create_dir_all(dir.join(d)).expect("scratch dir");
        }
        // no ansible.cfg of the user's or the repo's: defaults only
        std::fs::write(dir.join("ansible.cfg"), "[defaults]\n").expect("ansible.cfg");
        Play { venv, dir }
    }

    /// A module `name` in library/: a shell script (WANT_JSON: Ansible passes the
    /// arguments file as JSON in `$1`, as it does to a binary module).
    fn module(&self, name: &str, body: &str) {
        let p = self.dir.join("library").join(name);
        std::fs::write(&p, format!("#!/bin/sh\n# WANT_JSON\n{body}\n")).expect("module");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// A module that prints `result` as the module's stdout.
    fn printing(&self, name: &str, result: &str) {
        let json = self.dir.join(format!("{name}.json"));
        std::fs::write(&json, result).expect("result file");
        self.module(name, &format!("cat '{}'", json.display()));
    }

    /// `ansible-playbook -i localhost, -c local` of one task running `module` with
    /// `args`; the output (stdout and stderr) after a first line naming the venv.
    fn run(&self, module: &str, args: &Value, flags: &[&str]) -> String {
        let pb = self.dir.join(format!("{module}.yml"));
        // YAML takes the JSON text as a flow mapping
        std::fs::write(
            &pb,
            format!(
                "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: {module} task\n      {module}: {args}\n"
            ),
        )
        .expect("playbook");
        let mut cmd = Command::new(self.venv.join("bin/ansible-playbook"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ANSIBLE_") {
                cmd.env_remove(k);
            }
        }
        let out = cmd
            .current_dir(&self.dir)
            .env("ANSIBLE_CONFIG", self.dir.join("ansible.cfg"))
            .env("ANSIBLE_HOME", self.dir.join("home"))
            .env("ANSIBLE_LIBRARY", self.dir.join("library"))
            .env("ANSIBLE_LOCAL_TEMP", self.dir.join("tmp/local"))
            .env("ANSIBLE_REMOTE_TEMP", self.dir.join("tmp/remote"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_FORCE_COLOR", "0")
            .env("ANSIBLE_STDOUT_CALLBACK", "default")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
            .env("LANG", "C.UTF-8")
            .env("LC_ALL", "C.UTF-8")
            .args(["-i", "localhost,", "-c", "local"])
            .args(flags)
            .arg(&pb)
            .output()
            .expect("run ansible-playbook");
        let text = format!(
            "(ansible-playbook of {})\n{}{}",
            self.venv.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "ansible-playbook {module} {flags:?} failed ({}):\n{text}",
            out.status
        );
        text
    }
}

impl Drop for Play {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The recap's count `name` (`changed`, `skipped`, ...) for localhost.
fn recap(out: &str, name: &str) -> u32 {
    let line = out
        .lines()
        .find(|l| l.starts_with("localhost") && l.contains(" : ok="))
        .unwrap_or_else(|| panic!("no recap line in:\n{out}"));
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {line}"))
}

/// How many lines of `out` are the `---` header of a diff whose before side is
/// `header` (Ansible's own rendering, `--- before: <header>`, or a prepared text's).
fn header_lines(out: &str, header: &str) -> usize {
    out.lines()
        .filter(|l| l.starts_with("--- ") && l.ends_with(header))
        .count()
}

/// The before headers of the dm table and file items of a result's diff.
fn table_and_file_headers(v: &Value) -> Vec<String> {
    v["diff"]
        .as_array()
        .expect("diff")
        .iter()
        .filter_map(|d| d["before_header"].as_str())
        .filter(|h| h.starts_with("dm table ") || h.starts_with("file "))
        .map(String::from)
        .collect()
}

/// Changed, not skipped, and each diff printed once.
fn assert_changed_once(out: &str, v: &Value) {
    assert!(
        out.contains("changed: [localhost]"),
        "the task line says changed:\n{out}"
    );
    assert!(!out.contains("skipping:"), "no skipping: line\n{out}");
    assert_eq!(recap(out, "changed"), 1, "{out}");
    assert_eq!(recap(out, "skipped"), 0, "{out}");
    assert_eq!(recap(out, "failed"), 0, "{out}");
    let headers = table_and_file_headers(v);
    assert!(!headers.is_empty());
    for h in &headers {
        assert_eq!(header_lines(out, h), 1, "the diff of {h} once:\n{out}");
    }
    // one rendering per item: as many `---` headers as items that differ
    let items = v["diff"].as_array().map_or(0, Vec::len);
    let all = out
        .lines()
        .filter(|l| l.starts_with("--- before: "))
        .count();
    assert_eq!(all, items, "{out}");
    let hunks = out.lines().filter(|l| l.starts_with("@@ ")).count();
    assert!(hunks >= items, "{out}");
}

#[test]
fn ansible_playbook_reports_a_live_result_as_changed_with_each_diff_once() {
    let r = live_result();
    let v: Value = serde_json::from_str(&r.to_json()).expect("json");
    for venv in venvs("ansible_playbook_reports_a_live_result_as_changed_with_each_diff_once") {
        let play = Play::new(&venv, "live");
        play.printing("pmem_live", &r.to_json());
        let out = play.run("pmem_live", &json!({}), &["--diff"]);
        assert_changed_once(&out, &v);
        assert_eq!(recap(&out, "ok"), 1, "{out}");
        // warnings: a list of strings, shown as Ansible's own
        assert!(
            out.contains("[WARNING]: a warning from pmem_stack"),
            "{out}"
        );
        // without --diff, no diff at all
        let quiet = play.run("pmem_live", &json!({}), &[]);
        assert_eq!(recap(&quiet, "changed"), 1, "{quiet}");
        assert!(!quiet.contains("--- before: "), "{quiet}");
    }
}

#[test]
fn ansible_playbook_took_the_old_result_shapes_for_a_skipped_task_and_diffs_twice() {
    // the test can see the bugs: the result as printed before this fix
    let r = live_result();
    let old = old_prepared(&r);
    let headers = table_and_file_headers(&old);
    assert!(!headers.is_empty());
    for venv in
        venvs("ansible_playbook_took_the_old_result_shapes_for_a_skipped_task_and_diffs_twice")
    {
        let play = Play::new(&venv, "old");
        // `skipped`: the task is reported skipped (and its diff not shown at all; 2.14
        // drops its warnings too, 2.19 still shows them)
        play.printing("pmem_old_skipped", &old_skipped(&r).to_string());
        let out = play.run("pmem_old_skipped", &json!({}), &["--diff"]);
        assert!(out.contains("skipping: [localhost]"), "{out}");
        assert!(!out.contains("changed: [localhost]"), "{out}");
        assert_eq!(recap(&out, "skipped"), 1, "{out}");
        assert_eq!(recap(&out, "changed"), 0, "{out}");
        // `prepared` beside before/after: each dm table and file diff printed twice
        play.printing("pmem_old_prepared", &old.to_string());
        let out = play.run("pmem_old_prepared", &json!({}), &["--diff"]);
        assert_eq!(recap(&out, "changed"), 1, "{out}");
        for h in &headers {
            assert_eq!(header_lines(&out, h), 2, "the diff of {h} twice:\n{out}");
        }
    }
}

#[test]
fn ansible_playbook_runs_the_binary_offline_plan_in_check_mode_with_each_diff_once() {
    // the built binary itself as the module: `pmem_stack --actual SNAPSHOT ARGS_FILE`,
    // the arguments file Ansible writes (with `_ansible_check_mode`, `_ansible_diff`)
    let fake = rebooted();
    let mut args = stack(true);
    args["_ansible_diff"] = json!(true);
    args["_ansible_check_mode"] = json!(true);
    let bin = env!("CARGO_BIN_EXE_pmem_stack");
    for venv in
        venvs("ansible_playbook_runs_the_binary_offline_plan_in_check_mode_with_each_diff_once")
    {
        let play = Play::new(&venv, "offline");
        let snap = play.dir.join("snapshot.json");
        std::fs::write(&snap, serde_json::to_string(&fake.state).expect("json")).expect("snapshot");
        let args_file = play.dir.join("args.json");
        std::fs::write(&args_file, args.to_string()).expect("args");
        // what the binary prints for these arguments, to compare Ansible's output with
        let direct = Command::new(bin)
            .arg("--actual")
            .arg(&snap)
            .arg(&args_file)
            .output()
            .expect("run pmem_stack");
        let v: Value = serde_json::from_slice(&direct.stdout).expect("one JSON object");
        assert_eq!(v["changed"], json!(true), "{v}");
        assert!(v.get("skipped").is_none(), "{v}");
        play.module(
            "pmem_offline",
            &format!("exec '{bin}' --actual '{}' \"$1\"", snap.display()),
        );
        let out = play.run("pmem_offline", &stack(true), &["--check", "--diff"]);
        assert_changed_once(&out, &v);
        // the binary read the task's arguments from Ansible's file: the same plan
        assert!(
            out.contains("--- before: dm table pmem-striped (before)"),
            "{out}"
        );
    }
}
