//! The re-probe after a step: what an op can have changed ([`Touched`]) is read again,
//! the rest of the state before it is kept; and its check against a full probe
//! ([`CHECK_REPROBE`]).

use super::*;

impl RealSystem {
    /// The state after `op` ran on `prev`: what `op` can have changed is read again (see
    /// [`Touched`]), the rest of `prev` is kept: the regions it changed (and their
    /// namespaces), the dm devices it made, changed, opened or closed, the block devices
    /// it made, changed or stacked something on (and what came or went meanwhile), the
    /// mounts. A device's content is read again when `op` touched it or something it is
    /// stacked under, or when its listing (size, holders, partitions, links) or whether
    /// the scope reaches it changed; else its content in `prev` is kept.
    pub(super) fn probe_after_op(&mut self, op: &Op, prev: &Actual) -> Result<Actual, SystemError> {
        let mut t = touched(op, prev);
        t.files |= std::mem::take(&mut self.files_changed);
        if t.everything {
            return self.probe_all();
        }
        let mut a = prev.clone();
        if t.nd {
            // the regions sharing a DIMM with one the op changed, too
            let changed: BTreeSet<String> = t.regions.iter().cloned().collect();
            let regions = nd::affected(&self.seen.dimms, &changed);
            t.regions = regions.iter().cloned().collect();
            list_nd(
                &mut a,
                &self.sys,
                &self.record,
                &mut self.seen,
                Some(&regions),
            )?;
            // a namespace made, changed or destroyed brings or takes its dax device
            a.memory = self
                .record
                .part("memory", || ram::probe(&self.sys, &self.root));
        }
        if t.dm {
            let dirty = t.dm_dirty(prev);
            list_dm(&mut a, &self.record, Some(&dirty))?;
        }
        if t.mounts {
            list_mounts(&mut a, &self.record)?;
        }
        // the block listing follows the dm devices' names, numbers and tables (not their
        // open counts, which a mount changes)
        fn dm_moved(
            a: &Actual,
        ) -> Vec<(&String, crate::actual::Devno, &crate::actual::DmTable, bool)> {
            a.dm_devices
                .iter()
                .map(|d| (&d.name, d.devno, &d.table, d.suspended))
                .collect()
        }
        // a mount at a declared mount point brings its source into the listing's scope:
        // that changes the listing only for a device not listed anyway (PMEM and dm
        // devices always are, with their partitions)
        let scope_moved = || {
            let (now, was) = (
                scope_devnos(&self.scope, &a.mounts),
                scope_devnos(&self.scope, &prev.mounts),
            );
            now.iter()
                .filter(|d| !was.contains(d))
                .chain(was.iter().filter(|d| !now.contains(d)))
                .any(|d| {
                    !prev
                        .block(*d)
                        .is_some_and(|b| b.name.starts_with("pmem") || b.name.starts_with("dm-"))
                })
        };
        if t.nd
            || t.blocks
            || (t.dm && dm_moved(&a) != dm_moved(prev))
            || (t.mounts && scope_moved())
        {
            let dirty = t.blocks_dirty(prev, &a);
            let again = block::Again {
                prev: &prev.block_devices,
                dirty: &dirty,
            };
            list_blocks(
                &mut a,
                &self.sys,
                &self.dev,
                &self.scope,
                &self.record,
                &mut self.seen.blocks,
                Some(again),
            )?;
        }
        let reach = scope::reach(&self.scope, &a);
        let before = scope::reach(&self.scope, prev);
        // the other namespaces' copies follow our mounts (propagation), the devices
        // (gone, new) and the scope's reach
        if self.scope.elsewhere && (t.mounts || t.dm || t.nd || reach != before) {
            a.elsewhere = self.record.part("elsewhere", || {
                elsewhere::probe(a.dax_syntax(), &|d| reach.in_scope(d))
            })?;
        }
        let again = t.devices_in(&a);
        let contents = self.record.part("contents", || {
            let mut out = content::Contents::default();
            for b in &a.block_devices {
                let kept = !again.contains(&b.devno)
                    && prev.block_devices.iter().any(|p| p == b)
                    && reach.read.contains(&b.devno) == before.read.contains(&b.devno)
                    && !reach.blocked.contains_key(&b.devno)
                    && !before.blocked.contains_key(&b.devno)
                    && !prev.unreadable.iter().any(|u| u.device == b.devno);
                if kept {
                    out.partition_tables.extend(
                        prev.partition_tables
                            .iter()
                            .filter(|p| p.disk == b.devno)
                            .cloned(),
                    );
                    out.filesystems.extend(
                        prev.filesystems
                            .iter()
                            .filter(|f| f.device == b.devno)
                            .cloned(),
                    );
                    if let Some((pv, vg)) = content::kept_pv(prev, b.devno) {
                        out.pvs.push(pv);
                        out.vg_copies.extend(vg);
                    }
                } else {
                    let c = content::read(
                        std::slice::from_ref(b),
                        &reach,
                        &self.sys,
                        &content::open_device,
                    );
                    out.partition_tables.extend(c.partition_tables);
                    out.filesystems.extend(c.filesystems);
                    out.unreadable.extend(c.unreadable);
                    out.pvs.extend(c.pvs);
                    out.vg_copies.extend(c.vg_copies);
                }
            }
            out
        });
        a.partition_tables = contents.partition_tables;
        a.filesystems = contents.filesystems;
        a.unreadable = contents.unreadable;
        a.lvm = crate::actual::Lvm::assemble(contents.pvs, contents.vg_copies);
        if t.mounts || reach.read != before.read {
            // a mount's root is read when the scope reaches its device: read it for a
            // mount that is new, or whose device came into reach, or that the step
            // touched; keep it for the others
            let changed = |m: &crate::actual::Mount| {
                t.targets.contains(&m.target)
                    || reach.read.contains(&m.devno) != before.read.contains(&m.devno)
                    || !prev
                        .mounts
                        .iter()
                        .any(|p| p.target == m.target && p.devno == m.devno && p.fstype == m.fstype)
            };
            let mut fresh = Vec::new();
            for m in &mut a.mounts {
                if changed(m) {
                    m.root_extsize = None;
                    fresh.push(m.clone());
                } else {
                    m.root_extsize = prev
                        .mounts
                        .iter()
                        .find(|p| p.target == m.target && p.devno == m.devno)
                        .and_then(|p| p.root_extsize);
                }
            }
            if !fresh.is_empty() {
                self.record
                    .part("extsize", || mounts::read_extsize(&mut fresh, &reach));
                for f in fresh {
                    if let Some(m) = a
                        .mounts
                        .iter_mut()
                        .find(|m| m.target == f.target && m.devno == f.devno)
                    {
                        m.root_extsize = f.root_extsize;
                    }
                }
            }
        }
        if t.files {
            a.files = self.record.part("files", || files::probe(&self.root))?;
        }
        if t.uncleared || t.files {
            self.probe_markers(&mut a)?;
        }
        a.apply_name_records();
        Ok(a)
    }

