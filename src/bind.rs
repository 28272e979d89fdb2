//! The bound view: the desired state joined to the probed one, once per snapshot.
//!
//! [`bind`] pairs every device a declaration names (a namespace, a dm device, a GPT
//! partition, a path; as itself, as a member, as a disk, under a filesystem or a mount)
//! with its counterpart in the snapshot ([`Binding`]): its current block device (or
//! none), the filesystem found on it, a stable path to it (never `/dev/pmemN`), the
//! devices holding it, and the holders that are foreign (no declaration defines them: not
//! a declared dm device, not the mapping of a declared partition). Each declared
//! partition is bound to its disk and its GPT entry (found by name), each declared mount
//! point to what is mounted there. The planner, the apply-time resolver, boot rendering
//! and the report read this view; none of them joins the two states itself.
//!
//! How a declared object is found:
//!
//! | declared | found as |
//! |---|---|
//! | namespace `n` | the block device of the namespace named `n` (alt_name) |
//! | dm device `n` | the block device of dm device `n` |
//! | partition `n` on a dm disk | the dm-linear mapping [`partition_name`]`(disk, number)` of the GPT entry named `n` |
//! | partition `n` on any other disk | the kernel's partition of the disk with that entry's number |
//! | a path | the block device with that path or alias |
//!
//! The view is of the probed state: what a plan creates or removes is the planner's
//! overlay on top of it. A snapshot may be corrupt (holder cycles) and declarations may
//! nest partitions: the join terminates on both (a reference cycle, or a chain of more
//! than [`MAX_DEPTH`] partitions, binds to nothing; each holder is walked once).

use crate::actual::dm::TableLine;
use crate::actual::{mapping_prefix_matches, partition_name};
use crate::actual::{Actual, BlockDevice, Devno, Filesystem, GptPartition, Mount};
use crate::args::validate::{Desired, DevRef};
use crate::dm_table::build_table;
use std::collections::{BTreeMap, BTreeSet};

/// The longest chain of partitions (a partition whose disk is a partition ...) that binds.
pub const MAX_DEPTH: u32 = 16;

/// A holder that no declaration defines, of a device or of something declared stacked
/// on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Foreign {
    /// The path of the device it holds.
    pub held: String,
    /// Its dm name (its kernel name when it is not a dm device).
    pub name: String,
    /// Its kernel name (`dm-3`).
    pub kernel: String,
}

/// A declared device and its counterpart in the snapshot.
#[derive(Debug, Clone, Default)]
pub struct Binding<'a> {
    /// The block device it is now (`None`: missing).
    pub block: Option<&'a BlockDevice>,
    /// The filesystem found on it.
    pub filesystem: Option<&'a Filesystem>,
    /// A path that leads to it whatever the kernel numbered it, if one is known now.
    pub stable_path: Option<String>,
    /// The block devices holding it (dm devices over it).
    pub holders: Vec<&'a BlockDevice>,
    /// The foreign holders of it and of the declared devices stacked on it.
    pub foreign: Vec<Foreign>,
}

/// The bound view of one snapshot (see the module docs).
#[derive(Debug, Clone)]
pub struct Bound<'a> {
    d: &'a Desired,
    a: &'a Actual,
    bindings: BTreeMap<DevRef, Binding<'a>>,
    /// Declared partition name -> its disk and GPT entry.
    entries: BTreeMap<String, (&'a BlockDevice, &'a GptPartition)>,
    /// Declared mount point -> the (topmost) mount there.
    mounts: BTreeMap<String, &'a Mount>,
}

