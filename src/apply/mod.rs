//! Apply and verify: a live run's steps, in plan order, against a [`System`].
//!
//! - Each step is resolved against the latest snapshot (`resolve::resolve`), then executed,
//!   or skipped when it is no longer needed; the run stops at the first failure.
//! - After a step that may have changed devices, namespaces or mounts, the machine is
//!   probed again before the next step resolves ([`System::probe_after`]: what that step
//!   can have changed, the rest kept from the probe before it).
//! - Where the plan says so (`plan::cxl::replan_after`: after the CXL regions it makes,
//!   what is over them was planned as if they were blank), the rest is planned again
//!   against the state probed then, and a boot replay's policy checks the new steps.
//! - After the last step: probe again, check that each declared DAX mount has DAX in
//!   effect, and plan again: the plan must be empty (the stack converged).
//! - `finish` adds the DAX audit and, when asked, the PMD fault check, to every run
//!   that gets that far (a dry run or a run with nothing to do too).
//!
//! An observer hears about each step as it starts and ends ([`Progress`]): `--format
//! text` prints them, and the binary's crash hook ([`CrashAfter`]) is one too. `lib.rs`
//! decides what to run (parse, probe, plan); this module applies it.

pub mod resolve;

pub use resolve::{resolve, Resolved};

use crate::actual::Actual;
use crate::args::{self, validate::Desired, DaxMode};
use crate::audit;
use crate::plan;
use crate::report::{self, diff, render_actual, ModuleResult};
use crate::system::{System, SystemError};

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
    /// It failed, or was refused when it came to run: the run stops here.
    Failed(&'a StepFailure),
}

/// Why a step did not get done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepFailure {
    /// Refused when it came to run (the state was not the one planned for): nothing of it
    /// was done.
    Refused(plan::Refused),
    /// The system failed to carry it out.
    System(SystemError),
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepFailure::Refused(r) => r.fmt(f),
            StepFailure::System(e) => e.fmt(f),
        }
    }
}

/// A test hook, injected as an observer: it says when the process must die, right after
/// the `after`-th step that ran in one run (each saved state's run of a boot replay
/// counts from its first step again), as a power cut or the OOM killer would strike. The
/// binary installs it when `PMEM_STACK_TEST_CRASH_AFTER=k` is set (read once, at its
/// edge: the crash-at-every-step VM test); the step loop knows nothing of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashAfter {
    after: usize,
    done: usize,
}

impl CrashAfter {
    /// Die after the `after`-th step that ran (0: never).
    pub fn new(after: usize) -> CrashAfter {
        CrashAfter { after, done: 0 }
    }

    /// Whether the process must die now, having been told `p`.
    pub fn due(&mut self, p: &Progress<'_>) -> bool {
        match p {
            Progress::Started { index: 0, .. } => {
                self.done = 0;
                false
            }
            Progress::Ended {
                outcome: StepOutcome::Done,
                ..
            } => {
                self.done += 1;
                self.done == self.after
            }
            _ => false,
        }
    }
}

/// A live run: what was declared, what the probe before the plan saw, the plan, and how.
pub(crate) struct LiveRun<'a> {
    /// The validated arguments.
    pub desired: &'a Desired,
    /// The snapshot the plan was made against.
    pub before: &'a Actual,
    /// The plan's steps.
    pub steps: &'a [plan::Step],
    /// A boot replay (see [`plan::replay`]).
    pub replay: bool,
    /// Report before/after in `diff`.
    pub want_diff: bool,
    /// Run the PMD fault check at the end.
    pub verify_pmd: bool,
}

