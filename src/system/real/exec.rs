//! External programs: the one table of what we run and why, and the argv runner.
//! Never a shell: argv vectors only; output captured and returned on failure.

use super::record::Recorder;
use crate::system::{Output, SystemError};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

/// How a run shows in `timing.external`: the program and its first argument.
fn command(argv: &[&str]) -> String {
    argv.iter().take(2).copied().collect::<Vec<_>>().join(" ")
}

/// Packages that provide a program, by distribution family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packages {
    /// Debian and Ubuntu.
    pub debian: &'static str,
    /// RHEL, CentOS Stream, Fedora.
    pub rhel: &'static str,
    /// SLES and openSUSE.
    pub suse: &'static str,
}

/// An external program: its name, why we need it, and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Program {
    /// File name, looked up by [`super::lookup::Found::locate`] (`PATH`, then the standard sbin and
    /// bin directories) when it first runs.
    pub name: &'static str,
    /// Why we run it.
    pub why: &'static str,
    /// The packages that install it.
    pub packages: Packages,
}

const fn program(
    name: &'static str,
    why: &'static str,
    debian: &'static str,
    rhel: &'static str,
    suse: &'static str,
) -> Program {
    Program {
        name,
        why,
        packages: Packages { debian, rhel, suse },
    }
}

/// Every external program pmem_stack may run, and why (nothing runs on a no-op).
pub const PROGRAMS: &[Program] = &[
    program("ndctl", "create/reconfigure/destroy namespaces (label and pfn/dax info-block writes have no stable ioctl API)", "ndctl", "ndctl", "ndctl"),
    program("mkfs.ext4", "make ext4 with the DAX geometry", "e2fsprogs", "e2fsprogs", "e2fsprogs"),
    program("mkfs.xfs", "make xfs with the DAX geometry", "xfsprogs", "xfsprogs", "xfsprogs"),
    program("cxl", "assemble and take apart CXL regions (cxl create-region/destroy-region: the region setup in sysfs is many ordered writes, which the tool does and checks)", "ndctl", "cxl-cli", "cxl-cli"),
    program("daxctl", "give a devdax namespace's memory to the kernel and take it back (daxctl reconfigure-device, online-memory, offline-memory: kmem binding and memory-block onlining in order, which the tool does and checks)", "daxctl", "daxctl", "daxctl"),
    program("lvm", "make and remove LVM PVs, VGs and LVs (LVM's metadata has no library API with a stable ABI; its commands are the interface)", "lvm2", "lvm2", "lvm2"),
    program("systemctl", "daemon-reload after boot units were written or removed (only when systemd runs)", "systemd", "systemd", "systemd"),
    program("udevadm", "wait for udev to create /dev nodes after a device appears or goes (udevadm settle)", "udev", "systemd-udev", "udev"),
];

/// `prog`'s entry in [`PROGRAMS`].
pub fn program_named(prog: &str) -> Option<&'static Program> {
    PROGRAMS.iter().find(|p| p.name == prog)
}

/// Whether `prog` is in [`PROGRAMS`].
pub fn known(prog: &str) -> bool {
    program_named(prog).is_some()
}

/// Why `p` cannot run: not found in `searched`; install it from its package.
pub fn not_found_message(p: &Program, searched: &[PathBuf]) -> String {
    let dirs = searched
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let Packages { debian, rhel, suse } = p.packages;
    format!(
        "{} not found: searched {dirs} (PATH, then the standard sbin and bin directories); \
         install package {debian} on Debian/Ubuntu, {rhel} on RHEL/Fedora, {suse} on SUSE",
        p.name
    )
}

/// Where a tool is: its absolute path, or the directories searched in vain.
type Locate<'a> = &'a dyn Fn(&str) -> Result<PathBuf, Vec<PathBuf>>;

/// Run argv; stdin is /dev/null; fail with argv, status, stdout and stderr. The tool
/// is looked up now (once per process: `PATH`, then the standard sbin and bin
/// directories, see [`super::lookup`]); a missing one fails naming where it was looked for and
/// the package that provides it.
/// Its time goes to `record`.
pub fn run(record: &Recorder, argv: &[String]) -> Result<Output, SystemError> {
    run_located(record, argv, &|tool| record.tools.locate(tool))
}

