//! Apply-time resolution: a planned [`Action`] names objects symbolically; [`resolve`]
//! turns it into a concrete [`Op`] (device paths, numbers, full dm tables, typed mkfs
//! geometry) against the state probed just before the step runs. Pure, so the real
//! system and the fake execute exactly the same operations.
//!
//! Every guard is decided here, once, with a typed outcome: run the op, skip the step
//! ([`Resolved::Skip`], a conditional step whose condition is not met), or refuse it
//! ([`Refused`], which the run reports as a refusal). The guards:
//! - a step that depends on what a device holds never runs over one the probe could not
//!   read (unknown is not blank);
//! - conditional steps (`if_blank`, `if_missing`: planned over content that was unknown
//!   then) are decided on what the device holds now;
//! - data that would move: a dm reload without `allow_data_loss` must keep every live
//!   sector where it is (`reload_keeps_data`); a GPT entry is deleted with
//!   `state: present` only with `allow_data_loss` (the planner re-makes an entry only
//!   then); a partition mapping is made only over an entry that a declared partition of
//!   that disk names.

use crate::actual::dm::{build_table, striped_chunk_kb, table_text, TableLine, Target};
use crate::actual::{Actual, BlockDevice};
use crate::args::validate::{Desired, DevRef};
use crate::args::{DmTarget, MapMode, NamespaceMode, State};
use crate::bind::{bind, Bound};
use crate::plan::filesystem::dax_geometry;
use crate::plan::{rest_of_disk, Action, Refused};
use crate::system::{DevId, GptEntry, NamespaceConfig, Op};
use crate::units::{Bytes, Sectors};

/// What a step comes to when it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Do this.
    Run(Op),
    /// Nothing to do after all (a conditional step whose condition is not met), and why.
    Skip(String),
}

/// What `action` does, as a refusal names it.
fn doing(action: &Action) -> String {
    match action {
        Action::CreateNamespace { name, region, .. } => {
            format!("making namespace {name} in {region}")
        }
        Action::ReconfigureNamespace { dev, name, .. } => {
            format!("making namespace {name} ({dev}) again")
        }
        Action::ClearNamespace { name, dev } => format!("clearing namespace {name} ({dev})"),
        Action::RecordName { name, dev, .. } => format!("recording the name {name} of {dev}"),
        Action::ForgetName { name } => format!("forgetting the name {name}"),
        Action::DestroyNamespace { dev, name } => {
            format!("destroying namespace {name} ({dev})")
        }
        Action::CreateDm { name, .. } => format!("making dm device {name}"),
        Action::ReloadDm { name, .. } => format!("reloading dm device {name}"),
        Action::RemoveDm { name } => format!("removing dm device {name}"),
        Action::CreateGpt { disk, .. } => format!("writing a GPT on {disk}"),
        Action::AddPartition {
            disk, number, name, ..
        } => format!("adding partition {number} ({name}) to {disk}"),
        Action::DeletePartition { disk, number } => {
            format!("deleting partition {number} of {disk}")
        }
        Action::MapPartition {
            disk,
            number,
            dm_name,
        } => format!("mapping partition {number} of {disk} as {dm_name}"),
        Action::Mkfs { device, fstype, .. } => format!("making {fstype} on {device}"),
        Action::Mount { device, path, .. } => format!("mounting {device} on {path}"),
        Action::Remount { path, .. } => format!("remounting {path}"),
        Action::Umount { path, .. } => format!("unmounting {path}"),
        Action::UmountElsewhere { path, .. } => {
            format!("unmounting {path} in the other mount namespaces")
        }
        Action::SetExtsize { path, .. } => format!("setting the extent size hint on {path}"),
        Action::WriteFile { path, .. } => format!("writing {path}"),
        Action::RemoveFile { path } => format!("removing {path}"),
        Action::DaemonReload => "reloading systemd".into(),
    }
}

