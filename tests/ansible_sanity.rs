//! Ansible's own checks on what the project ships, one test per ansible-core running
//! scripts/ansible-checks.sh: `ansible-test sanity` on the built collection
//! (validate-modules on the module documentation, yamllint, runtime-metadata, ...), the
//! collection installed, shown by ansible-doc and run through ansible-playbook on this
//! machine (read-only), and, on the newest ansible-core only, `ansible-lint --profile
//! production` on playbooks/*.yml.
//!
//! The modules are the binary under test: `PMEM_STACK_TEST_BIN` (scripts/test.sh sets it
//! to the `cargo dist` binary) or this build's. The tools come from the venvs
//! scripts/install-deps.sh makes: the newest ansible-core with ansible-lint in
//! target/ansible-venv (`PMEM_STACK_ANSIBLE_VENV`), the oldest supported one (2.14, the
//! collection's requires_ansible) in target/ansible-venv-2.14
//! (`PMEM_STACK_ANSIBLE_OLDEST_VENV`). Without them a test fails, unless
//! `PMEM_STACK_SKIP_ANSIBLE=1` is set outside CI: it then skips, says so and records the
//! skip in target/test-report/skipped.

use std::path::PathBuf;
use std::process::Command;

#[path = "common/report.rs"]
mod report;

/// The checks of `test` on the venv `env` names (default `target/<default>`), whose
/// ansible-core version starts with `core`; `newest`: the venv of the newest
/// ansible-core, where ansible-lint runs too.
fn ansible_checks(test: &str, env: &str, default: &str, core: &str, newest: bool) {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let venv = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target").join(default));
    let tools: &[&str] = if newest {
        &["ansible-test", "ansible-galaxy", "ansible-lint"]
    } else {
        &["ansible-test", "ansible-galaxy"]
    };
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| !venv.join("bin").join(t).is_file())
        .collect();
    if !missing.is_empty() {
        let why = format!(
            "{} missing from {} (or set {env})",
            missing.join(", "),
            venv.display()
        );
        report::skip_or_fail_ansible(test, &why);
        return;
    }
    let bin = std::env::var("PMEM_STACK_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_pmem_stack").to_string());
    let mut cmd = Command::new("bash");
    cmd.arg(repo.join("scripts/ansible-checks.sh"))
        .args(["--bin", &bin]);
    if newest {
        cmd.env("PMEM_STACK_ANSIBLE_VENV", &venv);
    } else {
        cmd.arg("--venv").arg(&venv);
    }
    let out = cmd.output().expect("run scripts/ansible-checks.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "scripts/ansible-checks.sh failed ({}):\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains(&format!("ansible-checks: ansible-core {core}")),
        "not ansible-core {core}"
    );
    assert!(stdout.contains("sanity tests passed: ") && stdout.contains(" validate-modules "));
    for m in ["pmem_stack", "pmem_stack_info"] {
        assert!(stdout.contains(&format!("ansible-doc pmemstack.pmem.{m}: ")));
    }
    assert_eq!(
        stdout.contains("== ansible-checks: ansible-lint (production profile)"),
        newest,
        "ansible-lint runs on the newest ansible-core only"
    );
    assert!(stdout.contains("ansible-checks: all passed"));
}

#[test]
fn ansible_test_sanity_ansible_lint_and_a_playbook_run_of_the_collection() {
    ansible_checks(
        "ansible_test_sanity_ansible_lint_and_a_playbook_run_of_the_collection",
        "PMEM_STACK_ANSIBLE_VENV",
        "ansible-venv",
        "2.",
        true,
    );
}

#[test]
fn ansible_test_sanity_and_a_playbook_run_of_the_collection_on_ansible_core_2_14() {
    ansible_checks(
        "ansible_test_sanity_and_a_playbook_run_of_the_collection_on_ansible_core_2_14",
        "PMEM_STACK_ANSIBLE_OLDEST_VENV",
        "ansible-venv-2.14",
        "2.14.",
        false,
    );
}