/// [`run`], with the tool found by `locate`.
fn run_located(
    record: &Recorder,
    argv: &[String],
    locate: Locate<'_>,
) -> Result<Output, SystemError> {
    let Some((prog, args)) = argv.split_first() else {
        return Err(SystemError::Os {
            what: "run".into(),
            error: "empty argv".into(),
        });
    };
    let Some(program) = program_named(prog) else {
        return Err(SystemError::Os {
            what: format!("run {prog}"),
            error: "not in the table of external programs".into(),
        });
    };
    // argv[0] is the absolute path found; reports name the tool (`argv` as planned)
    let path = locate(program.name).map_err(|searched| SystemError::Command {
        argv: argv.to_vec(),
        rc: None,
        stdout: String::new(),
        stderr: not_found_message(program, &searched),
    })?;
    let started = Instant::now();
    let out = Command::new(&path)
        .args(args)
        .stdin(Stdio::null())
        .env("LC_ALL", "C")
        .output();
    record.external(
        command(&[prog.as_str(), args.first().map_or("", String::as_str)]),
        started,
    );
    let out = out.map_err(|e| SystemError::Command {
        argv: argv.to_vec(),
        rc: None,
        stdout: String::new(),
        stderr: format!("cannot run {prog} ({}): {e}", path.display()),
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
/// next probe sees what exists and the resolver names what is missing. Its time goes to
/// `record`.
pub fn udev_settle(record: &Recorder) {
    let Ok(path) = record.tools.locate("udevadm") else {
        return;
    };
    let started = Instant::now();
    let _ = Command::new(path)
        .args(["settle", "--timeout=30"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    record.external(command(&["udevadm", "settle"]), started);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    /// The failure names the tool, every directory searched, and the package of each
    /// distribution family; and the operator sees it (Display, failed step's stderr).
    #[test]
    fn a_missing_tool_fails_with_everything_needed_to_fix_it() {
        fn nowhere(_: &str) -> Result<PathBuf, Vec<PathBuf>> {
            Err([
                "/opt/x/bin",
                "/usr/local/sbin",
                "/usr/sbin",
                "/sbin",
                "/bin",
            ]
            .map(PathBuf::from)
            .to_vec())
        }
        let argv: Vec<String> = ["mkfs.xfs", "-q", "/dev/pmem0"].map(String::from).to_vec();
        let e = run_located(&Recorder::default(), &argv, &nowhere).expect_err("missing");
        let SystemError::Command {
            argv: a,
            rc,
            stderr,
            ..
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!((a, *rc), (&argv, None), "argv as planned, names the tool");
        let shown = e.to_string();
        for text in [stderr.as_str(), shown.as_str()] {
            assert!(text.contains("mkfs.xfs not found"), "{text}");
            assert!(
                text.contains("searched /opt/x/bin, /usr/local/sbin, /usr/sbin, /sbin, /bin "),
                "{text}"
            );
            assert!(
                text.contains(
                    "xfsprogs on Debian/Ubuntu, xfsprogs on RHEL/Fedora, xfsprogs on SUSE"
                ),
                "{text}"
            );
        }
        // every tool in the table has a package for each family, named in its message
        let dirs = [PathBuf::from("/usr/bin")];
        for p in PROGRAMS {
            let m = not_found_message(p, &dirs);
            assert!(
                m.starts_with(&format!("{} not found: searched /usr/bin ", p.name)),
                "{m}"
            );
            for pkg in [p.packages.debian, p.packages.rhel, p.packages.suse] {
                assert!(!pkg.is_empty() && m.contains(pkg), "{m}");
            }
        }
        assert_eq!(
            program_named("ndctl").map(|p| p.packages),
            Some(Packages {
                debian: "ndctl",
                rhel: "ndctl",
                suse: "ndctl"
            })
        );
        assert_eq!(
            program_named("mkfs.ext4").map(|p| p.packages.rhel),
            Some("e2fsprogs")
        );
        assert_eq!(
            program_named("systemctl").map(|p| p.packages.suse),
            Some("systemd")
        );
        assert_eq!(
            program_named("udevadm").map(|p| p.packages.rhel),
            Some("systemd-udev")
        );
    }

    /// The tool runs from the path found, with that absolute path as argv[0].
    #[test]
    fn runs_the_tool_found_by_its_absolute_path() {
        let dir = std::env::temp_dir().join(format!("pmem-stack-exec-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let tool = dir.join("ndctl");
        // a stand-in that prints how it was called (a test fixture, not our command)
        std::fs::write(&tool, "#!/bin/sh\necho \"$0 $*\"\n").expect("write");
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        fn here(name: &str) -> Result<PathBuf, Vec<PathBuf>> {
            let dir = std::env::temp_dir().join(format!("pmem-stack-exec-{}", std::process::id()));
            let stripped = std::env::join_paths([Path::new("/nonexistent")]).expect("join");
            super::super::lookup::find(name, Some(&stripped), &[dir.as_path()])
        }
        let argv: Vec<String> = ["ndctl", "list", "-N"].map(String::from).to_vec();
        // another test thread's fork can hold the file open for writing a moment
        // (ETXTBSY): try again
        let mut out = run_located(&Recorder::default(), &argv, &here);
        for _ in 0..20 {
            match &out {
                Err(e) if e.to_string().contains("Text file busy") => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    out = run_located(&Recorder::default(), &argv, &here);
                }
                _ => break,
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        let out = out.expect("ran");
        assert_eq!(out.stdout.trim(), format!("{} list -N", tool.display()));
        assert_eq!(
            out.argv.as_deref(),
            Some(argv.as_slice()),
            "reported by name"
        );
        // not in the table: refused before any lookup
        fn never(_: &str) -> Result<PathBuf, Vec<PathBuf>> {
            panic!("looked up")
        }
        let e =
            run_located(&Recorder::default(), &["sh".to_string()], &never).expect_err("refused");
        assert!(e.to_string().contains("not in the table"), "{e}");
    }
}
