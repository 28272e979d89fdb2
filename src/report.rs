//! The result object Ansible reads: `changed`, `failed`, `msg` (and `comment`, the same
//! text, for Salt), `plan`, `done`,
//! `skipped_steps`, `diff`, `warnings`, `invocation`, and on failure the input `errors` or
//! the `failed_step`. `changed` is derived from the steps (done, or planned in check
//! mode), never set by hand.
//!
//! The keys Ansible itself interprets keep Ansible's meaning and shape (ansible-core's
//! `executor/task_result.py`, `vars/clean.py`, the callbacks' `_get_diff`): `changed` and
//! `failed` are booleans, `msg` a string, `warnings` a list of strings, `diff` a list of
//! `{before_header, after_header, before, after}`, `invocation` `{module_args}`. No key
//! is named `skipped` (a truthy one marks the whole task skipped), `results`, `rc`,
//! `stdout`, `stderr` or `exception`; tests/ansible.rs checks this against the schema and
//! through `ansible-playbook`.

use crate::actual::dm::table_text;
use crate::actual::{Actual, Extsize};
use crate::args::validate::{Desired, DevRef};
use crate::args::{FsType, InputError, State};
use crate::bind::{bind, Bound};
use crate::plan::{Action, Plan, PlanItem, Step};
use crate::system::SystemError;
// the timing types belong to the system boundary, which records them; here for the result
pub use crate::system::timing::{ExternalRun, OperationTime, Timing};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// `invocation` as Ansible modules report it.
#[derive(Debug, Clone, Serialize, JsonSchema, Default)]
pub struct Invocation {
    /// The options as received (without `_ansible_*`).
    pub module_args: Map<String, Value>,
}

/// One input error with its JSON path.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ErrorItem {
    /// JSON path (e.g. `devices[0].chunk`; empty for the whole input).
    pub path: String,
    /// Message.
    pub msg: String,
}

/// The step that failed, and what it left behind.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FailedStep {
    /// 0-based index in `plan`.
    pub index: usize,
    /// The step.
    pub step: PlanItem,
    /// The command, if it ran one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// Its exit status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rc: Option<i32>,
    /// Its stdout.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stdout: String,
    /// Its stderr, or the system call's error.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stderr: String,
}

/// A conditional step that was not needed when it came to run.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Eq)]
pub struct SkippedItem {
    /// The step.
    pub step: PlanItem,
    /// Why nothing was done.
    pub why: String,
}

/// One entry of `diff` (Ansible's shape). Ansible makes the unified diff from `before`
/// and `after` itself; a `prepared` text as well would be printed a second time.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Eq)]
pub struct DiffItem {
    /// What the before side is.
    pub before_header: String,
    /// What the after side is.
    pub after_header: String,
    /// Before (text).
    pub before: String,
    /// After (text).
    pub after: String,
}

/// How `msg` is written out: as `msg` and again as `comment`, so that the two never
/// differ (every place that sets `msg` sets both).
#[derive(Serialize, JsonSchema)]
struct MsgAndComment<'a> {
    /// One line for people.
    msg: &'a str,
    /// The same text as `msg`: the key Salt reads (a `cmd.run` state with
    /// `stateful: True` takes `changed` and `comment` from the JSON object on stdout).
    comment: &'a str,
}

fn msg_and_comment<S: serde::Serializer>(msg: &str, s: S) -> Result<S::Ok, S::Error> {
    MsgAndComment { msg, comment: msg }.serialize(s)
}

