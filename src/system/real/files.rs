//! Boot persistence files on the machine: probing the few paths we manage, atomic
//! writes (temp file, fsync, rename, fsync of the directory) with root-only modes,
//! symlinks, removal, installing this binary, and `systemctl daemon-reload`.
//! All paths are the machine's, under `root` (`PMEM_STACK_ROOT`, default `/`).

use super::exec;
use crate::actual::{FileContent, FileState, Uncleared};
use crate::boot::{
    is_generated, is_state_path, is_unit_path, reload_pending_marker, replay_link, BINARY,
    LEGACY_BINARY, LEGACY_SERVICE, LEGACY_STATE_FILE, RELOAD_PENDING, REPLAY_TARGET,
    SERVICE_TEMPLATE, STATE_DIR, UNIT_DIR,
};
use crate::system::{Output, SystemError};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

fn at(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

fn os(what: String, e: std::io::Error) -> SystemError {
    SystemError::Os {
        what,
        error: e.to_string(),
    }
}

/// Markers of namespaces being made: `<uuid>` files holding the name. Written (and
/// fsynced, with the directory) before `ndctl create-namespace --uuid <uuid>` runs, and
/// removed once the new namespace's ends are cleared, so a run stopped anywhere in
/// between (a kill, the OOM killer, a power cut) leaves the marker, and the next run
/// knows that namespace's content is an earlier namespace's. On disk, not in /run: a
/// power cut must not forget it. (Naming the namespace only after clearing would need a
/// disable/rename/enable cycle of ndctl runs; the marker costs one small file.)
pub const CLEARING_DIR: &str = "/var/lib/pmem-stack/clearing";

/// The entries of directory `dir` under `root` that could be read; none when it is
/// missing.
fn entries(root: &Path, dir: &str) -> Result<Vec<std::fs::DirEntry>, SystemError> {
    let dir = at(root, dir);
    match std::fs::read_dir(&dir) {
        Ok(rd) => Ok(rd.flatten().collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(os(format!("read {}", dir.display()), e)),
    }
}

/// The uncleared markers found under `root`.
pub fn probe_uncleared(root: &Path) -> Result<Vec<Uncleared>, SystemError> {
    let mut out = Vec::new();
    for e in entries(root, CLEARING_DIR)? {
        let uuid = e.file_name().to_string_lossy().into_owned();
        if !crate::args::validate::is_uuid(&uuid) {
            continue; // not ours
        }
        // a marker cut short by a kill still names its uuid; its name may be missing
        let name = std::fs::read_to_string(e.path())
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        out.push(Uncleared { uuid, name });
    }
    out.sort_by(|a, b| a.uuid.cmp(&b.uuid));
    Ok(out)
}

/// A new random (version 4) uuid, from the kernel's random pool.
pub fn new_uuid() -> Result<String, SystemError> {
    let mut b = [0u8; 16];
    let mut got = 0;
    while got < b.len() {
        // SAFETY: getrandom into our own buffer, within its length.
        let n = unsafe { libc::getrandom(b[got..].as_mut_ptr().cast(), b.len() - got, 0) };
        if n < 0 {
            return Err(os("getrandom".into(), std::io::Error::last_os_error()));
        }
        got += n as usize;
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Ok(super::fs::uuid_text(&b))
}

/// Record, durably, that namespace `name` is about to be made with `uuid` and is not
/// cleared yet. Written in place (no temp file): a marker cut short still names the
/// uuid in its file name.
pub fn mark_uncleared(root: &Path, uuid: &str, name: &str) -> Result<(), SystemError> {
    let dir = at(root, CLEARING_DIR);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| os(format!("mkdir {}", dir.display()), e))?;
    let path = dir.join(uuid);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| os(format!("create {}", path.display()), e))?;
    f.write_all(format!("{name}\n").as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| os(format!("write {}", path.display()), e))?;
    sync_dir(&dir);
    // the parents too, the first time: the marker must outlive a power cut
    if let Some(p) = dir.parent() {
        sync_dir(p);
    }
    Ok(())
}

/// Drop the marker of `uuid` alone (ndctl failed without making that namespace).
pub fn drop_marker(root: &Path, uuid: &str) -> Result<(), SystemError> {
    let dir = at(root, CLEARING_DIR);
    let path = dir.join(uuid);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            sync_dir(&dir);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(os(format!("remove {}", path.display()), e)),
    }
}