/// Apply `run`'s steps to `system`, telling `progress` about each as it starts and ends,
/// then verify the result. A boot replay whose plan has a step that the replay policy
/// forbids ([`plan::replay::refused_plan`]) fails before anything is done, and one whose
/// step it refuses when that step comes to run ([`plan::replay::refused_when_run`])
/// fails there.
pub(crate) fn apply(
    run: &LiveRun<'_>,
    mut result: ModuleResult,
    system: &mut dyn System,
    progress: &mut dyn FnMut(Progress<'_>),
) -> ModuleResult {
    // the steps over CXL regions this plan makes were planned as if those were blank:
    // they are planned again once the regions are made (`replan_at`)
    let mut steps: Vec<plan::Step> = run.steps.to_vec();
    let mut replan_at = plan::cxl::replan_after(&steps);
    if run.replay {
        if let Some(refused) =
            plan::replay::refused_plan(&steps[..replan_at.unwrap_or(steps.len())])
        {
            result.refusals = refused.refusals;
            let result = result.steps(&steps, &[], false);
            return result.fail(refused.msg);
        }
    }
    let mut done = Vec::new();
    let mut skipped = Vec::new();
    let mut actual = run.before.clone();
    // the op of the last step that ran, when it may have changed the state since `actual`
    // was probed: it touches devices, namespaces or mounts (boot files change nothing a
    // step resolves against, and a skipped step changed nothing)
    let mut stale: Option<crate::system::Op> = None;
    let mut i = 0;
    while i < steps.len() {
        if let Some(op) = stale.take() {
            actual = match system.probe_after(&op, &actual) {
                Ok(a) => a,
                Err(e) => {
                    return result.steps(&steps, &done, false).fail(format!(
                        "{e} (after {} of {} steps; run again to continue)",
                        done.len(),
                        steps.len()
                    ))
                }
            };
        }
        if replan_at == Some(i) {
            replan_at = None;
            match plan::plan(run.desired, &actual) {
                Ok(p) => {
                    steps.truncate(i);
                    steps.extend(p.steps);
                    if run.replay {
                        if let Some(refused) = plan::replay::refused_plan(&steps[i..]) {
                            result.refusals = refused.refusals;
                            return result.steps(&steps, &done, false).fail(refused.msg);
                        }
                    }
                    if i == steps.len() {
                        break;
                    }
                }
                Err(r) => {
                    return result.steps(&steps, &done, false).fail(format!(
                        "once the CXL regions were made: {r} ({} step{} done before; run again to continue)",
                        done.len(),
                        if done.len() == 1 { " was" } else { "s were" }
                    ))
                }
            }
        }
        let step = steps[i].clone();
        let step = &step;
        let total = steps.len();
        let item = step.item();
        progress(Progress::Started {
            index: i,
            total,
            step: &item,
        });
        let outcome = resolve::resolve(&step.action, run.desired, &actual)
            .map_err(StepFailure::Refused)
            .and_then(|r| {
                if run.replay {
                    let would_run = matches!(r, resolve::Resolved::Run(_));
                    if let Some(refused) = plan::replay::refused_when_run(&step.action, would_run) {
                        return Err(StepFailure::Refused(refused));
                    }
                }
                match r {
                    resolve::Resolved::Run(op) => system
                        .execute(&op)
                        .map(|_| Some(op))
                        .map_err(StepFailure::System),
                    resolve::Resolved::Skip(why) => {
                        skipped.push(report::SkippedItem {
                            step: step.item(),
                            why,
                        });
                        Ok(None)
                    }
                }
            });
        progress(Progress::Ended {
            index: i,
            total,
            step: &item,
            outcome: match &outcome {
                Err(e) => StepOutcome::Failed(e),
                Ok(Some(_)) => StepOutcome::Done,
                Ok(None) => {
                    StepOutcome::Skipped(skipped.last().map(|s| s.why.as_str()).unwrap_or(""))
                }
            },
        });
        if let Err(e) = outcome {
            let n = steps.len();
            let result = result.steps(&steps, &done, false);
            let result = match &e {
                StepFailure::Refused(r) => result.refused_at(i, step, r),
                StepFailure::System(s) => result.failed_at(i, step, s),
            };
            let hint = match &e {
                StepFailure::System(_) => hidden_copy_hint(run, &done, step),
                StepFailure::Refused(_) => String::new(),
            };
            return result.fail(format!(
                    "step {} of {n} failed ({} {}): {e}{hint}. {} step{} done before it; nothing after it was run. Running the module again continues from the state left",
                    i + 1,
                    step.action.name(),
                    step.action.target(),
                    done.len(),
                    if done.len() == 1 { " was" } else { "s were" }
                ));
        }
        if let Ok(Some(op)) = outcome {
            stale = step.action.changes_state().then_some(op);
            done.push(step.clone());
        }
        i += 1;
    }
    system.mark("steps");
    let mut result = result.steps(&steps, &done, false);
    result.skipped_steps = skipped;
    verify(run, result, &done, system)
}

/// When removing a device fails after this run unmounted copies of its mount in other
/// mount namespaces: which namespaces they were, and why one may still hold it. systemd
/// before 253 builds a sandboxed service's root by moving a second copy of the whole tree
/// over the first (`MS_MOVE`), which stays underneath, shown in no mountinfo and reached
/// by no path; only mount propagation from ours (a shared mount, systemd's default)
/// unmounts it, or the service's end.
fn hidden_copy_hint(run: &LiveRun<'_>, done: &[plan::Step], step: &plan::Step) -> String {
    if !matches!(
        step.action,
        plan::Action::RemoveDm { .. }
            | plan::Action::DestroyNamespace { .. }
            | plan::Action::DeletePartition { .. }
    ) {
        return String::new();
    }
    let mut who: Vec<String> = Vec::new();
    for d in done {
        if let plan::Action::UmountElsewhere { path, device } = &d.action {
            for m in run.before.copies_elsewhere(*device, path) {
                if !who.contains(&m.who()) {
                    who.push(m.who());
                }
            }
        }
    }
    if who.is_empty() {
        return String::new();
    }
    format!(
        " (copies of its mount were unmounted in the mount namespaces of {}; one of them may still hold a copy that no mountinfo shows: systemd before 253 keeps one under the root of each service it sandboxes, which only mount propagation from a shared mount reaches; restarting that service releases it)",
        who.join(", ")
    )
}

/// After the steps (`done` ran): probe again, fill the diff, check DAX on the declared
/// mounts (a file on a `dax=always` one mounted by this run must have STATX_ATTR_DAX),
/// and plan again: anything still to do fails the run; else [`finish`].
fn verify(
    run: &LiveRun<'_>,
    result: ModuleResult,
    done: &[plan::Step],
    system: &mut dyn System,
) -> ModuleResult {
    let desired = run.desired;
    let after = match system.probe() {
        Ok(a) => a,
        Err(e) => return result.fail(format!("{e} (after all steps ran)")),
    };
    let mut result = result;
    if run.want_diff {
        result.diff = Some(diff(
            &render_actual(desired, run.before),
            &render_actual(desired, &after),
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
    let replanned = plan::plan(desired, &after);
    system.mark("verify");
    match replanned {
        Ok(p) if p.steps.is_empty() => {
            result.msg = format!(
                "{} step{} done",
                done.len(),
                if done.len() == 1 { "" } else { "s" }
            );
            finish(result, system, desired, &after, false, run.verify_pmd)
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

/// Add the DAX audit of the declared mounts and, when asked (and not a dry run), the PMD
/// fault counts; all faults falling back to 4 KiB pages fails the run.
pub(crate) fn finish(
    mut result: ModuleResult,
    system: &mut dyn System,
    desired: &args::validate::Desired,
    actual: &Actual,
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
    result.system_ram = report::system_ram(desired, actual);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> plan::PlanItem {
        plan::PlanItem {
            action: "mount".into(),
            target: "/mnt/x".into(),
            detail: String::new(),
            destructive: false,
        }
    }

    /// After the k-th step that ran (a skipped one does not count), in each run.
    #[test]
    fn the_crash_hook_fires_after_the_kth_step_that_ran() {
        let step = item();
        let started = |index| Progress::Started {
            index,
            total: 3,
            step: &step,
        };
        let ended = |index, outcome| Progress::Ended {
            index,
            total: 3,
            step: &step,
            outcome,
        };
        let mut c = CrashAfter::new(2);
        let run = [
            (started(0), false),
            (ended(0, StepOutcome::Done), false),
            (started(1), false),
            (ended(1, StepOutcome::Skipped("not needed")), false),
            (started(2), false),
            (ended(2, StepOutcome::Done), true),
        ];
        for (p, due) in run {
            assert_eq!(c.due(&p), due, "{p:?}");
        }
        // the next run (another saved state) counts again from its first step
        assert!(!c.due(&started(0)));
        assert!(!c.due(&ended(0, StepOutcome::Done)));
        // never at 0
        let mut never = CrashAfter::new(0);
        assert!(!never.due(&started(0)) && !never.due(&ended(0, StepOutcome::Done)));
    }
}