/// The module's result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(title = "pmem_stack result")]
pub struct ModuleResult {
    /// Something was changed (check mode: would be).
    pub changed: bool,
    /// The run failed (bad input, refused, or a step failed).
    pub failed: bool,
    /// One line for people. Serialized twice: as `msg` (Ansible's) and as `comment`, the
    /// same text, which Salt's `cmd.run` with `stateful: True` reads.
    #[serde(flatten, serialize_with = "msg_and_comment")]
    #[schemars(with = "MsgAndComment<'static>")]
    pub msg: String,
    /// The plan: every step, in order.
    pub plan: Vec<PlanItem>,
    /// Steps actually done (empty in check mode).
    pub done: Vec<PlanItem>,
    /// Conditional steps that turned out not to be needed (with why). Not `skipped`:
    /// Ansible takes a truthy `skipped` for "the task was skipped".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_steps: Vec<SkippedItem>,
    /// Check mode (or an offline plan): nothing was executed.
    pub check_mode: bool,
    /// Before/after per changed object (with `_ansible_diff` / `--diff`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<Vec<DiffItem>>,
    /// Advice.
    pub warnings: Vec<String>,
    /// Input errors with their paths.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorItem>,
    /// Refusals (destructive steps not allowed, foreign holders, no space).
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "crate::plan::refusal_texts"
    )]
    #[schemars(with = "Vec<String>")]
    pub refusals: Vec<crate::plan::Refused>,
    /// The failed step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<FailedStep>,
    /// The 2 MiB DAX audit of the declared mounts (of all DAX mounts with `--facts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dax_audit: Option<crate::audit::DaxAudit>,
    /// LVM at a glance (`--facts`, `pmem_stack_info`): every PV, VG and LV found, with
    /// what decides its 2 MiB alignment and, for an active LV, its dm device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lvm_summary: Option<crate::audit::lvm::LvmSummary>,
    /// With `verify_pmd`: 2 MiB fault counts per mount point.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pmd_faults: Option<std::collections::BTreeMap<String, crate::system::PmdFaults>>,
    /// For each declared namespace with `system_ram`: its memory as the kernel has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_ram: Option<std::collections::BTreeMap<String, SystemRamReport>>,
    /// Facts (`--facts`): `{"pmem_stack": <snapshot>}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ansible_facts: Option<Value>,
    /// Where the time went (live runs): the wall time and the part spent in external
    /// programs; on a no-op run there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
    /// The options as received.
    pub invocation: Invocation,
}

impl ModuleResult {
    /// A result with nothing planned or done.
    pub fn new(module_args: Map<String, Value>) -> Self {
        ModuleResult {
            changed: false,
            failed: false,
            msg: String::new(),
            plan: Vec::new(),
            done: Vec::new(),
            skipped_steps: Vec::new(),
            check_mode: false,
            diff: None,
            warnings: Vec::new(),
            errors: Vec::new(),
            refusals: Vec::new(),
            failed_step: None,
            dax_audit: None,
            lvm_summary: None,
            pmd_faults: None,
            system_ram: None,
            ansible_facts: None,
            timing: None,
            invocation: Invocation { module_args },
        }
    }

    /// Failed with a message.
    pub fn fail(mut self, msg: impl Into<String>) -> Self {
        self.failed = true;
        self.msg = msg.into();
        self
    }

    /// Failed on input errors: `msg` lists them all, `errors` carries them structured.
    pub fn input_errors(self, errors: &[InputError]) -> Self {
        let msg = if errors.len() == 1 {
            errors[0].to_string()
        } else {
            format!(
                "{} problems in the arguments: {}",
                errors.len(),
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        };
        let mut r = self.fail(msg);
        r.errors = errors
            .iter()
            .map(|e| ErrorItem {
                path: e.path.clone(),
                msg: e.msg.clone(),
            })
            .collect();
        r
    }

    /// Set the plan and what was done; `changed` follows from them.
    pub fn steps(mut self, planned: &[Step], done: &[Step], check_mode: bool) -> Self {
        self.plan = planned.iter().map(Step::item).collect();
        self.done = done.iter().map(Step::item).collect();
        self.check_mode = check_mode;
        self.changed = if check_mode {
            !planned.is_empty()
        } else {
            !done.is_empty()
        };
        self
    }

    /// Record the failed step.
    pub fn failed_at(mut self, index: usize, step: &Step, err: &SystemError) -> Self {
        let (argv, rc, stdout, stderr) = match err {
            SystemError::Command {
                argv,
                rc,
                stdout,
                stderr,
            } => (Some(argv.clone()), *rc, stdout.clone(), stderr.clone()),
            other => (None, None, String::new(), other.to_string()),
        };
        self.failed_step = Some(FailedStep {
            index,
            step: step.item(),
            argv,
            rc,
            stdout,
            stderr,
        });
        self
    }

    /// Record the step refused when it came to run (it ran no command): the refusal is
    /// its `stderr`.
    pub fn refused_at(mut self, index: usize, step: &Step, refused: &crate::plan::Refused) -> Self {
        self.failed_step = Some(FailedStep {
            index,
            step: step.item(),
            argv: None,
            rc: None,
            stdout: String::new(),
            stderr: refused.to_string(),
        });
        self
    }

    /// The JSON text (one object).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            let msg = serde_json::Value::from(format!("cannot serialise the result: {e}"));
            format!(r#"{{"changed":false,"failed":true,"msg":{msg},"comment":{msg}}}"#)
        })
    }
}

