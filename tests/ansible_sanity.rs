//! Ansible's own checks on what the project ships, as one test running
//! scripts/ansible-checks.sh: `ansible-test sanity` on the built collection
//! (validate-modules on the module documentation, yamllint, runtime-metadata, ...), the
//! collection installed and run through ansible-playbook on this machine (read-only), and
//! `ansible-lint --profile production` on playbooks/*.yml.
//!
//! The modules are the binary under test: `PMEM_STACK_TEST_BIN` (scripts/test.sh sets it
//! to the `cargo dist` binary) or this build's. The tools come from target/ansible-venv
//! (scripts/install-deps.sh). Without them the test fails in CI (`CI` set); elsewhere it
//! says loudly that it skipped.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn ansible_test_sanity_ansible_lint_and_a_playbook_run_of_the_collection() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let venv = std::env::var_os("PMEM_STACK_ANSIBLE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target/ansible-venv"));
    let missing: Vec<&str> = ["ansible-test", "ansible-galaxy", "ansible-lint"]
        .into_iter()
        .filter(|t| !venv.join("bin").join(t).is_file())
        .collect();
    if !missing.is_empty() {
        let why = format!("{} missing from {}", missing.join(", "), venv.display());
        if std::env::var_os("CI").is_none() {
            eprintln!(
                "\n!!!!!!!! SKIPPED THE ANSIBLE CHECKS: {why}; run scripts/install-deps.sh !!!!!!!!\n"
            );
            return;
        }
        panic!(
            "the Ansible checks cannot run in CI: {why}; scripts/install-deps.sh makes the venv"
        );
    }
    let bin = std::env::var("PMEM_STACK_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_pmem_stack").to_string());
    let out = Command::new("bash")
        .arg(repo.join("scripts/ansible-checks.sh"))
        .args(["--bin", &bin])
        .env("PMEM_STACK_ANSIBLE_VENV", &venv)
        .output()
        .expect("run scripts/ansible-checks.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "scripts/ansible-checks.sh failed ({}):\n{stderr}",
        out.status
    );
    assert!(stdout.contains("sanity tests passed: ") && stdout.contains(" validate-modules "));
    assert!(stdout.contains("ansible-checks: all passed"));
}
