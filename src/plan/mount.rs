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

use super::filesystem::XFS_EXTSIZE;
use super::{block_device, Action, Ctx};
use crate::actual::Extsize;
use crate::args::validate::{DevRef, MountSpec};
use crate::args::{DaxMode, FsType};

pub(crate) fn plan(cx: &mut Ctx) {
    for (i, spec) in cx.d.mounts.iter().enumerate() {
        let spec = spec.clone();
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
                cx.refusals.push(format!(
                    "mounts[{i}]: no filesystem on {} to mount; declare one under filesystems",
                    spec.device
                ));
                continue;
            }
        };
        if spec.dax != DaxMode::Never {
            if let Some(why) = not_dax_now(cx, &spec.device, 0) {
                cx.refusals.push(format!(
                    "mounts[{i}]: dax={} needs a DAX-capable device, but {why}",
                    spec.dax.as_str()
                ));
                continue;
            }
        }
        let mounted = if cx.still_mounted(&spec.path) {
            cx.a.mount_at(&spec.path)
        } else {
            None
        };
        let Some(m) = mounted else {
            mount(cx, &spec, &fstype, "not mounted");
            continue;
        };
        let same = bd.is_some_and(|b| b.devno == m.devno) && !cx.new_fs.contains(&spec.device);
        if !same {
            if !cx.d.allow_data_loss {
                cx.refusals.push(format!(
                    "refusing to mount {} on {}: {} ({}) is mounted there. Set allow_data_loss: true to unmount it",
                    spec.device, spec.path, m.source, m.fstype
                ));
                continue;
            }
            cx.umount_first(
                &spec.path,
                &format!("{} is mounted there instead", m.source),
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

fn mount(cx: &mut Ctx, spec: &MountSpec, fstype: &str, why: &str) {
    let mut opts = vec![format!("dax={}", spec.dax.as_str())];
    opts.extend(spec.options.iter().cloned());
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
            "mount -t {fstype} -o {} {source} {} ({why}; the mount point is created if missing)",
            opts.join(","),
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
        DevRef::Path(p) => block_device(cx.d, cx.a, r)
            .filter(|b| !b.dax)
            .map(|_| format!("{p} reports queue/dax=0")),
        DevRef::Namespace(_) => None,
    }
}
