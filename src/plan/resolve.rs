//! Apply-time resolution: a planned [`Action`] names objects symbolically; [`resolve`]
//! turns it into a concrete [`Op`] (device paths, numbers, full dm tables, argv)
//! against the state probed just before the step runs. Pure, so the real system and the
//! fake execute exactly the same operations.
//!
//! Guards for data that would move: a dm reload without `allow_data_loss` must keep every
//! live sector where it is (`reload_keeps_data`); a GPT entry is deleted with
//! `state: present` only with `allow_data_loss` (the planner re-makes an entry only
//! then); a partition mapping is made only over an entry that a declared partition of
//! that disk names.

use super::filesystem::mkfs_argv;
use super::partition::rest_of_disk;
use super::Action;
use crate::actual::dm::{build_table, table_text, TableLine, Target};
use crate::actual::{Actual, Devno};
use crate::args::validate::{Desired, DevRef};
use crate::args::{DaxMode, DmTarget, FsType, MapMode, NamespaceMode, State};
use crate::bind::{bind, Bound};
use crate::units::{Bytes, Sectors};
use serde::Serialize;

/// A device as an operation needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DevId {
    /// Path to open.
    pub path: String,
    /// Its number (to check we open what we think).
    pub devno: Devno,
}

/// A concrete operation on the system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// `ndctl create-namespace` (new, or `-f -e dev` in place).
    Namespace {
        /// Reconfigure this namespace in place (`-f -e`), or create a new one.
        reconfigure: Option<String>,
        /// Region.
        region: String,
        /// Name.
        name: String,
        /// Mode.
        mode: NamespaceMode,
        /// Size.
        size: Option<Bytes>,
        /// Align.
        align: Bytes,
        /// Map.
        map: MapMode,
    },
    /// Zero the ends of a namespace's block device and drop its uncleared marker.
    ClearNamespace {
        /// The namespace's name (its markers are dropped).
        name: String,
        /// Its block device.
        device: DevId,
    },
    /// `ndctl destroy-namespace -f`.
    DestroyNamespace {
        /// Kernel device.
        dev: String,
    },
    /// Create a dm device with a table and resume it.
    DmCreate {
        /// Name.
        name: String,
        /// Table.
        #[serde(serialize_with = "lines")]
        table: Vec<TableLine>,
    },
    /// Suspend, load, resume.
    DmReload {
        /// Name.
        name: String,
        /// Table.
        #[serde(serialize_with = "lines")]
        table: Vec<TableLine>,
    },
    /// Remove a dm device.
    DmRemove {
        /// Name.
        name: String,
    },
    /// Write a new empty GPT.
    GptCreate {
        /// Disk.
        disk: DevId,
    },
    /// Add a GPT entry and tell the kernel (or map it, on a dm disk, in a separate op).
    GptAdd {
        /// Disk.
        disk: DevId,
        /// Number.
        number: u32,
        /// Name.
        name: String,
        /// Start.
        start: Sectors,
        /// Size.
        size: Sectors,
        /// The disk is a dm device: do not ask the kernel to add a partition.
        dm_disk: bool,
    },
    /// Delete a GPT entry and tell the kernel.
    GptDelete {
        /// Disk.
        disk: DevId,
        /// Number.
        number: u32,
        /// The disk is a dm device.
        dm_disk: bool,
    },
    /// Run mkfs.
    Mkfs {
        /// Device.
        device: DevId,
        /// Type.
        fstype: FsType,
        /// Full argv.
        argv: Vec<String>,
    },
    /// mount(2).
    Mount {
        /// Source.
        source: DevId,
        /// Mount point.
        target: String,
        /// Filesystem type.
        fstype: String,
        /// Options including `dax=`.
        options: Vec<String>,
    },
    /// mount(2) with MS_REMOUNT.
    Remount {
        /// Mount point.
        target: String,
        /// Options.
        options: Vec<String>,
    },
    /// umount(2); lazy (MNT_DETACH) only when data loss is allowed.
    Umount {
        /// Mount point.
        target: String,
        /// Detach even while files are open.
        lazy: bool,
    },

    /// Write a file atomically (temp file, fsync, rename), or a symlink.
    WriteFile {
        /// Path on the machine.
        path: String,
        /// Content.
        content: crate::actual::FileContent,
        /// Permissions.
        mode: u32,
    },
    /// Remove a file or symlink.
    RemoveFile {
        /// Path on the machine.
        path: String,
    },
    /// `systemctl daemon-reload`, when systemd runs.
    DaemonReload,
    /// FS_IOC_FSSETXATTR on the root directory (extsize + EXTSZINHERIT).
    SetExtsize {
        /// Mount point.
        target: String,
        /// Size.
        size: Bytes,
    },
}

