//! Where a live run's time went: the `timing` of the result. The real system records
//! it (`real::record`) and hands it out through `System::timing`; the report carries it.

use schemars::JsonSchema;
use serde::Serialize;

/// Where a live run's time went.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Default)]
pub struct Timing {
    /// From the start of the process to the result, in milliseconds.
    pub wall_ms: f64,
    /// Spent waiting for external programs (ndctl, mkfs, `udevadm settle`, systemctl).
    pub external_ms: f64,
    /// Each external program run, in order.
    pub external: Vec<ExternalRun>,
    /// Spent inside kernel calls made on purpose, for an operation: BLKZEROOUT clearing
    /// a new namespace, the dm ioctls that make a table live, mount(2) and umount(2).
    /// Like `external_ms`, this is work the run asked for, not this program's own time
    /// (which is `wall_ms - external_ms - kernel_ms`). Probes are not counted here.
    pub kernel_ms: f64,
    /// `kernel_ms` by call (`BLKZEROOUT`, `DM_DEV_CREATE`, `DM_TABLE_LOAD`, `mount`, ...).
    pub kernel_calls_ms: std::collections::BTreeMap<String, f64>,
    /// Probes of the machine made (one before the plan, one before each step that follows
    /// a change, one after the run).
    pub probes: u32,
    /// Milliseconds spent probing.
    pub probe_ms: f64,
    /// `probe_ms` by what was read (namespaces, dm, block, mounts, contents: the GPTs and
    /// signatures of the devices in scope, extsize, files, platform, cxl, memory (the dax
    /// devices and their memory blocks); elsewhere: the mounts
    /// other mount namespaces hold, in runs that may tear down), summed over the
    /// probes.
    pub probe_parts_ms: std::collections::BTreeMap<String, f64>,
    /// Each operation run, in order, with its time and the parts of it spent in external
    /// programs and in kernel calls made on purpose (the rest is this program).
    pub operations: Vec<OperationTime>,
    /// This program's own time (`wall_ms` less probes, external programs, kernel calls
    /// made on purpose and re-probe checks) by phase of the run: `start` (process start,
    /// reading and validating the arguments, the lock), `plan`, `steps` (resolving each
    /// step, running its operation, bookkeeping), `verify` (the diff, the DAX checks and
    /// the plan after the steps), `result` (the audit and the result, up to this
    /// timing). Their sum and `probe_ms` are the run's own time.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub own_by_phase_ms: std::collections::BTreeMap<String, f64>,
    /// Re-probes after a step checked against a full probe (`PMEM_STACK_CHECK_REPROBE`,
    /// a test aid; absent when none was).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reprobe_checks: u32,
    /// Milliseconds of the full probes those checks made (not in `probe_ms` or
    /// `probe_parts_ms`).
    #[serde(default, skip_serializing_if = "is_zero_ms")]
    pub reprobe_check_ms: f64,
    /// Peak resident memory of this process (`VmHWM`), in KiB, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_kib: Option<u64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_ms(ms: &f64) -> bool {
    *ms == 0.0
}

/// One operation run (a step that was not skipped) and how long it took.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq)]
pub struct OperationTime {
    /// The operation (`namespace`, `mkfs`, `dm_create`, `mount`, ...).
    pub op: String,
    /// When it started, in milliseconds since the process started.
    pub start_ms: f64,
    /// Milliseconds, all of it.
    pub ms: f64,
    /// Milliseconds of it in external programs.
    pub external_ms: f64,
    /// Milliseconds of it inside kernel calls made on purpose (see `Timing::kernel_ms`).
    pub kernel_ms: f64,
}

/// One external program run and how long it took.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq)]
pub struct ExternalRun {
    /// The program (`argv[0]`) and its first argument.
    pub command: String,
    /// When it started, in milliseconds since the process started.
    pub start_ms: f64,
    /// Milliseconds.
    pub ms: f64,
}
