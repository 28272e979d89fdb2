//! The operations the system boundary carries out, typed: device ids, namespace
//! configurations, dm tables, GPT entries, mkfs geometry; and, in [`argv`], the one
//! place an op that runs a program becomes its command line. Below both the planner
//! (which makes ops at apply time and spells commands in its details) and the system
//! (the real one runs them, the fake carries them out in memory).

use crate::actual::dm::TableLine;
use crate::actual::{Devno, NsMount};
use crate::args::{FsType, MapMode, NamespaceMode};
use crate::geometry::FsGeometry;
use crate::units::{Bytes, Sectors};
use serde::Serialize;

pub mod argv;
pub mod lvm;

pub use lvm::{Extents, LvmOp, NewLv};

/// What a namespace is made as (the `-m -n -s -a -M` of `ndctl create-namespace`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamespaceConfig {
    /// Its name (`-n`).
    pub name: String,
    /// Its mode (`-m`).
    pub mode: NamespaceMode,
    /// Its size (`-s`; none: all the region has, or the size it has when made in place).
    pub size: Option<Bytes>,
    /// Its alignment (`-a`, fsdax and devdax only).
    pub align: Bytes,
    /// Where its page structures live (`-M`, fsdax and devdax only).
    pub map: MapMode,
}

/// A new GPT entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GptEntry {
    /// Its number.
    pub number: u32,
    /// Its name.
    pub name: String,
    /// First sector.
    pub start: Sectors,
    /// Length.
    pub size: Sectors,
}

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
    /// `cxl create-region -t pmem -m -d DECODER -w WAYS [-g G] [-s SIZE] MEMDEV...`, then
    /// wait for udev (the NVDIMM region and its namespaces appear). Timed as `cxl`.
    #[serde(rename = "cxl")]
    CreateCxlRegion {
        /// The root decoder.
        decoder: String,
        /// Memory devices (`memN`), in interleave order.
        memdevs: Vec<String>,
        /// Interleave granularity.
        granularity: Option<u32>,
        /// Size.
        size: Option<Bytes>,
    },
    /// `daxctl reconfigure-device --mode=system-ram [--no-online] [--no-movable] DEV`, with
    /// the kernel's auto-online policy `offline` around it (set aside first, put back
    /// after). Timed as `daxctl`.
    #[serde(rename = "daxctl")]
    DaxToSystemRam {
        /// The dax device (`dax0.0`).
        dev: String,
        /// Online its memory.
        online: bool,
        /// In ZONE_MOVABLE.
        movable: bool,
    },
    /// `daxctl online-memory [--no-movable] DEV`. Timed as `daxctl`.
    #[serde(rename = "daxctl")]
    DaxOnlineMemory {
        /// The dax device.
        dev: String,
        /// In ZONE_MOVABLE.
        movable: bool,
    },
    /// `daxctl offline-memory DEV` (when some of its memory is online), then `daxctl
    /// reconfigure-device --mode=devdax DEV`; an offline that fails (EBUSY: memory in use)
    /// is undone (`online-memory`). Timed as `daxctl`.
    #[serde(rename = "daxctl")]
    DaxToDevdax {
        /// The dax device.
        dev: String,
        /// Its memory is in ZONE_MOVABLE (how it is onlined again if the offline fails).
        movable: bool,
        /// Some of its memory is online: offline it first (daxctl fails with nothing to
        /// offline).
        offline_first: bool,
    },
    /// Put the kernel's auto-online policy back to what a stopped run set aside.
    RestoreAutoOnline {
        /// The policy.
        policy: String,
    },
    /// `cxl destroy-region -f REGION`. Timed as `cxl`.
    #[serde(rename = "cxl")]
    DestroyCxlRegion {
        /// `regionN`.
        region: String,
    },
    /// `ndctl create-namespace -r REGION`: a new namespace. Timed as `namespace`, as
    /// the reconfiguration is: the same program.
    #[serde(rename = "namespace")]
    CreateNamespace {
        /// The region it is made in.
        region: String,
        /// What it is made as.
        config: NamespaceConfig,
    },
    /// `ndctl create-namespace -f -e DEV`: an existing namespace made again in place
    /// (its data is gone).
    #[serde(rename = "namespace")]
    ReconfigureNamespace {
        /// The kernel device (namespaceX.Y).
        dev: String,
        /// What it is made as.
        config: NamespaceConfig,
    },
    /// Zero the ends of a namespace's block device and drop its uncleared marker.
    ClearNamespace {
        /// The namespace's name (its markers are dropped).
        name: String,
        /// Its block device.
        device: DevId,
    },
    /// Keep a name for a namespace that no label carries (a file of this module's,
    /// written atomically and synced: see [`crate::actual::NameRecord`]).
    RecordName {
        /// The record.
        record: crate::actual::NameRecord,
    },
    /// Drop the record of a namespace's name (its namespace was destroyed).
    ForgetName {
        /// The name.
        name: String,
    },
    /// `ndctl destroy-namespace -f`.
    DestroyNamespace {
        /// Kernel device.
        dev: String,
    },
    /// Create a dm device with a table and resume it; then raise its
    /// `queue/max_sectors_kb` to `max_sectors_kb` where the kernel gave it less.
    DmCreate {
        /// Name.
        name: String,
        /// Table.
        #[serde(serialize_with = "lines")]
        table: Vec<TableLine>,
        /// The largest I/O the device must take, KiB (dm-striped maps a 2 MiB DAX page
        /// only up to it); none: left as the kernel sets it.
        #[serde(skip_serializing_if = "Option::is_none")]
        max_sectors_kb: Option<u32>,
    },
    /// Suspend, load, resume; then raise `queue/max_sectors_kb` as [`Op::DmCreate`] does
    /// (the new table's queue limits replace those the device had).
    DmReload {
        /// Name.
        name: String,
        /// Table.
        #[serde(serialize_with = "lines")]
        table: Vec<TableLine>,
        /// As [`Op::DmCreate`]'s.
        #[serde(skip_serializing_if = "Option::is_none")]
        max_sectors_kb: Option<u32>,
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
        /// The entry.
        entry: GptEntry,
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
        /// The geometry asked for (DAX's, except where `extra` says otherwise).
        geometry: FsGeometry,
        /// Label.
        label: Option<String>,
        /// Overwrite an existing signature.
        force: bool,
        /// The user's `mkfs_options`, passed after ours.
        extra: Vec<String>,
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
    /// umount(2); lazy (MNT_DETACH) only when data loss is allowed and another device
    /// is mounted at the path in its place.
    Umount {
        /// Mount point.
        target: String,
        /// Detach even while files are open.
        lazy: bool,
        /// What to tell the user when files are open on it (EBUSY).
        when_busy: String,
    },
    /// umount(2) of the copies of a mount that other mount namespaces hold, in each of
    /// them (entered with setns(2) through a process in it, and left again); lazy
    /// (MNT_DETACH) only when data loss is allowed. A copy is unmounted only while the
    /// path, as that namespace sees it, is still on `devno`.
    UmountElsewhere {
        /// Mount point.
        target: String,
        /// The device mounted there.
        devno: Devno,
        /// The namespaces holding a copy (one entry each, with a process in it).
        copies: Vec<NsMount>,
        /// Detach even while files are open.
        lazy: bool,
    },

    /// An LVM command. Timed as `lvm`.
    Lvm(LvmOp),
    /// Zero the LVM2 label of a device (its first 2 KiB) that a `pvcreate` stopped before
    /// writing its metadata area left (`actual::lvm::Pv::unfinished`): LVM refuses every
    /// command on such a device, `pvremove -ff` too, and it holds nothing.
    ZeroPvLabel {
        /// The device.
        device: DevId,
    },
    /// Raise `queue/max_sectors_kb` of a device (capped by `max_hw_sectors_kb`): an LV's
    /// dm device inherits 1280 KiB from pmem, and a striped one maps DAX only up to it.
    SetMaxSectors {
        /// The device.
        device: DevId,
        /// KiB.
        kb: u32,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `timing.operations[].op` names both ways of making a namespace `namespace`.
    #[test]
    fn a_namespace_op_is_timed_as_namespace() {
        let config = NamespaceConfig {
            name: "pm0".into(),
            mode: NamespaceMode::Fsdax,
            size: None,
            align: Bytes(2 << 20),
            map: MapMode::Dev,
        };
        for op in [
            Op::CreateNamespace {
                region: "region0".into(),
                config: config.clone(),
            },
            Op::ReconfigureNamespace {
                dev: "namespace0.0".into(),
                config,
            },
        ] {
            let v = serde_json::to_value(&op).expect("serialises");
            assert_eq!(v["op"], "namespace", "{v}");
        }
        let v = serde_json::to_value(Op::DmRemove { name: "s".into() }).expect("serialises");
        assert_eq!(v["op"], "dm_remove");
    }
}