/// Drop the markers of namespace `name` (its ends are cleared now), and those of any
/// earlier attempt at it.
pub fn drop_uncleared(root: &Path, name: &str) -> Result<(), SystemError> {
    let dir = at(root, CLEARING_DIR);
    let mut removed = false;
    for m in probe_uncleared(root)? {
        if m.name == name || m.name.is_empty() {
            let path = dir.join(&m.uuid);
            match std::fs::remove_file(&path) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(os(format!("remove {}", path.display()), e)),
            }
        }
    }
    if removed {
        sync_dir(&dir);
    }
    Ok(())
}

/// The managed files that exist: the binary, every saved state (the legacy file and
/// each `STATE_DIR/*.json`), the replay template and the links enabling its instances,
/// the legacy shared service and its link, our mount units and their links, the reload
/// marker.
pub fn probe(root: &Path) -> Result<Vec<FileState>, SystemError> {
    let mut paths = vec![
        BINARY.to_string(),
        LEGACY_BINARY.to_string(),
        LEGACY_STATE_FILE.to_string(),
        format!("{UNIT_DIR}/{SERVICE_TEMPLATE}"),
        format!("{UNIT_DIR}/{LEGACY_SERVICE}"),
        replay_link(LEGACY_SERVICE),
        RELOAD_PENDING.to_string(),
    ];
    paths.extend(state_files(root)?);
    // the replay instances enabled: `pmem-stack@<stem>.service` links
    let instance_prefix = SERVICE_TEMPLATE
        .split_once('@')
        .map_or("pmem-stack@".to_string(), |(p, _)| format!("{p}@"));
    if let Ok(dir) = std::fs::read_dir(at(root, &format!("{UNIT_DIR}/{REPLAY_TARGET}.wants"))) {
        let mut links: Vec<String> = dir
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.starts_with(&instance_prefix)
                    && n.ends_with(".service")
                    && n.len() > instance_prefix.len() + ".service".len()
            })
            .map(|n| replay_link(&n))
            .collect();
        links.sort();
        paths.extend(links);
    }
    if let Ok(dir) = std::fs::read_dir(at(root, UNIT_DIR)) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".mount") {
                paths.push(format!("{UNIT_DIR}/{name}"));
                paths.push(format!("{UNIT_DIR}/local-fs.target.wants/{name}"));
            }
        }
    }
    let mut out = Vec::new();
    for p in paths {
        let full = at(root, &p);
        let Ok(meta) = std::fs::symlink_metadata(&full) else {
            continue;
        };
        let content = if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&full)
                .map_err(|e| os(format!("readlink {}", full.display()), e))?;
            FileContent::Link {
                target: target.to_string_lossy().into_owned(),
            }
        } else if p == BINARY {
            FileContent::Binary {
                matches_self: same_as_self(&full, &meta),
            }
        } else if p == LEGACY_BINARY {
            // never compared: never rewritten, only removed when our units prove it ours
            // (`boot::legacy_copy_removal`); a link or a directory there is not a copy
            if !meta.is_file() {
                continue;
            }
            FileContent::Binary {
                matches_self: false,
            }
        } else {
            let bytes = std::fs::read(&full).map_err(|e| SystemError::Probe {
                msg: format!("{}: {e}", full.display()),
            })?;
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if p.ends_with(".mount") && !is_generated(&text) {
                continue; // a unit that is not ours
            }
            FileContent::Text { text }
        };
        let mode = (!meta.file_type().is_symlink()).then(|| meta.permissions().mode() & 0o7777);
        out.push(FileState {
            path: p,
            content,
            mode,
        });
    }
    Ok(out)
}