    /// Compare `a`, the re-probe after `op`, with a full probe made now; a difference
    /// fails the run, naming the parts that differ.
    pub(super) fn compare_with_full_probe(
        &mut self,
        op: &Op,
        a: &Actual,
    ) -> Result<(), SystemError> {
        // timed apart: the check is not the run's own work
        let started = std::time::Instant::now();
        let scratch = self.record.scratch();
        let saved = std::mem::replace(&mut self.record, scratch);
        let full = self.probe_all();
        self.record = saved;
        self.record.reprobe_check(started);
        let full = full?;
        // udev's links may appear between the two probes, and udev's reads open a
        // device for a moment: neither is compared
        let unlinked = |a: &Actual| {
            let mut a = a.clone();
            a.block_devices.iter_mut().for_each(|b| b.aliases.clear());
            a.dm_devices.iter_mut().for_each(|d| d.open_count = 0);
            // which process of a namespace shows first can change between the two
            a.elsewhere.iter_mut().for_each(|m| {
                m.pid = 0;
                m.comm.clear();
            });
            a
        };
        let differ = differing_parts(&unlinked(a), &unlinked(&full));
        if !differ.is_empty() {
            return Err(SystemError::Probe {
                msg: format!(
                    "{CHECK_REPROBE}: the re-probe after {} differs from a full probe in {}",
                    op_name(op),
                    differ.join(", ")
                ),
            });
        }
        Ok(())
    }
}