/// Resolve a planned action against the state probed just before it runs.
pub fn resolve(action: &Action, d: &Desired, a: &Actual) -> Result<Resolved, Refused> {
    let bound = bind(d, a);
    match guard(action, &bound)? {
        Some(why) => Ok(Resolved::Skip(why)),
        None => resolve_op(action, &bound).map(Resolved::Run),
    }
}

/// The block device `r` leads to now, or why there is none.
fn existing<'a>(bound: &Bound<'a>, r: &DevRef) -> Result<&'a BlockDevice, String> {
    bound.block(r).ok_or_else(|| format!("{r} does not exist"))
}

/// The guards on what a device holds now: `Ok(Some(why))` skips the step, `Err` refuses
/// it, `Ok(None)` lets it run.
fn guard(action: &Action, bound: &Bound) -> Result<Option<String>, Refused> {
    let (d, a) = (bound.desired(), bound.actual());
    let refused = |reason: String| Refused::new(doing(action), reason);
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
        return Err(refused(format!(
            "{} could not be read: {}; what it holds is unknown",
            u.path, u.error
        )));
    }
    // a filesystem mkfs.xfs cannot make on the device as it came out (the planner
    // judged an upper bound of its size): refused before mkfs prints its usage text
    if let Action::Mkfs {
        device,
        fstype,
        extra,
        stripes,
        ..
    } = action
    {
        if let Some(b) = bound.block(device) {
            let geometry = dax_geometry(*fstype, extra, *stripes);
            if let Some(why) = crate::geometry::xfs_cannot_fit(b.size.bytes(), &geometry, extra) {
                return Err(refused(why));
            }
        }
    }
    // conditional steps: decided on what the device holds now
    match action {
        Action::Mkfs {
            device,
            fstype,
            extra,
            stripes,
            if_blank: true,
            ..
        } => {
            let b = existing(bound, device).map_err(refused)?;
            if let Some(fs) = a.filesystem(b.devno) {
                // what this mkfs would make: only that very filesystem counts as found
                let expected = crate::plan::filesystem::expected_geometry(*fstype, extra, *stripes);
                let same = fs.fstype == fstype.as_str()
                    && crate::plan::filesystem::geometry_problems(*fstype, expected, fs).is_empty()
                    && fs.size.is_none_or(|s| s <= b.size.bytes());
                if same {
                    return Ok(Some(format!(
                        "{} already holds {} with this geometry (built over existing data)",
                        b.path, fs.fstype
                    )));
                }
                // with allow_data_loss it is made over the other one (forced)
                return if d.allow_data_loss {
                    Ok(None)
                } else {
                    Err(Refused::losing_data(
                        doing(action),
                        format!(
                            "{} turned out to hold {} (other geometry or size) once it appeared",
                            b.path, fs.fstype
                        ),
                    ))
                };
            }
            if a.gpt(b.devno).is_some() {
                return Err(refused(format!(
                    "{} turned out to hold a partition table once it appeared",
                    b.path
                )));
            }
        }
        Action::CreateGpt {
            disk,
            if_blank: true,
        } => {
            let b = existing(bound, disk).map_err(refused)?;
            if a.gpt(b.devno).is_some() {
                return Ok(Some(format!(
                    "{} already has a GPT (built over existing data)",
                    b.path
                )));
            }
            if let Some(fs) = a.filesystem(b.devno) {
                return Err(refused(format!(
                    "{} turned out to hold {} once it appeared",
                    b.path, fs.fstype
                )));
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
            let b = existing(bound, disk).map_err(refused)?;
            if let Some(e) = a
                .gpt(b.devno)
                .and_then(|t| t.partitions.iter().find(|p| p.name == *name))
            {
                let t = a.gpt(b.devno).map(|t| t.last_usable).unwrap_or_default();
                let want = size.unwrap_or_else(|| rest_of_disk(t, *start));
                if e.start == *start && e.size == want {
                    return Ok(Some(format!("{} already has partition {name}", b.path)));
                }
                return Err(refused(format!(
                    "{} already has a partition {name} with other geometry (start {} size {})",
                    b.path, e.start, e.size
                )));
            }
        }
        // our umount may have reached them already (a copy that is a slave or a peer
        // of ours goes with it)
        Action::UmountElsewhere { path, device }
            if a.copies_elsewhere(*device, path).next().is_none() =>
        {
            return Ok(Some(format!(
                "no other mount namespace holds {path} any more"
            )));
        }
        Action::SetExtsize { path, size }
            if a.mount_at(path).and_then(|m| m.root_extsize)
                == Some(crate::actual::Extsize {
                    size: *size,
                    inherit: true,
                }) =>
        {
            return Ok(Some(format!(
                "{path} already has an inherited {size} extent size hint"
            )));
        }
        _ => {}
    }
    Ok(None)
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
) -> Result<(), Refused> {
    let Some(dm) = a.dm(name) else {
        // nothing there to move (the load itself will say the device is missing)
        return Ok(());
    };
    let wanted = crate::plan::dm::Wanted {
        target,
        chunk,
        members: table
            .iter()
            .flat_map(|l| l.members())
            .map(crate::plan::dm::Member::Dev)
            .collect(),
        mapped: table.to_vec(),
        complete: true,
    };
    let effect = match dm.table.lines() {
        Ok(live) => {
            crate::plan::dm::reload_effect(live, &wanted, &|m| crate::plan::dm::member_name(a, m))
        }
        Err(e) => crate::plan::dm::Reload::Moves {
            reasons: vec![format!("its live table cannot be read: {e}")],
            cuts_only: false,
        },
    };
    match effect {
        crate::plan::dm::Reload::Keeps => Ok(()),
        crate::plan::dm::Reload::Moves { reasons, cuts_only } => Err(Refused::losing_data(
            format!(
                "to reload dm device {name} (now {}; built now from its members: {})",
                dm.table.text().join(" / "),
                table_text(table).join(" / "),
            ),
            format!(
                "{}; the plan expected a reload that keeps the data, but the members changed before this step",
                crate::plan::dm::moves_phrase(&reasons, cuts_only)
            ),
        )),
    }
}

