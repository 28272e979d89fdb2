//! The probe's scope: which block devices it may open to read their content (GPTs,
//! superblocks).
//!
//! Listing block devices (sysfs) and dm devices (ioctls on the control node) touches no
//! device; opening one does, and a device that is not ours can fail the read (EPERM from
//! a container's device cgroup, EIO from a dm `error` table or a failing disk) or block
//! it (a read of a suspended dm device waits until the device is resumed). So the probe
//! opens only:
//! - the block devices of the PMEM namespaces;
//! - dm devices: every one for `--facts` ([`ProbeScope::base`]), the declared ones (by
//!   name) for a run ([`ProbeScope::of`]);
//! - the /dev paths named in the arguments, and the sources of the mounts at the
//!   declared mount points;
//! - and, transitively, the partitions of all these and the devices holding them (dm
//!   devices over them, kpartx-style mappings, partitions of those): what the planner's
//!   content-at-risk walk (`lost_with`) visits.
//!
//! A device held by dm devices has its signature read only when every holder is an
//! LV's (dm uuid `LVM-`): its first bytes are its own PV label ([`Reach::own_head`]).
//!
//! Of those, a suspended dm device and anything stacked on one (through `holders` and
//! partition parents, transitively) is never opened: [`Reach::blocked`] says why, and
//! the probe records it as unreadable.
//!
//! Pure over the listed state, so the real and the fake system decide alike.

use crate::actual::{Actual, Devno};
use crate::args::validate::{Desired, DevRef};
use std::collections::{BTreeMap, BTreeSet};

/// What the probe may read, beyond the PMEM namespaces' block devices and what holds
/// them (always in scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeScope {
    /// Every dm device is in scope (`--facts`); otherwise only those in `dm_names`.
    pub all_dm: bool,
    /// dm devices in scope, by dm name (the declared devices).
    pub dm_names: BTreeSet<String>,
    /// Device paths named in the arguments (`/dev/...`, udev links).
    pub paths: BTreeSet<String>,
    /// Declared mount points: whatever is mounted there is in scope.
    pub mount_points: BTreeSet<String>,
    /// Also list the mounts of the devices in scope that other mount namespaces hold
    /// ([`Actual::elsewhere`]): only for a run that may tear a device down (`state:
    /// absent`, `allow_data_loss`), which must unmount them there first. Other runs
    /// (and `--facts`) do not walk `/proc`.
    pub elsewhere: bool,
}

impl Default for ProbeScope {
    fn default() -> Self {
        Self::base()
    }
}

impl ProbeScope {
    /// PMEM, every dm device, and what holds them, with their partitions (`--facts`).
    pub fn base() -> Self {
        ProbeScope {
            all_dm: true,
            dm_names: BTreeSet::new(),
            paths: BTreeSet::new(),
            mount_points: BTreeSet::new(),
            elsewhere: false,
        }
    }

    /// What a run with these (validated) arguments needs read: PMEM, the declared dm
    /// devices and LVs' dm devices, the paths named in them (PVs included) and the
    /// mounts at the declared mount points.
    pub fn of(d: &Desired) -> Self {
        let paths = d
            .used_devices()
            .filter_map(|r| match r {
                DevRef::Path(p) => Some(p.clone()),
                _ => None,
            })
            .collect();
        ProbeScope {
            all_dm: false,
            dm_names: d
                .devices
                .iter()
                .map(|x| x.name.clone())
                .chain(
                    d.logical_volumes
                        .iter()
                        .map(|l| crate::args::desired::lv_dm_name(&l.vg, &l.name)),
                )
                .collect(),
            paths,
            mount_points: d.mounts.iter().map(|m| m.path.clone()).collect(),
            elsewhere: d.state == crate::args::State::Absent || d.allow_data_loss,
        }
    }
}

/// The scope applied to a listed machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    /// Devices the probe may open.
    pub read: BTreeSet<Devno>,
    /// Devices in scope that must not be opened, with why (suspended, or stacked on a
    /// suspended dm device).
    pub blocked: BTreeMap<Devno, String>,
    /// Devices in `read` that are held, but only by LVM's dm devices (an active LV's
    /// PVs): their first bytes are their own (the PV label and metadata), not those of
    /// a device above, so their signature is read too.
    pub own_head: BTreeSet<Devno>,
}

impl Reach {
    /// Whether device `devno` is in scope at all (readable or blocked).
    pub fn in_scope(&self, devno: Devno) -> bool {
        self.read.contains(&devno) || self.blocked.contains_key(&devno)
    }
}