/// What an op can have changed, for the re-probe after it (see
/// [`RealSystem::probe_after_op`]); what is not named is kept from the probe before.
#[derive(Debug, Default, PartialEq, Eq)]
struct Touched {
    /// Probe everything again.
    everything: bool,
    /// Regions and namespaces (and so the block devices).
    nd: bool,
    /// ... of these regions (and those sharing a DIMM with them).
    regions: Vec<String>,
    /// dm devices (and so the block devices, when a dm device came, went or changed its
    /// table: holders, new or gone dm disks); also their open counts.
    dm: bool,
    /// Block devices (partitions, links).
    blocks: bool,
    /// Mounts (and their extent size hints).
    mounts: bool,
    /// ... at these mount points (their extent size hint is read again).
    targets: Vec<String>,
    /// dm tables the op loaded: their members' holders change.
    tables: Vec<Vec<crate::actual::dm::TableLine>>,
    /// Boot files.
    files: bool,
    /// Uncleared-namespace markers.
    uncleared: bool,
    /// The op wrote to the devices it names (a GPT, a filesystem, zeroes): what they are
    /// stacked on holds those bytes too (a linear or striped member, a partition's
    /// disk), and its content is read again as well.
    writes: bool,
    /// Devices whose content is read again, by number.
    devices: Vec<crate::actual::Devno>,
    /// ... by kernel name: a disk whose partitions are read again too.
    disks: Vec<String>,
    /// ... the block devices of these namespaces (`namespaceX.Y`).
    namespaces: Vec<String>,
    /// ... the block devices of these dm devices (by dm name).
    dm_names: Vec<String>,
}