fn lines<S: serde::Serializer>(t: &[TableLine], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(t.iter().map(ToString::to_string))
}

impl Op {
    /// The external command this op runs, if it runs one.
    pub fn argv(&self) -> Option<Vec<String>> {
        match self {
            Op::Namespace {
                reconfigure,
                region,
                name,
                mode,
                size,
                align,
                map,
            } => Some(ndctl_create_argv(
                reconfigure.as_deref(),
                region,
                name,
                *mode,
                *size,
                *align,
                *map,
            )),
            Op::DestroyNamespace { dev } => Some(
                ["ndctl", "destroy-namespace", "-f", dev.as_str()]
                    .map(String::from)
                    .to_vec(),
            ),
            Op::Mkfs { argv, .. } => Some(argv.clone()),
            Op::DaemonReload => Some(vec!["systemctl".into(), "daemon-reload".into()]),
            _ => None,
        }
    }
}

/// `ndctl create-namespace` argv: in place (`-f -e DEV`) or new (`-r REGION`).
pub fn ndctl_create_argv(
    reconfigure: Option<&str>,
    region: &str,
    name: &str,
    mode: NamespaceMode,
    size: Option<Bytes>,
    align: Bytes,
    map: MapMode,
) -> Vec<String> {
    let mut v: Vec<String> = vec!["ndctl".into(), "create-namespace".into()];
    match reconfigure {
        Some(dev) => v.extend(["-f".to_string(), "-e".to_string(), dev.to_string()]),
        None => v.extend(["-r".to_string(), region.to_string()]),
    }
    v.extend([
        "-m".to_string(),
        mode.as_str().to_string(),
        "-n".to_string(),
        name.to_string(),
    ]);
    if let Some(s) = size {
        v.extend(["-s".to_string(), s.0.to_string()]);
    }
    if matches!(mode, NamespaceMode::Fsdax | NamespaceMode::Devdax) {
        v.extend([
            "-a".to_string(),
            align.to_string(),
            "-M".to_string(),
            map.as_str().to_string(),
        ]);
    }
    v
}

/// What a step comes to when it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Do this.
    Run(Op),
    /// Nothing to do after all (a conditional step whose condition is not met), and why.
    Skip(String),
}

