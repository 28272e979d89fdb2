//! What a test run reports past the harness: skipped suites and each VM suite's time,
//! in target/test-report/ (scripts/test.sh clears it first and prints it at the end).
//! Included with `#[path = "common/report.rs"] mod report;`.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-report")
}

fn append(file: &str, line: &str) {
    let d = dir();
    let _ = std::fs::create_dir_all(&d);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(d.join(file))
    {
        let _ = writeln!(f, "{line}");
    }
}

/// Say loudly that `test` was skipped and why: straight to stderr (past the harness's
/// capture of `eprintln!`, so a passing test still shows it) and one line
/// `<test>: <why>` in target/test-report/skipped.
pub fn skipped(test: &str, why: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!!!!! SKIPPED {test}: {why} !!!!!!!!\n"
    );
    append("skipped", &format!("{test}: {why}"));
}

/// `test` cannot run here, for `why`. In CI (`CI` set) it fails; elsewhere it is skipped
/// (as [`skipped`] records it) only when the environment variable `opt_in` is `1`, and
/// otherwise fails saying `fix`.
pub fn skip_or_fail(test: &str, why: &str, opt_in: &str, fix: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} cannot run in CI: {why}; {fix}"
    );
    assert!(
        std::env::var(opt_in).as_deref() == Ok("1"),
        "{test} cannot run: {why}; {fix} (or set {opt_in}=1 to skip it, recorded in \
         target/test-report/skipped)"
    );
    skipped(test, why);
}

/// An Ansible test that cannot run here: [`skip_or_fail`] with
/// `PMEM_STACK_SKIP_ANSIBLE=1` as the opt-in.
pub fn skip_or_fail_ansible(test: &str, why: &str) {
    skip_or_fail(
        test,
        why,
        "PMEM_STACK_SKIP_ANSIBLE",
        "run `bash scripts/install-deps.sh`, which makes the venvs",
    );
}

/// One line `<seconds> s  <suite>  <summary>` in target/test-report/vm-times.
pub fn time(suite: &str, secs: f64, summary: &str) {
    append("vm-times", &format!("{secs:6.0} s  {suite}  {summary}"));
}
