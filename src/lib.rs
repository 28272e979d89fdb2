//! pmem_stack: an Ansible-style idempotent configuration module for Linux persistent
//! memory (ndctl namespaces, device-mapper linear/striped devices, GPT partitions,
//! DAX-ready ext4/xfs, DAX mounts).
//!
//! The pipeline:
//! ```text
//! args (argv[1] file | stdin)      args::parse_input   one JSON object, flat or wrapped
//!   -> Desired                      args::validate      errors carry the JSON path
//!   -> Actual                       System::probe       one snapshot
//!   -> Plan                         plan::plan          PURE; ordered typed steps
//!   -> apply, step by step          plan::resolve + System::execute; stop at the first failure
//!   -> verify                       probe + plan again: must be empty
//!   -> Report                       report::ModuleResult
//! ```
//! Check mode and offline plans (`--actual`) stop after Plan. The same `plan()` runs
//! against the real system, the fake one in tests, and a captured snapshot. A live run
//! tells an observer ([`run_observed`], [`Progress`]) about each step as it starts and
//! ends; `--format text` ([`text`]) prints them as they come and the result at the end.
//!
//! The same binary run as `pmem_stack_info` ([`invoked_as_info`]) is the read-only facts
//! module: [`info`], which is [`facts`] (`--facts`) taking Ansible's arguments.

pub mod actual;
pub mod args;
pub mod audit;
pub mod boot;
pub mod plan;
pub mod report;
pub mod system;
pub mod text;
pub mod units;

use args::validate::validate;
use args::DaxMode;
use report::{diff, render_actual, render_desired, ModuleResult};
use system::{ProbeScope, System, SystemError};

/// Run the module on `input` (the arguments' JSON text) against `system`.
/// With `offline`, never execute (a captured snapshot: always a dry run).
pub fn run(input: &str, system: &mut dyn System, offline: bool) -> ModuleResult {
    run_as(
        input,
        system,
        offline,
        false,
        Overrides::default(),
        &mut |_| {},
    )
}

/// What the command line says on top of the arguments: each `Some` replaces the
/// matching Ansible internal key of the arguments, whatever they say (`--check`,
/// `--diff`). `None` leaves the key as the arguments have it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `_ansible_check_mode`: plan only.
    pub check_mode: Option<bool>,
    /// `_ansible_diff`: before/after in the result.
    pub diff: Option<bool>,
}

impl Overrides {
    /// The internal keys as the arguments have them, with these overrides applied.
    pub fn apply(self, internal: args::Internal) -> args::Internal {
        args::Internal {
            check_mode: self.check_mode.unwrap_or(internal.check_mode),
            diff: self.diff.unwrap_or(internal.diff),
            ..internal
        }
    }
}

/// [`run`], with the command line's `overrides` of the arguments' internal keys.
pub fn run_with(
    input: &str,
    system: &mut dyn System,
    offline: bool,
    overrides: Overrides,
) -> ModuleResult {
    run_as(input, system, offline, false, overrides, &mut |_| {})
}

/// What a live run says as it goes: each step as it starts and as it ends, in order.
/// `--format text` prints them as they come, so that a long `ndctl` or `mkfs` shows
/// where the run is; the result (JSON or text) comes at the end either way. Dry runs
/// (check mode, `--actual`) run no step and say nothing.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// Step `index` (0-based) of `total` starts.
    Started {
        /// 0-based, in the plan.
        index: usize,
        /// Steps in the plan.
        total: usize,
        /// The step, as the result shows it.
        step: &'a plan::PlanItem,
    },
    /// Step `index` of `total` ended.
    Ended {
        /// 0-based, in the plan.
        index: usize,
        /// Steps in the plan.
        total: usize,
        /// The step, as the result shows it.
        step: &'a plan::PlanItem,
        /// How it ended.
        outcome: StepOutcome<'a>,
    },
}

