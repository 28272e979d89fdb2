//! Mount layer (live mounts; fstab belongs to boot persistence).
//!
//! | mounted at path | same device | dax matches | options present | allowed | steps |
//! |---|---|---|---|---|---|
//! | no (or unmounted by the teardown) | - | - | - | - | mount (+ extsize on xfs) |
//! | yes | no | - | - | yes / no | umount, mount / refuse (someone else's filesystem) |
//! | yes | yes | no | - | - | umount, mount (the kernel cannot change dax on remount) |
//! | yes | yes | yes | no | - | remount with the options |
//! | yes | yes | yes | yes | - | nothing (extsize checked on xfs) |
//!
//! With `dax` other than `never` the device must be DAX-capable: a device found with
//! `queue/dax` = 0 is refused before anything is done.
//!
//! The DAX option is spelled for the running kernel ([`DaxSyntax`], from the kernel
//! release in the probed platform facts): `dax=always|inode|never` from Linux 5.8, a bare
//! `dax` (always) or no option (never) before it, where `dax: inode` is refused (the
//! mode does not exist there). A snapshot without a kernel release keeps the 5.8 form.

use super::filesystem::XFS_EXTSIZE;
use super::{Action, Ctx, Layer, Refused, Resolved};
pub use crate::actual::kernel::mount_options;
use crate::actual::{DaxSyntax, Extsize};
use crate::args::validate::{DevRef, MountSpec};
use crate::args::{DaxMode, FsType};
use crate::bind::Bound;
use crate::op::Op;

pub(crate) fn plan(cx: &mut Ctx) {
    let syntax = cx.a.dax_syntax();
    for (i, spec) in cx.d.mounts.iter().enumerate() {
        let spec = spec.clone();
        if let Some(why) = no_such_mode(syntax, spec.dax, cx.a.kernel()) {
            cx.refusals
                .push(Refused::because(format!("mounts[{i}].dax: {why}")));
            continue;
        }
        let declared_fs =
            cx.d.filesystems
                .iter()
                .find(|f| f.device == spec.device)
                .map(|f| f.fstype.as_str().to_string());
        let bd = cx.current(&spec.device);
        let fstype = match (declared_fs, bd.and_then(|b| cx.a.filesystem(b.devno))) {
            (Some(t), _) => t,
            (None, Some(fs)) => fs.fstype.clone(),
            (None, None) => {
                cx.refusals.push(Refused::because(format!(
                    "mounts[{i}]: no filesystem on {} to mount; declare one under filesystems",
                    spec.device
                )));
                continue;
            }
        };
        if spec.dax != DaxMode::Never {
            if let Some(why) = not_dax_now(cx, &spec.device, 0) {
                cx.refusals.push(Refused::because(format!(
                    "mounts[{i}]: dax={} needs a DAX-capable device, but {why}",
                    spec.dax.as_str()
                )));
                continue;
            }
        }
        let mounted = if cx.still_mounted(&spec.path) {
            cx.b.mount_at(&spec.path)
        } else {
            None
        };
        let Some(m) = mounted else {
            mount(cx, &spec, &fstype, "not mounted");
            continue;
        };
        let same = bd.is_some_and(|b| b.devno == m.devno) && !cx.o.has_new_fs(&spec.device);
        if !same {
            if !cx.d.allow_data_loss {
                cx.refusals.push(
                    Refused::new(
                        format!("to mount {} on {}", spec.device, spec.path),
                        format!("{} ({}) is mounted there", m.source, m.fstype),
                    )
                    .allowed_to("unmount it"),
                );
                continue;
            }
            cx.umount_first(
                &spec.path,
                &format!("{} is mounted there instead", m.source),
                true,
            );
            mount(cx, &spec, &fstype, "replaces the other mount");
            continue;
        }
        let have = m.dax.unwrap_or(DaxMode::Never);
        if have != spec.dax {
            cx.umount_first(
                &spec.path,
                &format!(
                    "dax={} -> dax={}: the kernel cannot change dax on remount",
                    have.as_str(),
                    spec.dax.as_str()
                ),
                false,
            );
            mount(cx, &spec, &fstype, "to change dax");
            continue;
        }
        let missing: Vec<String> = spec
            .options
            .iter()
            .filter(|o| !m.options.contains(o))
            .cloned()
            .collect();
        if !missing.is_empty() {
            cx.step(
                Action::Remount {
                    path: spec.path.clone(),
                    options: spec.options.clone(),
                },
                format!("mount -o remount,{} {}", missing.join(","), spec.path),
                false,
            );
        }
        if wants_extsize(&fstype, spec.dax)
            && m.root_extsize
                != Some(Extsize {
                    size: XFS_EXTSIZE,
                    inherit: true,
                })
        {
            extsize(cx, &spec.path, m.root_extsize);
        }
    }
}