/// Resolve a planned action against the state probed just before it runs.
pub fn resolve(action: &Action, d: &Desired, a: &Actual) -> Result<Resolved, String> {
    let bound = bind(d, a);
    // a step that depends on what a device holds never runs over one whose content the
    // probe could not read (unknown is not blank)
    let content_of = match action {
        Action::Mkfs { device, .. } | Action::Mount { device, .. } => Some(device),
        Action::CreateGpt { disk, .. }
        | Action::AddPartition { disk, .. }
        | Action::DeletePartition { disk, .. }
        | Action::MapPartition { disk, .. } => Some(disk),
        _ => None,
    };
    if let Some(u) = content_of
        .and_then(|r| bound.block(r))
        .and_then(|b| a.unreadable(b.devno))
    {
        return Err(format!(
            "{} could not be read: {}; what it holds is unknown",
            u.path, u.error
        ));
    }
    // conditional steps: decided on what the device holds now
    match action {
        Action::Mkfs {
            device,
            fstype,
            label,
            extra,
            stripes,
            if_blank: true,
            ..
        } => {
            let b = bound
                .block(device)
                .ok_or_else(|| format!("{device} does not exist"))?;
            if let Some(fs) = a.filesystem(b.devno) {
                // what this mkfs would make: only that very filesystem counts as found
                let expected = super::filesystem::expected_geometry(*fstype, extra, *stripes);
                let same = fs.fstype == fstype.as_str()
                    && super::filesystem::geometry_problems(*fstype, expected, fs).is_empty()
                    && fs.size.is_none_or(|s| s <= b.size.bytes());
                if same {
                    return Ok(Resolved::Skip(format!(
                        "{} already holds {} with this geometry (built over existing data)",
                        b.path, fs.fstype
                    )));
                }
                if !d.allow_data_loss {
                    return Err(format!(
                        "{} turned out to hold {} (other geometry or size) once it appeared; not making {fstype} over it (set allow_data_loss: true and run again to replace it)",
                        b.path, fs.fstype
                    ));
                }
                let argv = mkfs_argv(*fstype, &b.path, label.as_deref(), extra, *stripes, true);
                return Ok(Resolved::Run(Op::Mkfs {
                    device: DevId {
                        path: b.path.clone(),
                        devno: b.devno,
                    },
                    fstype: *fstype,
                    argv,
                }));
            }
            if a.gpt(b.devno).is_some() {
                return Err(format!(
                    "{} turned out to hold a partition table once it appeared; not making {fstype} over it",
                    b.path
                ));
            }
        }
        Action::CreateGpt {
            disk,
            if_blank: true,
        } => {
            let b = bound
                .block(disk)
                .ok_or_else(|| format!("{disk} does not exist"))?;
            if a.gpt(b.devno).is_some() {
                return Ok(Resolved::Skip(format!(
                    "{} already has a GPT (built over existing data)",
                    b.path
                )));
            }
            if let Some(fs) = a.filesystem(b.devno) {
                return Err(format!(
                    "{} turned out to hold {} once it appeared; not writing a GPT over it",
                    b.path, fs.fstype
                ));
            }
        }
        Action::AddPartition {
            disk,
            name,
            start,
            size,
            if_missing: true,
            ..
        } => {
            let b = bound
                .block(disk)
                .ok_or_else(|| format!("{disk} does not exist"))?;
            if let Some(e) = a
                .gpt(b.devno)
                .and_then(|t| t.partitions.iter().find(|p| p.name == *name))
            {
                let t = a.gpt(b.devno).map(|t| t.last_usable).unwrap_or_default();
                let want = size.unwrap_or_else(|| rest_of_disk(t, *start));
                if e.start == *start && e.size == want {
                    return Ok(Resolved::Skip(format!(
                        "{} already has partition {name}",
                        b.path
                    )));
                }
                return Err(format!(
                    "{} already has a partition {name} with other geometry (start {} size {})",
                    b.path, e.start, e.size
                ));
            }
        }
        Action::SetExtsize { path, size }
            if a.mount_at(path).and_then(|m| m.root_extsize)
                == Some(crate::actual::Extsize {
                    size: *size,
                    inherit: true,
                }) =>
        {
            return Ok(Resolved::Skip(format!(
                "{path} already has an inherited {size} extent size hint"
            )));
        }
        _ => {}
    }
    resolve_op(action, &bound).map(Resolved::Run)
}

