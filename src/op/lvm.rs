//! The LVM operations: each is one `lvm` command (see [`super::argv`] for its words).
//! LVM writes its own metadata (PV labels, the VG's metadata text with a sequence
//! number it commits last), so a command stopped half-way leaves the old or the new
//! VG, never half of one; the next probe reads which.

use crate::op::DevId;
use crate::units::Bytes;
use serde::Serialize;

/// How many extents an LV gets (`-l`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Extents {
    /// This many extents in all (a whole number of stripes).
    Count(u64),
    /// What the VG has free (`100%FREE`; LVM rounds a striped LV down to whole stripes).
    RestOfVg,
}

/// A logical volume to make (`lvcreate`), as planned and as run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewLv {
    /// VG name.
    pub vg: String,
    /// LV name.
    pub lv: String,
    /// Its size in extents.
    pub extents: Extents,
    /// Stripes (1: linear).
    pub stripes: u32,
    /// Stripe size (striped only).
    pub stripe_size: Bytes,
}

/// One `lvm` command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum LvmOp {
    /// `pvcreate --dataalignment 2m`: the data area (and so every extent) starts on a
    /// 2 MiB page, where LVM's default is 1 MiB.
    PvCreate {
        /// The device.
        device: DevId,
        /// Answer yes to wiping the signatures found on it (only when the plan allowed
        /// data loss); otherwise pvcreate refuses a device that has any.
        wipe: bool,
    },
    /// `vgcreate -s EXTENT VG PV...`.
    VgCreate {
        /// VG name.
        vg: String,
        /// Physical extent size.
        extent_size: Bytes,
        /// Its PVs.
        pvs: Vec<DevId>,
    },
    /// `vgextend VG PV...`.
    VgExtend {
        /// VG name.
        vg: String,
        /// The PVs to add.
        pvs: Vec<DevId>,
    },
    /// `lvcreate -n LV -l EXTENTS [-i STRIPES -I STRIPE_SIZE] VG`, activated.
    LvCreate(NewLv),
    /// `lvextend -l EXTENTS VG/LV` (to that many in all, or by what is free).
    LvExtend {
        /// VG name.
        vg: String,
        /// LV name.
        lv: String,
        /// Its new size.
        extents: Extents,
    },
    /// `lvchange -ay VG/LV`.
    LvActivate {
        /// VG name.
        vg: String,
        /// LV name.
        lv: String,
    },
    /// `lvremove -y VG/LV`.
    LvRemove {
        /// VG name.
        vg: String,
        /// LV name.
        lv: String,
    },
    /// `vgremove VG` (without `-y`: LVM refuses, rather than asks, while it has LVs).
    VgRemove {
        /// VG name.
        vg: String,
    },
    /// `pvremove DEV` (LVM refuses while it is in a VG).
    PvRemove {
        /// The device.
        device: DevId,
    },
}