/// A devdax namespace's memory as system RAM (the result's `system_ram`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SystemRamReport {
    /// Its dax device (`dax0.0`).
    pub dax: String,
    /// `system-ram` (kmem) or `devdax`.
    pub mode: String,
    /// Bytes online as memory.
    pub online_bytes: u64,
    /// Memory blocks online, of `blocks`.
    pub online_blocks: usize,
    /// Memory blocks its range covers whole (what the kernel added).
    pub blocks: usize,
    /// The memory block size.
    pub block_size: u64,
    /// The zones its online blocks are in (`Movable`, `Normal`).
    pub zones: Vec<String>,
    /// The NUMA nodes its blocks are in.
    pub nodes: Vec<i32>,
    /// What of its range no whole memory block covers: not usable as memory.
    pub lost_to_rounding: u64,
}

/// The result's `system_ram`: each declared namespace with `system_ram` whose dax device
/// is found, as [`SystemRamReport`] (none when there is none).
pub fn system_ram(
    d: &Desired,
    a: &Actual,
) -> Option<std::collections::BTreeMap<String, SystemRamReport>> {
    let ram: std::collections::BTreeMap<String, SystemRamReport> = d
        .namespaces
        .iter()
        .filter(|n| n.system_ram.is_some())
        .filter_map(|n| {
            let dax = a
                .namespace_named(&n.name)
                .and_then(|ns| ns.chardev.as_deref())
                .and_then(|c| a.memory.dax(c))?;
            Some((
                n.name.clone(),
                SystemRamReport::of(dax, a.memory.block_size),
            ))
        })
        .collect();
    (!ram.is_empty()).then_some(ram)
}

impl SystemRamReport {
    /// The report of dax device `d`, with memory blocks of `block_size`.
    pub fn of(d: &crate::actual::ram::DaxDevice, block_size: crate::units::Bytes) -> Self {
        let mut zones: Vec<String> = d.blocks.iter().filter_map(|b| b.zone.clone()).collect();
        zones.sort();
        zones.dedup();
        let mut nodes: Vec<i32> = d.blocks.iter().filter_map(|b| b.node).collect();
        nodes.sort();
        nodes.dedup();
        let ram = d.mode == crate::actual::ram::DaxMode::SystemRam;
        SystemRamReport {
            dax: d.name.clone(),
            mode: if ram { "system-ram" } else { "devdax" }.into(),
            online_bytes: d.online_bytes(block_size).0,
            online_blocks: d.blocks.iter().filter(|b| b.online).count(),
            blocks: d.blocks.len(),
            block_size: block_size.0,
            zones,
            nodes,
            lost_to_rounding: if ram {
                d.lost_to_rounding(block_size).0
            } else {
                0
            },
        }
    }
}

/// The JSON Schema of the result object.
pub fn result_schema() -> schemars::Schema {
    schemars::schema_for!(ModuleResult)
}

