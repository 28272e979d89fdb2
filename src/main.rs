//! `pmem_stack`: read the arguments (the ARGS_FILE, as Ansible runs binary modules, or
//! stdin), run the pipeline, print one JSON object (or, with `--format text`, the steps
//! as they run and a summary), exit 0 unless failed. The command line is read here alone
//! (clap), into [`Cli`]; what it asks for is run by `dispatch`.

use clap::Parser;
use pmem_stack::apply::CrashAfter;
use pmem_stack::report::ModuleResult;
use pmem_stack::system::real::RealSystem;
use pmem_stack::system::{Snapshot, System};
use pmem_stack::Overrides;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str =
    "pmem_stack [--check] [--diff] [--detailed-exitcode] [--format json|text] [ARGS_FILE]
       pmem_stack --actual SNAPSHOT [--diff] [--detailed-exitcode] [--format json|text] [ARGS_FILE]
       pmem_stack --facts [--detailed-exitcode] [--format json|text]
       pmem_stack --boot [--detailed-exitcode] [--format json|text] [STATE_FILE]
       pmem_stack --schema | --result-schema
       pmem_stack_info [ARGS_FILE]";

const AFTER_HELP: &str = "\
Flags and ARGS_FILE may come in any order. The result is one JSON object on stdout \
(what Ansible reads); its `msg` (and `comment`, the same text) says what happened. \
With --format text it is a summary for people instead (steps, refusals, diffs, timing, \
the DAX audit as a tree), and a live run prints each step as it starts and ends.

Exit status:
  0  success (with --detailed-exitcode: nothing changed and nothing would change)
  1  failure: the result says why; or a usage error (an unknown or misused option, \
said on stderr with nothing on stdout)
  2  only with --detailed-exitcode: changes were made, or (check mode, --actual) are \
pending; usage errors never exit 2

The same binary installed (or run by Ansible) as pmem_stack_info is the read-only facts \
module: what --facts reports, taking Ansible's arguments file.";

/// The command line. Modes (`--facts`, `--actual`, `--boot`, `--schema`,
/// `--result-schema`) exclude each other; without one, the module runs.
#[derive(Parser, Debug)]
#[command(
    name = "pmem_stack",
    bin_name = "pmem_stack",
    version,
    about = "Declare Linux persistent memory (ndctl namespaces, device-mapper, GPT partitions, \
DAX filesystems, mounts) and converge the machine to it: an Ansible binary module, also run \
by hand.",
    override_usage = USAGE,
    after_help = AFTER_HELP,
    args_override_self = true,
    group(clap::ArgGroup::new("mode").multiple(false)),
)]
struct Cli {
    /// Plan only, change nothing (overrides `_ansible_check_mode` in the arguments).
    #[arg(long, conflicts_with_all = ["facts", "boot", "schema", "result_schema"])]
    check: bool,
    /// Report before/after of each changed object in `diff` (overrides `_ansible_diff`).
    #[arg(long, conflicts_with_all = ["facts", "boot", "schema", "result_schema"])]
    diff: bool,
    /// Exit 0 when nothing changed or would change, 2 when changes were made or (check
    /// mode, --actual) are pending, 1 on failure.
    #[arg(long, conflicts_with_all = ["schema", "result_schema"])]
    detailed_exitcode: bool,
    /// How to print the result: json (one object, what Ansible reads) or text (for
    /// people and CI logs; a live run shows each step as it starts and ends).
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        default_value_t = Format::Json,
        conflicts_with_all = ["schema", "result_schema"]
    )]
    format: Format,
    /// Plan against captured facts (a --facts result, or its ansible_facts.pmem_stack):
    /// always a dry run; needs no root and no PMEM.
    #[arg(long, value_name = "SNAPSHOT", group = "mode")]
    actual: Option<PathBuf>,
    /// Print the actual state (ansible_facts.pmem_stack) and the DAX audit.
    #[arg(long, group = "mode", conflicts_with = "file")]
    facts: bool,
    /// Replay a saved state at boot: the STATE_FILE named (what each pmem-stack@.service
    /// instance runs), or every saved state; never destroys data.
    #[arg(long, group = "mode")]
    boot: bool,
    /// Print the JSON Schema of the arguments.
    #[arg(long, group = "mode", conflicts_with = "file")]
    schema: bool,
    /// Print the JSON Schema of the result.
    #[arg(long, group = "mode", conflicts_with = "file")]
    result_schema: bool,
    /// The arguments: one JSON object, flat or {"ANSIBLE_MODULE_ARGS": {...}} (the file
    /// Ansible writes); stdin when none is named. With --boot: the STATE_FILE.
    #[arg(value_name = "ARGS_FILE")]
    file: Option<PathBuf>,
}

