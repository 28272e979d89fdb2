//! `pmem_stack`: read the arguments (argv[1] file, as Ansible runs binary modules, or
//! stdin), run the pipeline, print one JSON object, exit 0 unless failed.

use pmem_stack::report::{ModuleResult, Timing};
use pmem_stack::system::real::exec;
use pmem_stack::system::real::RealSystem;
use pmem_stack::system::{Snapshot, System};
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str =
    "usage: pmem_stack [ARGS_FILE]          run the module (arguments from the file, or stdin)
       pmem_stack --actual SNAPSHOT [ARGS_FILE]   plan against captured facts (dry run)
       pmem_stack --boot [STATE_FILE]      replay a saved state at boot (the one named, as each pmem-stack@.service instance does; every one when none is named; never destroys data)
       pmem_stack --facts                  print the actual state
       pmem_stack_info [ARGS_FILE]         the same binary named (or run by Ansible as) pmem_stack_info: --facts as a module, no options
       pmem_stack --schema                 print the JSON Schema of the arguments
       pmem_stack --result-schema          print the JSON Schema of the result";

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    exec::mark_start();
    let mut args = std::env::args();
    let argv0 = args.next().unwrap_or_default();
    let argv: Vec<String> = args.collect();
    let (text, result) = dispatch(&argv0, &argv, started);
    // a reader that went away (`| head`) is not a reason to panic
    if writeln!(std::io::stdout().lock(), "{text}").is_err() {
        return ExitCode::from(1);
    }
    match result {
        Some(r) if r.failed => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    }
}

fn pretty(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v)
        .unwrap_or_else(|e| format!("{{\"failed\":true,\"msg\":\"{e}\"}}"))
}

fn failed(msg: String) -> (String, Option<ModuleResult>) {
    let r = ModuleResult::new(Default::default()).fail(msg);
    (r.to_json(), Some(r))
}

/// Returns the text to print and the result (None for schemas). `argv0` is the program's
/// name: run as `pmem_stack_info` it is the facts module (see `invoked_as_info`).
fn dispatch(argv0: &str, argv: &[String], started: Instant) -> (String, Option<ModuleResult>) {
    let words: Vec<&str> = argv.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["--schema"] => (pretty(&pmem_stack::args::args_schema()), None),
        ["--result-schema"] => (pretty(&pmem_stack::report::result_schema()), None),
        ["--help" | "-h"] => failed(USAGE.to_string()),
        ["--version"] => {
            let r = ModuleResult::new(Default::default());
            let mut r = r;
            r.msg = format!("pmem_stack {}", env!("CARGO_PKG_VERSION"));
            (r.to_json(), Some(r))
        }
        ["--boot", rest @ ..] if rest.len() <= 1 => {
            let root = std::env::var("PMEM_STACK_ROOT").unwrap_or_default();
            let root = root.trim_end_matches('/');
            // one file when named (what each instance of the replay template runs);
            // otherwise every saved state, the legacy file then the state directory by
            // name (what the shared service of earlier versions runs: kept for it)
            let mut paths: Vec<String> = match rest.first() {
                Some(p) => vec![p.to_string()],
                None => {
                    let dir = if root.is_empty() { "/" } else { root };
                    let mut paths = match pmem_stack::system::real::files::state_files(
                        std::path::Path::new(dir),
                    ) {
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
            let systemd = root.is_empty() && std::path::Path::new("/run/systemd/system").is_dir();
            let by_unit = |path: &str| {
                systemd
                    && std::path::Path::new(&format!(
                        "{root}{}/{}",
                        pmem_stack::boot::UNIT_DIR,
                        pmem_stack::boot::mount_unit_name(path)
                    ))
                    .is_file()
            };
            let mut r = pmem_stack::replay_with(&states, &mut backend(), &by_unit);
            r.timing = Some(timing(started));
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
            (r.to_json(), Some(r))
        }
        ["--facts"] => {
            let r = pmem_stack::facts(&mut backend());
            (r.to_json(), Some(r))
        }
        ["--actual", snapshot, rest @ ..] if rest.len() <= 1 => {
            let snap = match std::fs::read_to_string(snapshot) {
                Ok(t) => t,
                Err(e) => return failed(format!("cannot read the snapshot {snapshot}: {e}")),
            };
            let actual = match pmem_stack::read_snapshot(&snap) {
                Ok(a) => a,
                Err(e) => return failed(format!("{snapshot}: {e}")),
            };
            let input = match read_args(rest.first().copied()) {
                Ok(t) => t,
                Err(e) => return failed(e),
            };
            let r = pmem_stack::run(&input, &mut Snapshot(actual), true);
            (r.to_json(), Some(r))
        }
        [flag, ..] if flag.starts_with("--") => {
            failed(format!("unknown or misused option {flag}\n{USAGE}"))
        }
        [] | [_] => {
            let input = match read_args(words.first().copied()) {
                Ok(t) => t,
                Err(e) => return failed(e),
            };
            if pmem_stack::invoked_as_info(&input, argv0) {
                let r = pmem_stack::info(&input, &mut backend());
                return (r.to_json(), Some(r));
            }
            let mut r = pmem_stack::run(&input, &mut backend(), false);
            r.timing = Some(timing(started));
            (r.to_json(), Some(r))
        }
        _ => failed(format!("too many arguments\n{USAGE}")),
    }
}

fn read_args(path: Option<&str>) -> Result<String, String> {
    match path {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read the arguments file {p}: {e}")),
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("cannot read the arguments from stdin: {e}"))?;
            Ok(s)
        }
    }
}

/// The wall time since `started` and the external programs run.
fn timing(started: Instant) -> Timing {
    let external = exec::external_runs();
    let (probes, probe_ms, probe_parts_ms) = pmem_stack::system::real::probes();
    Timing {
        probes,
        probe_ms,
        probe_parts_ms,
        operations: pmem_stack::system::real::operations(),
        wall_ms: started.elapsed().as_secs_f64() * 1e3,
        external_ms: exec::external_ms(),
        external,
        peak_rss_kib: peak_rss_kib(),
    }
}

/// `VmHWM` of this process: the peak of this program alone (getrusage's maxrss would
/// include the parent's memory copied by fork before the exec).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn backend() -> impl System {
    RealSystem::default()
}