/// Text of each declared object as found in `a` (header, text); absent objects are "".
pub fn render_actual(d: &Desired, a: &Actual) -> Vec<(String, String)> {
    let b = bind(d, a);
    let mut out = Vec::new();
    for c in &d.cxl_regions {
        let text = crate::plan::cxl::found(c, &a.cxl)
            .map(|r| {
                cxl_text(
                    &c.serials(),
                    &r.root_decoder,
                    &r.size.to_string(),
                    &r.interleave_granularity.to_string(),
                )
            })
            .unwrap_or_default();
        out.push((Object::CxlRegion(&c.name).header(), text));
    }
    for ns in &d.namespaces {
        let text = a
            .namespace_named(&ns.name)
            .map(|n| {
                let mut t = format!("region: {}\nmode: {}\nsize: {}\n", n.region, n.mode, n.size);
                if let Some(al) = n.align {
                    t.push_str(&format!("align: {al}\n"));
                }
                if let Some(m) = n.map {
                    t.push_str(&format!("map: {}\n", m.as_str()));
                }
                t
            })
            .unwrap_or_default();
        out.push((Object::Namespace(&ns.name).header(), text));
    }
    for dev in &d.devices {
        let text = a
            .dm(&dev.name)
            .map(|dm| lines(&dm.table.text()))
            .unwrap_or_default();
        out.push((Object::DmTable(&dev.name).header(), text));
    }
    for p in &d.partitions {
        let text = b
            .gpt_entry(&p.name)
            .map(|(disk, e)| {
                format!(
                    "disk: {}\nnumber: {}\nstart: {}\nsize: {}\n",
                    disk.path, e.number, e.start, e.size
                )
            })
            .unwrap_or_default();
        out.push((Object::Partition(&p.name).header(), text));
    }
    for g in &d.volume_groups {
        let text = a
            .vg(&g.name)
            .map(|vg| vg_text(vg.extent_size, vg.pvs.iter().map(|p| pv_path(a, p))))
            .unwrap_or_default();
        out.push((Object::VolumeGroup(&g.name).header(), text));
    }
    for l in &d.logical_volumes {
        let text = a
            .lv(&l.vg, &l.name)
            .map(|(_, lv)| found_lv_text(lv))
            .unwrap_or_default();
        out.push((Object::LogicalVolume(&l.vg, &l.name).header(), text));
    }
    for f in &d.filesystems {
        out.push((
            Object::Filesystem(&f.device).header(),
            found_filesystem_text(&b, &f.device),
        ));
    }
    for m in &d.mounts {
        let text = a
            .mount_at(&m.path)
            .map(|mt| {
                let mut t = format!(
                    "source: {}\nfstype: {}\ndax: {}\n",
                    mt.source,
                    mt.fstype,
                    mt.dax.map(|x| x.as_str()).unwrap_or("never")
                );
                let extra: Vec<&String> = m
                    .options
                    .iter()
                    .filter(|o| mt.options.contains(o))
                    .collect();
                if !extra.is_empty() {
                    t.push_str(&format!(
                        "options: {}\n",
                        extra
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    ));
                }
                if let Some(e) = mt.root_extsize {
                    t.push_str(&extsize_text(e));
                }
                t
            })
            .unwrap_or_default();
        out.push((Object::Mount(&m.path).header(), text));
    }
    if d.persist || d.state == State::Absent {
        for path in boot_paths(&b) {
            let text = a
                .file(&path)
                .map(|f| file_text(&f.content))
                .unwrap_or_default();
            out.push((Object::File(&path).header(), text));
        }
    }
    out
}

/// The filesystem found on `device`, as a diff shows it ("" when there is none).
fn found_filesystem_text(b: &Bound, device: &DevRef) -> String {
    b.filesystem(device)
        .map(|fs| {
            filesystem_text(
                &fs.fstype,
                fs.label.as_deref(),
                fs.stripe_unit.unwrap_or(0),
                fs.stripe_width.unwrap_or(0),
                fs.reflink,
            )
        })
        .unwrap_or_default()
}

/// A filesystem as a diff shows it: type, label, stripe unit and width (4 KiB blocks),
/// and reflink where the filesystem records it (xfs).
fn filesystem_text(
    fstype: &str,
    label: Option<&str>,
    stripe_unit: u32,
    stripe_width: u32,
    reflink: Option<bool>,
) -> String {
    let mut t = format!("type: {fstype}\n");
    if let Some(l) = label {
        t.push_str(&format!("label: {l}\n"));
    }
    t.push_str(&format!(
        "stripe_unit: {stripe_unit}\nstripe_width: {stripe_width}\n"
    ));
    if let Some(r) = reflink {
        t.push_str(&format!("reflink: {}\n", u8::from(r)));
    }
    t
}

/// The filesystem the plan's mkfs on `device` makes, as a diff shows it: the DAX
/// geometry as the user's `mkfs_options` leave it ([`crate::plan::expected_geometry`]).
fn planned_mkfs(plan: &Plan, device: &DevRef) -> Option<String> {
    plan.steps.iter().find_map(|s| match &s.action {
        Action::Mkfs {
            device: on,
            fstype,
            label,
            extra,
            stripes,
            ..
        } if on == device => {
            let made = crate::plan::expected_geometry(*fstype, extra, *stripes);
            Some(filesystem_text(
                fstype.as_str(),
                label.as_deref(),
                made.stripe_unit,
                made.stripe_width,
                (*fstype == FsType::Xfs).then_some(made.reflink),
            ))
        }
        _ => None,
    })
}

/// The extent size hint on the root of the mount at `path` once the plan has run: the
/// one the plan sets; none on a filesystem it mounts there without setting one; else
/// the one found.
fn planned_extsize(plan: &Plan, a: &Actual, path: &str) -> Option<Extsize> {
    let mut mounted = false;
    for s in &plan.steps {
        match &s.action {
            Action::SetExtsize { path: at, size } if at == path => {
                return Some(Extsize {
                    size: *size,
                    inherit: true,
                })
            }
            Action::Mount { path: at, .. } if at == path => mounted = true,
            _ => {}
        }
    }
    if mounted {
        None
    } else {
        a.mount_at(path).and_then(|m| m.root_extsize)
    }
}