/// Join `d` to `a`: every declared object with its current counterpart.
pub fn bind<'a>(d: &'a Desired, a: &'a Actual) -> Bound<'a> {
    let mut j = Join {
        d,
        a,
        found: BTreeMap::new(),
        entries: BTreeMap::new(),
        visiting: BTreeSet::new(),
    };
    for r in declared_refs(d) {
        j.resolve(&r);
    }
    let mut b = Bound {
        d,
        a,
        bindings: BTreeMap::new(),
        entries: j.entries,
        mounts: d
            .mounts
            .iter()
            .filter_map(|m| Some((m.path.clone(), a.mount_at(&m.path)?)))
            .collect(),
    };
    let found: Vec<(DevRef, Option<&'a BlockDevice>)> = j
        .found
        .into_iter()
        .map(|(r, f)| (r, f.map(|(bd, _)| bd)))
        .collect();
    for (r, block) in &found {
        b.bindings.insert(
            r.clone(),
            Binding {
                block: *block,
                ..Binding::default()
            },
        );
    }
    for (r, block) in found {
        let binding = Binding {
            block,
            filesystem: block.and_then(|bd| a.filesystem(bd.devno)),
            stable_path: b.stable_path_of(&r),
            holders: block
                .map(|bd| a.holders_of(bd).collect())
                .unwrap_or_default(),
            foreign: block
                .map(|bd| b.foreign_holders(bd, &|_| false))
                .unwrap_or_default(),
        };
        b.bindings.insert(r, binding);
    }
    b
}

/// Every device reference the declarations make, each once.
fn declared_refs(d: &Desired) -> BTreeSet<DevRef> {
    d.own_devices().chain(d.used_devices().cloned()).collect()
}

/// The block device of a reference that needs no other reference (not a partition).
fn direct<'a>(a: &'a Actual, r: &DevRef) -> Option<&'a BlockDevice> {
    match r {
        DevRef::Namespace(n) => a.block_named(a.namespace_named(n)?.blockdev.as_deref()?),
        DevRef::Device(n) => a.block(a.dm(n)?.devno),
        DevRef::Path(p) => a.block_at(p),
        // an active LV: the dm device with its dm uuid
        DevRef::Volume(vg, lv) => a.block(a.lv_dm(vg, lv)?.devno),
        DevRef::Partition(_) => None,
    }
}

/// The join being made: each reference resolved once, partitions after their disks.
struct Join<'a> {
    d: &'a Desired,
    a: &'a Actual,
    /// Reference -> its block device and the partitions between it and its terminal
    /// reference (`None`: binds to nothing).
    found: BTreeMap<DevRef, Option<(&'a BlockDevice, u32)>>,
    entries: BTreeMap<String, (&'a BlockDevice, &'a GptPartition)>,
    /// References being resolved (a cycle binds to nothing).
    visiting: BTreeSet<DevRef>,
}

impl<'a> Join<'a> {
    /// The block device of `r` and its depth (partitions on the way to a namespace, a dm
    /// device or a path).
    fn resolve(&mut self, r: &DevRef) -> Option<(&'a BlockDevice, u32)> {
        if let Some(f) = self.found.get(r) {
            return *f;
        }
        if !self.visiting.insert(r.clone()) {
            return None;
        }
        let f = match r {
            DevRef::Partition(n) => self.partition(n),
            _ => direct(self.a, r).map(|bd| (bd, 0)),
        };
        self.visiting.remove(r);
        self.found.insert(r.clone(), f);
        f
    }

    fn partition(&mut self, name: &str) -> Option<(&'a BlockDevice, u32)> {
        let (d, a) = (self.d, self.a);
        let spec = d.partition(name)?;
        let (disk, disk_depth) = self.resolve(&spec.disk)?;
        let depth = disk_depth + 1;
        if depth > MAX_DEPTH {
            return None;
        }
        let entry = a
            .gpt(disk.devno)?
            .partitions
            .iter()
            .find(|p| p.name == name)?;
        self.entries.insert(name.to_string(), (disk, entry));
        let bd = match &spec.disk {
            DevRef::Device(dm_name) => a.block(a.dm(&partition_name(dm_name, entry.number))?.devno),
            _ => a.partitions_of(&disk.name).find(|p| {
                p.partition
                    .as_ref()
                    .is_some_and(|x| x.number == entry.number)
            }),
        }?;
        Some((bd, depth))
    }
}

