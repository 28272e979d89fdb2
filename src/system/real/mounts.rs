//! Mounts: probed from `/proc/self/mountinfo` (parsed line by line with the `procfs`
//! crate's `MountInfo`), plus the xfs root directory's extent size hint
//! (`FS_IOC_FSGETXATTR`); and the operations mount(2), remount, umount(2) and setting
//! the inherited extent size hint (`FS_IOC_FSSETXATTR`).
//!
//! The fsxattr ioctls are declared here with nix's ioctl macros: neither libc nor nix
//! exports `struct fsxattr`, and it is a fixed 28-byte kernel ABI (`linux/fs.h`).

use crate::actual::{DaxSyntax, Devno, Extsize, Mount};
use crate::args::DaxMode;
use crate::system::scope::Reach;
use crate::system::DevId;
use crate::system::{Output, SystemError};
use crate::units::Bytes;
use nix::mount::MsFlags;
use procfs::process::MountInfo;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};

/// Where the mount table is read from.
const MOUNTINFO: &str = "/proc/self/mountinfo";

/// `FS_XFLAG_EXTSZINHERIT`: new files and directories inherit the extent size hint.
pub const FS_XFLAG_EXTSZINHERIT: u32 = 0x0000_1000;

/// Block-device mounts from `/proc/self/mountinfo`, `dax` read as the running kernel
/// shows it (`syntax`); no extent size hints yet: see [`read_extsize`].
pub fn probe(syntax: DaxSyntax) -> Result<Vec<Mount>, SystemError> {
    let text = std::fs::read_to_string(MOUNTINFO).map_err(|e| SystemError::Probe {
        msg: format!("{MOUNTINFO}: {e}"),
    })?;
    parse_mountinfo(&text, MOUNTINFO, syntax)
}

/// The root extent size hint of each xfs mount of a device the probe may read (a foreign
/// filesystem's root is left alone: on a device stacked on a suspended dm device even
/// looking could wait).
pub fn read_extsize(mounts: &mut [Mount], reach: &Reach) {
    for m in mounts {
        if m.fstype == "xfs" && reach.read.contains(&m.devno) {
            m.root_extsize = get_xattr(&m.target).ok().map(|x| Extsize {
                size: Bytes(u64::from(x.fsx_extsize)),
                inherit: x.fsx_xflags & FS_XFLAG_EXTSZINHERIT != 0,
            });
        }
    }
}

/// Parse mountinfo text (`origin` names it in errors). Only mounts of block devices
/// (major != 0) are kept: proc, sysfs, tmpfs, overlay, 9p and the like have major 0.
/// Options are the per-mount ones then the superblock ones, each group sorted (procfs
/// keeps them in maps), without repeats; `root_extsize` is left `None`. `dax` is what
/// the kernel of `syntax` means by the options shown ([`DaxSyntax::shown`]: a bare
/// `dax` is always; no dax option is never before 5.8, not shown after).
pub fn parse_mountinfo(
    text: &str,
    origin: &str,
    syntax: DaxSyntax,
) -> Result<Vec<Mount>, SystemError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |what: String| SystemError::Probe {
            msg: format!("{origin} line {}: {what}: {line:?}", i + 1),
        };
        let mi = MountInfo::from_line(line).map_err(|e| bad(e.to_string()))?;
        let devno: Devno = mi
            .majmin
            .parse()
            .map_err(|_| bad(format!("{:?} is not major:minor", mi.majmin)))?;
        if devno.major == 0 {
            continue;
        }
        let mut options: Vec<String> = Vec::new();
        for map in [&mi.mount_options, &mi.super_options] {
            let mut group: Vec<String> = map
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={v}"),
                    None => k.clone(),
                })
                .collect();
            group.sort();
            for o in group {
                if !options.contains(&o) {
                    options.push(o);
                }
            }
        }
        out.push(Mount {
            target: unescape(&mi.mount_point.to_string_lossy()),
            devno,
            source: unescape(mi.mount_source.as_deref().unwrap_or_default()),
            fstype: mi.fs_type.clone(),
            options,
            dax: dax_mode(syntax, &mi.super_options, &mi.mount_options),
            root_extsize: None,
        });
    }
    Ok(out)
}