/// Why the running kernel cannot mount with `dax`, if it cannot (`inode` before 5.8).
fn no_such_mode(syntax: DaxSyntax, dax: DaxMode, kernel: Option<&str>) -> Option<String> {
    syntax.option(dax).err().map(|_| {
        format!(
            "{} does not exist on this kernel ({}): dax=always|inode|never came with Linux {}; before it a filesystem is mounted with DAX on every file (dax: always, mounted -o dax) or on none (dax: never)",
            dax.as_str(),
            kernel.unwrap_or("unknown release"),
            crate::actual::kernel::DAX_MODES_SINCE
        )
    })
}

fn mount(cx: &mut Ctx, spec: &MountSpec, fstype: &str, why: &str) {
    let opts = mount_options(cx.a.dax_syntax(), spec.dax, &spec.options);
    let dash_o = if opts.is_empty() {
        String::new()
    } else {
        format!("-o {} ", opts.join(","))
    };
    let source = cx
        .current(&spec.device)
        .map(|b| b.path.clone())
        .unwrap_or_else(|| spec.device.to_string());
    cx.step(
        Action::Mount {
            device: spec.device.clone(),
            path: spec.path.clone(),
            fstype: fstype.to_string(),
            dax: spec.dax,
            options: spec.options.clone(),
        },
        format!(
            "mount -t {fstype} {dash_o}{source} {} ({why}; the mount point is created if missing)",
            spec.path
        ),
        false,
    );
    if wants_extsize(fstype, spec.dax) {
        extsize(cx, &spec.path, None);
    }
}

fn wants_extsize(fstype: &str, dax: DaxMode) -> bool {
    fstype == FsType::Xfs.as_str() && dax != DaxMode::Never
}

fn extsize(cx: &mut Ctx, path: &str, now: Option<Extsize>) {
    let was = match now {
        Some(e) => format!(
            "now {}{}",
            e.size,
            if e.inherit { " inherited" } else { "" }
        ),
        None => "not set".into(),
    };
    cx.step(
        Action::SetExtsize { path: path.to_string(), size: XFS_EXTSIZE },
        format!("xfs extent size hint {XFS_EXTSIZE} (inherited) on the root of {path} ({was}), so files allocate 2 MiB extents"),
        false,
    );
}

/// Why the device under `r` cannot do DAX according to the kernel (`queue/dax` of the
/// devices that exist now), if so. Declared namespaces were checked by validation.
fn not_dax_now(cx: &Ctx, r: &DevRef, depth: usize) -> Option<String> {
    if depth > 16 {
        return None;
    }
    if let Some(bd) = cx.current(r) {
        if !bd.dax {
            return Some(format!("{} reports queue/dax=0", bd.path));
        }
        return None;
    }
    match r {
        DevRef::Device(n) => {
            cx.d.device(n)
                .and_then(|d| d.members.iter().find_map(|m| not_dax_now(cx, m, depth + 1)))
        }
        DevRef::Partition(n) => {
            cx.d.partition(n)
                .and_then(|p| not_dax_now(cx, &p.disk, depth + 1))
        }
        DevRef::Path(p) => {
            cx.b.block(r)
                .filter(|b| !b.dax)
                .map(|_| format!("{p} reports queue/dax=0"))
        }
        DevRef::Volume(vg, _) => {
            cx.d.volume_group(vg)
                .and_then(|g| g.pvs.iter().find_map(|m| not_dax_now(cx, m, depth + 1)))
        }
        DevRef::Namespace(_) => None,
    }
}

