//! pmem_stack: an Ansible-style idempotent configuration module for Linux persistent
//! memory (ndctl namespaces, device-mapper linear/striped devices, GPT partitions,
//! DAX-ready ext4/xfs, DAX mounts).
//!
//! The pipeline:
//! ```text
//! args (argv[1] file | stdin)      args::parse_input   one JSON object, flat or wrapped
//!   -> Desired                      args::validate      errors carry the JSON path
//!   -> Actual                       System::probe       one snapshot
//!   -> Bound                        bind::bind          PURE; each declared object joined once to
//!                                                       what the snapshot has for it
//!   -> Plan                         plan::plan          PURE; ordered typed steps
//!   -> apply, step by step          apply::apply        resolve + execute; stop at the first failure;
//!                                                       re-probe after a change
//!   -> verify                       apply::apply        probe + plan again: must be empty; the audit
//!   -> Report                       report::ModuleResult
//! ```
//! [`run`] reads as this pipeline; [`apply`] owns the step loop, the re-probing and the
//! verification.
//! Check mode and offline plans (`--actual`) stop after Plan. The same `plan()` runs
//! against the real system, the fake one in tests, and a captured snapshot. A live run
//! tells an observer ([`run_observed`], [`Progress`]) about each step as it starts and
//! ends; `--format text` ([`text`]) prints them as they come and the result at the end.
//!
//! The same binary run as `pmem_stack_info` ([`invoked_as_info`]) is the read-only facts
//! module: [`info`], which is [`facts()`] (`--facts`) taking Ansible's arguments.

pub mod actual;
pub mod apply;
pub mod args;
pub mod audit;
pub mod bind;
pub mod boot;
pub mod dm_table;
pub mod facts;
pub mod geometry;
pub mod lvm;
pub mod op;
pub mod plan;
pub mod report;
pub mod system;
pub mod text;
pub mod units;

pub use apply::{Progress, StepFailure, StepOutcome};
use args::validate::validate;
pub use args::Overrides;
pub use facts::{facts, info, info_with, invoked_as_info, read_snapshot};
use report::{diff, render_actual, render_desired, ModuleResult};
use system::{ProbeScope, System};

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

/// [`run`], with the command line's `overrides` of the arguments' internal keys.
pub fn run_with(
    input: &str,
    system: &mut dyn System,
    offline: bool,
    overrides: Overrides,
) -> ModuleResult {
    run_as(input, system, offline, false, overrides, &mut |_| {})
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

/// The run of one saved state at boot: as [`run`], but a step that would make or change
/// what should be on the media (see [`plan::replay`]) fails the state before anything is
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
    system.mark("start");
    let before = match system.probe() {
        Ok(a) => a,
        Err(e) => return result.fail(e.to_string()),
    };
    let mut result = result;
    let planned = plan::plan(&desired, &before);
    system.mark("plan");
    let planned = match planned {
        Ok(p) => p,
        Err(refusal) => {
            result.warnings = refusal.warnings.clone();
            result.refusals = refusal.refused.clone();
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
        return apply::finish(
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
                &render_desired(&desired, &before, &planned),
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
        return apply::finish(result, system, &desired, &before, true, false);
    }

    apply::apply(
        &apply::LiveRun {
            desired: &desired,
            before: &before,
            steps: &planned.steps,
            replay,
            want_diff,
            verify_pmd: parsed.args.verify_pmd.0,
        },
        result,
        system,
        progress,
    )
}

/// The boot replay: run every saved state `(path, text, or why it could not be read)`
/// in the order given, each with data loss disallowed and the boot files left alone
/// (`plan::replay::replay_args`), against `system`. A state that fails does not keep
/// the others down (they are independent stacks); the result joins them: changed or
/// failed when any is, the plans, steps done and skipped one after the other, and `msg`
/// one `<path>: <msg>` per state.
pub fn replay(
    states: &[(String, Result<String, String>)],
    system: &mut dyn System,
) -> ModuleResult {
    replay_with(states, system, &|_| false)
}

/// [`replay`], leaving the mounts for which `by_unit(path)` is true to their mount
/// units (`plan::replay::replay_args_with`).
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
            .and_then(|t| plan::replay::replay_args_with(t, by_unit))
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
            .extend(r.refusals.into_iter().map(|w| w.within(path)));
        all.errors.extend(r.errors);
        if all.failed_step.is_none() {
            all.failed_step = r.failed_step;
        }
    }
    all.msg = msgs.join("; ");
    all
}