/// The guard on a reload without `allow_data_loss`: the planner only plans one that keeps
/// the data, but the table is built from the members as they are when the step runs; if
/// that table would move the data already on the device (a member was remade or resized
/// since), refuse rather than scramble it.
fn reload_keeps_data(
    a: &Actual,
    name: &str,
    target: DmTarget,
    chunk: Sectors,
    table: &[TableLine],
) -> Result<(), String> {
    let Some(dm) = a.dm(name) else {
        // nothing there to move (the load itself will say the device is missing)
        return Ok(());
    };
    let wanted = super::dm::Wanted {
        target,
        chunk,
        members: table
            .iter()
            .flat_map(|l| l.members())
            .map(super::dm::Member::Dev)
            .collect(),
        mapped: table.to_vec(),
        complete: true,
    };
    let effect = match dm.table.lines() {
        Ok(live) => super::dm::reload_effect(live, &wanted, &|m| super::dm::member_name(a, m)),
        Err(e) => super::dm::Reload::Moves {
            reasons: vec![format!("its live table cannot be read: {e}")],
            cuts_only: false,
        },
    };
    match effect {
        super::dm::Reload::Keeps => Ok(()),
        super::dm::Reload::Moves { reasons, cuts_only } => Err(format!(
            "refusing to reload dm device {name} (now {}; built now from its members: {}): {}; the plan expected a reload that keeps the data, but the members changed before this step. Set allow_data_loss: true to allow it",
            dm.table.text().join(" / "),
            table_text(table).join(" / "),
            super::dm::moves_phrase(&reasons, cuts_only)
        )),
    }
}