/// A mount's root extent size hint as a diff shows it.
fn extsize_text(e: Extsize) -> String {
    format!(
        "extsize: {}{}\n",
        e.size,
        if e.inherit { " inherit" } else { "" }
    )
}

/// The boot files a diff shows: the wanted ones, then those this run removes.
fn boot_paths(b: &Bound) -> Vec<String> {
    let mut paths: Vec<String> = crate::boot::wanted(b).into_iter().map(|w| w.path).collect();
    for r in crate::boot::removals(b) {
        if !paths.contains(&r.path) {
            paths.push(r.path);
        }
    }
    paths
}

fn file_text(c: &crate::actual::FileContent) -> String {
    match c {
        crate::actual::FileContent::Text { text } => text.clone(),
        crate::actual::FileContent::Link { target } => format!("-> {target}\n"),
        crate::actual::FileContent::Binary { matches_self } => {
            if *matches_self {
                "(this pmem_stack binary)\n".into()
            } else {
                "(another binary)\n".into()
            }
        }
    }
}

/// Text of each declared object as `plan` leaves it (check mode's after side), same
/// shape as [`render_actual`]. With `state: absent`, the objects as found less those
/// the plan's steps take away (`render_absent`). Otherwise as declared, where the
/// planner decides read from the plan or from the planner's own rules: the filesystem
/// the plan's mkfs makes (the one found where it makes none), the extent size hint the
/// mount layer sets; values only known once lower layers exist are taken from `a` when
/// they exist there, else described.
pub fn render_desired(d: &Desired, a: &Actual, plan: &Plan) -> Vec<(String, String)> {
    if d.state == State::Absent {
        return render_absent(d, a, plan);
    }
    let b = bind(d, a);
    let mut out = Vec::new();
    for c in &d.cxl_regions {
        // what is not declared is what the region found has, or what it will get
        let found = crate::plan::cxl::found(c, &a.cxl);
        let text = cxl_text(
            &c.serials(),
            &c.root_decoder
                .clone()
                .or_else(|| found.map(|r| r.root_decoder.clone()))
                .unwrap_or_else(|| "(the first with room)".into()),
            &c.size
                .or_else(|| found.map(|r| r.size))
                .map_or_else(|| "(all the memory devices have)".into(), |s| s.to_string()),
            &c.granularity
                .or_else(|| found.map(|r| r.interleave_granularity))
                .map_or_else(|| "(the root decoder's)".into(), |g| g.to_string()),
        );
        out.push((Object::CxlRegion(&c.name).header(), text));
    }
    for ns in &d.namespaces {
        let size = ns
            .size
            .map(|s| s.to_string())
            .or_else(|| a.namespace_named(&ns.name).map(|n| n.size.to_string()))
            .unwrap_or_else(|| "(all available)".into());
        let mut t = format!("region: {}\nmode: {}\nsize: {size}\n", ns.region, ns.mode);
        if matches!(
            ns.mode,
            crate::args::NamespaceMode::Fsdax | crate::args::NamespaceMode::Devdax
        ) {
            t.push_str(&format!("align: {}\nmap: {}\n", ns.align, ns.map.as_str()));
        }
        out.push((Object::Namespace(&ns.name).header(), t));
    }
    for dev in &d.devices {
        let text = match b.table(&dev.name) {
            Some(t) => lines(&table_text(&t)),
            None => format!(
                "({:?} over {}, chunk {} sectors; derived when the members exist)\n",
                dev.target,
                dev.members
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                dev.chunk
            )
            .to_lowercase(),
        };
        out.push((Object::DmTable(&dev.name).header(), text));
    }
    for p in &d.partitions {
        let disk_dev = b.block(&p.disk);
        let disk = disk_dev
            .map(|bd| bd.path.clone())
            .unwrap_or_else(|| p.disk.to_string());
        // undeclared size and number: what they come to on the disk as it is (the rest of
        // its table, the number the entry of that name has), else what decides them
        let size = p
            .size
            .or_else(|| {
                disk_dev
                    .and_then(|bd| b.actual().gpt(bd.devno))
                    .map(|t| crate::plan::rest_of_disk(t.last_usable, p.start))
            })
            .map(|s| s.to_string())
            .unwrap_or_else(|| "(rest, rounded down to 2 MiB)".into());
        let number = p
            .number
            .or_else(|| b.gpt_entry(&p.name).map(|(_, e)| e.number))
            .map(|n| n.to_string())
            .unwrap_or_else(|| "(next free)".into());
        out.push((
            Object::Partition(&p.name).header(),
            format!(
                "disk: {disk}\nnumber: {number}\nstart: {}\nsize: {size}\n",
                p.start
            ),
        ));
    }
    for g in &d.volume_groups {
        // a found VG keeps its extent size and its PVs; the declared ones not in it join
        let (extent, mut pvs): (crate::units::Bytes, Vec<String>) = match a.vg(&g.name) {
            Some(vg) => (
                vg.extent_size,
                vg.pvs.iter().map(|p| pv_path(a, p)).collect(),
            ),
            None => (g.extent_size, Vec::new()),
        };
        for r in &g.pvs {
            let path = b
                .block(r)
                .map(|bd| bd.path.clone())
                .unwrap_or_else(|| r.to_string());
            if !pvs.contains(&path) {
                pvs.push(path);
            }
        }
        out.push((
            Object::VolumeGroup(&g.name).header(),
            vg_text(extent, pvs.into_iter()),
        ));
    }
    for l in &d.logical_volumes {
        let found = a.lv(&l.vg, &l.name).map(|(_, lv)| lv.extent_count());
        let remade = plan.steps.iter().any(
            |s| matches!(&s.action, Action::RemoveLv { vg, lv } if *vg == l.vg && *lv == l.name),
        );
        let grown = plan.steps.iter().find_map(|s| match &s.action {
            Action::CreateLv(n) if n.vg == l.vg && n.lv == l.name => Some(n.extents),
            Action::ExtendLv { vg, lv, extents } if *vg == l.vg && *lv == l.name => Some(*extents),
            _ => None,
        });
        let extents = match (grown, found) {
            (Some(crate::op::Extents::Count(n)), _) => n.to_string(),
            (Some(crate::op::Extents::RestOfVg), _) => "(all the VG has free)".to_string(),
            (None, Some(n)) if !remade => n.to_string(),
            _ => "(none)".to_string(),
        };
        out.push((
            Object::LogicalVolume(&l.vg, &l.name).header(),
            lv_text(u64::from(l.stripes), Some(l.stripe_size), &extents),
        ));
    }
    for f in &d.filesystems {
        // what the plan's mkfs makes; where it makes none, the filesystem stays as found
        let text =
            planned_mkfs(plan, &f.device).unwrap_or_else(|| found_filesystem_text(&b, &f.device));
        out.push((Object::Filesystem(&f.device).header(), text));
    }
    for m in &d.mounts {
        let source = b
            .block(&m.device)
            .map(|bd| bd.path.clone())
            .unwrap_or_else(|| m.device.to_string());
        let fstype = b.fstype(&m.device).unwrap_or_default();
        let mut t = format!(
            "source: {source}\nfstype: {fstype}\ndax: {}\n",
            m.dax.as_str()
        );
        if !m.options.is_empty() {
            t.push_str(&format!("options: {}\n", m.options.join(",")));
        }
        if let Some(e) = planned_extsize(plan, a, &m.path) {
            t.push_str(&extsize_text(e));
        }
        out.push((Object::Mount(&m.path).header(), t));
    }
    if d.persist {
        let wanted = crate::boot::wanted(&b);
        for path in boot_paths(&b) {
            let w = wanted.iter().find(|w| w.path == path);
            let removed = plan
                .steps
                .iter()
                .any(|s| matches!(&s.action, Action::RemoveFile { path: p } if *p == path));
            let text = if removed {
                String::new()
            } else {
                w.and_then(|w| w.content.as_ref())
                    .map(file_text)
                    .unwrap_or_else(|| "(derived once the device exists)\n".into())
            };
            out.push((Object::File(&path).header(), text));
        }
    }
    out
}