/// The saved states in `STATE_DIR` (not the legacy file), sorted by name.
pub fn state_files(root: &Path) -> Result<Vec<String>, SystemError> {
    let mut out: Vec<String> = entries(root, STATE_DIR)?
        .into_iter()
        .map(|e| format!("{STATE_DIR}/{}", e.file_name().to_string_lossy()))
        .filter(|p| is_state_path(p))
        .collect();
    out.sort();
    Ok(out)
}

/// Whether `path` holds the same bytes as the running executable. Quick answers first
/// (a no-op run should not read two binaries): the very same file (the boot replay runs
/// the installed copy); another size; the same size and modification time, which the
/// install copies from the running file (as rsync's quick check). Otherwise (a copy made
/// elsewhere, as Ansible makes one per run) the bytes are compared.
fn same_as_self(path: &Path, meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(me) = std::fs::metadata("/proc/self/exe") else {
        return false;
    };
    if me.dev() == meta.dev() && me.ino() == meta.ino() {
        return true;
    }
    if me.len() != meta.len() {
        return false;
    }
    if (me.mtime(), me.mtime_nsec()) == (meta.mtime(), meta.mtime_nsec()) {
        return true;
    }
    same_bytes(Path::new("/proc/self/exe"), path).unwrap_or(false)
}

/// Compare two files in blocks (no whole-file buffers).
fn same_bytes(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let (mut fa, mut fb) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = read_full(&mut fa, &mut ba)?;
        let m = read_full(&mut fb, &mut bb)?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
    fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(n)
    }
}

/// Write `content` at `path` atomically with `mode`.
pub fn write(
    root: &Path,
    path: &str,
    content: &FileContent,
    mode: u32,
) -> Result<Output, SystemError> {
    let full = at(root, path);
    let dir = full.parent().ok_or_else(|| {
        os(
            format!("write {path}"),
            std::io::ErrorKind::InvalidInput.into(),
        )
    })?;
    make_dirs(dir, path)?;
    let name = full
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A run killed between creating its temp file and the rename leaves the temp file
    // (named with that run's pid) behind; the next write of the same file removes it.
    // We hold the run lock, so no other run is writing here.
    remove_stale_temps(dir, &name);
    let tmp = dir.join(format!(".{name}.pmem-stack.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    match content {
        FileContent::Link { target } => {
            std::os::unix::fs::symlink(target, &tmp)
                .map_err(|e| os(format!("symlink {}", tmp.display()), e))?;
        }
        FileContent::Text { text } => write_new(&tmp, text.as_bytes(), mode)?,
        FileContent::Binary { .. } => {
            let me =
                std::fs::read("/proc/self/exe").map_err(|e| os("read /proc/self/exe".into(), e))?;
            write_new(&tmp, &me, mode)?;
            // the running file's modification time: the probe's quick check
            let mtime = std::fs::metadata("/proc/self/exe")
                .and_then(|m| m.modified())
                .map_err(|e| os("stat /proc/self/exe".into(), e))?;
            std::fs::File::options()
                .write(true)
                .open(&tmp)
                .and_then(|f| f.set_modified(mtime))
                .map_err(|e| os(format!("set the time of {}", tmp.display()), e))?;
        }
    }
    std::fs::rename(&tmp, &full).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        os(format!("rename {} to {}", tmp.display(), full.display()), e)
    })?;
    sync_dir(dir);
    Ok(Output::default())
}

/// Remove the temp files `.<name>.pmem-stack.<pid>` that writes of `name` in `dir` cut
/// short by a kill left behind.
fn remove_stale_temps(dir: &Path, name: &str) {
    let prefix = format!(".{name}.pmem-stack.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name();
        let file = file.to_string_lossy();
        if file
            .strip_prefix(&prefix)
            .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Create a new file (no symlink followed, exclusive), write, fsync.
fn write_new(tmp: &Path, bytes: &[u8], mode: u32) -> Result<(), SystemError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(tmp)
        .map_err(|e| os(format!("create {}", tmp.display()), e))?;
    // the umask may have narrowed the mode; set it exactly
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| os(format!("chmod {}", tmp.display()), e))?;
    f.write_all(bytes)
        .map_err(|e| os(format!("write {}", tmp.display()), e))?;
    f.sync_all()
        .map_err(|e| os(format!("fsync {}", tmp.display()), e))
}