/// The DAX mode from the `dax` option of the superblock options, else of the per-mount
/// ones: `dax=always|inode|never` (5.8 and later) or a bare `dax` (before 5.8, always).
fn dax_mode(
    syntax: DaxSyntax,
    super_options: &HashMap<String, Option<String>>,
    mount_options: &HashMap<String, Option<String>>,
) -> Option<DaxMode> {
    let value = super_options
        .get("dax")
        .or_else(|| mount_options.get("dax"))
        .map(Option::as_deref);
    syntax.shown(value)
}

/// mountinfo escapes space, tab, newline and backslash in paths as `\ooo` (octal).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(d) => {
                let v = d.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount flags and the filesystem data string for a list of mount options (each may
/// itself be comma-separated). Generic VFS options become `MS_*` flags (their negations
/// clear them); everything else (`dax=always`, `stripe=512`, `inode64`, ...) goes to the
/// filesystem as data.
pub fn split_options(options: &[String]) -> (MsFlags, Option<String>) {
    let mut flags = MsFlags::empty();
    let mut data: Vec<&str> = Vec::new();
    for o in options
        .iter()
        .flat_map(|o| o.split(','))
        .map(str::trim)
        .filter(|o| !o.is_empty())
    {
        let (flag, on) = match o {
            "ro" => (MsFlags::MS_RDONLY, true),
            "rw" => (MsFlags::MS_RDONLY, false),
            "noatime" => (MsFlags::MS_NOATIME, true),
            "atime" => (MsFlags::MS_NOATIME, false),
            "nodiratime" => (MsFlags::MS_NODIRATIME, true),
            "diratime" => (MsFlags::MS_NODIRATIME, false),
            "relatime" => (MsFlags::MS_RELATIME, true),
            "norelatime" => (MsFlags::MS_RELATIME, false),
            "strictatime" => (MsFlags::MS_STRICTATIME, true),
            "nostrictatime" => (MsFlags::MS_STRICTATIME, false),
            "lazytime" => (MsFlags::MS_LAZYTIME, true),
            "nolazytime" => (MsFlags::MS_LAZYTIME, false),
            "nodev" => (MsFlags::MS_NODEV, true),
            "dev" => (MsFlags::MS_NODEV, false),
            "nosuid" => (MsFlags::MS_NOSUID, true),
            "suid" => (MsFlags::MS_NOSUID, false),
            "noexec" => (MsFlags::MS_NOEXEC, true),
            "exec" => (MsFlags::MS_NOEXEC, false),
            "sync" => (MsFlags::MS_SYNCHRONOUS, true),
            "async" => (MsFlags::MS_SYNCHRONOUS, false),
            "dirsync" => (MsFlags::MS_DIRSYNC, true),
            "mand" => (MsFlags::MS_MANDLOCK, true),
            "nomand" => (MsFlags::MS_MANDLOCK, false),
            "silent" => (MsFlags::MS_SILENT, true),
            "loud" => (MsFlags::MS_SILENT, false),
            "defaults" => (MsFlags::empty(), true),
            _ => {
                data.push(o);
                continue;
            }
        };
        flags.set(flag, on);
    }
    let data = (!data.is_empty()).then(|| data.join(","));
    (flags, data)
}

/// mount(2) `source` on `target` (created if missing; refused if it is not a directory),
/// after checking that `source.path` is still the block device `source.devno`.
pub fn mount(
    source: &DevId,
    target: &str,
    fstype: &str,
    options: &[String],
) -> Result<Output, SystemError> {
    let what = format!("mount {} on {target} ({})", source.path, options.join(","));
    let fail = |error: String| SystemError::Os {
        what: what.clone(),
        error,
    };
    check_device(source).map_err(&fail)?;
    ensure_dir(target).map_err(&fail)?;
    let (flags, data) = split_options(options);
    nix::mount::mount(
        Some(source.path.as_str()),
        target,
        Some(fstype),
        flags,
        data.as_deref(),
    )
    .map_err(|e| fail(e.to_string()))?;
    Ok(Output::default())
}

/// Remount `target` with `options` (`MS_REMOUNT` + flags + data). Flags not given are
/// cleared, as with `mount -o remount`, so `options` must be the full wanted set.
pub fn remount(target: &str, options: &[String]) -> Result<Output, SystemError> {
    let (flags, data) = split_options(options);
    nix::mount::mount(
        None::<&str>,
        target,
        None::<&str>,
        flags | MsFlags::MS_REMOUNT,
        data.as_deref(),
    )
    .map_err(|e| SystemError::Os {
        what: format!("remount {target} ({})", options.join(",")),
        error: e.to_string(),
    })?;
    Ok(Output::default())
}

/// umount(2) `target`; `lazy` detaches it (MNT_DETACH) even while files are open;
/// `when_busy` is what the error says to do when files are open.
pub fn umount(target: &str, lazy: bool, when_busy: &str) -> Result<Output, SystemError> {
    let flags = if lazy {
        nix::mount::MntFlags::MNT_DETACH
    } else {
        nix::mount::MntFlags::empty()
    };
    nix::mount::umount2(target, flags).map_err(|e| SystemError::Os {
        what: format!("umount {target}"),
        error: if e == nix::errno::Errno::EBUSY {
            format!("{e}: files are open on it; refused ({when_busy})")
        } else {
            e.to_string()
        },
    })?;
    Ok(Output::default())
}

/// Set the extent size hint of the directory `target` to `size` and make it inherited
/// (`FS_XFLAG_EXTSZINHERIT`), as `xfs_io -c 'extsize SIZE' DIR` does; a size of 0 clears
/// the hint.
pub fn set_extsize(target: &str, size: Bytes) -> Result<Output, SystemError> {
    let fail = |error: String| SystemError::Os {
        what: format!("FS_IOC_FSSETXATTR extsize={size} on {target}"),
        error,
    };
    let size = u32::try_from(size.0).map_err(|_| fail("size does not fit in 32 bits".into()))?;
    let dir = open_dir(target).map_err(|e| fail(e.to_string()))?;
    let mut x = xattr::get(&dir).map_err(|e| fail(format!("FS_IOC_FSGETXATTR: {e}")))?;
    x.fsx_extsize = size;
    if size == 0 {
        x.fsx_xflags &= !FS_XFLAG_EXTSZINHERIT;
    } else {
        x.fsx_xflags |= FS_XFLAG_EXTSZINHERIT;
    }
    xattr::set(&dir, &x).map_err(|e| fail(e.to_string()))?;
    Ok(Output::default())
}

fn open_dir(path: &str) -> std::io::Result<File> {
    // std adds O_CLOEXEC
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(path)
}

fn get_xattr(path: &str) -> Result<xattr::FsXattr, String> {
    let dir = open_dir(path).map_err(|e| e.to_string())?;
    xattr::get(&dir).map_err(|e| e.to_string())
}

/// `path` is a block device node with number `devno` (device names can move between
/// probe and use).
fn check_device(dev: &DevId) -> Result<(), String> {
    let meta = std::fs::metadata(&dev.path).map_err(|e| format!("{}: {e}", dev.path))?;
    let rdev = meta.rdev();
    let found = Devno {
        major: nix::sys::stat::major(rdev) as u32,
        minor: nix::sys::stat::minor(rdev) as u32,
    };
    if !meta.file_type().is_block_device() {
        return Err(format!("{} is not a block device", dev.path));
    }
    if found != dev.devno {
        return Err(format!(
            "{} is now device {found}, not {} as planned",
            dev.path, dev.devno
        ));
    }
    Ok(())
}

/// Make `target` a directory if it does not exist, one component at a time and without
/// following symlinks: every existing component must be a real directory owned by root
/// (a symlink planted by another user, or a directory another user owns, could redirect
/// the mount); new components are made 0755.
fn ensure_dir(target: &str) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let mut path = std::path::PathBuf::from("/");
    for part in std::path::Path::new(target).components().skip(1) {
        path.push(part);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "{} is a symbolic link; refusing to create the mount point {target} through it",
                    path.display()
                ))
            }
            Ok(m) if !m.is_dir() => {
                return Err(format!("{} exists and is not a directory", path.display()))
            }
            Ok(m) if m.uid() != 0 => {
                return Err(format!(
                    "{} is owned by uid {}, not root; refusing to mount through it",
                    path.display(),
                    m.uid()
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
                .mode(0o755)
                .create(&path)
                .map_err(|e| format!("creating mount point {}: {e}", path.display()))?,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod ensure_dir_tests {
    use super::ensure_dir;

    #[test]
    fn makes_missing_directories_and_refuses_symlinks() {
        let base = crate::system::real::files::fresh_dir("mnt");
        let deep = base.join("a/b");
        ensure_dir(&deep.display().to_string()).expect("made");
        assert!(deep.is_dir());
        std::os::unix::fs::symlink("/etc", base.join("trap")).expect("symlink");
        let e = ensure_dir(&base.join("trap/x").display().to_string()).expect_err("refused");
        assert!(e.contains("is a symbolic link"), "{e}");
        assert!(!std::path::Path::new("/etc/x").exists());
        let _ = std::fs::remove_dir_all(&base);
    }
}

/// `struct fsxattr` and the two ioctls that read and write it.
mod xattr {
    use super::*;

    /// `struct fsxattr` from `linux/fs.h`.
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy)]
    pub struct FsXattr {
        /// xflags field value.
        pub fsx_xflags: u32,
        /// Extent size hint in bytes.
        pub fsx_extsize: u32,
        /// Number of data extents.
        pub fsx_nextents: u32,
        /// Project id.
        pub fsx_projid: u32,
        /// CoW extent size hint.
        pub fsx_cowextsize: u32,
        /// Padding.
        pub fsx_pad: [u8; 8],
    }

    nix::ioctl_read!(
        /// `FS_IOC_FSGETXATTR` = `_IOR('X', 31, struct fsxattr)`.
        fs_ioc_fsgetxattr,
        b'X',
        31,
        FsXattr
    );
    nix::ioctl_write_ptr!(
        /// `FS_IOC_FSSETXATTR` = `_IOW('X', 32, struct fsxattr)`.
        fs_ioc_fssetxattr,
        b'X',
        32,
        FsXattr
    );

    /// Read the attributes of an open file.
    pub fn get(f: &File) -> nix::Result<FsXattr> {
        let mut x = FsXattr::default();
        // SAFETY: the fd is open for the duration of the call and `x` is a valid,
        // writable `struct fsxattr` the kernel fills.
        unsafe { fs_ioc_fsgetxattr(f.as_raw_fd(), &mut x) }?;
        Ok(x)
    }

    /// Write the attributes of an open file.
    pub fn set(f: &File, x: &FsXattr) -> nix::Result<()> {
        // SAFETY: the fd is open for the duration of the call and `x` points to a valid
        // `struct fsxattr` the kernel only reads.
        unsafe { fs_ioc_fssetxattr(f.as_raw_fd(), x) }?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn fixture(name: &str) -> String {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/vm")
            .join(name);
        std::fs::read_to_string(p).expect("fixture")
    }

    #[test]
    fn dax_mounts() {
        let m = parse_mountinfo(
            &fixture("mountinfo-dax.txt"),
            "mountinfo-dax.txt",
            DaxSyntax::Modes,
        )
        .expect("parse");
        // 9p, proc, sysfs, tmpfs, overlay... (major 0) are left out
        assert_eq!(m.len(), 2);
        let e = &m[0];
        assert_eq!(e.target, "/mnt/e");
        assert_eq!(
            e.devno,
            Devno {
                major: 259,
                minor: 2
            }
        );
        assert_eq!(e.source, "/dev/pmem0p1");
        assert_eq!(e.fstype, "ext4");
        assert_eq!(e.dax, Some(DaxMode::Always));
        assert_eq!(e.options, ["relatime", "rw", "dax=always", "stripe=512"]);
        assert_eq!(e.root_extsize, None);
        let x = &m[1];
        assert_eq!(
            (x.target.as_str(), x.source.as_str(), x.fstype.as_str()),
            ("/mnt/x", "/dev/pmem1", "xfs")
        );
        assert_eq!(
            x.devno,
            Devno {
                major: 259,
                minor: 0
            }
        );
        assert_eq!(x.dax, Some(DaxMode::Always));
        assert!(x.options.iter().any(|o| o == "logbsize=32k"));
    }

    #[test]
    fn striped_and_nodax_mounts() {
        let m = parse_mountinfo(&fixture("mountinfo-dax-striped.txt"), "x", DaxSyntax::Modes)
            .expect("parse");
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].source, "/dev/mapper/pmstripe");
        assert_eq!(
            m[0].devno,
            Devno {
                major: 254,
                minor: 0
            }
        );
        assert!(m[0].options.iter().any(|o| o == "sunit=4096"));
        let m =
            parse_mountinfo(&fixture("mountinfo-nodax.txt"), "x", DaxSyntax::Modes).expect("parse");
        let n = m.iter().find(|m| m.target == "/mnt/n").expect("/mnt/n");
        assert_eq!(n.dax, Some(DaxMode::Never));
    }

    #[test]
    fn escapes_bare_dax_and_errors() {
        let line = "70 25 8:1 / /mnt/a\\040b rw - ext4 /dev/sda1 rw,dax\n";
        let m = parse_mountinfo(line, "t", DaxSyntax::Modes).expect("parse");
        assert_eq!(m[0].target, "/mnt/a b");
        assert_eq!(m[0].dax, Some(DaxMode::Always));
        let e =
            parse_mountinfo("70 25 8:1 / /mnt\n", "mi", DaxSyntax::Modes).expect_err("short line");
        assert!(matches!(e, SystemError::Probe { ref msg } if msg.contains("mi line 1")));
        let e = parse_mountinfo("70 25 x / /m rw - ext4 /dev/a rw\n", "mi", DaxSyntax::Modes)
            .expect_err("devno");
        assert!(matches!(e, SystemError::Probe { .. }));
    }

    /// The same mounts read on both kinds of kernel: 6.1 shows `dax=always` (captured in
    /// the VM), 5.4 a bare `dax` and nothing when DAX is off (written from that kernel's
    /// show_options; see the fixture's README).
    #[test]
    fn dax_in_mountinfo_before_and_after_5_8() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/kernel-5.4/mountinfo-dax.txt");
        let text = std::fs::read_to_string(p).expect("fixture");
        let old =
            parse_mountinfo(&text, "5.4", DaxSyntax::of(Some("5.4.0-150-generic"))).expect("parse");
        let dax = |m: &[Mount], t: &str| m.iter().find(|m| m.target == t).map(|m| m.dax);
        assert_eq!(old.len(), 5, "/, /mnt/e, /mnt/x, /mnt/n, /mnt/y");
        for (target, want, what) in [
            ("/mnt/e", DaxMode::Always, "ext4 -o dax"),
            ("/mnt/x", DaxMode::Always, "xfs -o dax"),
            ("/mnt/n", DaxMode::Never, "ext4 without dax"),
            ("/mnt/y", DaxMode::Never, "xfs without dax"),
        ] {
            assert_eq!(dax(&old, target), Some(Some(want)), "{what}");
        }
        let e = old.iter().find(|m| m.target == "/mnt/e").expect("/mnt/e");
        assert_eq!(e.options, ["relatime", "rw", "dax", "stripe=512"]);
        // the 6.1 capture of the same ext4 and xfs mounts
        let new = parse_mountinfo(
            &fixture("mountinfo-dax.txt"),
            "6.1",
            DaxSyntax::of(Some("6.1.0-56-amd64")),
        )
        .expect("parse");
        assert_eq!(dax(&new, "/mnt/e"), Some(Some(DaxMode::Always)));
        assert_eq!(dax(&new, "/mnt/x"), Some(Some(DaxMode::Always)));
        // 5.8 and later: no dax option is the default, not shown (taken as never, as before)
        let plain = "70 25 259:4 / /mnt/n rw,relatime - ext4 /dev/pmem2 rw\n";
        let m = parse_mountinfo(plain, "6.x", DaxSyntax::Modes).expect("parse");
        assert_eq!(m[0].dax, None);
        let m = parse_mountinfo(plain, "5.4", DaxSyntax::Flag).expect("parse");
        assert_eq!(m[0].dax, Some(DaxMode::Never));
    }

    #[test]
    fn options_split_into_flags_and_data() {
        let o: Vec<String> = ["dax=always", "noatime,nodev", "ro", "stripe=512", "rw"]
            .map(String::from)
            .to_vec();
        let (flags, data) = split_options(&o);
        assert_eq!(flags, MsFlags::MS_NOATIME | MsFlags::MS_NODEV);
        assert_eq!(data.as_deref(), Some("dax=always,stripe=512"));
        let (flags, data) = split_options(&["defaults".to_string()]);
        assert_eq!((flags, data), (MsFlags::empty(), None));
    }

    #[test]
    fn mount_checks_before_acting() {
        let src = DevId {
            path: "/dev/null".into(),
            devno: Devno { major: 1, minor: 3 },
        };
        let e = mount(&src, "/nonexistent-pmem-stack-test", "xfs", &[]).expect_err("char dev");
        assert!(
            matches!(e, SystemError::Os { ref error, .. } if error.contains("not a block device"))
        );
        assert!(!Path::new("/nonexistent-pmem-stack-test").exists());
    }

    /// Real mount cycle, for the VM rig only (root, a scratch xfs on a DAX device):
    /// `PMEM_STACK_VM_DEV=/dev/pmemXpY PMEM_STACK_VM_MNT=/mnt/t <test binary> --ignored
    /// vm_mount_cycle`. Without the variables it does nothing.
    #[test]
    #[ignore = "needs root and a scratch xfs on a DAX device (VM rig)"]
    fn vm_mount_cycle() {
        let (Ok(dev), Ok(mnt)) = (
            std::env::var("PMEM_STACK_VM_DEV"),
            std::env::var("PMEM_STACK_VM_MNT"),
        ) else {
            return;
        };
        let rdev = std::fs::metadata(&dev).expect("stat").rdev();
        let devno = Devno {
            major: nix::sys::stat::major(rdev) as u32,
            minor: nix::sys::stat::minor(rdev) as u32,
        };
        let src = DevId {
            path: dev.clone(),
            devno,
        };
        let opts = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let live = || {
            probe(DaxSyntax::of(
                crate::system::real::platform::release().as_deref(),
            ))
            .expect("probe")
            .into_iter()
            .find(|m| m.target == mnt)
        };

        // a stale device number is refused before mount(2)
        let stale = DevId {
            path: dev.clone(),
            devno: Devno {
                major: devno.major,
                minor: devno.minor + 100,
            },
        };
        let e = mount(&stale, &mnt, "xfs", &[]).expect_err("stale devno");
        eprintln!("stale devno: {e}");

        mount(&src, &mnt, "xfs", &opts(&["dax=always", "noatime"])).expect("mount");
        let m = live().expect("mounted");
        eprintln!("mounted: {m:?}");
        assert_eq!((m.devno, m.dax), (devno, Some(DaxMode::Always)));
        assert!(m.options.iter().any(|o| o == "noatime"));
        assert_eq!(
            m.root_extsize,
            Some(Extsize {
                size: Bytes(0),
                inherit: false
            })
        );

        set_extsize(&mnt, Bytes(2 << 20)).expect("extsize");
        let m = live().expect("mounted");
        eprintln!("after extsize: {:?}", m.root_extsize);
        assert_eq!(
            m.root_extsize,
            Some(Extsize {
                size: Bytes(2 << 20),
                inherit: true
            })
        );

        remount(&mnt, &opts(&["noatime", "nodev"])).expect("remount");
        let m = live().expect("mounted");
        eprintln!("after remount: {:?}", m.options);
        assert!(m.options.iter().any(|o| o == "nodev"));
        assert_eq!(m.dax, Some(DaxMode::Always));

        std::fs::write(format!("{mnt}/file"), b"x").expect("write");
        let e = mount(&src, &format!("{mnt}/file"), "xfs", &[]).expect_err("not a dir");
        eprintln!("target is a file: {e}");
        std::fs::remove_file(format!("{mnt}/file")).expect("rm");

        umount(&mnt, false, "").expect("umount");
        assert!(live().is_none());
        let e = umount(&mnt, false, "").expect_err("not mounted");
        eprintln!("umount again: {e}");
    }

    #[test]
    fn fsxattr_layout() {
        assert_eq!(std::mem::size_of::<xattr::FsXattr>(), 28);
    }
}