/// What a `state: absent` plan leaves: each declared object as found, less those the
/// plan's steps take away (an unmounted mount, a removed boot file or dm device, a
/// deleted GPT entry, a destroyed namespace) and the filesystems on those devices.
/// What the plan leaves alone stays: a namespace kept without `allow_data_loss`, the
/// filesystem on it, another filesystem mounted at a declared mount point, a boot file
/// still shared with other saved states.
fn render_absent(d: &Desired, a: &Actual, plan: &Plan) -> Vec<(String, String)> {
    let b = bind(d, a);
    let mut gone: BTreeSet<String> = BTreeSet::new();
    for step in &plan.steps {
        let object = match &step.action {
            Action::Umount { path, .. } => Object::Mount(path),
            Action::RemoveFile { path } => Object::File(path),
            Action::RemoveDm { name } => Object::DmTable(name),
            Action::DestroyNamespace { name, .. } => Object::Namespace(name),
            Action::DestroyCxlRegion { name, .. } => Object::CxlRegion(name),
            Action::RemoveLv { vg, lv } => Object::LogicalVolume(vg, lv),
            Action::RemoveVg { vg } => Object::VolumeGroup(vg),
            Action::DeletePartition { disk, number } => {
                let deleted = d.partitions.iter().find(|p| {
                    p.disk == *disk
                        && b.gpt_entry(&p.name)
                            .is_some_and(|(_, e)| e.number == *number)
                });
                match deleted {
                    Some(p) => Object::Partition(&p.name),
                    None => continue,
                }
            }
            _ => continue,
        };
        gone.insert(object.header());
    }
    for f in &d.filesystems {
        if Object::device(&f.device).is_some_and(|o| gone.contains(&o.header())) {
            gone.insert(Object::Filesystem(&f.device).header());
        }
    }
    render_actual(d, a)
        .into_iter()
        .map(|(h, t)| {
            let t = if gone.contains(&h) { String::new() } else { t };
            (h, t)
        })
        .collect()
}