/// Which devices of `a` the probe reads under `scope`. `a` needs its namespaces, block
/// devices, dm devices and mounts (everything listed without opening a device).
pub fn reach(scope: &ProbeScope, a: &Actual) -> Reach {
    // where it starts: PMEM's block devices, the devices at the named paths, the dm
    // devices in scope and the devices mounted at the declared mount points
    let pmem = a
        .namespaces
        .iter()
        .filter_map(|ns| a.block_named(ns.blockdev.as_deref()?));
    let at_paths = scope.paths.iter().filter_map(|p| a.block_at(p));
    let dm = a
        .dm_devices
        .iter()
        .filter(|dm| scope.all_dm || scope.dm_names.contains(&dm.name));
    let mounted = scope.mount_points.iter().filter_map(|p| a.mount_at(p));
    let starts: Vec<Devno> = pmem
        .chain(at_paths)
        .map(|b| b.devno)
        .chain(dm.map(|dm| dm.devno))
        .chain(mounted.map(|m| m.devno))
        .collect();

    // upwards: partitions and holders, transitively (a start that is no listed block
    // device, gone or a mount of no block device, has nothing above it)
    let in_scope: BTreeSet<Devno> = starts
        .iter()
        .flat_map(|d| a.stack_above(*d))
        .map(|b| b.devno)
        .collect();

    // downwards, for each: the devices it is stacked on (its partition's disk, the
    // devices it holds), to find a suspended dm device under it
    let mut lower: BTreeMap<&str, Vec<Devno>> = BTreeMap::new();
    for b in &a.block_devices {
        for h in &b.holders {
            lower.entry(h.as_str()).or_default().push(b.devno);
        }
        if let Some(disk) = b.partition.as_ref().and_then(|p| a.block_named(&p.disk)) {
            lower.entry(b.name.as_str()).or_default().push(disk.devno);
        }
    }
    let suspended = |d: Devno| a.dm_by_devno(d).filter(|dm| dm.suspended);
    let mut out = Reach::default();
    for d in in_scope {
        if let Some(dm) = suspended(d) {
            out.blocked.insert(
                d,
                format!(
                    "dm device {} is suspended: a read would wait until it is resumed, so it was not read (dmsetup resume {})",
                    dm.name, dm.name
                ),
            );
            continue;
        }
        let mut seen = BTreeSet::from([d]);
        let mut below: Vec<Devno> = a
            .block(d)
            .and_then(|b| lower.get(b.name.as_str()))
            .cloned()
            .unwrap_or_default();
        let mut under = None;
        while let Some(x) = below.pop() {
            if !seen.insert(x) {
                continue;
            }
            if let Some(dm) = suspended(x) {
                under = Some(dm.name.clone());
                break;
            }
            if let Some(more) = a.block(x).and_then(|b| lower.get(b.name.as_str())) {
                below.extend(more.iter().copied());
            }
        }
        match under {
            Some(name) => {
                out.blocked.insert(
                    d,
                    format!(
                        "it is stacked on suspended dm device {name}: a read would wait until {name} is resumed, so it was not read"
                    ),
                );
            }
            None => {
                out.read.insert(d);
                if a.block(d).is_some_and(|b| a.held_only_by_lvm(b)) {
                    out.own_head.insert(d);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actual::{BlockDevice, DmDevice, Mount, Namespace, PartitionOf};
    use crate::args::NamespaceMode;
    use crate::units::{Bytes, Sectors};

    fn dev(major: u32, minor: u32) -> Devno {
        Devno { major, minor }
    }

    fn block(name: &str, devno: Devno, path: &str, holders: &[&str]) -> BlockDevice {
        BlockDevice {
            name: name.into(),
            devno,
            path: path.into(),
            aliases: Vec::new(),
            size: Sectors(1 << 20),
            dax: false,
            holders: holders.iter().map(|h| h.to_string()).collect(),
            partition: None,
            max_sectors_kb: None,
        }
    }

    fn dm(name: &str, devno: Devno, suspended: bool) -> DmDevice {
        DmDevice {
            name: name.into(),
            devno,
            uuid: None,
            table: crate::actual::DmTable::default(),
            suspended,
            open_count: 0,
        }
    }

    /// pmem0 (namespace pm0) held by dm `s` (dm-0) and by foreign `over` (dm-4);
    /// `s` has a kpartx mapping `s1` (dm-1); foreign `err` (dm-2) over vda, suspended
    /// `susp` (dm-3) with `onsusp` (dm-5) stacked on it; vda with partition vda1 (mounted
    /// on /mnt/v), and loop0.
    fn machine() -> Actual {
        let mut a = Actual::default();
        a.namespaces.push(Namespace {
            dev: "namespace0.0".into(),
            region: "region0".into(),
            name: Some("pm0".into()),
            mode: NamespaceMode::Fsdax,
            size: Bytes(1 << 30),
            uuid: Some("u".into()),
            align: None,
            map: None,
            blockdev: Some("pmem0".into()),
            chardev: None,
            resource: None,
            numa_node: None,
            info_uuid: None,
            name_recorded: false,
        });
        a.block_devices = vec![
            block("pmem0", dev(259, 0), "/dev/pmem0", &["dm-0", "dm-4"]),
            block("dm-0", dev(253, 0), "/dev/mapper/s", &["dm-1"]),
            block("dm-1", dev(253, 1), "/dev/mapper/s1", &[]),
            block("vda", dev(254, 0), "/dev/vda", &["dm-2"]),
            BlockDevice {
                partition: Some(PartitionOf {
                    disk: "vda".into(),
                    number: 1,
                    start: Sectors(2048),
                }),
                ..block("vda1", dev(254, 1), "/dev/vda1", &[])
            },
            block("dm-2", dev(253, 2), "/dev/mapper/err", &[]),
            block("dm-3", dev(253, 3), "/dev/mapper/susp", &["dm-5"]),
            block("dm-4", dev(253, 4), "/dev/mapper/over", &[]),
            block("dm-5", dev(253, 5), "/dev/mapper/onsusp", &[]),
            block("loop0", dev(7, 0), "/dev/loop0", &[]),
        ];
        a.dm_devices = vec![
            dm("s", dev(253, 0), false),
            dm("s1", dev(253, 1), false),
            dm("err", dev(253, 2), false),
            dm("susp", dev(253, 3), true),
            dm("over", dev(253, 4), false),
            dm("onsusp", dev(253, 5), false),
        ];
        a.mounts.push(Mount {
            target: "/mnt/v".into(),
            devno: dev(254, 1),
            source: "/dev/vda1".into(),
            fstype: "ext4".into(),
            options: Vec::new(),
            dax: None,
            root_extsize: None,
        });
        a
    }

    fn names(a: &Actual, set: impl IntoIterator<Item = Devno>) -> Vec<String> {
        let mut v: Vec<String> = set
            .into_iter()
            .filter_map(|d| a.block(d).map(|b| b.name.clone()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_run_reads_pmem_its_holders_and_the_declared_dm_devices_only() {
        let a = machine();
        let scope = ProbeScope {
            all_dm: false,
            dm_names: BTreeSet::from(["s".to_string()]),
            paths: BTreeSet::new(),
            mount_points: BTreeSet::new(),
            elsewhere: false,
        };
        let r = reach(&scope, &a);
        // the foreign dm-4 holds pmem0: in scope; vda, loop0, err, susp are not
        assert_eq!(names(&a, r.read.clone()), ["dm-0", "dm-1", "dm-4", "pmem0"]);
        assert!(r.blocked.is_empty());
        assert!(!r.in_scope(dev(7, 0)) && !r.in_scope(dev(254, 0)));
    }

    #[test]
    fn named_paths_and_declared_mount_points_bring_their_devices() {
        let a = machine();
        let scope = ProbeScope {
            all_dm: false,
            dm_names: BTreeSet::new(),
            paths: BTreeSet::from(["/dev/vda".to_string()]),
            mount_points: BTreeSet::from(["/mnt/v".to_string(), "/mnt/none".to_string()]),
            elsewhere: false,
        };
        let r = reach(&scope, &a);
        // vda brings its partition and its holder (err); /mnt/v brings vda1
        assert_eq!(
            names(&a, r.read.clone()),
            ["dm-0", "dm-1", "dm-2", "dm-4", "pmem0", "vda", "vda1"]
        );
        assert!(!r.in_scope(dev(7, 0)));
    }

    #[test]
    fn facts_read_every_dm_device_but_never_a_suspended_one_or_what_sits_on_it() {
        let a = machine();
        let r = reach(&ProbeScope::base(), &a);
        assert_eq!(
            names(&a, r.read.clone()),
            ["dm-0", "dm-1", "dm-2", "dm-4", "pmem0"]
        );
        assert_eq!(names(&a, r.blocked.keys().copied()), ["dm-3", "dm-5"]);
        assert!(r.blocked[&dev(253, 3)].starts_with("dm device susp is suspended"));
        assert!(r.blocked[&dev(253, 5)].contains("stacked on suspended dm device susp"));
        // vda is not dm and holds nothing of ours, even though dm-2 sits on it
        assert!(!r.in_scope(dev(254, 0)) && !r.in_scope(dev(7, 0)));
    }

    #[test]
    fn a_suspended_member_blocks_the_device_over_it_and_its_mappings() {
        let mut a = machine();
        a.dm_devices[0].suspended = true; // s
        let r = reach(&ProbeScope::of_names(&["s"]), &a);
        assert_eq!(names(&a, r.read.clone()), ["dm-4", "pmem0"]);
        assert_eq!(names(&a, r.blocked.keys().copied()), ["dm-0", "dm-1"]);
        // holder cycles in a corrupt listing end
        a.block_devices[1].holders.push("pmem0".into());
        a.block_devices[0].holders.push("dm-0".into());
        let r = reach(&ProbeScope::of_names(&["s"]), &a);
        assert!(r.blocked.contains_key(&dev(253, 1)));
    }

    impl ProbeScope {
        fn of_names(names: &[&str]) -> Self {
            ProbeScope {
                all_dm: false,
                dm_names: names.iter().map(|n| n.to_string()).collect(),
                paths: BTreeSet::new(),
                mount_points: BTreeSet::new(),
                elsewhere: false,
            }
        }
    }
}