impl<'a> Bound<'a> {
    /// The desired state bound.
    pub fn desired(&self) -> &'a Desired {
        self.d
    }

    /// The snapshot bound.
    pub fn actual(&self) -> &'a Actual {
        self.a
    }

    /// What a declared reference is bound to (`None` for a reference no declaration
    /// makes).
    pub fn binding(&self, r: &DevRef) -> Option<&Binding<'a>> {
        self.bindings.get(r)
    }

    /// The block device a reference leads to now.
    pub fn block(&self, r: &DevRef) -> Option<&'a BlockDevice> {
        match self.bindings.get(r) {
            Some(b) => b.block,
            None => direct(self.a, r),
        }
    }

    /// The block device `r` leads to now, or why there is none (for a step that runs
    /// on it).
    pub fn existing(&self, r: &DevRef) -> Result<&'a BlockDevice, String> {
        self.block(r).ok_or_else(|| format!("{r} does not exist"))
    }

    /// The device `r` leads to now, as an op names it.
    pub fn dev_id(&self, r: &DevRef) -> Result<crate::op::DevId, String> {
        self.existing(r).map(|b| crate::op::DevId {
            path: b.path.clone(),
            devno: b.devno,
        })
    }

    /// The filesystem found on the device a reference leads to.
    pub fn filesystem(&self, r: &DevRef) -> Option<&'a Filesystem> {
        match self.bindings.get(r) {
            Some(b) => b.filesystem,
            None => self.block(r).and_then(|bd| self.a.filesystem(bd.devno)),
        }
    }

    /// The filesystem type a mount of `r` uses: the declared one, else the one found.
    pub fn fstype(&self, r: &DevRef) -> Option<String> {
        self.d
            .filesystems
            .iter()
            .find(|f| f.device == *r)
            .map(|f| f.fstype.as_str().to_string())
            .or_else(|| self.filesystem(r).map(|f| f.fstype.clone()))
    }

    /// The disk and GPT entry of the declared partition `name`, as found.
    pub fn gpt_entry(&self, name: &str) -> Option<(&'a BlockDevice, &'a GptPartition)> {
        self.entries.get(name).copied()
    }

    /// A stable path to the device of `r` (never `/dev/pmemN`), if it can be known now:
    /// `/dev/mapper/NAME` for a dm device and for the mapping of a partition of one, the
    /// partition's `/dev/disk/by-partuuid/` link on another disk, a namespace's
    /// `/dev/disk/by-uuid/` link through the filesystem on it, a path as declared.
    pub fn stable_path(&self, r: &DevRef) -> Option<String> {
        match self.bindings.get(r) {
            Some(b) => b.stable_path.clone(),
            None => self.stable_path_of(r),
        }
    }

    fn stable_path_of(&self, r: &DevRef) -> Option<String> {
        match r {
            DevRef::Device(n) => Some(format!("/dev/mapper/{n}")),
            DevRef::Path(p) => Some(p.clone()),
            // the link udev makes for an active LV (systemd's dev-VG-LV.device)
            DevRef::Volume(vg, lv) => Some(crate::args::desired::lv_dev_path(vg, lv)),
            DevRef::Partition(n) => {
                let spec = self.d.partition(n)?;
                let (_, entry) = self.gpt_entry(n)?;
                match &spec.disk {
                    DevRef::Device(dm) => {
                        Some(format!("/dev/mapper/{}", partition_name(dm, entry.number)))
                    }
                    _ => entry
                        .uuid
                        .as_ref()
                        .map(|u| format!("/dev/disk/by-partuuid/{}", u.to_lowercase())),
                }
            }
            DevRef::Namespace(_) => {
                let bd = self.block(r)?;
                let uuid = self.a.filesystem(bd.devno)?.uuid.clone()?;
                Some(format!("/dev/disk/by-uuid/{uuid}"))
            }
        }
    }

    /// Short description of where a reference leads now, for plan details.
    pub fn describe(&self, r: &DevRef) -> String {
        match self.block(r) {
            Some(bd) => format!("{r} ({})", bd.path),
            None => r.to_string(),
        }
    }

    /// The mount at a mount point now (the topmost one if stacked).
    pub fn mount_at(&self, path: &str) -> Option<&'a Mount> {
        match self.mounts.get(path) {
            Some(m) => Some(*m),
            None => self.a.mount_at(path),
        }
    }

    /// The table the declared dm device `name` gets from its members as they are now
    /// (`None`: not declared, a member missing, or a member smaller than a chunk).
    pub fn table(&self, name: &str) -> Option<Vec<TableLine>> {
        let spec = self.d.device(name)?;
        let members: Vec<(Devno, _)> = spec
            .members
            .iter()
            .map(|m| self.block(m).map(|b| (b.devno, b.size)))
            .collect::<Option<_>>()?;
        build_table(spec.target, spec.chunk, &members)
    }

    /// dm names the declarations define: declared devices and mappings of the
    /// partitions declared on them.
    pub fn is_declared_dm(&self, name: &str) -> bool {
        self.d.device(name).is_some()
            || self.d.is_lv_dm(name)
            || self.d.partitions.iter().any(|p| match &p.disk {
                DevRef::Device(disk) => mapping_prefix_matches(disk, name),
                _ => false,
            })
    }

    /// The foreign holders of `bd`, of its partitions, and of the declared dm devices
    /// over it (recursively; each device once). Holders for which `gone(dm name)` is
    /// true are skipped with everything over them (a plan's overlay: removed before).
    pub fn foreign_holders(&self, bd: &BlockDevice, gone: &dyn Fn(&str) -> bool) -> Vec<Foreign> {
        let mut out = Vec::new();
        self.foreign_walk(bd, gone, &mut BTreeSet::new(), &mut out);
        out
    }

    fn foreign_walk(
        &self,
        bd: &BlockDevice,
        gone: &dyn Fn(&str) -> bool,
        seen: &mut BTreeSet<Devno>,
        out: &mut Vec<Foreign>,
    ) {
        if !seen.insert(bd.devno) {
            return;
        }
        for hb in self.a.holders_of(bd) {
            let name = self
                .a
                .dm_by_devno(hb.devno)
                .map(|d| d.name.clone())
                .unwrap_or_else(|| hb.name.clone());
            if gone(&name) {
                continue;
            }
            if self.is_declared_dm(&name) {
                self.foreign_walk(hb, gone, seen, out);
            } else {
                out.push(Foreign {
                    held: bd.path.clone(),
                    name,
                    kernel: hb.name.clone(),
                });
            }
        }
        for p in self.a.partitions_of(&bd.name) {
            self.foreign_walk(p, gone, seen, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::validate::{validate, PartitionSpec};
    use crate::units::Sectors;
    use serde_json::json;

    fn desired(args: serde_json::Value) -> Desired {
        let input = crate::args::parse_input(&args.to_string()).expect("arguments parse");
        validate(&input.args).expect("arguments are valid")
    }

    fn actual(v: serde_json::Value) -> Actual {
        serde_json::from_value(v).expect("a snapshot")
    }

    fn block(name: &str, devno: &str, path: &str, holders: &[&str]) -> serde_json::Value {
        json!({"name": name, "devno": devno, "path": path, "size": 2_097_152,
               "dax": true, "holders": holders})
    }

    /// pm0 and pm1 striped as `dv`, partition `data` on it; `pm0` also held by `other`.
    fn striped_with_partition() -> (Desired, Actual) {
        let d = desired(json!({
            "namespaces": [
                {"name": "pm0", "region": "region0", "mode": "fsdax", "size": "1G"},
                {"name": "pm1", "region": "region0", "mode": "fsdax", "size": "1G"},
            ],
            "devices": [{"name": "dv", "target": "striped", "members": ["pm0", "pm1"]}],
            "partitions": [{"name": "data", "disk": "dv"}],
            "filesystems": [{"device": "data", "type": "xfs"}],
            "mounts": [{"path": "/mnt/data", "device": "data", "dax": "always"}],
        }));
        let ns = |name: &str, dev: &str, blockdev: &str| {
            json!({"dev": dev, "region": "region0", "name": name, "mode": "fsdax",
                   "size": 1_073_741_824, "uuid": format!("uuid-{name}"), "blockdev": blockdev})
        };
        let a = actual(json!({
            "namespaces": [ns("pm0", "namespace0.0", "pmem0"), ns("pm1", "namespace0.1", "pmem1")],
            "block_devices": [
                block("pmem0", "259:0", "/dev/pmem0", &["dm-0", "dm-9"]),
                block("pmem1", "259:1", "/dev/pmem1", &["dm-0"]),
                block("dm-0", "253:0", "/dev/mapper/dv", &["dm-1"]),
                block("dm-1", "253:1", "/dev/mapper/dv1", &[]),
                block("dm-9", "253:9", "/dev/mapper/other", &[]),
            ],
            "dm_devices": [
                {"name": "dv", "devno": "253:0", "table": ["0 4194304 striped 2 4096 259:0 0 259:1 0"]},
                {"name": "dv1", "devno": "253:1", "table": ["0 2093056 linear 253:0 4096"]},
                {"name": "other", "devno": "253:9", "table": ["0 8 linear 259:0 2097144"]},
            ],
            "partition_tables": [{"disk": "253:0", "first_usable": 34, "last_usable": 4194270,
                "partitions": [{"number": 1, "name": "data", "start": 4096, "size": 2093056,
                                "uuid": "ABCD"}]}],
            "filesystems": [{"device": "253:1", "fstype": "xfs", "uuid": "fs-uuid"}],
            "mounts": [{"target": "/mnt/data", "devno": "253:1", "source": "/dev/mapper/dv1",
                        "fstype": "xfs", "options": ["rw"], "dax": "always"}],
        }));
        (d, a)
    }

    #[test]
    fn a_partition_on_a_dm_disk_is_the_mapping_of_its_entry() {
        let (d, a) = striped_with_partition();
        let b = bind(&d, &a);
        let data = DevRef::Partition("data".into());
        let bd = b.block(&data).expect("the partition is bound");
        assert_eq!(bd.path, "/dev/mapper/dv1");
        let (disk, entry) = b.gpt_entry("data").expect("its entry");
        assert_eq!((disk.path.as_str(), entry.number), ("/dev/mapper/dv", 1));
        assert_eq!(b.stable_path(&data).as_deref(), Some("/dev/mapper/dv1"));
        assert_eq!(b.fstype(&data).as_deref(), Some("xfs"));
        assert_eq!(
            b.filesystem(&data).and_then(|f| f.uuid.as_deref()),
            Some("fs-uuid")
        );
        assert_eq!(b.describe(&data), "partition data (/dev/mapper/dv1)");
        assert_eq!(b.mount_at("/mnt/data").map(|m| m.devno), Some(bd.devno));
        assert!(
            b.is_declared_dm("dv1"),
            "the mapping of a declared partition"
        );
        assert!(b.is_declared_dm("dv"));
        assert!(!b.is_declared_dm("other"));
        assert!(!b.is_declared_dm("dv1x"));
        let table = b.table("dv").expect("both members exist");
        assert_eq!(crate::dm_table::table_length(&table), Sectors(4_194_304));
        let binding = b.binding(&DevRef::Device("dv".into())).expect("declared");
        assert_eq!(
            binding
                .holders
                .iter()
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>(),
            ["dm-1"]
        );
        // a namespace's stable path goes through the filesystem on it (none here)
        assert_eq!(b.stable_path(&DevRef::Namespace("pm0".into())), None);
    }

    #[test]
    fn a_holder_no_declaration_defines_is_foreign() {
        let (d, a) = striped_with_partition();
        let b = bind(&d, &a);
        let other = Foreign {
            held: "/dev/pmem0".into(),
            name: "other".into(),
            kernel: "dm-9".into(),
        };
        let pm0 = b
            .binding(&DevRef::Namespace("pm0".into()))
            .expect("declared");
        assert_eq!(pm0.foreign, std::slice::from_ref(&other));
        assert_eq!(pm0.holders.len(), 2);
        // the declared device over pm1 and the mapping over it are ours
        let pm1 = b
            .binding(&DevRef::Namespace("pm1".into()))
            .expect("declared");
        assert!(pm1.foreign.is_empty(), "{:?}", pm1.foreign);
        // a plan that removes `other` first has nothing foreign left
        let bd = b.block(&DevRef::Namespace("pm0".into())).expect("bound");
        assert!(b.foreign_holders(bd, &|n| n == "other").is_empty());
        assert_eq!(b.foreign_holders(bd, &|_| false), [other]);
    }

    #[test]
    fn a_foreign_holder_over_a_declared_device_counts_for_its_members() {
        let (d, mut a) = striped_with_partition();
        let dv1 = a
            .block_devices
            .iter_mut()
            .find(|x| x.name == "dm-1")
            .expect("dm-1");
        dv1.holders.push("dm-9".into());
        let b = bind(&d, &a);
        let pm1 = b
            .binding(&DevRef::Namespace("pm1".into()))
            .expect("declared");
        assert_eq!(
            pm1.foreign,
            [Foreign {
                held: "/dev/mapper/dv1".into(),
                name: "other".into(),
                kernel: "dm-9".into(),
            }]
        );
    }

    #[test]
    fn cycles_in_a_corrupt_snapshot_and_in_references_terminate() {
        let (mut d, mut a) = striped_with_partition();
        // holders in a ring, and a device that is its own partition
        for x in &mut a.block_devices {
            match x.name.as_str() {
                "dm-1" => x.holders = vec!["dm-0".into(), "pmem0".into()],
                "pmem1" => {
                    x.partition = Some(crate::actual::PartitionOf {
                        disk: "pmem1".into(),
                        number: 1,
                        start: Sectors(0),
                    })
                }
                _ => {}
            }
        }
        // a partition that is its own disk, and two on each other
        for (name, disk) in [("self", "self"), ("p", "q"), ("q", "p")] {
            d.partitions.push(PartitionSpec {
                name: name.into(),
                disk: DevRef::Partition(disk.into()),
                number: None,
                start: Sectors(4096),
                size: None,
            });
        }
        let b = bind(&d, &a);
        for n in ["self", "p", "q"] {
            assert_eq!(b.block(&DevRef::Partition(n.into())), None, "{n}");
            assert_eq!(b.gpt_entry(n), None, "{n}");
        }
        // the ring is walked once: pmem0 holding dm-1 is a holder no declaration defines
        let pm0 = b
            .binding(&DevRef::Namespace("pm0".into()))
            .expect("declared");
        let names: Vec<(&str, &str)> = pm0
            .foreign
            .iter()
            .map(|f| (f.held.as_str(), f.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [("/dev/mapper/dv1", "pmem0"), ("/dev/pmem0", "other")]
        );
        assert!(b.block(&DevRef::Partition("data".into())).is_some());
    }

    #[test]
    fn a_chain_of_partitions_deeper_than_the_limit_binds_to_nothing() {
        let (mut d, mut a) = striped_with_partition();
        // partition i+1 on partition i, each the first entry of its disk (paths: the
        // kernel's partitions of a non-dm disk)
        let mut disk = DevRef::Path("/dev/pmem0".into());
        let mut disk_name = "pmem0".to_string();
        let mut disk_devno: Devno = "259:0".parse().expect("devno");
        for i in 0..=MAX_DEPTH {
            let name = format!("c{i}");
            d.partitions.push(PartitionSpec {
                name: name.clone(),
                disk: disk.clone(),
                number: Some(1),
                start: Sectors(4096),
                size: None,
            });
            a.partition_tables.push(crate::actual::PartitionTable {
                disk: disk_devno,
                first_usable: Sectors(34),
                last_usable: Sectors(1_000_000),
                partitions: vec![GptPartition {
                    number: 1,
                    name: name.clone(),
                    start: Sectors(4096),
                    size: Sectors(8192),
                    type_guid: None,
                    uuid: None,
                }],
            });
            let devno = Devno {
                major: 259,
                minor: 100 + i,
            };
            let kernel = format!("{disk_name}p1");
            a.block_devices.push(BlockDevice {
                name: kernel.clone(),
                devno,
                path: format!("/dev/{kernel}"),
                aliases: Vec::new(),
                size: Sectors(8192),
                dax: true,
                holders: Vec::new(),
                partition: Some(crate::actual::PartitionOf {
                    disk: disk_name.clone(),
                    number: 1,
                    start: Sectors(4096),
                }),
                max_sectors_kb: None,
            });
            disk = DevRef::Partition(name);
            disk_name = kernel;
            disk_devno = devno;
        }
        let b = bind(&d, &a);
        let deepest = format!("c{}", MAX_DEPTH - 1);
        assert!(
            b.block(&DevRef::Partition(deepest.clone())).is_some(),
            "{deepest}"
        );
        let too_deep = format!("c{MAX_DEPTH}");
        assert_eq!(b.block(&DevRef::Partition(too_deep.clone())), None);
        assert_eq!(b.gpt_entry(&too_deep), None);
    }
}
