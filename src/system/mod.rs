//! The one boundary between decisions and the machine: [`System`] probes the actual
//! state and executes concrete [`Op`]s. The real side (sysfs, ioctls, argv-only tools)
//! and the fake side (an in-memory [`Actual`] that can fail on purpose) implement it;
//! everything above is pure and shared.

pub mod fake;
pub mod real;
pub mod scope;
pub mod timing;

use crate::actual::Actual;
/// The command lines of the ops that run a program, for people as well (plan details,
/// a failed step's `argv`): the words the real system runs.
pub use crate::op::argv;
pub use crate::op::{self, DevId, GptEntry, NamespaceConfig, Op};
pub use scope::ProbeScope;
use serde::Serialize;
use std::fmt;

/// What an executed op printed (tools only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Output {
    /// The command run, if any.
    pub argv: Option<Vec<String>>,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

/// A failure at the system boundary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SystemError {
    /// Reading the state failed.
    Probe {
        /// What could not be read and why.
        msg: String,
    },
    /// An external command failed.
    Command {
        /// argv.
        argv: Vec<String>,
        /// Exit status (None: killed by a signal or not started).
        rc: Option<i32>,
        /// stdout.
        stdout: String,
        /// stderr.
        stderr: String,
    },
    /// A system call or ioctl failed.
    Os {
        /// What was attempted (e.g. "DM_TABLE_LOAD striped").
        what: String,
        /// The error.
        error: String,
    },
    /// No backend can run here.
    Unavailable {
        /// Why.
        msg: String,
    },
}

impl fmt::Display for SystemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SystemError::Probe { msg } => write!(f, "probing the system failed: {msg}"),
            SystemError::Command {
                argv, rc, stderr, ..
            } => {
                let rc = rc
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "none (not started or killed)".into());
                write!(
                    f,
                    "`{}` failed with exit status {rc}: {}",
                    argv.join(" "),
                    stderr.trim()
                )
            }
            SystemError::Os { what, error } => write!(f, "{what} failed: {error}"),
            SystemError::Unavailable { msg } => f.write_str(msg),
        }
    }
}

/// What a DAX check on a mounted filesystem found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DaxCheck {
    /// A new file in it has STATX_ATTR_DAX.
    pub statx_dax: bool,
    /// Kernel log lines about DAX (read when the check fails), newest last.
    pub kernel_log: Vec<String>,
}

/// What the PMD fault check counted on one mount.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PmdFaults {
    /// `fs_dax/dax_pmd_fault_done` events that ended in NOPAGE (a 2 MiB page mapped).
    pub nopage: u64,
    /// Events that ended in FALLBACK (fell back to 4 KiB pages).
    pub fallback: u64,
    /// Other results (e.g. NOPAGE|... combinations the kernel reports).
    pub other: u64,
    /// Bytes faulted in through the shared mapping.
    pub bytes: u64,
}

/// The machine, as the pipeline sees it.
pub trait System {
    /// Say which block devices later probes may open (see [`scope`]): the run sets it
    /// from its arguments before the first probe. Until then (and for a system that reads
    /// no device) the base scope applies. Default: nothing to narrow.
    fn set_scope(&mut self, scope: ProbeScope) {
        let _ = scope;
    }
    /// Read the actual state: everything listed, and the content of the devices in scope.
    /// A device in scope that cannot be read is recorded in [`Actual::unreadable`], not
    /// an error.
    fn probe(&mut self) -> Result<Actual, SystemError>;
    /// Carry out one operation.
    fn execute(&mut self, op: &Op) -> Result<Output, SystemError>;
    /// Read the actual state again after `op` ran on the state `before`. It must be what
    /// [`System::probe`] would return for everything the planner and resolver read; a
    /// system may read again only what `op` can have changed and keep the rest of
    /// `before`. Default: a full probe.
    fn probe_after(&mut self, op: &Op, before: &Actual) -> Result<Actual, SystemError> {
        let _ = (op, before);
        self.probe()
    }
    /// Fault a temporary file on the DAX filesystem at `mount_point` in through a shared
    /// mapping and count the `fs_dax/dax_pmd_fault_done` trace events; clean up after.
    fn pmd_check(&mut self, mount_point: &str) -> Result<PmdFaults, SystemError> {
        Err(SystemError::Unavailable {
            msg: format!("no PMD fault check on this system ({mount_point})"),
        })
    }
    /// Take the machine for this run (two runs never interleave). Default: nothing to take.
    fn lock(&mut self) -> Result<(), SystemError> {
        Ok(())
    }
    /// After mounting: make a file on the filesystem at `mount_point`, read its statx
    /// attributes, remove it; on no DAX, collect the kernel's reason.
    fn dax_check(&mut self, mount_point: &str) -> Result<DaxCheck, SystemError>;
    /// The phase `phase` of the run (`start`, `plan`, `steps`, `verify`) ends now: for
    /// the result's `timing.own_by_phase_ms`. Default: no time is kept.
    fn mark(&mut self, phase: &'static str) {
        let _ = phase;
    }
    /// Where this system's time went so far (probes, operations, external programs), for
    /// the result's `timing`. Default: none is kept.
    fn timing(&self) -> Option<timing::Timing> {
        None
    }
}

/// A system for `--actual SNAPSHOT`: probing returns the snapshot, executing is refused
/// (the pipeline never executes in that mode; this is the second lock on the door).
pub struct Snapshot(pub Actual);

impl System for Snapshot {
    fn probe(&mut self) -> Result<Actual, SystemError> {
        Ok(self.0.clone())
    }
    fn execute(&mut self, op: &Op) -> Result<Output, SystemError> {
        Err(SystemError::Unavailable {
            msg: format!("a captured snapshot cannot execute {op:?}"),
        })
    }
    fn dax_check(&mut self, _: &str) -> Result<DaxCheck, SystemError> {
        Err(SystemError::Unavailable {
            msg: "a captured snapshot has no filesystem to check".into(),
        })
    }
}