impl Touched {
    /// The dm devices of `s` the op names.
    fn named_dm<'a>(
        &'a self,
        s: &'a Actual,
    ) -> impl Iterator<Item = &'a crate::actual::DmDevice> + 'a {
        s.dm_devices
            .iter()
            .filter(|d| self.dm_names.contains(&d.name))
    }

    /// The members of the dm devices the op names, in each of `states`, and of the
    /// tables it loads.
    fn dm_members(&self, states: &[&Actual]) -> Vec<crate::actual::Devno> {
        states
            .iter()
            .flat_map(|s| self.named_dm(s))
            .flat_map(|d| d.table.lines().unwrap_or_default())
            .chain(self.tables.iter().flatten())
            .flat_map(|l| l.members())
            .collect()
    }

    /// The dm devices (by name) whose status the op can have changed: those it made,
    /// reloaded or removed and the dm devices among their members (held or let go),
    /// and those it opened or closed (a mount's source).
    fn dm_dirty(&self, prev: &Actual) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.dm_names.iter().cloned().collect();
        let mut members: Vec<crate::actual::Devno> = self.devices.clone();
        members.extend(self.dm_members(&[prev]));
        out.extend(
            prev.dm_devices
                .iter()
                .filter(|d| members.contains(&d.devno))
                .map(|d| d.name.clone()),
        );
        out
    }

    /// The block devices of `prev` (kernel names) whose listing the op can have changed
    /// (`a`: the namespaces and dm devices after it): the devices it names, the block
    /// devices of the namespaces of the regions it changed and of the dm devices it
    /// made, changed or removed, the members of those (their holders), and the
    /// partitions of all these. A device that is new or gone is found by the listing.
    fn blocks_dirty(&self, prev: &Actual, a: &Actual) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.disks.iter().cloned().collect();
        let mut devnos: Vec<crate::actual::Devno> = self.devices.clone();
        for s in [prev, a] {
            names.extend(
                s.namespaces
                    .iter()
                    .filter(|n| {
                        self.namespaces.contains(&n.dev) || self.regions.contains(&n.region)
                    })
                    .filter_map(|n| n.blockdev.clone()),
            );
            devnos.extend(self.named_dm(s).map(|d| d.devno));
        }
        devnos.extend(self.dm_members(&[prev, a]));
        names.extend(
            prev.block_devices
                .iter()
                .filter(|b| devnos.contains(&b.devno))
                .map(|b| b.name.clone()),
        );
        let parts: Vec<String> = prev
            .block_devices
            .iter()
            .filter(|b| {
                b.partition
                    .as_ref()
                    .is_some_and(|p| names.contains(&p.disk))
            })
            .map(|b| b.name.clone())
            .collect();
        names.extend(parts);
        names
    }

    /// The devices of `a` whose content must be read again: those named, what is
    /// stacked on them (holders, partitions), transitively, and when the op wrote to
    /// them, what they are stacked on (and what else is stacked on that).
    fn devices_in(&self, a: &Actual) -> std::collections::BTreeSet<crate::actual::Devno> {
        let named = a
            .block_devices
            .iter()
            .filter(|b| self.devices.contains(&b.devno) || self.disks.contains(&b.name))
            .map(|b| b.devno)
            .chain(
                a.namespaces
                    .iter()
                    .filter(|n| self.namespaces.contains(&n.dev))
                    .filter_map(|n| n.blockdev.as_deref())
                    .filter_map(|name| a.block_named(name))
                    .map(|b| b.devno),
            )
            .chain(
                a.dm_devices
                    .iter()
                    .filter(|d| self.dm_names.contains(&d.name))
                    .map(|d| d.devno),
            );
        let mut roots: std::collections::BTreeSet<_> = named.collect();
        if self.writes {
            let below: Vec<_> = roots
                .iter()
                .flat_map(|d| a.stack_below(*d))
                .map(|b| b.devno)
                .collect();
            roots.extend(below);
        }
        roots
            .iter()
            .flat_map(|d| a.stack_above(*d))
            .map(|b| b.devno)
            .collect()
    }
}