/// A declared object as a diff names it.
enum Object<'a> {
    /// A CXL region, by its declared name.
    CxlRegion(&'a str),
    /// A namespace, by name.
    Namespace(&'a str),
    /// A dm device's table, by name.
    DmTable(&'a str),
    /// A GPT partition, by name.
    Partition(&'a str),
    /// The filesystem on a device.
    Filesystem(&'a DevRef),
    /// A mount, by mount point.
    Mount(&'a str),
    /// A boot file, by path.
    File(&'a str),
    /// An LVM volume group, by name.
    VolumeGroup(&'a str),
    /// An LVM logical volume, by VG and name.
    LogicalVolume(&'a str, &'a str),
}

impl Object<'_> {
    /// The declared object that is the device `r` (a path is none).
    fn device(r: &DevRef) -> Option<Object<'_>> {
        match r {
            DevRef::Namespace(n) => Some(Object::Namespace(n)),
            DevRef::Device(n) => Some(Object::DmTable(n)),
            DevRef::Partition(n) => Some(Object::Partition(n)),
            DevRef::Volume(vg, lv) => Some(Object::LogicalVolume(vg, lv)),
            DevRef::Path(_) => None,
        }
    }

    /// Its header in a diff.
    fn header(&self) -> String {
        match self {
            Object::CxlRegion(n) => format!("CXL region {n}"),
            Object::Namespace(n) => format!("namespace {n}"),
            Object::DmTable(n) => format!("dm table {n}"),
            Object::Partition(n) => format!("partition {n}"),
            Object::Filesystem(r) => format!("filesystem on {r}"),
            Object::Mount(p) => format!("mount {p}"),
            Object::File(p) => format!("file {p}"),
            Object::VolumeGroup(n) => format!("volume group {n}"),
            Object::LogicalVolume(vg, lv) => format!("logical volume {vg}/{lv}"),
        }
    }
}

/// A CXL region as a diff shows it.
fn cxl_text(memdevs: &str, root_decoder: &str, size: &str, granularity: &str) -> String {
    format!("memdevs: {memdevs}\nroot_decoder: {root_decoder}\nsize: {size}\ngranularity: {granularity}\n")
}

/// A VG as a diff shows it.
fn vg_text(extent: crate::units::Bytes, pvs: impl Iterator<Item = String>) -> String {
    format!(
        "extent_size: {extent}\npvs: {}\n",
        pvs.collect::<Vec<_>>().join(", ")
    )
}

/// Where a VG's PV was found (its uuid when it was not).
fn pv_path(a: &Actual, p: &crate::actual::lvm::VgPv) -> String {
    p.device
        .and_then(|d| a.block(d))
        .map(|b| b.path.clone())
        .unwrap_or_else(|| format!("(missing: uuid {})", p.uuid))
}

/// An LV as a diff shows it: its stripes, stripe size (striped only) and extents.
fn lv_text(stripes: u64, stripe_size: Option<crate::units::Bytes>, extents: &str) -> String {
    let mut t = format!("stripes: {stripes}\n");
    if stripes > 1 {
        if let Some(s) = stripe_size {
            t.push_str(&format!("stripe_size: {s}\n"));
        }
    }
    t.push_str(&format!("extents: {extents}\n"));
    t
}

/// A found LV as a diff shows it (the shape of its first segment; its extents in all).
fn found_lv_text(lv: &crate::actual::lvm::Lv) -> String {
    let (stripes, size) = lv
        .segments
        .first()
        .map(|s| (s.stripe_count, s.stripe_size))
        .unwrap_or((0, None));
    lv_text(stripes, size, &lv.extent_count().to_string())
}

fn lines(v: &[String]) -> String {
    v.iter().map(|l| format!("{l}\n")).collect()
}

/// Diff entries for the objects whose text differs.
pub fn diff(before: &[(String, String)], after: &[(String, String)]) -> Vec<DiffItem> {
    before
        .iter()
        .zip(after)
        .filter(|((_, b), (_, a))| b != a)
        .map(|((h, b), (_, a))| DiffItem {
            before_header: format!("{h} (before)"),
            after_header: format!("{h} (after)"),
            before: b.clone(),
            after: a.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::fake::FakeSystem;

    /// The after side is what the plan leaves: with `state: absent` and no
    /// `allow_data_loss` the namespace stays and so does the filesystem on it; a label
    /// the planner does not change (it warns) is no change in the diff.
    #[test]
    fn the_after_side_is_what_the_plan_leaves() {
        let mut fake = FakeSystem::with_fsdax(1, crate::units::Bytes(1 << 30));
        let stack = serde_json::json!({
            "namespaces": [{"name": "pm0", "region": "region0", "mode": "fsdax"}],
            "filesystems": [{"device": "pm0", "type": "xfs", "label": "data"}],
            "mounts": [{"path": "/mnt/pm0", "device": "pm0", "dax": "always"}]
        });
        let r = crate::run(&stack.to_string(), &mut fake, false);
        assert!(!r.failed && r.changed, "{}", r.msg);
        let changed = |args: &serde_json::Value| {
            let input = crate::args::parse_input(&args.to_string())
                .map_err(|e| e.errors)
                .expect("parses");
            let d = crate::args::validate::validate(&input.args).expect("valid");
            let plan = crate::plan::plan(&d, &fake.state).expect("plans");
            let before = render_actual(&d, &fake.state);
            diff(&before, &render_desired(&d, &fake.state, &plan))
                .into_iter()
                .map(|i| (i.before_header, i.after))
                .collect::<Vec<_>>()
        };
        let mut absent = stack.clone();
        absent["state"] = serde_json::json!("absent");
        assert_eq!(
            changed(&absent),
            [("mount /mnt/pm0 (before)".to_string(), String::new())]
        );
        let mut relabelled = stack.clone();
        relabelled["filesystems"][0]["label"] = serde_json::json!("other");
        relabelled["mounts"][0]["options"] = serde_json::json!(["noatime"]);
        let diff = changed(&relabelled);
        assert_eq!(diff.len(), 1, "{diff:?}");
        assert!(
            diff[0].0 == "mount /mnt/pm0 (before)"
                && diff[0]
                    .1
                    .contains("options: noatime\nextsize: 2M inherit\n"),
            "{diff:?}"
        );
    }

    /// The after side of a check-mode diff shows the geometry the declared mkfs makes:
    /// the user's `mkfs_options` where they give one, the DAX geometry elsewhere.
    #[test]
    fn the_desired_filesystem_has_the_geometry_mkfs_will_make() {
        let fake = FakeSystem::with_fsdax(1, crate::units::Bytes(1 << 30));
        let text = |fs: serde_json::Value| {
            let args = serde_json::json!({
                "namespaces": [{"name": "pm0", "region": "region0", "mode": "fsdax"}],
                "filesystems": [fs]
            });
            let input = crate::args::parse_input(&args.to_string())
                .map_err(|e| e.errors)
                .expect("parses");
            let d = crate::args::validate::validate(&input.args).expect("valid");
            let plan = crate::plan::plan(&d, &fake.state).expect("plans");
            render_desired(&d, &fake.state, &plan)
                .into_iter()
                .find(|(h, _)| h.starts_with("filesystem on"))
                .map(|(_, t)| t)
                .expect("filesystem")
        };
        assert_eq!(
            text(serde_json::json!({"device": "pm0", "type": "xfs"})),
            "type: xfs\nstripe_unit: 512\nstripe_width: 512\nreflink: 0\n"
        );
        assert_eq!(
            text(serde_json::json!({"device": "pm0", "type": "ext4"})),
            "type: ext4\nstripe_unit: 512\nstripe_width: 0\n"
        );
        assert_eq!(
            text(
                serde_json::json!({"device": "pm0", "type": "xfs", "mkfs_options": ["-d", "su=1m,sw=2", "-m", "reflink=1"]})
            ),
            "type: xfs\nstripe_unit: 256\nstripe_width: 512\nreflink: 1\n"
        );
    }
}