/// Apply time: a mount step as its op, with the options worked out by
/// [`mount_options`] (the one place, used by the plan's detail and the boot unit too).
///
/// | step | found now | outcome |
/// |---|---|---|
/// | mount | a DAX mode the running kernel has no option for | refuse |
/// | remount | - | the whole option set (MS_REMOUNT resets what it is not given), dax unchanged |
/// | umount | open files | lazy only with `allow_data_loss` and another device to mount in its place |
/// | umount elsewhere | no other namespace holds it any more | skip |
/// | set extsize | the inherited hint already set | skip |
pub(crate) fn resolve(action: &Action, bound: &Bound) -> Result<Resolved, Refused> {
    let (d, a) = (bound.desired(), bound.actual());
    let refused = |why: String| Refused::new(action.doing(), why);
    Ok(Resolved::Run(match action {
        Action::Mount {
            device,
            path,
            fstype,
            dax,
            options,
        } => {
            // the DAX option as the running kernel spells it (`dax=MODE` from 5.8, a bare
            // `dax` or nothing before); `dax=never` is given as such (from 5.8; before,
            // no dax option means never): without it, ext4 and xfs mount in the per-file
            // `inode` mode, where a file with the DAX flag still maps the media directly
            let syntax = a.dax_syntax();
            if let Some(why) = no_such_mode(syntax, *dax, a.kernel()) {
                return Err(refused(format!("{path}: {why}")));
            }
            Op::Mount {
                source: bound.dev_id(device).map_err(refused)?,
                target: path.clone(),
                fstype: fstype.clone(),
                options: mount_options(syntax, *dax, options),
            }
        }
        Action::Remount { path, options } => Op::Remount {
            target: path.clone(),
            // MS_REMOUNT resets what it is not given: pass the whole set, dax included
            // (unchanged, which the kernel accepts on remount), in the kernel's spelling
            options: match d.mounts.iter().find(|m| m.path == *path) {
                Some(m) => mount_options(a.dax_syntax(), m.dax, options),
                None => options.clone(),
            },
        },
        Action::Umount { path, detachable } => Op::Umount {
            target: path.clone(),
            lazy: d.allow_data_loss && *detachable,
            when_busy: if *detachable {
                "set allow_data_loss: true to detach it lazily: the old mount lives on until they are closed".into()
            } else {
                "close them first: a filesystem with open files stays alive when detached, holding its device (mounted again it would be shared, its dax= unchanged), so not even allow_data_loss detaches it for this".into()
            },
        },
        // our umount may have reached them already (a copy that is a slave or a peer of
        // ours goes with it)
        Action::UmountElsewhere { path, device } => {
            let copies: Vec<_> = a.copies_elsewhere(*device, path).cloned().collect();
            if copies.is_empty() {
                return Ok(Resolved::Skip(format!(
                    "no other mount namespace holds {path} any more"
                )));
            }
            Op::UmountElsewhere {
                target: path.clone(),
                devno: *device,
                copies,
                lazy: d.allow_data_loss,
            }
        }
        Action::SetExtsize { path, size } => {
            let want = Extsize {
                size: *size,
                inherit: true,
            };
            if a.mount_at(path).and_then(|m| m.root_extsize) == Some(want) {
                return Ok(Resolved::Skip(format!(
                    "{path} already has an inherited {size} extent size hint"
                )));
            }
            Op::SetExtsize {
                target: path.clone(),
                size: *size,
            }
        }
        _ => return Err(Refused::not_mine(action, Layer::Mount)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_in_both_forms() {
        let extra = v(&["noatime"]);
        let old = DaxSyntax::of(Some("5.4.0-150-generic"));
        let new = DaxSyntax::of(Some("6.1.0-27-amd64"));
        assert_eq!(
            mount_options(old, DaxMode::Always, &extra),
            v(&["dax", "noatime"])
        );
        assert_eq!(mount_options(old, DaxMode::Never, &extra), v(&["noatime"]));
        assert_eq!(mount_options(old, DaxMode::Never, &[]), v(&[]));
        assert_eq!(
            mount_options(new, DaxMode::Always, &extra),
            v(&["dax=always", "noatime"])
        );
        assert_eq!(mount_options(new, DaxMode::Inode, &[]), v(&["dax=inode"]));
        assert_eq!(mount_options(new, DaxMode::Never, &[]), v(&["dax=never"]));
        // a snapshot without a kernel release: the 5.8 form, as before
        assert_eq!(
            mount_options(DaxSyntax::of(None), DaxMode::Always, &[]),
            v(&["dax=always"])
        );
    }

    #[test]
    fn inode_is_refused_before_5_8_naming_the_kernel() {
        let old = DaxSyntax::of(Some("5.4.0-150-generic"));
        let why = no_such_mode(old, DaxMode::Inode, Some("5.4.0-150-generic")).expect("refused");
        assert!(why.starts_with("inode does not exist on this kernel (5.4.0-150-generic): dax=always|inode|never came with Linux 5.8"), "{why}");
        assert_eq!(no_such_mode(old, DaxMode::Always, Some("5.4.0")), None);
        assert_eq!(no_such_mode(old, DaxMode::Never, Some("5.4.0")), None);
        assert_eq!(
            no_such_mode(DaxSyntax::Modes, DaxMode::Inode, Some("5.8.0")),
            None
        );
        assert_eq!(no_such_mode(DaxSyntax::Modes, DaxMode::Inode, None), None);
    }
}