fn resolve_op(action: &Action, bound: &Bound) -> Result<Op, String> {
    let (d, a) = (bound.desired(), bound.actual());
    let dev = |r: &DevRef| -> Result<DevId, String> {
        bound
            .block(r)
            .map(|b| DevId {
                path: b.path.clone(),
                devno: b.devno,
            })
            .ok_or_else(|| format!("{r} does not exist"))
    };
    let is_dm = |r: &DevRef| -> bool {
        matches!(r, DevRef::Device(_))
            || bound
                .block(r)
                .is_some_and(|b| a.dm_by_devno(b.devno).is_some())
    };
    Ok(match action {
        Action::CreateNamespace {
            name,
            region,
            mode,
            size,
            align,
            map,
        } => Op::Namespace {
            reconfigure: None,
            region: region.clone(),
            name: name.clone(),
            mode: *mode,
            size: *size,
            align: *align,
            map: *map,
        },
        Action::ReconfigureNamespace {
            dev,
            name,
            mode,
            size,
            align,
            map,
        } => Op::Namespace {
            reconfigure: Some(dev.clone()),
            region: a
                .namespaces
                .iter()
                .find(|n| n.dev == *dev)
                .map(|n| n.region.clone())
                .unwrap_or_default(),
            name: name.clone(),
            mode: *mode,
            size: *size,
            align: *align,
            map: *map,
        },
        Action::DestroyNamespace { dev, .. } => Op::DestroyNamespace { dev: dev.clone() },
        Action::ClearNamespace { name, .. } => Op::ClearNamespace {
            name: name.clone(),
            device: dev(&DevRef::Namespace(name.clone()))?,
        },
        Action::CreateDm {
            name,
            target,
            members,
            chunk,
        }
        | Action::ReloadDm {
            name,
            target,
            members,
            chunk,
        } => {
            let mut sized = Vec::new();
            for m in members {
                let b = bound
                    .block(m)
                    .ok_or_else(|| format!("member {m} of {name} does not exist"))?;
                sized.push((b.devno, b.size));
            }
            let table = build_table(*target, *chunk, &sized).ok_or_else(|| {
                format!("{name}: a member is smaller than one chunk ({chunk} sectors)")
            })?;
            if matches!(action, Action::CreateDm { .. }) {
                Op::DmCreate {
                    name: name.clone(),
                    table,
                }
            } else {
                if !d.allow_data_loss {
                    reload_keeps_data(a, name, *target, *chunk, &table)?;
                }
                Op::DmReload {
                    name: name.clone(),
                    table,
                }
            }
        }
        Action::RemoveDm { name } => Op::DmRemove { name: name.clone() },
        Action::CreateGpt { disk, .. } => Op::GptCreate { disk: dev(disk)? },
        Action::AddPartition {
            disk,
            number,
            name,
            start,
            size,
            ..
        } => {
            let disk_id = dev(disk)?;
            let size = match size {
                Some(s) => *s,
                None => {
                    let t = a
                        .gpt(disk_id.devno)
                        .ok_or_else(|| format!("{disk} has no GPT"))?;
                    rest_of_disk(t.last_usable, *start)
                }
            };
            Op::GptAdd {
                dm_disk: is_dm(disk),
                disk: disk_id,
                number: *number,
                name: name.clone(),
                start: *start,
                size,
            }
        }
        Action::DeletePartition { disk, number } => {
            // the planner deletes an entry only to re-make it with allow_data_loss, or
            // for `state: absent`; anything else would drop the data on it
            if d.state == State::Present && !d.allow_data_loss {
                return Err(format!(
                    "refusing to delete partition {number} of {disk} while the arguments declare it present: that moves or drops the data on it. Set allow_data_loss: true to allow it"
                ));
            }
            Op::GptDelete {
                dm_disk: is_dm(disk),
                disk: dev(disk)?,
                number: *number,
            }
        }
        Action::MapPartition {
            disk,
            number,
            dm_name,
        } => {
            let disk_id = dev(disk)?;
            let e = a
                .gpt(disk_id.devno)
                .and_then(|t| t.partitions.iter().find(|p| p.number == *number))
                .ok_or_else(|| format!("{disk} has no partition {number}"))?;
            // the planner maps a declared partition's entry; if entry `number` is now
            // another one, its data is not ours to expose under a declared name
            if !d
                .partitions
                .iter()
                .any(|p| p.disk == *disk && p.name == e.name)
            {
                return Err(format!(
                    "{disk} partition {number} is {:?}, which these arguments do not declare on it; not mapping it as {dm_name}",
                    e.name
                ));
            }
            Op::DmCreate {
                name: dm_name.clone(),
                table: vec![TableLine {
                    start: Sectors(0),
                    length: e.size,
                    target: Target::Linear {
                        dev: disk_id.devno,
                        offset: e.start,
                    },
                }],
            }
        }
        Action::Mkfs {
            device,
            fstype,
            label,
            extra,
            stripes,
            force,
            ..
        } => {
            let id = dev(device)?;
            Op::Mkfs {
                argv: mkfs_argv(*fstype, &id.path, label.as_deref(), extra, *stripes, *force),
                device: id,
                fstype: *fstype,
            }
        }
        Action::Mount {
            device,
            path,
            fstype,
            dax,
            options,
        } => {
            // the DAX option as the running kernel spells it (`dax=MODE` from 5.8, a bare
            // `dax` or nothing before)
            let syntax = a.dax_syntax();
            if let Some(why) = super::mount::no_such_mode(syntax, *dax, a.kernel()) {
                return Err(format!("{path}: {why}"));
            }
            let opts = if *dax == DaxMode::Never && fstype == "xfs" {
                // xfs before 5.8 knew no dax=never; it is the default anyway
                options.clone()
            } else {
                super::mount::mount_options(syntax, *dax, options)
            };
            Op::Mount {
                source: dev(device)?,
                target: path.clone(),
                fstype: fstype.clone(),
                options: opts,
            }
        }
        Action::Remount { path, options } => {
            // MS_REMOUNT resets what it is not given: pass the whole set, dax included
            // (unchanged, which the kernel accepts on remount), in the kernel's spelling
            let full = match d.mounts.iter().find(|m| m.path == *path) {
                Some(m) => super::mount::mount_options(a.dax_syntax(), m.dax, options),
                None => options.clone(),
            };
            Op::Remount {
                target: path.clone(),
                options: full,
            }
        }
        Action::Umount { path } => Op::Umount {
            target: path.clone(),
            lazy: d.allow_data_loss,
        },
        Action::WriteFile { path, kind, mode } => Op::WriteFile {
            path: path.clone(),
            content: crate::boot::content_of(kind, bound)
                .ok_or_else(|| format!("{path}: the device it names does not exist yet"))?,
            mode: *mode,
        },
        Action::RemoveFile { path } => Op::RemoveFile { path: path.clone() },
        Action::DaemonReload => Op::DaemonReload,
        Action::SetExtsize { path, size } => Op::SetExtsize {
            target: path.clone(),
            size: *size,
        },
    })
}
