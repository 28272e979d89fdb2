//! This plan's changes to the probed state, as the layers above see them while planning:
//! what it makes anew, wipes, removes and unmounts. One type, written by the layer that
//! plans the change and read by the layers over it (a filesystem over a device made
//! fresh is made, not compared; a mount over a removed dm device is gone).

use crate::actual::Devno;
use crate::args::validate::DevRef;
use std::collections::{BTreeMap, BTreeSet};

/// The planned changes (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct Overlay {
    /// Declared objects whose content is new after this plan (created or destroyed).
    fresh: BTreeSet<DevRef>,
    /// Existing devices whose content this plan destroys (their users are torn down).
    wiped: BTreeSet<Devno>,
    /// dm devices removed by the teardown.
    removed_dm: BTreeSet<String>,
    /// Mount points unmounted by the teardown.
    unmounted: BTreeSet<String>,
    /// Mounts (device, mount point) unmounted in the other mount namespaces holding them.
    unmounted_elsewhere: BTreeSet<(Devno, String)>,
    /// Disks that get a new GPT in this plan.
    gpt_new: BTreeSet<DevRef>,
    /// Partition numbers used per disk by this plan.
    numbers: BTreeMap<DevRef, BTreeSet<u32>>,
    /// Devices that get a new filesystem in this plan.
    new_fs: BTreeSet<DevRef>,
    /// Devices this plan creates over content that existed before (a dm device rebuilt
    /// over its members, a partition mapped again): what they hold is known only once
    /// they exist, so the steps on them are conditional.
    unknown: BTreeSet<DevRef>,
}

impl Overlay {
    /// `r` has new content after this plan (created, reconfigured, re-made).
    pub fn mark_fresh(&mut self, r: DevRef) {
        self.fresh.insert(r);
    }

    /// Whether `r` gets new content in this plan.
    pub fn is_fresh(&self, r: &DevRef) -> bool {
        self.fresh.contains(r)
    }

    /// The content of `devno` is destroyed by this plan.
    pub fn wipe(&mut self, devno: Devno) {
        self.wiped.insert(devno);
    }

    /// Whether this plan destroys the content of `devno` (what was on it is accounted for).
    pub fn is_wiped(&self, devno: Devno) -> bool {
        self.wiped.contains(&devno)
    }

    /// dm device `name` is removed by this plan; false if it already was.
    pub fn remove_dm(&mut self, name: &str) -> bool {
        self.removed_dm.insert(name.to_string())
    }

    /// Whether this plan removes dm device `name`.
    pub fn is_removed_dm(&self, name: &str) -> bool {
        self.removed_dm.contains(name)
    }

    /// `path` is unmounted by this plan's teardown; false if it already was.
    pub fn unmount(&mut self, path: &str) -> bool {
        self.unmounted.insert(path.to_string())
    }

    /// Whether this plan's teardown unmounts `path`.
    pub fn is_unmounted(&self, path: &str) -> bool {
        self.unmounted.contains(path)
    }

    /// The copies of `devno`'s mount at `path` in other mount namespaces are unmounted
    /// by this plan; false if they already were.
    pub fn unmount_elsewhere(&mut self, devno: Devno, path: &str) -> bool {
        self.unmounted_elsewhere.insert((devno, path.to_string()))
    }

    /// `disk` gets a new GPT in this plan.
    pub fn new_gpt(&mut self, disk: &DevRef) {
        self.gpt_new.insert(disk.clone());
    }

    /// Whether `disk` gets a new GPT in this plan.
    pub fn has_new_gpt(&self, disk: &DevRef) -> bool {
        self.gpt_new.contains(disk)
    }

    /// Partition `number` of `disk` is used by this plan.
    pub fn use_number(&mut self, disk: &DevRef, number: u32) {
        self.numbers.entry(disk.clone()).or_default().insert(number);
    }

    /// The partition numbers of `disk` this plan uses.
    pub fn numbers(&self, disk: &DevRef) -> Option<&BTreeSet<u32>> {
        self.numbers.get(disk)
    }

    /// `r` gets a new filesystem in this plan.
    pub fn new_fs(&mut self, r: &DevRef) {
        self.new_fs.insert(r.clone());
    }

    /// Whether `r` gets a new filesystem in this plan.
    pub fn has_new_fs(&self, r: &DevRef) -> bool {
        self.new_fs.contains(r)
    }

    /// `r` is made by this plan over content that existed before.
    pub fn mark_unknown(&mut self, r: DevRef) {
        self.unknown.insert(r);
    }

    /// Whether `r` is made by this plan over content that existed before.
    pub fn is_unknown(&self, r: &DevRef) -> bool {
        self.unknown.contains(r)
    }
}