/// What `op` can have changed (`prev`: the state it ran on).
fn touched(op: &Op, prev: &Actual) -> Touched {
    let t = Touched::default();
    let disk = |d: &crate::system::DevId| {
        prev.block_devices
            .iter()
            .filter(|b| b.devno == d.devno)
            .map(|b| b.name.clone())
            .collect::<Vec<_>>()
    };
    // the region of namespace `dev`
    let region = |dev: &str| {
        prev.namespaces
            .iter()
            .find(|n| n.dev == dev)
            .map(|n| n.region.clone())
            .or_else(|| nd::region_of(dev))
            .into_iter()
            .collect::<Vec<_>>()
    };
    match op {
        // a new namespace is a new block device (read for being new); one reconfigured
        // in place keeps its name, so it is named
        Op::CreateNamespace { region, .. } => Touched {
            nd: true,
            regions: vec![region.clone()],
            uncleared: true,
            ..t
        },
        Op::ReconfigureNamespace { dev, .. } => Touched {
            nd: true,
            regions: region(dev),
            uncleared: true,
            namespaces: vec![dev.clone()],
            ..t
        },
        Op::DestroyNamespace { dev } => Touched {
            nd: true,
            regions: region(dev),
            uncleared: true,
            ..t
        },
        Op::RecordName { .. } | Op::ForgetName { .. } => Touched {
            uncleared: true,
            ..t
        },
        Op::ClearNamespace { device, .. } => Touched {
            uncleared: true,
            writes: true,
            devices: vec![device.devno],
            ..t
        },
        Op::DmCreate { name, table, .. } | Op::DmReload { name, table, .. } => Touched {
            dm: true,
            dm_names: vec![name.clone()],
            tables: vec![table.clone()],
            ..t
        },
        Op::DmRemove { name } => Touched {
            dm: true,
            dm_names: vec![name.clone()],
            ..t
        },
        Op::GptCreate { disk: d } | Op::GptAdd { disk: d, .. } | Op::GptDelete { disk: d, .. } => {
            Touched {
                blocks: true,
                writes: true,
                disks: disk(d),
                ..t
            }
        }
        // the filesystem's links (by-uuid, by-label) are listed with the device
        Op::Mkfs { device, .. } => Touched {
            blocks: true,
            writes: true,
            devices: vec![device.devno],
            ..t
        },
        // a mount opens its device: a dm device's open count changes
        Op::Mount { source, target, .. } => Touched {
            mounts: true,
            dm: true,
            targets: vec![target.clone()],
            devices: vec![source.devno],
            ..t
        },
        Op::UmountElsewhere { devno, target, .. } => Touched {
            mounts: true,
            dm: true,
            targets: vec![target.clone()],
            devices: vec![*devno],
            ..t
        },
        Op::Remount { target, .. } | Op::Umount { target, .. } | Op::SetExtsize { target, .. } => {
            Touched {
                mounts: true,
                dm: true,
                targets: vec![target.clone()],
                devices: prev
                    .mounts
                    .iter()
                    .filter(|m| m.target == *target)
                    .map(|m| m.devno)
                    .collect(),
                ..t
            }
        }
        // LVM writes PV labels and metadata, makes and removes dm devices (and udev
        // their links) as it sees fit: everything is read again
        Op::Lvm(_) => Touched {
            everything: true,
            ..t
        },
        // a CXL region brings or takes an NVDIMM region, its namespaces and their disks
        Op::CreateCxlRegion { .. } | Op::DestroyCxlRegion { .. } => Touched {
            everything: true,
            ..t
        },
        // memory blocks come and go, and the dax device's driver changes
        Op::DaxToSystemRam { .. }
        | Op::DaxOnlineMemory { .. }
        | Op::DaxToDevdax { .. }
        | Op::RestoreAutoOnline { .. } => Touched {
            everything: true,
            ..t
        },
        // the label gone: the device is read again (no VG listed it)
        Op::ZeroPvLabel { device } => Touched {
            writes: true,
            devices: vec![device.devno],
            ..t
        },
        // a queue limit is listed with the device
        Op::SetMaxSectors { device, .. } => Touched {
            blocks: true,
            disks: disk(device),
            ..t
        },
        Op::WriteFile { .. } | Op::RemoveFile { .. } | Op::DaemonReload => {
            Touched { files: true, ..t }
        }
    }
}

/// Set (to anything but empty or `0`) to have every re-probe after a step checked
/// against a full probe (always on in a debug build, and in one built with that variable
/// set): a difference fails the run, naming the parts that differ (a test aid; it costs
/// a full probe per step, counted in the result's `timing.reprobe_checks` and
/// `reprobe_check_ms`, not in its probes). The VM suites set it for every run
/// (tests/vm.rs), on the binary operators deploy. udev's links (`aliases`) and dm open
/// counts are not compared: udev alone can change them between the two probes.
pub const CHECK_REPROBE: &str = "PMEM_STACK_CHECK_REPROBE";

/// Whether re-probes are checked (see [`CHECK_REPROBE`]).
pub(super) fn check_reprobe() -> bool {
    let on = |v: &std::ffi::OsStr| !v.is_empty() && v != "0";
    cfg!(debug_assertions)
        || option_env!("PMEM_STACK_CHECK_REPROBE").is_some_and(|v| on(v.as_ref()))
        || std::env::var_os(CHECK_REPROBE).is_some_and(|v| on(&v))
}

