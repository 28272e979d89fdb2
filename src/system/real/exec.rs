//! External programs: the one table of what we run and why, and the argv runner.
//! Never a shell: argv vectors only; output captured and returned on failure.

use crate::report::ExternalRun;
use crate::system::{Output, SystemError};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

/// Every program run by this process and how long it took (for the result's `timing`).
static RUNS: Mutex<Vec<ExternalRun>> = Mutex::new(Vec::new());

/// When this process started (the first call of [`since_start_ms`] or [`mark_start`]).
static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Note the process start (main calls it first thing).
pub fn mark_start() {
    START.get_or_init(Instant::now);
}

/// Milliseconds from the process start to `t`.
pub fn since_start_ms(t: Instant) -> f64 {
    t.saturating_duration_since(*START.get_or_init(Instant::now))
        .as_secs_f64()
        * 1e3
}

fn record(argv: &[&str], started: Instant) {
    let command = argv.iter().take(2).copied().collect::<Vec<_>>().join(" ");
    let ms = started.elapsed().as_secs_f64() * 1e3;
    if let Ok(mut runs) = RUNS.lock() {
        runs.push(ExternalRun {
            command,
            start_ms: since_start_ms(started),
            ms,
        });
    }
}

/// Milliseconds spent in external programs so far (folded from +0.0: an empty f64
/// `sum()` is -0.0).
pub fn external_ms() -> f64 {
    RUNS.lock()
        .map(|r| r.iter().fold(0.0, |a, x| a + x.ms))
        .unwrap_or_default()
}

/// The programs run so far, in order.
pub fn external_runs() -> Vec<ExternalRun> {
    RUNS.lock().map(|r| r.clone()).unwrap_or_default()
}

/// Every external program pmem_stack may run, and why (nothing runs on a no-op).
pub const PROGRAMS: &[(&str, &str)] = &[
    ("ndctl", "create/reconfigure/destroy namespaces (label and pfn/dax info-block writes have no stable ioctl API)"),
    ("mkfs.ext4", "make ext4 with the DAX geometry"),
    ("mkfs.xfs", "make xfs with the DAX geometry"),
    ("systemctl", "daemon-reload after boot units were written or removed (only when systemd runs)"),
    ("udevadm", "wait for udev to create /dev nodes after a device appears or goes (udevadm settle)"),
];

/// Whether `prog` is in [`PROGRAMS`].
pub fn known(prog: &str) -> bool {
    PROGRAMS.iter().any(|(p, _)| *p == prog)
}

/// Run argv; stdin is /dev/null; fail with argv, status, stdout and stderr.
pub fn run(argv: &[String]) -> Result<Output, SystemError> {
    let Some((prog, args)) = argv.split_first() else {
        return Err(SystemError::Os {
            what: "run".into(),
            error: "empty argv".into(),
        });
    };
    if !known(prog) {
        return Err(SystemError::Os {
            what: format!("run {prog}"),
            error: "not in the table of external programs".into(),
        });
    }
    let started = Instant::now();
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .env("LC_ALL", "C")
        .output();
    record(
        &[prog.as_str(), args.first().map_or("", String::as_str)],
        started,
    );
    let out = out.map_err(|e| SystemError::Command {
        argv: argv.to_vec(),
        rc: None,
        stdout: String::new(),
        stderr: format!("cannot run {prog}: {e}"),
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        Ok(Output {
            argv: Some(argv.to_vec()),
            stdout,
            stderr,
        })
    } else {
        Err(SystemError::Command {
            argv: argv.to_vec(),
            rc: out.status.code(),
            stdout,
            stderr,
        })
    }
}

/// `udevadm settle` (bounded); a missing udevadm or a timeout is not fatal here: the
/// next probe sees what exists and the resolver names what is missing.
pub fn udev_settle() {
    let started = Instant::now();
    let _ = Command::new("udevadm")
        .args(["settle", "--timeout=30"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    record(&["udevadm", "settle"], started);
}