/// Create missing directories; the state directory is root-only.
fn make_dirs(dir: &Path, path: &str) -> Result<(), SystemError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mode = if is_state_path(path) { 0o700 } else { 0o755 };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|e| os(format!("mkdir {}", dir.display()), e))
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Remove `path` (a missing file is fine); the boot copy's own directory goes with it
/// when empty.
pub fn remove(root: &Path, path: &str) -> Result<Output, SystemError> {
    let full = at(root, path);
    match std::fs::remove_file(&full) {
        Ok(()) => {
            if let Some(dir) = full.parent() {
                sync_dir(dir);
                if path == BINARY && std::fs::remove_dir(dir).is_ok() {
                    if let Some(up) = dir.parent() {
                        sync_dir(up);
                    }
                }
            }
            Ok(Output::default())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Output::default()),
        Err(e) => Err(os(format!("remove {}", full.display()), e)),
    }
}

/// Before a unit at `path` is written or removed: mark the daemon-reload pending.
pub fn before_unit_change(root: &Path, path: &str) -> Result<(), SystemError> {
    if is_unit_path(path) && !at(root, RELOAD_PENDING).exists() {
        let m = reload_pending_marker(path);
        write(root, &m.path, &m.content, m.mode.unwrap_or(0o600))?;
    }
    Ok(())
}

/// `systemctl daemon-reload` when systemd manages this root (otherwise nothing to
/// reload); then the pending mark is cleared.
pub fn daemon_reload(root: &Path, record: &super::record::Recorder) -> Result<Output, SystemError> {
    let out = if root == Path::new("/") && Path::new("/run/systemd/system").is_dir() {
        exec::run(record, &super::argv::daemon_reload())?
    } else {
        Output {
            stdout: "systemd is not running here: nothing to reload".into(),
            ..Output::default()
        }
    };
    remove(root, RELOAD_PENDING)?;
    Ok(out)
}