/// The top-level parts (`namespaces`, `block_devices`, ...) in which `a` and `b` differ.
pub fn differing_parts(a: &Actual, b: &Actual) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(a), serde_json::to_value(b))
    else {
        return vec!["(not comparable)".into()];
    };
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| k.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On the captured "stack" tree (dm-0 striped over pmem0 and pmem1; a GPT on pmem1.1
    /// with pmem1.1p1): what a step touches is read again with everything stacked on it,
    /// and only that.
    #[test]
    fn a_step_touches_its_device_and_what_is_stacked_on_it() {
        let t = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sysfs-trees/stack");
        let (regions, namespaces) = nd::probe(&t.join("sys")).expect("nd");
        let a = Actual {
            regions,
            namespaces,
            block_devices: block::probe(&t.join("sys"), &t.join("dev"), &[]).expect("block"),
            ..Actual::default()
        };
        let named = |n: &str| a.block_named(n).expect(n).devno;
        let id = |n: &str| crate::system::DevId {
            path: format!("/dev/{n}"),
            devno: named(n),
        };
        let names = |op: &Op| {
            let got = touched(op, &a).devices_in(&a);
            let mut v: Vec<&str> = a
                .block_devices
                .iter()
                .filter(|b| got.contains(&b.devno))
                .map(|b| b.name.as_str())
                .collect();
            v.sort_unstable();
            v
        };
        // clearing a member: the dm device above it too
        let clear = Op::ClearNamespace {
            name: "pm0".into(),
            device: id("pmem0"),
        };
        assert_eq!(names(&clear), ["dm-0", "pmem0"]);
        assert!(touched(&clear, &a).uncleared && !touched(&clear, &a).nd);
        // a GPT write: the disk and its partitions
        let gpt = Op::GptCreate {
            disk: id("pmem1.1"),
        };
        assert_eq!(names(&gpt), ["pmem1.1", "pmem1.1p1"]);
        assert!(touched(&gpt, &a).blocks);
        // mkfs: that device only (and its links are listed again)
        let mkfs = |device: &str, fstype: crate::args::FsType| Op::Mkfs {
            device: id(device),
            geometry: match fstype {
                crate::args::FsType::Ext4 => crate::geometry::FsGeometry::Ext4 {
                    block_size: None,
                    stripe: None,
                },
                crate::args::FsType::Xfs => crate::geometry::FsGeometry::Xfs {
                    reflink: None,
                    stripe: None,
                },
            },
            fstype,
            label: None,
            force: false,
            extra: vec![],
        };
        let mkfs_ext4 = mkfs("pmem1.2", crate::args::FsType::Ext4);
        assert_eq!(names(&mkfs_ext4), ["pmem1.2"]);
        // mkfs on the striped device writes its members' bytes too (their first sectors,
        // where a GPT header would be)
        let mkfs_dm = mkfs("dm-0", crate::args::FsType::Xfs);
        assert_eq!(names(&mkfs_dm), ["dm-0", "pmem0", "pmem1"]);
        // mkfs on a partition: its disk holds its bytes
        let mkfs_part = mkfs("pmem1.1p1", crate::args::FsType::Ext4);
        assert_eq!(names(&mkfs_part), ["pmem1.1", "pmem1.1p1"]);
        // a new namespace: nothing existing is read again (the new device is new)
        let config = |name: &str| crate::system::NamespaceConfig {
            name: name.into(),
            mode: crate::args::NamespaceMode::Fsdax,
            size: None,
            align: crate::units::Bytes(2 << 20),
            map: crate::args::MapMode::Dev,
        };
        let ns = Op::CreateNamespace {
            region: "region0".into(),
            config: config("n"),
        };
        assert!(names(&ns).is_empty());
        assert!(touched(&ns, &a).nd);
        // one reconfigured in place: its device (and what holds it)
        let dev = a
            .namespaces
            .iter()
            .find(|n| n.blockdev.as_deref() == Some("pmem1"))
            .expect("pmem1's namespace")
            .dev
            .clone();
        let re = Op::ReconfigureNamespace {
            dev,
            config: config("pm1"),
        };
        assert_eq!(names(&re), ["dm-0", "pmem1"]);
        // boot files: no device
        let files = Op::DaemonReload;
        assert!(names(&files).is_empty() && touched(&files, &a).files);
    }

    #[test]
    fn parts_that_differ_are_named() {
        let a = Actual::default();
        let mut b = a.clone();
        assert!(differing_parts(&a, &b).is_empty());
        b.missing.push(Missing::Nvdimm);
        assert_eq!(differing_parts(&a, &b), ["missing"]);
    }
}