/// How a step ended.
#[derive(Debug, Clone, Copy)]
pub enum StepOutcome<'a> {
    /// It ran.
    Done,
    /// It was not needed when it came to run (why).
    Skipped(&'a str),
    /// It failed: the run stops here.
    Failed(&'a SystemError),
}

/// [`run_with`], telling `progress` about each step of a live run as it starts and ends.
pub fn run_observed(
    input: &str,
    system: &mut dyn System,
    offline: bool,
    overrides: Overrides,
    progress: &mut dyn FnMut(Progress<'_>),
) -> ModuleResult {
    run_as(input, system, offline, false, overrides, progress)
}

/// What a boot replay may not do: the replay reassembles what exists (namespaces on
/// their labels, partition tables and filesystems on the media) and rebuilds the dm
/// tables, which have no on-disk metadata. A step that would make or change what
/// should already be on the media means that something is missing or was replaced (a
/// DIMM removed or failed): doing it at boot would build a new, empty stack over the
/// survivors (a new namespace for the missing member, then a filesystem over both).
/// `Some(why)` for such a step.
fn not_at_boot(action: &plan::Action) -> Option<&'static str> {
    use plan::Action as A;
    match action {
        A::CreateNamespace { .. } => Some("it is missing (its DIMM removed or failed?)"),
        A::ReconfigureNamespace { .. } | A::ClearNamespace { .. } | A::DestroyNamespace { .. } => {
            Some("it is not as saved")
        }
        A::CreateGpt { .. } | A::AddPartition { .. } | A::DeletePartition { .. } => {
            Some("its partition table is not as saved")
        }
        A::Mkfs {
            if_blank: false, ..
        } => Some("its filesystem is missing"),
        _ => None,
    }
}

/// The run of one saved state at boot: as [`run`], but a step that would make or change
/// what should be on the media (see `not_at_boot`) fails the state before anything is
/// done, and a filesystem that would be made because a rebuilt device turned out blank
/// fails it instead.
pub fn run_replay(input: &str, system: &mut dyn System) -> ModuleResult {
    run_as(
        input,
        system,
        false,
        true,
        Overrides::default(),
        &mut |_| {},
    )
}

fn run_as(
    input: &str,
    system: &mut dyn System,
    offline: bool,
    replay: bool,
    overrides: Overrides,
    progress: &mut dyn FnMut(Progress<'_>),
) -> ModuleResult {
    let parsed = match args::parse_input(input) {
        Ok(p) => p,
        Err(mut f) => {
            // type errors first, then the semantic ones found in what did read
            if let Some(draft) = &f.draft {
                f.errors.extend(args::validate::check_draft(draft));
            }
            return ModuleResult::new(f.raw_options).input_errors(&f.errors);
        }
    };
    let result = ModuleResult::new(parsed.raw_options.clone());
    let desired = match validate(&parsed.args) {
        Ok(d) => d,
        Err(errors) => return result.input_errors(&errors),
    };
    let internal = overrides.apply(parsed.internal);
    let check = internal.check_mode || offline;
    let want_diff = internal.diff;
    // read only what these arguments are about (and what holds it): a broken or
    // forbidden disk elsewhere on the machine is none of this run's business
    system.set_scope(ProbeScope::of(&desired));
    if let Err(e) = system.lock() {
        return result.fail(e.to_string());
    }
    let before = match system.probe() {
        Ok(a) => a,
        Err(e) => return result.fail(e.to_string()),
    };
    let mut result = result;
    let planned = match plan::plan(&desired, &before) {
        Ok(p) => p,
        Err(refusal) => {
            result.warnings = refusal.warnings.clone();
            result.refusals = refusal.reasons.clone();
            return result.fail(refusal.to_string());
        }
    };
    result.warnings = planned.warnings.clone();
    if planned.steps.is_empty() {
        result.msg = "No changes.".into();
        if want_diff {
            result.diff = Some(Vec::new());
        }
        let result = result.steps(&[], &[], check);
        return finish(
            result,
            system,
            &desired,
            &before,
            check,
            parsed.args.verify_pmd.0,
        );
    }
    if check {
        if want_diff {
            result.diff = Some(diff(
                &render_actual(&desired, &before),
                &render_desired(&desired, &before),
            ));
        }
        result.msg = format!(
            "{} step{} would run ({}); nothing was changed",
            planned.steps.len(),
            if planned.steps.len() == 1 { "" } else { "s" },
            if offline {
                "offline plan against a captured snapshot"
            } else {
                "check mode"
            }
        );
        let result = result.steps(&planned.steps, &[], true);
        return finish(result, system, &desired, &before, true, false);
    }

    if replay {
        let refused: Vec<String> = planned
            .steps
            .iter()
            .filter_map(|s| {
                not_at_boot(&s.action)
                    .map(|why| format!("{} {} ({why})", s.action.name(), s.action.target()))
            })
            .collect();
        if !refused.is_empty() {
            result.refusals = refused.clone();
            let result = result.steps(&planned.steps, &[], false);
            return result.fail(format!(
                "the boot replay only reassembles what exists and would have to {}; nothing was done. Run the task that declares this stack once what is missing is back (or to rebuild it)",
                refused.join(", ")
            ));
        }
    }
    let mut done = Vec::new();
    let mut skipped = Vec::new();
    let mut actual = before.clone();
    // whether the state may have changed since `actual` was probed: a step that ran and
    // touches devices, namespaces or mounts (boot files change nothing a step resolves
    // against, and a skipped step changed nothing)
    let mut stale = false;
    for (i, step) in planned.steps.iter().enumerate() {
        if stale {
            stale = false;
            actual = match system.probe() {
                Ok(a) => a,
                Err(e) => {
                    return result.steps(&planned.steps, &done, false).fail(format!(
                        "{e} (after {} of {} steps; run again to continue)",
                        done.len(),
                        planned.steps.len()
                    ))
                }
            };
        }
        let total = planned.steps.len();
        let item = step.item();
        progress(Progress::Started {
            index: i,
            total,
            step: &item,
        });
        let outcome = plan::resolve(&step.action, &desired, &actual)
            .map_err(|error| SystemError::Os {
                what: format!("resolving {} {}", step.action.name(), step.action.target()),
                error,
            })
            .and_then(|r| match r {
                plan::Resolved::Run(_) if replay && matches!(step.action, plan::Action::Mkfs { .. }) => {
                    Err(SystemError::Os {
                        what: format!("the boot replay at {}", step.action.target()),
                        error: "the rebuilt device is blank where its filesystem should be (its members changed?); the replay never makes a filesystem".into(),
                    })
                }
                plan::Resolved::Run(op) => system.execute(&op).map(|_| true),
                plan::Resolved::Skip(why) => {
                    skipped.push(report::SkippedItem {
                        step: step.item(),
                        why,
                    });
                    Ok(false)
                }
            });
        progress(Progress::Ended {
            index: i,
            total,
            step: &item,
            outcome: match &outcome {
                Err(e) => StepOutcome::Failed(e),
                Ok(true) => StepOutcome::Done,
                Ok(false) => {
                    StepOutcome::Skipped(skipped.last().map(|s| s.why.as_str()).unwrap_or(""))
                }
            },
        });
        if let Err(e) = outcome {
            let n = planned.steps.len();
            return result
                .steps(&planned.steps, &done, false)
                .failed_at(i, step, &e)
                .fail(format!(
                    "step {} of {n} failed ({} {}): {e}. {} step{} done before it; nothing after it was run. Running the module again continues from the state left",
                    i + 1,
                    step.action.name(),
                    step.action.target(),
                    done.len(),
                    if done.len() == 1 { " was" } else { "s were" }
                ));
        }
        if outcome == Ok(true) {
            stale = !matches!(
                step.action,
                plan::Action::WriteFile { .. }
                    | plan::Action::RemoveFile { .. }
                    | plan::Action::DaemonReload
            );
            done.push(step.clone());
            crash_point(done.len());
        }
    }
    let mut result = result.steps(&planned.steps, &done, false);
    result.skipped_steps = skipped;
    let after = match system.probe() {
        Ok(a) => a,
        Err(e) => return result.fail(format!("{e} (after all steps ran)")),
    };
    let mut result = result;
    if want_diff {
        result.diff = Some(diff(
            &render_actual(&desired, &before),
            &render_actual(&desired, &after),
        ));
    }
    for m in &desired.mounts {
        if m.dax == DaxMode::Never || desired.state == args::State::Absent {
            continue;
        }
        match after.mount_at(&m.path) {
            Some(mt) if mt.dax == Some(m.dax) => {
                // mountinfo says so; a file must say so too (dax=inode is per file)
                if m.dax != DaxMode::Always || !done.iter().any(|s| matches!(&s.action, plan::Action::Mount { path, .. } if *path == m.path)) {
                    continue;
                }
                match system.dax_check(&m.path) {
                    Ok(c) if c.statx_dax => {}
                    Ok(c) => {
                        return result.fail(format!(
                            "{} is mounted with dax=always but a file on it has no STATX_ATTR_DAX: DAX is not in effect{}",
                            m.path,
                            if c.kernel_log.is_empty() { String::new() } else { format!(" (kernel: {})", c.kernel_log.join(" | ")) }
                        ))
                    }
                    Err(e) => return result.fail(format!("checking DAX on {}: {e}", m.path)),
                }
            }
            Some(mt) => {
                return result.fail(format!(
                    "{} is mounted but DAX is not in effect: the kernel reports dax={} (wanted {}); the device cannot do DAX",
                    m.path,
                    mt.dax.map(|d| d.as_str()).unwrap_or("never"),
                    m.dax.as_str()
                ))
            }
            None => return result.fail(format!("{} is not mounted after the run", m.path)),
        }
    }
    match plan::plan(&desired, &after) {
        Ok(p) if p.steps.is_empty() => {
            result.msg = format!(
                "{} step{} done",
                done.len(),
                if done.len() == 1 { "" } else { "s" }
            );
            finish(
                result,
                system,
                &desired,
                &after,
                false,
                parsed.args.verify_pmd.0,
            )
        }
        Ok(p) => result.fail(format!(
            "the stack did not converge; still to do: {}",
            p.steps
                .iter()
                .map(|s| format!("{} {}", s.action.name(), s.action.target()))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Err(r) => result.fail(format!("after the run: {r}")),
    }
}

/// The boot replay: run every saved state `(path, text, or why it could not be read)`
/// in the order given, each with data loss disallowed and the boot files left alone
/// (`boot::replay_args`), against `system`. A state that fails does not keep the others
/// down (they are independent stacks); the result joins them: changed or failed when
/// any is, the plans, steps done and skipped one after the other, and `msg` one
/// `<path>: <msg>` per state.
pub fn replay(
    states: &[(String, Result<String, String>)],
    system: &mut dyn System,
) -> ModuleResult {
    replay_with(states, system, &|_| false)
}

/// [`replay`], leaving the mounts for which `by_unit(path)` is true to their mount
/// units (`boot::replay_args_with`).
pub fn replay_with(
    states: &[(String, Result<String, String>)],
    system: &mut dyn System,
    by_unit: &dyn Fn(&str) -> bool,
) -> ModuleResult {
    replay_observed(states, system, by_unit, &mut |_| {})
}

/// [`replay_with`], telling `progress` about each step of each state's run (see
/// [`run_observed`]).
pub fn replay_observed(
    states: &[(String, Result<String, String>)],
    system: &mut dyn System,
    by_unit: &dyn Fn(&str) -> bool,
    progress: &mut dyn FnMut(Progress<'_>),
) -> ModuleResult {
    let mut all = ModuleResult::new(Default::default());
    if states.is_empty() {
        all.msg = "no saved state: nothing to replay".into();
        return all;
    }
    let mut msgs = Vec::new();
    for (path, text) in states {
        let r = match text
            .as_ref()
            .map_err(|e| format!("cannot read the saved state: {e}"))
            .and_then(|t| boot::replay_args_with(t, by_unit))
        {
            Ok(input) => run_as(&input, system, false, true, Overrides::default(), progress),
            Err(e) => ModuleResult::new(Default::default()).fail(e),
        };
        msgs.push(format!("{path}: {}", r.msg));
        all.changed |= r.changed;
        all.failed |= r.failed;
        all.plan.extend(r.plan);
        all.done.extend(r.done);
        all.skipped_steps.extend(r.skipped_steps);
        all.warnings
            .extend(r.warnings.into_iter().map(|w| format!("{path}: {w}")));
        all.refusals
            .extend(r.refusals.into_iter().map(|w| format!("{path}: {w}")));
        all.errors.extend(r.errors);
        if all.failed_step.is_none() {
            all.failed_step = r.failed_step;
        }
    }
    all.msg = msgs.join("; ");
    all
}

/// Add the DAX audit of the declared mounts and, when asked (and not a dry run), the PMD
/// fault counts; all faults falling back to 4 KiB pages fails the run.
fn finish(
    mut result: ModuleResult,
    system: &mut dyn System,
    desired: &args::validate::Desired,
    actual: &actual::Actual,
    dry_run: bool,
    verify_pmd: bool,
) -> ModuleResult {
    if desired.state == args::State::Absent {
        return result;
    }
    let paths: Vec<String> = desired
        .mounts
        .iter()
        .filter(|m| m.dax != DaxMode::Never)
        .map(|m| m.path.clone())
        .collect();
    let a = audit::audit(actual, Some(&paths));
    result.warnings.extend(a.warnings.iter().cloned());
    result.dax_audit = Some(a);
    if !verify_pmd {
        return result;
    }
    if dry_run {
        result
            .warnings
            .push("verify_pmd: not run in check mode (it writes a temporary file)".into());
        return result;
    }
    let mut counts = std::collections::BTreeMap::new();
    let mut fell_back = Vec::new();
    for p in &paths {
        match system.pmd_check(p) {
            Ok(c) => {
                if c.nopage == 0 && c.fallback > 0 {
                    fell_back.push(format!(
                        "{p}: {} faults, all fell back to 4 KiB pages",
                        c.fallback
                    ));
                } else if c.nopage == 0 {
                    result
                        .warnings
                        .push(format!("verify_pmd {p}: no 2 MiB fault events were seen"));
                }
                counts.insert(p.clone(), c);
            }
            Err(e) => return result.fail(format!("verify_pmd on {p}: {e}")),
        }
    }
    result.pmd_faults = Some(counts);
    if !fell_back.is_empty() {
        let why: Vec<&String> = result
            .dax_audit
            .iter()
            .flat_map(|a| a.warnings.iter())
            .collect();
        let why = if why.is_empty() {
            String::new()
        } else {
            format!(
                " (the audit says: {})",
                why.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        };
        return result.fail(format!(
            "no 2 MiB DAX faults: {}{why}",
            fell_back.join("; ")
        ));
    }
    result
}

/// Test hook for the crash-at-every-step VM test: with `PMEM_STACK_TEST_CRASH_AFTER=k`
/// the process kills itself with SIGKILL right after its k-th mutating step, as a power
/// cut or the OOM killer would. Without the variable it does nothing.
fn crash_point(steps_done: usize) {
    if std::env::var("PMEM_STACK_TEST_CRASH_AFTER")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        == Some(steps_done)
    {
        // SAFETY: sending a signal to ourselves.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// `--facts`: the snapshot as `ansible_facts.pmem_stack`, probed in the base scope (PMEM,
/// every dm device, what holds them and their partitions). Devices in that scope that
/// could not be read are warnings; missing kernel support is said in `msg`.
pub fn facts(system: &mut dyn System) -> ModuleResult {
    let r = ModuleResult::new(Default::default());
    system.set_scope(ProbeScope::base());
    match system.probe() {
        Ok(a) => {
            let mut r = r;
            r.msg = format!(
                "{} region(s), {} namespace(s), {} dm device(s), {} mount(s)",
                a.regions.len(),
                a.namespaces.len(),
                a.dm_devices.len(),
                a.mounts.len()
            );
            for m in &a.missing {
                r.msg.push_str("; ");
                r.msg.push_str(m.explain());
            }
            r.warnings = a
                .unreadable
                .iter()
                .map(|u| format!("could not read {}: {}", u.path, u.error))
                .collect();
            r.dax_audit = Some(audit::audit(&a, None));
            r.ansible_facts = Some(serde_json::json!({ "pmem_stack": a }));
            r
        }
        Err(e) => r.fail(e.to_string()),
    }
}

/// Whether this run is the facts module `pmem_stack_info` (the same binary, installed
/// under that name as well: the collection ships it twice). Ansible says which module
/// it runs in `_ansible_module_name` (the name the task used: `pmem_stack_info`,
/// `pmemstack.pmem.pmem_stack_info`, `ansible.legacy.pmem_stack_info`); that key decides
/// when present. Without it (the binary run by hand) the program's own file name does:
/// `argv0`, as Ansible names its remote copy `AnsiballZ_<module file name>`.
pub fn invoked_as_info(args_text: &str, argv0: &str) -> bool {
    let named = args::module_name(args_text).unwrap_or_else(|| {
        let file = argv0.rsplit('/').next().unwrap_or(argv0);
        file.strip_prefix("AnsiballZ_").unwrap_or(file).to_string()
    });
    named.rsplit('.').next() == Some(args::INFO_MODULE_NAME)
}

/// `pmem_stack_info`: what [`facts`] reports (`ansible_facts.pmem_stack` and the DAX
/// audit), never changing anything. It takes no options: any key but Ansible's internal
/// `_ansible_*` ones fails the run, naming it, before the machine is probed.
pub fn info(args_text: &str, system: &mut dyn System) -> ModuleResult {
    info_with(args_text, system, Overrides::default())
}

/// [`info`], with the command line's `overrides` (only the check mode it reports matters
/// to it: it changes nothing either way).
pub fn info_with(args_text: &str, system: &mut dyn System, overrides: Overrides) -> ModuleResult {
    match args::parse_info_input(args_text) {
        Ok(internal) => {
            let internal = overrides.apply(internal);
            let mut r = facts(system);
            r.check_mode = internal.check_mode;
            r
        }
        Err(f) => ModuleResult::new(f.raw_options).input_errors(&f.errors),
    }
}

/// Read a snapshot given to `--actual`: the bare snapshot or a `--facts` result.
pub fn read_snapshot(text: &str) -> Result<actual::Actual, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the snapshot is not valid JSON: {e}"))?;
    let inner = v.pointer("/ansible_facts/pmem_stack").cloned().unwrap_or(v);
    serde_path_to_error::deserialize(inner).map_err(|e| {
        format!(
            "the snapshot does not describe a system at {}: {}",
            e.path(),
            e.inner()
        )
    })
}