/// `--format`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    // one JSON object (variants without doc comments: clap would list them in --help)
    Json,
    // a summary for people
    Text,
}

impl Cli {
    fn overrides(&self) -> Overrides {
        Overrides {
            check_mode: self.check.then_some(true),
            diff: self.diff.then_some(true),
        }
    }
}

/// What a run prints.
enum Output {
    /// A JSON Schema.
    Schema(String),
    /// The module's result.
    Result(Box<ModuleResult>),
}

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let argv0 = argv
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(c) => c,
        Err(e) => {
            // --help and --version print to stdout and exit 0; a usage error goes to
            // stderr and exits 1, not clap's 2, which --detailed-exitcode gives to
            // "changes"
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // the crash-at-every-step VM test's hook, read here once and injected as an observer
    let mut crash = crash_hook();
    // in text, the steps of a live run as they start and end, then a blank line
    let (out, live_lines) = match cli.format {
        Format::Json => (
            dispatch(&cli, &argv0, started, &mut |p| crash_point(&mut crash, &p)),
            0,
        ),
        Format::Text => {
            let mut live = pmem_stack::text::LiveSteps::new(std::io::stdout());
            let out = dispatch(&cli, &argv0, started, &mut |p| {
                live.on(p);
                crash_point(&mut crash, &p)
            });
            (out, live.lines())
        }
    };
    let text = match (&out, cli.format) {
        (Output::Schema(s), _) => format!("{s}\n"),
        (Output::Result(r), Format::Json) => format!("{}\n", r.to_json()),
        (Output::Result(r), Format::Text) if live_lines > 0 => {
            format!("\n{}", pmem_stack::text::render(r))
        }
        (Output::Result(r), Format::Text) => pmem_stack::text::render(r),
    };
    // a reader that went away (`| head`) is not a reason to panic
    if write!(std::io::stdout().lock(), "{text}").is_err() {
        return ExitCode::from(1);
    }
    match out {
        Output::Schema(_) => ExitCode::SUCCESS,
        Output::Result(r) => ExitCode::from(exit_status(&r, cli.detailed_exitcode)),
    }
}

/// `PMEM_STACK_TEST_CRASH_AFTER=k` (a test hook of the crash-at-every-step VM test): die
/// right after the k-th step that ran. Unset or not a number: no hook.
fn crash_hook() -> Option<CrashAfter> {
    std::env::var("PMEM_STACK_TEST_CRASH_AFTER")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map(CrashAfter::new)
}