/// An empty directory for a test, under the temp directory, named for `what` and this
/// process.
#[cfg(test)]
pub(crate) fn fresh_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pmem-stack-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_installed_binary_is_recognised_quickly_or_by_its_bytes() {
        let root = fresh_dir("bin");
        let matches = |root: &Path| {
            probe(root)
                .expect("probe")
                .into_iter()
                .find(|f| f.path == BINARY)
                .map(|f| f.content)
        };
        let bin = FileContent::Binary { matches_self: true };
        write(&root, BINARY, &bin, 0o755).expect("install");
        let full = at(&root, BINARY);
        let me = std::fs::metadata("/proc/self/exe").expect("self");
        let it = std::fs::metadata(&full).expect("installed");
        assert_eq!(
            it.modified().ok(),
            me.modified().ok(),
            "the install copies the time"
        );
        assert_eq!(matches(&root), Some(bin.clone()));
        // a copy made elsewhere (another time): compared by its bytes
        let f = std::fs::File::options()
            .write(true)
            .open(&full)
            .expect("open");
        f.set_modified(std::time::SystemTime::UNIX_EPOCH)
            .expect("touch");
        drop(f);
        assert_eq!(matches(&root), Some(bin));
        // same size, one byte different
        let mut bytes = std::fs::read(&full).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&full, &bytes).expect("write");
        assert_eq!(
            matches(&root),
            Some(FileContent::Binary {
                matches_self: false
            })
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    /// Whatever is at the old boot copy's path is probed without being read: a regular
    /// file as a binary that is not this one, a link as a link, a directory not at all;
    /// installing and removing the boot copy (in its own directory, which goes with it)
    /// never touches it.
    #[test]
    fn the_boot_copy_lives_apart_from_an_operators_pmem_stack() {
        let root = fresh_dir("own-copy");
        let legacy = at(&root, LEGACY_BINARY);
        std::fs::create_dir_all(legacy.parent().expect("dir")).expect("mkdir");
        std::fs::write(&legacy, "#!/bin/sh\necho the operator's\n").expect("operator's");
        let found = |root: &Path| -> Option<FileContent> {
            probe(root)
                .expect("probe")
                .into_iter()
                .find(|f| f.path == LEGACY_BINARY)
                .map(|f| f.content)
        };
        assert_eq!(
            found(&root),
            Some(FileContent::Binary {
                matches_self: false
            })
        );
        let bin = FileContent::Binary { matches_self: true };
        write(&root, BINARY, &bin, 0o755).expect("install");
        remove(&root, BINARY).expect("remove");
        assert!(!at(&root, BINARY).exists());
        assert!(
            !at(&root, "/usr/local/libexec/pmem-stack").exists(),
            "its own directory goes with it"
        );
        assert!(at(&root, "/usr/local/libexec").is_dir());
        assert_eq!(
            std::fs::read_to_string(&legacy).expect("still there"),
            "#!/bin/sh\necho the operator's\n"
        );
        std::fs::remove_file(&legacy).expect("rm");
        std::os::unix::fs::symlink("/opt/pmem/pmem_stack", &legacy).expect("link");
        assert_eq!(
            found(&root),
            Some(FileContent::Link {
                target: "/opt/pmem/pmem_stack".into()
            })
        );
        std::fs::remove_file(&legacy).expect("rm");
        std::fs::create_dir(&legacy).expect("a directory");
        assert_eq!(found(&root), None);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_write_removes_the_temp_files_a_killed_write_of_the_same_file_left() {
        let root = fresh_dir("stale");
        let dir = root.join("usr/local/sbin");
        std::fs::create_dir_all(&dir).expect("dir");
        let stale = dir.join(".pmem_stack.pmem-stack.1070");
        let other = dir.join(".other.pmem-stack.1070");
        let not_temp = dir.join(".pmem_stack.pmem-stack.notes");
        for p in [&stale, &other, &not_temp] {
            std::fs::write(p, "half").expect("leftover");
        }
        write(
            &root,
            "/usr/local/sbin/pmem_stack",
            &FileContent::Text { text: "x".into() },
            0o755,
        )
        .expect("write");
        assert!(!stale.exists(), "the killed write's temp file is gone");
        assert!(
            other.exists(),
            "another file's temp file is not ours to remove"
        );
        assert!(
            not_temp.exists(),
            "only <name>.pmem-stack.<pid> is a temp file"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("pmem_stack")).expect("written"),
            "x"
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn writes_atomically_with_the_mode_and_probes_back() {
        let root = fresh_dir("files");
        let text = FileContent::Text {
            text: "{}\n".into(),
        };
        let state_file = format!("{STATE_DIR}/x-0123456789abcdef.json");
        write(&root, &state_file, &text, 0o600).expect("write state");
        let unit = format!("{UNIT_DIR}/mnt-x.mount");
        write(
            &root,
            &unit,
            &FileContent::Text {
                text: format!("{}\n[Mount]\n", crate::boot::MARKER),
            },
            0o644,
        )
        .expect("unit");
        write(
            &root,
            &format!("{UNIT_DIR}/mnt-y.mount"),
            &FileContent::Text {
                text: "[Mount]\n".into(),
            },
            0o644,
        )
        .expect("foreign unit");
        let link = format!("{UNIT_DIR}/local-fs.target.wants/mnt-x.mount");
        write(
            &root,
            &link,
            &FileContent::Link {
                target: unit.clone(),
            },
            0o777,
        )
        .expect("link");
        let found = probe(&root).expect("probe");
        let state = found
            .iter()
            .find(|f| f.path == state_file)
            .expect("state found");
        assert_eq!((state.content.clone(), state.mode), (text, Some(0o600)));
        let dir_mode = |dir: &str| {
            std::fs::metadata(root.join(dir))
                .expect("dir")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(
            dir_mode("etc/pmem-stack"),
            0o700,
            "the state directory is root-only"
        );
        assert_eq!(
            dir_mode("etc/pmem-stack/state.d"),
            0o700,
            "and so is state.d"
        );
        assert!(found.iter().any(|f| f.path == unit));
        assert!(
            !found.iter().any(|f| f.path.ends_with("mnt-y.mount")),
            "a unit that is not ours is not managed"
        );
        assert_eq!(
            found
                .iter()
                .find(|f| f.path == link)
                .map(|f| f.content.clone()),
            Some(FileContent::Link { target: unit })
        );
        remove(&root, &link).expect("remove");
        remove(&root, &link).expect("removing twice is fine");
        let leftovers: Vec<_> = std::fs::read_dir(root.join("etc/pmem-stack/state.d"))
            .expect("dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temp files left: {leftovers:?}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn the_replay_template_its_instances_and_the_legacy_service_are_found() {
        let root = fresh_dir("units");
        let text = |t: &str| FileContent::Text { text: t.into() };
        let template = format!("{UNIT_DIR}/{SERVICE_TEMPLATE}");
        let legacy = format!("{UNIT_DIR}/{LEGACY_SERVICE}");
        write(&root, &template, &text("[Unit]\n"), 0o644).expect("template");
        write(&root, &legacy, &text("[Unit]\n"), 0o644).expect("legacy");
        let link = |unit: &str, target: &str| {
            write(
                &root,
                &replay_link(unit),
                &FileContent::Link {
                    target: target.into(),
                },
                0o777,
            )
            .expect("link");
        };
        link("pmem-stack@b-0000000000000002.service", &template);
        link("pmem-stack@a-0000000000000001.service", &template);
        link(LEGACY_SERVICE, &legacy);
        // not ours: another unit, the template's name itself
        link("other.service", "/lib/systemd/system/other.service");
        link(SERVICE_TEMPLATE, &template);
        let found = probe(&root).expect("probe");
        let paths: Vec<&str> = found.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                template.as_str(),
                legacy.as_str(),
                &replay_link(LEGACY_SERVICE),
                &replay_link("pmem-stack@a-0000000000000001.service"),
                &replay_link("pmem-stack@b-0000000000000002.service"),
            ]
        );
        assert_eq!(
            found[3].content,
            FileContent::Link {
                target: template.clone()
            }
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn every_saved_state_and_units_of_earlier_versions_are_found() {
        let root = fresh_dir("states");
        let text = |t: &str| FileContent::Text { text: t.into() };
        for p in [
            LEGACY_STATE_FILE.to_string(),
            format!("{STATE_DIR}/b-0000000000000002.json"),
            format!("{STATE_DIR}/a-0000000000000001.json"),
        ] {
            write(&root, &p, &text("{}\n"), 0o600).expect("state");
        }
        // not saved states: a temp file of a write cut short, another extension
        for p in [
            format!("{STATE_DIR}/.a-0000000000000001.json.pmem-stack.7"),
            format!("{STATE_DIR}/notes.txt"),
        ] {
            write(&root, &p, &text("x"), 0o600).expect("other file");
        }
        // a unit written by an earlier version (its marker named state.json)
        let old = format!("{UNIT_DIR}/mnt-old.mount");
        let old_marker = "# Generated by pmem_stack; do not edit (it is rewritten from /etc/pmem-stack/state.json).";
        write(
            &root,
            &old,
            &text(&format!("{old_marker}\n[Mount]\n")),
            0o644,
        )
        .expect("unit");
        let found: Vec<String> = probe(&root)
            .expect("probe")
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(
            found,
            [
                LEGACY_STATE_FILE.to_string(),
                format!("{STATE_DIR}/a-0000000000000001.json"),
                format!("{STATE_DIR}/b-0000000000000002.json"),
                format!("{UNIT_DIR}/mnt-old.mount"),
            ]
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
