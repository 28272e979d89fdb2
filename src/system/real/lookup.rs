//! Finding the external programs of [`super::exec::PROGRAMS`] on disk.
//!
//! Order: the directories of the caller's `PATH` first, then the standard sbin and bin
//! directories, [`STANDARD_DIRS`], each directory once, the first executable regular
//! file wins.
//!
//! - `PATH` first, because it is the operator's say: a newer ndctl built into /opt, or a
//!   test rig's stand-ins, are found before the distribution's copies, as a shell would.
//! - The standard directories after it, because the caller's `PATH` is often short: on
//!   RHEL an Ansible task may run with a `PATH` that lacks /usr/sbin, where mkfs.xfs and
//!   mkfs.ext4 live, and a systemd unit or cron job may run with an even shorter one.
//!   They are searched in the order of Debian's root `PATH` (which systemd's default
//!   `PATH` also follows): local builds before the distribution's, sbin before bin.
//! - Empty and relative `PATH` entries are skipped: they would name the current
//!   directory, and a program run as root is never taken from there.
//!
//! Where the distributions put the tools (all of them are found by the list):
//!
//! | tool | Debian / Ubuntu | RHEL / Fedora | SUSE |
//! |---|---|---|---|
//! | ndctl | /usr/bin | /usr/bin | /usr/bin |
//! | mkfs.ext4, mkfs.xfs | /sbin (= /usr/sbin with merged /usr) | /usr/sbin (/sbin links to it; /usr/bin since Fedora 42 merged sbin) | /usr/sbin (SLE 15 keeps /sbin compatibility links) |
//! | systemctl | /bin (= /usr/bin) | /usr/bin | /usr/bin |
//! | udevadm | /bin (= /usr/bin) | /usr/bin (also /usr/sbin on RHEL 7) | /usr/bin (also /sbin) |
//!
//! The search happens only when a tool is about to run (never while probing, so a run
//! that changes nothing makes no system call for it), and a found path is kept for the
//! rest of the process.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The standard sbin and bin directories of Debian, RHEL/Fedora and SUSE, searched
/// after `PATH`, in this order.
pub const STANDARD_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// The directories to search, in order: the absolute entries of `path_var` (the value
/// of `PATH`), then `dirs`; each once.
pub fn search_dirs(path_var: Option<&OsStr>, dirs: &[&Path]) -> Vec<PathBuf> {
    let from_path = path_var
        .map(|p| std::env::split_paths(p).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut out: Vec<PathBuf> = Vec::new();
    for d in from_path
        .into_iter()
        .filter(|d| d.is_absolute())
        .chain(dirs.iter().map(|d| d.to_path_buf()))
    {
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

/// `dir/tool` if it is a regular file (after symlinks) with an execute bit.
fn executable(dir: &Path, tool: &str) -> Option<PathBuf> {
    let p = dir.join(tool);
    let m = std::fs::metadata(&p).ok()?;
    (m.is_file() && m.permissions().mode() & 0o111 != 0).then_some(p)
}

/// Find `tool` in the directories of [`search_dirs`]: its absolute path, or the
/// directories searched in vain.
pub fn find(tool: &str, path_var: Option<&OsStr>, dirs: &[&Path]) -> Result<PathBuf, Vec<PathBuf>> {
    let searched = search_dirs(path_var, dirs);
    searched
        .iter()
        .find_map(|d| executable(d, tool))
        .ok_or(searched)
}

/// Where the tools a run needed were found: each tool is looked up once per run. The
/// real system owns one (in its [`super::record::Recorder`], which every tool run is
/// handed), so nothing is kept in process-wide state.
#[derive(Debug, Default)]
pub struct Found(RefCell<Vec<(String, PathBuf)>>);

impl Found {
    /// Find `tool` in this process's `PATH` and [`STANDARD_DIRS`], the first time it is
    /// asked for; after that, where it was found.
    pub fn locate(&self, tool: &str) -> Result<PathBuf, Vec<PathBuf>> {
        if let Some(p) = self
            .0
            .borrow()
            .iter()
            .find(|(t, _)| t == tool)
            .map(|(_, p)| p.clone())
        {
            return Ok(p);
        }
        let dirs: Vec<&Path> = STANDARD_DIRS.iter().map(Path::new).collect();
        let path_var = std::env::var_os("PATH");
        let p = find(tool, path_var.as_deref(), &dirs)?;
        self.0.borrow_mut().push((tool.to_string(), p.clone()));
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A fresh directory tree under the temp dir, removed on drop.
    struct Tree(PathBuf);
    impl Tree {
        fn new(name: &str) -> Tree {
            let root = std::env::temp_dir()
                .join(format!("pmem-stack-lookup-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).expect("temp dir");
            Tree(root)
        }
        fn dir(&self, d: &str) -> PathBuf {
            let p = self.0.join(d);
            std::fs::create_dir_all(&p).expect("dir");
            p
        }
        fn tool(&self, d: &str, name: &str, mode: u32) -> PathBuf {
            let p = self.dir(d).join(name);
            std::fs::write(&p, b"#!/bin/true\n").expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
            p
        }
    }
    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn path_first_then_the_standard_dirs() {
        let t = Tree::new("order");
        let usr_sbin = t.tool("usr/sbin", "mkfs.xfs", 0o755);
        let local = t.tool("opt/xfs/bin", "mkfs.xfs", 0o755);
        let (sbin, bin) = (t.dir("usr/sbin"), t.dir("usr/bin"));
        let std_dirs = [sbin.as_path(), bin.as_path()];
        // a stripped PATH (no sbin): found in the standard dirs
        let stripped = std::env::join_paths([t.dir("usr/bin")]).expect("join");
        assert_eq!(
            find("mkfs.xfs", Some(&stripped), &std_dirs),
            Ok(usr_sbin.clone())
        );
        // no PATH at all
        assert_eq!(find("mkfs.xfs", None, &std_dirs), Ok(usr_sbin));
        // PATH wins over the standard dirs
        let operator = std::env::join_paths([t.dir("opt/xfs/bin")]).expect("join");
        assert_eq!(find("mkfs.xfs", Some(&operator), &std_dirs), Ok(local));
    }

    #[test]
    fn skips_what_cannot_run_and_relative_entries() {
        let t = Tree::new("skip");
        t.tool("a", "ndctl", 0o644); // not executable
        std::fs::create_dir_all(t.dir("b").join("ndctl")).expect("a directory");
        let good = t.tool("c", "ndctl", 0o700);
        let (a, b, c) = (t.dir("a"), t.dir("b"), t.dir("c"));
        let path = std::env::join_paths([
            PathBuf::from(""),
            PathBuf::from("."),
            PathBuf::from("rel/bin"),
            a.clone(),
            b.clone(),
            a.clone(),
        ])
        .expect("join");
        assert_eq!(find("ndctl", Some(&path), &[c.as_path()]), Ok(good));
        // each directory once, relative ones never
        assert_eq!(
            search_dirs(Some(&path), &[a.as_path(), c.as_path()]),
            [a, b, c]
        );
    }

    #[test]
    fn a_missing_tool_names_every_directory_searched() {
        let t = Tree::new("missing");
        let (x, y) = (t.dir("x"), t.dir("y"));
        let path = std::env::join_paths([x.clone()]).expect("join");
        assert_eq!(
            find("udevadm", Some(&path), &[y.as_path()]),
            Err(vec![x, y])
        );
    }

    #[test]
    fn symlinks_are_followed() {
        let t = Tree::new("link");
        let real = t.tool("usr/sbin", "mkfs.ext4", 0o755);
        let sbin = t.0.join("sbin");
        std::os::unix::fs::symlink(&real, t.dir("x").join("mkfs.ext4")).expect("link");
        std::os::unix::fs::symlink(t.dir("usr/sbin"), &sbin).expect("dir link");
        let x = t.dir("x");
        assert_eq!(
            find("mkfs.ext4", None, &[x.as_path()]),
            Ok(x.join("mkfs.ext4"))
        );
        assert_eq!(
            find("mkfs.ext4", None, &[sbin.as_path()]),
            Ok(sbin.join("mkfs.ext4"))
        );
    }

    #[test]
    fn the_standard_dirs_cover_the_distributions() {
        for d in [
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
            "/usr/local/sbin",
            "/usr/local/bin",
        ] {
            assert!(STANDARD_DIRS.contains(&d), "{d}");
        }
        let i = |d: &str| STANDARD_DIRS.iter().position(|x| *x == d);
        assert!(i("/usr/local/sbin") < i("/usr/sbin") && i("/usr/sbin") < i("/sbin"));
    }
}