/// What a namespace step makes.
fn namespace_config(
    name: &str,
    mode: NamespaceMode,
    size: Option<Bytes>,
    align: Bytes,
    map: MapMode,
) -> NamespaceConfig {
    NamespaceConfig {
        name: name.to_string(),
        mode,
        size,
        align,
        map,
    }
}

fn resolve_op(action: &Action, bound: &Bound) -> Result<Op, Refused> {
    let (d, a) = (bound.desired(), bound.actual());
    let refused = |reason: String| Refused::new(doing(action), reason);
    let dev = |r: &DevRef| -> Result<DevId, Refused> {
        existing(bound, r)
            .map(|b| DevId {
                path: b.path.clone(),
                devno: b.devno,
            })
            .map_err(refused)
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
        } => Op::CreateNamespace {
            region: region.clone(),
            config: namespace_config(name, *mode, *size, *align, *map),
        },
        Action::ReconfigureNamespace {
            dev,
            name,
            mode,
            size,
            align,
            map,
        } => Op::ReconfigureNamespace {
            dev: dev.clone(),
            config: namespace_config(name, *mode, *size, *align, *map),
        },
        Action::DestroyNamespace { dev, .. } => Op::DestroyNamespace { dev: dev.clone() },
        Action::RecordName { name, of, .. } => Op::RecordName {
            record: crate::actual::NameRecord {
                name: name.clone(),
                planned: false,
                of: of.clone(),
            },
        },
        Action::ForgetName { name } => Op::ForgetName { name: name.clone() },
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
                    .ok_or_else(|| refused(format!("member {m} of {name} does not exist")))?;
                sized.push((b.devno, b.size));
            }
            let table = build_table(*target, *chunk, &sized).ok_or_else(|| {
                refused(format!(
                    "{name}: a member is smaller than one chunk ({chunk} sectors)"
                ))
            })?;
            // dm-striped maps DAX only up to the device's largest I/O: one request
            // carries a whole chunk
            let max_sectors_kb = Some(striped_chunk_kb(&table)).filter(|k| *k != 0);
            if matches!(action, Action::CreateDm { .. }) {
                Op::DmCreate {
                    name: name.clone(),
                    table,
                    max_sectors_kb,
                }
            } else {
                if !d.allow_data_loss {
                    reload_keeps_data(a, name, *target, *chunk, &table)?;
                }
                Op::DmReload {
                    name: name.clone(),
                    table,
                    max_sectors_kb,
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
                        .ok_or_else(|| refused(format!("{disk} has no GPT")))?;
                    rest_of_disk(t.last_usable, *start)
                }
            };
            Op::GptAdd {
                dm_disk: is_dm(disk),
                disk: disk_id,
                entry: GptEntry {
                    number: *number,
                    name: name.clone(),
                    start: *start,
                    size,
                },
            }
        }
        Action::DeletePartition { disk, number } => {
            // the planner deletes an entry only to re-make it with allow_data_loss, or
            // for `state: absent`; anything else would drop the data on it
            if d.state == State::Present && !d.allow_data_loss {
                return Err(Refused::losing_data(
                    format!("to delete partition {number} of {disk} while the arguments declare it present"),
                    "that moves or drops the data on it",
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
                .ok_or_else(|| refused(format!("{disk} has no partition {number}")))?;
            // the planner maps a declared partition's entry; if entry `number` is now
            // another one, its data is not ours to expose under a declared name
            if !d
                .partitions
                .iter()
                .any(|p| p.disk == *disk && p.name == e.name)
            {
                return Err(refused(format!(
                    "{disk} partition {number} is {:?}, which these arguments do not declare on it; not mapping it as {dm_name}",
                    e.name
                )));
            }
            Op::DmCreate {
                name: dm_name.clone(),
                max_sectors_kb: None,
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
            if_blank,
        } => {
            let device = dev(device)?;
            // a conditional mkfs that runs over another filesystem (the guard let it, with
            // allow_data_loss) overwrites it
            let over = *if_blank && a.filesystem(device.devno).is_some();
            Op::Mkfs {
                geometry: dax_geometry(*fstype, extra, *stripes),
                fstype: *fstype,
                label: label.clone(),
                force: *force || over,
                extra: extra.clone(),
                device,
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
            if let Some(why) = crate::plan::mount::no_such_mode(syntax, *dax, a.kernel()) {
                return Err(refused(format!("{path}: {why}")));
            }
            // `dax=never` is given as such (from 5.8; before, no dax option means never):
            // without it, ext4 and xfs mount in the per-file `inode` mode, where a file
            // with the DAX flag still maps the media directly
            let opts = crate::plan::mount::mount_options(syntax, *dax, options);
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
                Some(m) => crate::plan::mount::mount_options(a.dax_syntax(), m.dax, options),
                None => options.clone(),
            };
            Op::Remount {
                target: path.clone(),
                options: full,
            }
        }
        Action::Umount { path, detachable } => Op::Umount {
            target: path.clone(),
            lazy: d.allow_data_loss && *detachable,
            when_busy: if *detachable {
                "set allow_data_loss: true to detach it lazily: the old mount lives on until they are closed".into()
            } else {
                "close them first: a filesystem with open files stays alive when detached, holding its device (mounted again it would be shared, its dax= unchanged), so not even allow_data_loss detaches it for this".into()
            },
        },
        Action::UmountElsewhere { path, device } => Op::UmountElsewhere {
            target: path.clone(),
            devno: *device,
            copies: a.copies_elsewhere(*device, path).cloned().collect(),
            lazy: d.allow_data_loss,
        },
        Action::WriteFile { path, kind, mode } => Op::WriteFile {
            path: path.clone(),
            content: crate::boot::content_of(kind, bound).ok_or_else(|| {
                refused(format!("{path}: the device it names does not exist yet"))
            })?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actual::Filesystem;
    use crate::system::fake::FakeSystem;
    use crate::units::Bytes;

    fn desired(args: serde_json::Value, allow_data_loss: bool) -> Desired {
        let input = crate::args::parse_input(&args.to_string())
            .map_err(|e| e.errors)
            .expect("parses");
        let mut d = crate::args::validate::validate(&input.args).expect("valid");
        d.allow_data_loss = allow_data_loss;
        d
    }

    fn blank_only_mkfs() -> Action {
        Action::Mkfs {
            device: DevRef::Namespace("pm0".into()),
            fstype: crate::args::FsType::Ext4,
            label: None,
            extra: vec![],
            stripes: 1,
            force: false,
            if_blank: true,
        }
    }

    #[test]
    fn a_refusal_names_the_step_and_allow_data_loss_only_when_data_is_the_reason() {
        let r = Refused::new("making ext4 on /dev/pmem0", "/dev/pmem0 does not exist");
        assert_eq!(
            r.to_string(),
            "refusing making ext4 on /dev/pmem0: /dev/pmem0 does not exist"
        );
        let r = Refused::losing_data(
            "to delete partition 1 of x",
            "that moves or drops the data on it",
        );
        assert_eq!(
            r.to_string(),
            "refusing to delete partition 1 of x: that moves or drops the data on it. Set allow_data_loss: true to allow it"
        );
    }

    /// A mkfs planned over content unknown then: decided on what the device holds when it
    /// runs, in one place, with a typed outcome.
    #[test]
    fn a_blank_only_mkfs_runs_skips_or_is_refused() {
        let args = serde_json::json!({
            "namespaces": [{"name": "pm0", "region": "region0", "mode": "fsdax"}],
            "filesystems": [{"device": "pm0", "type": "ext4"}]
        });
        let mut fake = FakeSystem::with_fsdax(1, Bytes(1 << 30));
        let d = desired(args.clone(), false);
        // blank: runs, not forced
        match resolve(&blank_only_mkfs(), &d, &fake.state) {
            Ok(Resolved::Run(Op::Mkfs { force, fstype, .. })) => {
                assert!(!force);
                assert_eq!(fstype, crate::args::FsType::Ext4);
            }
            other => panic!("{other:?}"),
        }
        // another filesystem turned up: refused for its data, unless data loss is allowed
        let pmem0 = fake.state.block_named("pmem0").expect("pmem0").clone();
        fake.state.filesystems.push(Filesystem {
            device: pmem0.devno,
            fstype: "xfs".into(),
            uuid: None,
            label: None,
            block_size: Some(Bytes(4096)),
            stripe_unit: Some(512),
            stripe_width: Some(512),
            reflink: Some(false),
            size: Some(Bytes(1 << 20)),
        });
        let r = resolve(&blank_only_mkfs(), &d, &fake.state).expect_err("refused");
        assert!(r.data_loss, "{r}");
        assert_eq!(r.what, "making ext4 on namespace pm0");
        assert!(
            r.to_string().starts_with(
                "refusing making ext4 on namespace pm0: /dev/pmem0 turned out to hold xfs (other geometry or size) once it appeared"
            ),
            "{r}"
        );
        let allowed = desired(args.clone(), true);
        assert!(matches!(
            resolve(&blank_only_mkfs(), &allowed, &fake.state),
            Ok(Resolved::Run(Op::Mkfs { force: true, .. }))
        ));
        // the very filesystem it would make: skipped
        fake.state.filesystems.last_mut().expect("fs").fstype = "ext4".into();
        fake.state.filesystems.last_mut().expect("fs").stripe_width = Some(0);
        assert!(matches!(
            resolve(&blank_only_mkfs(), &d, &fake.state),
            Ok(Resolved::Skip(why)) if why.contains("already holds ext4")
        ));
        // unreadable: refused, not for data loss
        fake.state.unreadable.push(crate::actual::Unreadable {
            device: pmem0.devno,
            path: pmem0.path.clone(),
            error: "Input/output error".into(),
        });
        let r = resolve(&blank_only_mkfs(), &allowed, &fake.state).expect_err("refused");
        assert!(!r.data_loss, "{r}");
        assert!(r.why.contains("what it holds is unknown"), "{r}");
    }
}