/// Kill this process with SIGKILL, as a power cut or the OOM killer would, if the hook
/// says so after `p`.
fn crash_point(hook: &mut Option<CrashAfter>, p: &pmem_stack::Progress<'_>) {
    if hook.as_mut().is_some_and(|h| h.due(p)) {
        // SAFETY: sending a signal to ourselves.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// 1 when failed; else 0, or with `detailed` (as `terraform plan -detailed-exitcode`)
/// 2 when something changed or, in check mode, would change.
fn exit_status(r: &ModuleResult, detailed: bool) -> u8 {
    if r.failed {
        1
    } else if detailed && r.changed {
        2
    } else {
        0
    }
}

fn pretty(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v)
        .unwrap_or_else(|e| format!("{{\"failed\":true,\"msg\":\"{e}\"}}"))
}

fn failed(msg: String) -> Output {
    result(ModuleResult::new(Default::default()).fail(msg))
}

fn result(r: ModuleResult) -> Output {
    Output::Result(Box::new(r))
}

/// Run what the command line asks for, telling `progress` about each step of a live
/// run. `argv0` is the program's name: run as `pmem_stack_info` it is the facts module
/// (see `invoked_as_info`).
fn dispatch(
    cli: &Cli,
    argv0: &str,
    started: Instant,
    progress: &mut dyn FnMut(pmem_stack::Progress<'_>),
) -> Output {
    if cli.schema {
        return Output::Schema(pretty(&pmem_stack::args::args_schema()));
    }
    if cli.result_schema {
        return Output::Schema(pretty(&pmem_stack::report::result_schema()));
    }
    if cli.boot {
        return boot(cli.file.as_deref(), started, progress);
    }
    if cli.facts {
        return result(pmem_stack::facts(&mut backend(started)));
    }
    if let Some(snapshot) = &cli.actual {
        let shown = snapshot.display();
        let snap = match std::fs::read_to_string(snapshot) {
            Ok(t) => t,
            Err(e) => return failed(format!("cannot read the snapshot {shown}: {e}")),
        };
        let actual = match pmem_stack::read_snapshot(&snap) {
            Ok(a) => a,
            Err(e) => return failed(format!("{shown}: {e}")),
        };
        let input = match read_args(cli.file.as_deref()) {
            Ok(t) => t,
            Err(e) => return failed(e),
        };
        return result(pmem_stack::run_with(
            &input,
            &mut Snapshot(actual),
            true,
            cli.overrides(),
        ));
    }
    let input = match read_args(cli.file.as_deref()) {
        Ok(t) => t,
        Err(e) => return failed(e),
    };
    if pmem_stack::invoked_as_info(&input, argv0) {
        return result(pmem_stack::info_with(
            &input,
            &mut backend(started),
            cli.overrides(),
        ));
    }
    let mut system = backend(started);
    let mut r = pmem_stack::run_observed(&input, &mut system, false, cli.overrides(), progress);
    r.timing = system.timing();
    result(r)
}

/// `--boot [STATE_FILE]`.
fn boot(
    file: Option<&Path>,
    started: Instant,
    progress: &mut dyn FnMut(pmem_stack::Progress<'_>),
) -> Output {
    let root = std::env::var("PMEM_STACK_ROOT").unwrap_or_default();
    let root = root.trim_end_matches('/');
    // one file when named (what each instance of the replay template runs);
    // otherwise every saved state, the legacy file then the state directory by
    // name (what the shared service of earlier versions runs: kept for it)
    let mut paths: Vec<String> = match file {
        Some(p) => match p.to_str() {
            Some(p) => vec![p.to_string()],
            None => {
                return failed(format!(
                    "--boot: the state file {} is not a UTF-8 path",
                    p.display()
                ))
            }
        },
        None => {
            let dir = if root.is_empty() { "/" } else { root };
            let mut paths = match pmem_stack::system::real::files::state_files(Path::new(dir)) {
                Ok(p) => p,
                Err(e) => return failed(format!("cannot list the saved states: {e}")),
            };
            let legacy = pmem_stack::boot::LEGACY_STATE_FILE;
            if std::fs::symlink_metadata(format!("{root}{legacy}")).is_ok() {
                paths.push(legacy.to_string());
            }
            paths
        }
    };
    pmem_stack::boot::replay_order(&mut paths);
    let states: Vec<(String, Result<String, String>)> = paths
        .into_iter()
        .map(|p| {
            let file = format!("{root}{p}");
            let text = std::fs::read_to_string(&file).map_err(|e| format!("{file}: {e}"));
            (p, text)
        })
        .collect();
    // under systemd, a mount that has its unit is mounted by it, after this
    // service (the replay rebuilds the devices under it)
    let systemd = root.is_empty() && Path::new("/run/systemd/system").is_dir();
    let by_unit = |path: &str| {
        systemd
            && Path::new(&format!(
                "{root}{}/{}",
                pmem_stack::boot::UNIT_DIR,
                pmem_stack::boot::mount_unit_name(path)
            ))
            .is_file()
    };
    let mut system = backend(started);
    let mut r = pmem_stack::replay_observed(&states, &mut system, &by_unit, progress);
    r.timing = system.timing();
    // one line for the journal, besides the JSON on stdout
    eprintln!(
        "pmem_stack --boot: {}{}",
        r.msg,
        if r.done.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                r.done
                    .iter()
                    .map(|s| format!("{} {}", s.action, s.target))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    result(r)
}

fn read_args(path: Option<&Path>) -> Result<String, String> {
    match path {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read the arguments file {}: {e}", p.display())),
        None => {
            use std::io::IsTerminal;
            if std::io::stdin().is_terminal() {
                eprintln!("pmem_stack: reading the arguments (one JSON object) from stdin; end with Ctrl-D, or name ARGS_FILE (--help)");
            }
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("cannot read the arguments from stdin: {e}"))?;
            Ok(s)
        }
    }
}

/// The machine, its `timing` counted from `started` (the process start).
fn backend(started: Instant) -> impl System {
    RealSystem::started_at(started)
}
