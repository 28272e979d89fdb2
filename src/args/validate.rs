//! Semantic validation: [`ModuleArgs`] -> [`Desired`], before anything is probed.
//!
//! Every rule pushes an [`InputError`] naming the JSON path and goes on, so the user sees
//! all problems at once. Rules: names (syntax, length, duplicates across namespaces,
//! devices and partitions, which share one name space because members refer to them),
//! references (dangling, cycles, wrong kind), sizes and alignment (chunk and partition
//! geometry page-aligned for DAX; 2 MiB recommended), DAX feasibility (a DAX mount
//! over a devdax/sector/raw namespace or over a stack containing one), and no force
//! flag in `mkfs_options` ([`super::mkfs`]).
//!
//! The rules read a [`Draft`]: typed arguments become one with nothing missing, and
//! arguments that did not read whole are checked as far as they did read
//! ([`check_draft`]), so that type errors and semantic errors come in one run.

use super::desired::no_block_device;
pub use super::desired::{
    declared_name, lv_dev_path, not_dax_capable, role_conflicts, stripes_under, CxlRegionSpec,
    Desired, DevRef, DeviceSpec, FilesystemSpec, LogicalVolumeSpec, MountSpec, NamespaceSpec,
    PartitionSpec, SystemRam, VolumeGroupSpec,
};
use super::draft::{all_read, read_items, Draft, Field, Items};
use super::mkfs::force_flags;
use super::{
    DaxMode, DmTarget, FsType, InputError, MapMode, ModuleArgs, NamespaceMode, RegionArg, State,
};
use crate::units::{Bytes, Sectors, HUGE_PAGE, PAGE};
use std::collections::{BTreeMap, BTreeSet};

/// Default chunk and partition start: 2 MiB.
const DEFAULT_CHUNK: Bytes = HUGE_PAGE;
/// The first byte a GPT partition may use: after the protective MBR, the header and
/// 128 entries (LBA 34), rounded up to a page.
const GPT_FIRST_USABLE: Bytes = Bytes(20480);
/// ndctl's alt_name limit (NSLABEL_NAME_LEN - 1).
const NAMESPACE_NAME_MAX: usize = 63;
/// dm's name limit (DM_NAME_LEN - 1).
const DM_NAME_MAX: usize = 127;
/// GPT name limit in UTF-16 units.
const GPT_NAME_MAX: usize = 36;
/// LVM's VG and LV name limit (NAME_LEN - 1).
const LVM_NAME_MAX: usize = 127;
/// A CXL region's size is a multiple of this per memory device (the decoders' unit).
const CXL_SIZE_UNIT: Bytes = Bytes(256 << 20);
/// Default LVM extent size: 4 MiB (LVM's own default, and a multiple of 2 MiB).
const DEFAULT_EXTENT: Bytes = Bytes(4 << 20);
/// Default stripe size of a striped LV: 2 MiB.
const DEFAULT_STRIPE_SIZE: Bytes = HUGE_PAGE;

/// Validate parsed arguments. All problems are returned together.
pub fn validate(args: &ModuleArgs) -> Result<Desired, Vec<InputError>> {
    let (mut d, errors, warnings) = Validator::check(&Draft::from(args));
    if !errors.is_empty() {
        return Err(errors);
    }
    d.state = args.state;
    d.allow_data_loss = args.allow_data_loss.0;
    d.persist = args.boot.persist.0;
    d.warnings = warnings;
    d.args = args.clone();
    Ok(d)
}

/// The semantic problems of arguments that did not read whole (the type errors are
/// already reported by [`super::parse_input`]), so that both come in one run. Every rule
/// runs on what did read; a rule that needs an unreadable value is skipped, and a
/// reference that matches no declared name passes while some declaration's name did not
/// read (it may be that one).
pub fn check_draft(draft: &Draft) -> Vec<InputError> {
    Validator::check(draft).1
}

#[derive(Default)]
struct Validator {
    errors: Vec<InputError>,
    warnings: Vec<String>,
    /// Declared name -> (kind, JSON path of its declaration).
    names: BTreeMap<String, (Kind, String)>,
    /// Whether every declaration's name read: only then is an unknown name dangling.
    names_complete: bool,
    /// The index in `devices` of each device spec made (items that did not read make none).
    device_at: Vec<usize>,
    /// Declared VG name -> (index in `volume_groups`, its PV count when every PV read).
    vgs: BTreeMap<String, (usize, Option<usize>)>,
    /// Declared LVs as (VG, LV) -> index in `logical_volumes`.
    lvs: BTreeMap<(String, String), usize>,
    /// Whether every VG and LV declaration read whole enough to be known: only then is an
    /// unknown `VG/LV` or `vg` dangling.
    lvm_complete: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Namespace,
    Device,
    Partition,
    /// A logical volume, referred to as `VG/LV` (it is not in `names`).
    LogicalVolume,
}

impl Validator {
    /// All the rules, in order; returns the specs made (complete only when no error was
    /// found and the draft read whole), the errors and the warnings.
    fn check(draft: &Draft) -> (Desired, Vec<InputError>, Vec<String>) {
        let mut v = Validator::default();
        v.names(draft);
        v.lvm_names(draft);
        let cxl_regions = v.cxl_regions(draft);
        let namespaces = v.namespaces(draft);
        v.namespaces_on_cxl(draft, &cxl_regions);
        let devices = v.devices(draft);
        let partitions = v.partitions(draft);
        let mut d = Desired {
            state: State::default(),
            allow_data_loss: false,
            cxl_regions,
            namespaces,
            devices,
            partitions,
            volume_groups: Vec::new(),
            logical_volumes: Vec::new(),
            filesystems: Vec::new(),
            mounts: Vec::new(),
            persist: false,
            warnings: Vec::new(),
            args: ModuleArgs::default(),
        };
        d.volume_groups = v.volume_groups(draft, &d);
        d.logical_volumes = v.logical_volumes(draft);
        v.cycles(&d);
        d.filesystems = v.filesystems(draft, &d);
        d.mounts = v.mounts(draft, &d);
        // `roles` names items by their index among the specs: the arguments' index only
        // when every item made its spec, with every member
        if v.errors.is_empty() && specs_match_items(draft, &d) {
            v.roles(&d);
        }
        (d, v.errors, v.warnings)
    }

    fn err(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.errors.push(InputError::new(path, msg));
    }

    fn check_name(&mut self, path: &str, name: &str, max: usize, what: &str) {
        if name.is_empty() {
            self.err(path, format!("the {what} name must not be empty"));
        } else if name.len() > max {
            self.err(
                path,
                format!("{name:?} is longer than {max} bytes, the {what} limit"),
            );
        } else if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | ':'))
            || name.starts_with('.')
            || name.starts_with('/')
        {
            self.err(
                path,
                format!("{name:?} is not a valid {what} name (use letters, digits and - _ . + :)"),
            );
        }
    }

    /// Collect declared names; duplicates are errors wherever they are declared.
    fn names(&mut self, draft: &Draft) {
        let mut decls: Vec<(Kind, String, Option<&String>)> = Vec::new();
        decls.extend(read_items(&draft.namespaces).map(|(i, n)| {
            (
                Kind::Namespace,
                format!("namespaces[{i}].name"),
                n.name.as_ref(),
            )
        }));
        decls.extend(
            read_items(&draft.devices)
                .map(|(i, n)| (Kind::Device, format!("devices[{i}].name"), n.name.as_ref())),
        );
        decls.extend(read_items(&draft.partitions).map(|(i, n)| {
            (
                Kind::Partition,
                format!("partitions[{i}].name"),
                n.name.as_ref(),
            )
        }));
        self.names_complete = all_read(&draft.namespaces)
            && all_read(&draft.devices)
            && all_read(&draft.partitions)
            && decls.iter().all(|(_, _, name)| name.is_some());
        for (kind, path, name) in decls {
            let Some(name) = name else { continue };
            let (max, what) = match kind {
                Kind::Namespace => (NAMESPACE_NAME_MAX, "namespace"),
                Kind::Device => (DM_NAME_MAX, "dm device"),
                Kind::Partition => (GPT_NAME_MAX, "GPT partition"),
                Kind::LogicalVolume => (LVM_NAME_MAX, "logical volume"),
            };
            self.check_name(&path, name, max, what);
            if let Some((_, first)) = self.names.get(name) {
                let first = first.clone();
                self.err(
                    &path,
                    format!("duplicate name {name:?} (already used at {first}); namespaces, devices and partitions share one set of names"),
                );
            } else {
                self.names.insert(name.clone(), (kind, path));
            }
        }
    }

    /// Resolve a reference written at `path`; `allowed` lists the kinds that make sense there.
    fn reference(&mut self, path: &str, text: &str, allowed: &[Kind]) -> Option<DevRef> {
        if text.starts_with('/') {
            if !text.starts_with("/dev/") || text.contains("/../") || text.ends_with("/..") {
                self.err(path, format!("{text:?} is not a device path under /dev"));
                return None;
            }
            // a declared LV named by the link udev gives it
            if let Some((vg, lv)) = text["/dev/".len()..].split_once('/') {
                if self.lvs.contains_key(&(vg.to_string(), lv.to_string())) {
                    return self.lv_reference(path, text, vg, lv, allowed);
                }
            }
            return Some(DevRef::Path(text.to_string()));
        }
        if let Some((vg, lv)) = text.split_once('/') {
            return self.lv_reference(path, text, vg, lv, allowed);
        }
        match self.names.get(text) {
            None if !self.names_complete => None, // perhaps a name that did not read
            None => {
                self.err(
                    path,
                    format!("{text:?} is neither a name declared in these arguments nor an absolute /dev path"),
                );
                None
            }
            Some((kind, _)) if !allowed.contains(kind) => {
                let kind = *kind;
                self.err(
                    path,
                    format!("{text:?} is a {} and cannot be used here", kind_word(kind)),
                );
                None
            }
            Some((Kind::Namespace, _)) => Some(DevRef::Namespace(text.to_string())),
            Some((Kind::Device, _)) => Some(DevRef::Device(text.to_string())),
            Some((Kind::Partition, _)) => Some(DevRef::Partition(text.to_string())),
            Some((Kind::LogicalVolume, _)) => None, // never in `names`
        }
    }

    /// Resolve a reference to something that can hold a filesystem (a namespace, dm
    /// device, partition, LV or path), and whether it has a block device (a devdax
    /// namespace has none: said at `path`).
    fn block_reference(&mut self, d: &Desired, path: &str, text: &str) -> Option<(DevRef, bool)> {
        let kinds = [
            Kind::Namespace,
            Kind::Device,
            Kind::Partition,
            Kind::LogicalVolume,
        ];
        let r = self.reference(path, text, &kinds)?;
        let why = no_block_device(d, &r);
        let block = why.is_none();
        if let Some(why) = why {
            self.err(path, why);
        }
        Some((r, block))
    }

    /// Resolve a `VG/LV` reference to the declared LV.
    fn lv_reference(
        &mut self,
        path: &str,
        text: &str,
        vg: &str,
        lv: &str,
        allowed: &[Kind],
    ) -> Option<DevRef> {
        if !self.lvs.contains_key(&(vg.to_string(), lv.to_string())) {
            if self.lvm_complete {
                self.err(
                    path,
                    format!("{text:?} is not a logical volume declared in logical_volumes (a VG/LV reference names a declared LV by its vg and name)"),
                );
            }
            return None;
        }
        if !allowed.contains(&Kind::LogicalVolume) {
            self.err(
                path,
                format!("{text:?} is a logical volume and cannot be used here"),
            );
            return None;
        }
        Some(DevRef::Volume(vg.to_string(), lv.to_string()))
    }

    /// LVM's rule for VG and LV names: letters, digits and `+ _ . -`, not starting with
    /// `-`, not `.` or `..`, at most 127 characters.
    fn check_lvm_name(&mut self, path: &str, name: &str, what: &str) {
        if name.is_empty() {
            self.err(path, format!("the {what} name must not be empty"));
        } else if name.len() > LVM_NAME_MAX {
            self.err(
                path,
                format!("{name:?} is longer than {LVM_NAME_MAX} characters, the LVM limit"),
            );
        } else if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '_' | '.' | '-'))
            || name.starts_with('-')
            || name == "."
            || name == ".."
        {
            self.err(
                path,
                format!("{name:?} is not a valid {what} name (use letters, digits and + _ . -, not starting with -, not . or ..)"),
            );
        }
    }

    /// Collect the declared VG and LV names (syntax, duplicates, a VG named like a dm
    /// device), before any reference is resolved.
    fn lvm_names(&mut self, draft: &Draft) {
        self.lvm_complete = all_read(&draft.volume_groups)
            && all_read(&draft.logical_volumes)
            && read_items(&draft.volume_groups).all(|(_, g)| g.name.is_some())
            && read_items(&draft.logical_volumes).all(|(_, l)| l.name.is_some() && l.vg.is_some());
        for (i, g) in read_items(&draft.volume_groups) {
            let Some(name) = &g.name else { continue };
            let path = format!("volume_groups[{i}].name");
            self.check_lvm_name(&path, name, "volume group");
            if let Some((Kind::Device, first)) = self.names.get(name) {
                let first = first.clone();
                self.err(
                    &path,
                    format!("{name:?} is also the name of the dm device at {first}; give the volume group another name"),
                );
            }
            let pvs = g.pvs.as_ref().filter(|_| all_read(&g.pvs)).map(Vec::len);
            if let Some((first, _)) = self.vgs.get(name) {
                let first = *first;
                self.err(
                    &path,
                    format!("duplicate volume group {name:?} (already declared at volume_groups[{first}])"),
                );
            } else {
                self.vgs.insert(name.clone(), (i, pvs));
            }
        }
        for (i, l) in read_items(&draft.logical_volumes) {
            let Some(name) = &l.name else { continue };
            self.check_lvm_name(
                &format!("logical_volumes[{i}].name"),
                name,
                "logical volume",
            );
            let Some(vg) = &l.vg else { continue };
            if let Some(first) = self.lvs.get(&(vg.clone(), name.clone())) {
                let first = *first;
                self.err(
                    format!("logical_volumes[{i}].name"),
                    format!("duplicate logical volume {vg}/{name} (already declared at logical_volumes[{first}])"),
                );
            } else {
                self.lvs.insert((vg.clone(), name.clone()), i);
            }
        }
    }

    /// Volume groups: PVs resolved (declared namespaces or partitions, or paths), each
    /// used once, DAX-capable as far as the arguments tell; the extent size a multiple
    /// of 2 MiB.
    fn volume_groups(&mut self, draft: &Draft, d: &Desired) -> Vec<VolumeGroupSpec> {
        let mut out = Vec::new();
        // PV as written -> (VG index, PV index)
        let mut seen: BTreeMap<&String, (usize, usize)> = BTreeMap::new();
        for (i, g) in read_items(&draft.volume_groups) {
            let p = format!("volume_groups[{i}]");
            let mut pvs = Vec::new();
            if let Some(list) = &g.pvs {
                if list.is_empty() {
                    self.err(format!("{p}.pvs"), "a volume group needs at least 1 PV");
                }
                for (j, pv) in list.iter().enumerate() {
                    let Some(pv) = pv else { continue };
                    let at = format!("{p}.pvs[{j}]");
                    if let Some((gi, _)) = seen.get(pv) {
                        let gi = *gi;
                        let msg = if gi == i {
                            format!("{pv:?} is listed twice")
                        } else {
                            format!("{pv:?} is already a PV of volume_groups[{gi}]; a PV belongs to one volume group")
                        };
                        self.err(&at, msg);
                        continue;
                    }
                    seen.insert(pv, (i, j));
                    let Some(r) = self.reference(&at, pv, &[Kind::Namespace, Kind::Partition])
                    else {
                        continue;
                    };
                    if let Some(why) = not_dax_capable(d, &r) {
                        self.err(
                            &at,
                            format!("{why}; a PV must be DAX-capable (an fsdax namespace, or a partition of one) for its LVs to do DAX"),
                        );
                    }
                    pvs.push(r);
                }
            }
            let extent_size = g
                .extent_size
                .given()
                .map(|e| e.bytes)
                .unwrap_or(DEFAULT_EXTENT);
            if let Some(e) = g.extent_size.given() {
                if e.bytes.0 == 0 || !e.bytes.is_multiple_of(HUGE_PAGE) {
                    self.err(
                        format!("{p}.extent_size"),
                        format!("{} is not a multiple of 2 MiB; every extent must start on a 2 MiB page for DAX to map 2 MiB pages", e.text),
                    );
                }
            }
            if let (Some(name), Some(_)) = (&g.name, &g.pvs) {
                out.push(VolumeGroupSpec {
                    name: name.clone(),
                    pvs,
                    extent_size,
                });
            }
        }
        out
    }

    /// Logical volumes: in a declared VG, at most one taking the rest of it, stripes
    /// within its PV count, the stripe size as `devices[].chunk` is checked.
    fn logical_volumes(&mut self, draft: &Draft) -> Vec<LogicalVolumeSpec> {
        let mut out = Vec::new();
        let mut unsized_per_vg: BTreeMap<&String, usize> = BTreeMap::new();
        let vgs_complete = self.lvm_complete;
        for (i, l) in read_items(&draft.logical_volumes) {
            let p = format!("logical_volumes[{i}]");
            let vg = l.vg.as_ref().and_then(|vg| match self.vgs.get(vg) {
                Some(&(_, pvs)) => Some((vg, pvs)),
                None => {
                    if vgs_complete {
                        self.err(
                            format!("{p}.vg"),
                            format!("{vg:?} is not a volume group declared in volume_groups"),
                        );
                    }
                    None
                }
            });
            match &l.size {
                Field::Given(s) if s.bytes.0 == 0 => {
                    self.err(format!("{p}.size"), "the size must not be 0")
                }
                Field::Absent => {
                    if let Some((vg, _)) = vg {
                        if let Some(first) = unsized_per_vg.get(vg) {
                            self.err(
                                format!("{p}.size"),
                                format!("logical_volumes[{first}] already takes the rest of volume group {vg:?}; give the others a size"),
                            );
                        } else {
                            unsized_per_vg.insert(vg, i);
                        }
                    }
                }
                _ => {}
            }
            // `None`: unknown (stripes did not read)
            let stripes = l.stripes.known(1, |s| *s);
            if let Some(s) = stripes {
                if s == 0 {
                    self.err(
                        format!("{p}.stripes"),
                        "stripes must be at least 1 (1 = linear)",
                    );
                } else if let Some((vg, Some(pvs))) = vg {
                    if s as usize > pvs {
                        self.err(
                            format!("{p}.stripes"),
                            format!("{s} stripes need {s} PVs, but volume group {vg:?} has {pvs}"),
                        );
                    }
                }
            }
            if l.stripe_size.is_written() && stripes == Some(1) {
                self.err(
                    format!("{p}.stripe_size"),
                    "stripe_size applies to striped volumes (stripes of 2 or more) only",
                );
            } else if let Some(c) = l.stripe_size.given() {
                if c.bytes.0 == 0 || !c.bytes.is_multiple_of(PAGE) {
                    self.err(
                        format!("{p}.stripe_size"),
                        format!(
                            "{} is not a multiple of 4 KiB; DAX needs page-sized stripes",
                            c.text
                        ),
                    );
                } else if !c.bytes.0.is_power_of_two() {
                    self.err(
                        format!("{p}.stripe_size"),
                        format!(
                            "{} is not a power of 2, which LVM requires of a stripe size",
                            c.text
                        ),
                    );
                } else if !c.bytes.is_multiple_of(HUGE_PAGE) {
                    self.warnings.push(format!(
                        "{p}.stripe_size: {} is not a multiple of 2 MiB; DAX falls back to 4 KiB pages on this volume",
                        c.text
                    ));
                }
            }
            if let (Some(name), Some(vg), Some(stripes)) = (&l.name, &l.vg, stripes) {
                out.push(LogicalVolumeSpec {
                    name: name.clone(),
                    vg: vg.clone(),
                    size: l.size.given().map(|s| s.bytes),
                    stripes,
                    stripe_size: l
                        .stripe_size
                        .given()
                        .map(|s| s.bytes)
                        .unwrap_or(DEFAULT_STRIPE_SIZE),
                });
            }
        }
        out
    }

    fn namespaces(&mut self, draft: &Draft) -> Vec<NamespaceSpec> {
        let mut unsized_per_region: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut out = Vec::new();
        for (i, n) in read_items(&draft.namespaces) {
            let p = format!("namespaces[{i}]");
            // `None`: unknown (the align did not read)
            let align = n.align.known(HUGE_PAGE, |a| a.bytes);
            if let Some(a) = n.align.given() {
                if ![Bytes(4096), HUGE_PAGE, Bytes(1 << 30)].contains(&a.bytes) {
                    self.err(
                        format!("{p}.align"),
                        format!("{} is not a supported alignment (4K, 2M or 1G)", a.text),
                    );
                }
            }
            if let Some(mode) = n.mode {
                let dax_like = matches!(mode, NamespaceMode::Fsdax | NamespaceMode::Devdax);
                if !dax_like && n.map.is_written() {
                    self.err(
                        format!("{p}.map"),
                        format!("map applies to fsdax and devdax namespaces, not {mode}"),
                    );
                }
                if !dax_like && n.align.is_written() {
                    self.err(
                        format!("{p}.align"),
                        format!("align applies to fsdax and devdax namespaces, not {mode}"),
                    );
                }
            }
            match &n.size {
                Field::Given(size) => {
                    if size.bytes.0 == 0 {
                        self.err(format!("{p}.size"), "the size must not be 0");
                    } else if let Some(align) = align.filter(|a| !size.bytes.is_multiple_of(*a)) {
                        self.err(
                            format!("{p}.size"),
                            format!("{} is not a multiple of the alignment {align}", size.text),
                        );
                    }
                }
                Field::Absent => {
                    if let Some(region) = &n.region {
                        unsized_per_region
                            .entry(region.0.clone())
                            .or_default()
                            .push(i);
                    }
                }
                Field::Bad => {}
            }
            let uuid = n.uuid.given().map(|u| u.trim().to_ascii_lowercase());
            if let Some(u) = &uuid {
                if !is_uuid(u) {
                    self.err(
                        format!("{p}.uuid"),
                        format!("{u:?} is not a uuid (8-4-4-4-12 hexadecimal digits, as ndctl list shows it)"),
                    );
                }
            }
            if let (Some(mode), Some(_)) = (n.mode, n.system_ram.given()) {
                if mode != NamespaceMode::Devdax {
                    self.err(
                        format!("{p}.system_ram"),
                        format!("system_ram applies to devdax namespaces (a dax device daxctl gives to the kernel), not {mode}"),
                    );
                }
            }
            let system_ram = n.system_ram.given().map(|r| SystemRam {
                online: r.online.is_none_or(|b| b.0),
                movable: r.movable.is_none_or(|b| b.0),
            });
            if let (Some(name), Some(region), Some(mode)) = (&n.name, &n.region, n.mode) {
                out.push(NamespaceSpec {
                    name: name.clone(),
                    region: region.0.clone(),
                    cxl_region: (!region.is_nvdimm()).then(|| region.0.clone()),
                    mode,
                    size: n.size.given().map(|s| s.bytes),
                    align: align.unwrap_or(HUGE_PAGE),
                    map: n.map.given().copied().unwrap_or(MapMode::Dev),
                    uuid: uuid.clone(),
                    system_ram,
                });
            }
        }
        for (region, idx) in unsized_per_region {
            if idx.len() > 1 {
                for i in &idx[1..] {
                    self.err(
                        format!("namespaces[{i}].size"),
                        format!("namespaces[{}] already takes the rest of {region}; give the others a size", idx[0]),
                    );
                }
            }
        }
        out
    }

    /// CXL regions: names (not an NVDIMM region's), memory devices (some, each serial in
    /// one region only, a number of them CXL can interleave), granularity, size.
    fn cxl_regions(&mut self, draft: &Draft) -> Vec<CxlRegionSpec> {
        let mut out = Vec::new();
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        let mut serials: BTreeMap<u64, String> = BTreeMap::new();
        for (i, c) in read_items(&draft.cxl_regions) {
            let p = format!("cxl_regions[{i}]");
            if let Some(name) = &c.name {
                self.check_name(&format!("{p}.name"), name, NAMESPACE_NAME_MAX, "CXL region");
                if RegionArg::nvdimm(name).is_some() {
                    self.err(
                        format!("{p}.name"),
                        format!("{name:?} reads as an NVDIMM region (regionN); name the CXL region otherwise, since namespaces[].region refers to it by this name"),
                    );
                }
                if let Some(first) = names.insert(name.clone(), i) {
                    self.err(
                        format!("{p}.name"),
                        format!(
                            "duplicate CXL region name {name:?} (already cxl_regions[{first}])"
                        ),
                    );
                }
            }
            let ways = c.memdevs.as_ref().map(Vec::len);
            if ways == Some(0) {
                self.err(
                    format!("{p}.memdevs"),
                    "at least one memory device is needed",
                );
            } else if let Some(w) = ways.filter(|w| ![1, 2, 3, 4, 6, 8, 12, 16].contains(w)) {
                self.err(
                    format!("{p}.memdevs"),
                    format!("{w} memory devices cannot be interleaved (CXL interleaves 1, 2, 3, 4, 6, 8, 12 or 16)"),
                );
            }
            for (j, serial) in read_items(&c.memdevs) {
                let at = format!("{p}.memdevs[{j}]");
                if serial.0 == 0 {
                    self.err(&at, "serial 0 is no serial: a region over such a device comes back disabled (its interleave-set cookie is 0)");
                }
                if let Some(first) = serials.insert(serial.0, at.clone()) {
                    self.err(
                        &at,
                        format!("memory device {:#x} is already at {first}: a device is in one region, once", serial.0),
                    );
                }
            }
            if let Some(d) = c.root_decoder.given() {
                let ok = d
                    .strip_prefix("decoder")
                    .and_then(|r| r.split_once('.'))
                    .is_some_and(|(a, b)| {
                        !a.is_empty()
                            && !b.is_empty()
                            && a.bytes().all(|x| x.is_ascii_digit())
                            && b.bytes().all(|x| x.is_ascii_digit())
                    });
                if !ok {
                    self.err(
                        format!("{p}.root_decoder"),
                        format!("{d:?} is not a decoder (decoderN.M, as `cxl list -D` names them)"),
                    );
                }
            }
            if let Some(g) = c.granularity.given() {
                if !g.is_power_of_two() || !(256..=16384).contains(g) {
                    self.err(
                        format!("{p}.granularity"),
                        format!("{g} is not an interleave granularity (256, 512, ... 16384 bytes)"),
                    );
                }
            }
            let unit = Bytes(CXL_SIZE_UNIT.0 * ways.unwrap_or(1).max(1) as u64);
            if let Some(size) = c.size.given() {
                if size.bytes.is_zero() || !size.bytes.is_multiple_of(unit) {
                    self.err(
                        format!("{p}.size"),
                        format!(
                            "{} is not a multiple of {unit} (256 MiB per memory device)",
                            size.text
                        ),
                    );
                }
            }
            if let (Some(name), Some(memdevs)) = (&c.name, &c.memdevs) {
                let memdevs: Option<Vec<u64>> = memdevs.iter().map(|m| m.map(|s| s.0)).collect();
                if let Some(memdevs) = memdevs {
                    out.push(CxlRegionSpec {
                        name: name.clone(),
                        memdevs,
                        root_decoder: c.root_decoder.given().cloned(),
                        granularity: c.granularity.given().copied(),
                        size: c.size.given().map(|s| s.bytes),
                    });
                }
            }
        }
        out
    }

    /// A namespace whose `region` is not an NVDIMM region's number names a declared CXL
    /// region.
    fn namespaces_on_cxl(&mut self, draft: &Draft, cxl: &[CxlRegionSpec]) {
        let cxl_complete = all_read(&draft.cxl_regions)
            && read_items(&draft.cxl_regions).all(|(_, c)| c.name.is_some());
        for (i, n) in read_items(&draft.namespaces) {
            let Some(region) = n.region.as_ref().filter(|r| !r.is_nvdimm()) else {
                continue;
            };
            if cxl.iter().any(|c| c.name == region.0) || !cxl_complete {
                continue;
            }
            let known: Vec<&str> = cxl.iter().map(|c| c.name.as_str()).collect();
            self.err(
                format!("namespaces[{i}].region"),
                format!(
                    "{:?} is neither an NVDIMM region (\"region0\", \"0\" or 0) nor one of cxl_regions ({})",
                    region.0,
                    if known.is_empty() { "none declared".to_string() } else { known.join(", ") }
                ),
            );
        }
    }

    fn devices(&mut self, draft: &Draft) -> Vec<DeviceSpec> {
        let mut out = Vec::new();
        for (i, d) in read_items(&draft.devices) {
            let p = format!("devices[{i}]");
            let mut members = Vec::new();
            if let Some(list) = &d.members {
                for (j, m) in list.iter().enumerate() {
                    let Some(m) = m else { continue };
                    if let Some(r) = self.reference(
                        &format!("{p}.members[{j}]"),
                        m,
                        &[
                            Kind::Namespace,
                            Kind::Partition,
                            Kind::Device,
                            Kind::LogicalVolume,
                        ],
                    ) {
                        members.push(r);
                    }
                }
                let mut seen = BTreeSet::new();
                for (j, m) in list.iter().enumerate() {
                    let Some(m) = m else { continue };
                    if !seen.insert(m) {
                        self.err(
                            format!("{p}.members[{j}]"),
                            format!("{m:?} is listed twice"),
                        );
                    }
                }
                match d.target {
                    Some(DmTarget::Striped) if list.len() < 2 => self.err(
                        format!("{p}.members"),
                        format!(
                            "a striped device needs at least 2 members, got {}",
                            list.len()
                        ),
                    ),
                    Some(DmTarget::Linear) if list.is_empty() => self.err(
                        format!("{p}.members"),
                        "a linear device needs at least 1 member",
                    ),
                    _ => {}
                }
            }
            let chunk = d.chunk.given().map(|c| c.bytes).unwrap_or(DEFAULT_CHUNK);
            if d.chunk.is_written() && d.target == Some(DmTarget::Linear) {
                self.err(
                    format!("{p}.chunk"),
                    "chunk applies to striped devices only",
                );
            } else if let Some(c) = d.chunk.given() {
                if c.bytes.0 == 0 || !c.bytes.is_multiple_of(PAGE) {
                    self.err(
                        format!("{p}.chunk"),
                        format!(
                            "{} is not a multiple of 4 KiB; DAX needs page-sized chunks",
                            c.text
                        ),
                    );
                } else if !c.bytes.is_multiple_of(HUGE_PAGE) {
                    self.warnings.push(format!(
                        "{p}.chunk: {} is not a multiple of 2 MiB; DAX falls back to 4 KiB pages on this device",
                        c.text
                    ));
                }
            }
            if let (Some(name), Some(target), Some(_)) = (&d.name, d.target, &d.members) {
                self.device_at.push(i);
                out.push(DeviceSpec {
                    name: name.clone(),
                    target,
                    members,
                    chunk: chunk.sectors(),
                });
            }
        }
        out
    }

    fn partitions(&mut self, draft: &Draft) -> Vec<PartitionSpec> {
        let mut out: Vec<PartitionSpec> = Vec::new();
        let mut numbers: BTreeMap<(String, u32), usize> = BTreeMap::new();
        for (i, part) in read_items(&draft.partitions) {
            let p = format!("partitions[{i}]");
            let disk = part.disk.as_ref().and_then(|text| {
                self.reference(
                    &format!("{p}.disk"),
                    text,
                    &[Kind::Namespace, Kind::Device, Kind::LogicalVolume],
                )
            });
            if let Some(&n) = part.number.given() {
                if !(1..=128).contains(&n) {
                    self.err(
                        format!("{p}.number"),
                        format!("{n} is not a GPT partition number (1-128)"),
                    );
                } else if let Some(text) = &part.disk {
                    if let Some(first) = numbers.insert((text.clone(), n), i) {
                        self.err(
                            format!("{p}.number"),
                            format!(
                                "partition {n} of {text:?} is already declared at partitions[{first}]"
                            ),
                        );
                    }
                }
            }
            let start = part.start.given().map(|s| s.bytes).unwrap_or(HUGE_PAGE);
            if let Some(s) = part.start.given() {
                if !s.bytes.is_multiple_of(PAGE) {
                    self.err(
                        format!("{p}.start"),
                        format!("{} is not a multiple of 4 KiB; the kernel refuses DAX on an unaligned partition", s.text),
                    );
                } else if s.bytes < GPT_FIRST_USABLE {
                    self.err(
                        format!("{p}.start"),
                        format!("{} overlaps the GPT header and entries (the first usable page is at 20K)", s.text),
                    );
                } else if !s.bytes.is_multiple_of(HUGE_PAGE) {
                    self.warnings.push(format!(
                        "{p}.start: {} is not a multiple of 2 MiB; DAX falls back to 4 KiB pages on this partition",
                        s.text
                    ));
                }
            }
            if let Some(s) = part.size.given() {
                if s.bytes.0 == 0 {
                    self.err(format!("{p}.size"), "the size must not be 0");
                } else if !s.bytes.is_multiple_of(PAGE) {
                    self.err(
                        format!("{p}.size"),
                        format!("{} is not a multiple of 4 KiB; the kernel refuses DAX on an unaligned partition", s.text),
                    );
                } else if !s.bytes.is_multiple_of(HUGE_PAGE) {
                    self.warnings
                        .push(format!("{p}.size: {} is not a multiple of 2 MiB", s.text));
                }
            }
            if let (Some(name), Some(disk)) = (&part.name, disk) {
                let spec = PartitionSpec {
                    name: name.clone(),
                    disk,
                    number: part.number.given().copied(),
                    start: start.sectors(),
                    size: part.size.given().map(|s| s.bytes.sectors()),
                };
                // two declared partitions of one disk never share a sector (`start`
                // defaults to 2M for each; a missing `size` runs to the disk's end)
                if let Some((j, other)) = out
                    .iter()
                    .enumerate()
                    .find(|(_, o)| o.disk == spec.disk && overlap(o, &spec))
                {
                    let extent = |x: &PartitionSpec| match x.size {
                        Some(z) => format!(
                            "sectors {}-{}",
                            x.start,
                            x.start.saturating_add(z) - Sectors(1)
                        ),
                        None => format!("sectors {} to the end of the disk", x.start),
                    };
                    self.err(
                        format!("{p}.start"),
                        format!(
                            "partition {:?} ({}) overlaps partition {:?} (partitions[{j}], {}) on the same disk; give each partition its own start, and all but the last a size",
                            spec.name,
                            extent(&spec),
                            other.name,
                            extent(other),
                        ),
                    );
                }
                out.push(spec);
            }
        }
        out
    }

    /// Each declared block device has one user (see `role_conflicts`); a devdax
    /// namespace has no block device to be a member or a disk.
    fn roles(&mut self, d: &Desired) {
        for (i, dev) in d.devices.iter().enumerate() {
            for (j, m) in dev.members.iter().enumerate() {
                if let Some(why) = no_block_device(d, m) {
                    self.err(
                        format!("devices[{i}].members[{j}]"),
                        format!("{why}; a dm member must be a block device"),
                    );
                }
            }
        }
        for (i, part) in d.partitions.iter().enumerate() {
            if let Some(why) = no_block_device(d, &part.disk) {
                self.err(
                    format!("partitions[{i}].disk"),
                    format!("{why}; a partition table needs a block device"),
                );
            }
        }
        if self.errors.is_empty() {
            for (path, msg) in role_conflicts(d, |r| Some(r.clone())) {
                self.err(path, msg);
            }
        }
    }

    /// A reference cycle (a device over a partition of itself, or devices over each other).
    fn cycles(&mut self, d: &Desired) {
        // the declared names under a reference: its own, or for an LV, its VG's PVs'
        let under = |r: &DevRef| -> Vec<String> {
            match (r, declared_name(r)) {
                (_, Some(n)) => vec![n],
                (DevRef::Volume(vg, _), None) => d
                    .volume_group(vg)
                    .map(|vg| vg.pvs.iter().filter_map(declared_name).collect())
                    .unwrap_or_default(),
                _ => Vec::new(),
            }
        };
        let edges = |name: &str| -> Vec<String> {
            if let Some(dev) = d.device(name) {
                dev.members.iter().flat_map(under).collect()
            } else if let Some(p) = d.partition(name) {
                under(&p.disk)
            } else {
                Vec::new()
            }
        };
        let mut reported = BTreeSet::new();
        for (dev, &i) in d.devices.iter().zip(&self.device_at.clone()) {
            // depth-first search from each device; a path back to itself is a cycle
            let mut stack = vec![(dev.name.clone(), vec![dev.name.clone()])];
            let mut visited = BTreeSet::new();
            while let Some((node, trail)) = stack.pop() {
                for next in edges(&node) {
                    if next == dev.name {
                        let cycle: BTreeSet<_> = trail.iter().cloned().collect();
                        if reported.insert(cycle) {
                            let mut shown = trail.clone();
                            shown.push(next.clone());
                            self.err(
                                format!("devices[{i}].members"),
                                format!("reference cycle: {}", shown.join(" -> ")),
                            );
                        }
                    } else if visited.insert(next.clone()) {
                        let mut t = trail.clone();
                        t.push(next.clone());
                        stack.push((next, t));
                    }
                }
            }
        }
    }

    fn filesystems(&mut self, draft: &Draft, d: &Desired) -> Vec<FilesystemSpec> {
        let mut out = Vec::new();
        let mut seen: BTreeMap<DevRef, usize> = BTreeMap::new();
        for (i, fs) in read_items(&draft.filesystems) {
            let p = format!("filesystems[{i}]");
            let device = fs
                .device
                .as_ref()
                .and_then(|text| self.block_reference(d, &format!("{p}.device"), text));
            let device = device.map(|(r, _)| r);
            if let Some(device) = &device {
                if let Some(first) = seen.insert(device.clone(), i) {
                    self.err(
                        format!("{p}.device"),
                        format!(
                            "{device} already has a filesystem declared at filesystems[{first}]"
                        ),
                    );
                }
            }
            if let (Some(label), Some(fstype)) = (fs.label.given(), fs.fstype) {
                let max = match fstype {
                    FsType::Ext4 => 16,
                    FsType::Xfs => 12,
                };
                if label.len() > max {
                    self.err(
                        format!("{p}.label"),
                        format!("{label:?} is longer than {max} bytes, the {fstype} label limit"),
                    );
                }
            }
            if let Some(words) = &fs.mkfs_options {
                let words: Vec<Option<&str>> = words.iter().map(Option::as_deref).collect();
                let mut forcing = force_flags(fs.fstype, &words).into_iter().peekable();
                for (j, w) in words.iter().enumerate() {
                    let force = forcing.next_if(|(at, _)| *at == j).map(|(_, msg)| msg);
                    if *w == Some("") {
                        self.err(format!("{p}.mkfs_options[{j}]"), "an empty argument");
                    } else if let Some(msg) = force {
                        self.err(format!("{p}.mkfs_options[{j}]"), msg);
                    }
                }
            }
            if let (Some(device), Some(fstype), Some(words)) = (device, fs.fstype, &fs.mkfs_options)
            {
                out.push(FilesystemSpec {
                    stripes: stripes_under(d, &device),
                    device,
                    fstype,
                    label: fs.label.given().cloned(),
                    mkfs_options: words.iter().flatten().cloned().collect(),
                });
            }
        }
        out
    }

    fn mounts(&mut self, draft: &Draft, d: &Desired) -> Vec<MountSpec> {
        let mut out = Vec::new();
        let mut paths: BTreeMap<String, usize> = BTreeMap::new();
        for (i, m) in read_items(&draft.mounts) {
            let p = format!("mounts[{i}]");
            let path = m.path.as_ref().and_then(|raw| {
                let norm = normalize_mount_path(raw);
                match &norm {
                    None => self.err(
                        format!("{p}.path"),
                        format!("{raw:?} is not an absolute path (a mount point must start with /, with no . or .. parts)"),
                    ),
                    Some(norm) if norm == "/" => {
                        self.err(format!("{p}.path"), "refusing to manage a mount on /")
                    }
                    Some(norm) => {
                        if let Some(first) = paths.insert(norm.clone(), i) {
                            self.err(
                                format!("{p}.path"),
                                format!("{norm} is already a mount point at mounts[{first}]"),
                            );
                        }
                    }
                }
                norm
            });
            // `None`: unknown (the dax field did not read)
            let dax = m.dax.known(DaxMode::default(), |d| *d);
            for (j, o) in m.options.iter().flatten().enumerate() {
                let Some(o) = o else { continue };
                let key = o.split('=').next().unwrap_or("").trim();
                if key == "dax" || key == "nodax" {
                    self.err(
                        format!("{p}.options[{j}]"),
                        format!("{o:?}: set DAX with the dax field (always, inode or never), not in options"),
                    );
                } else if o.is_empty() || o.contains(',') {
                    self.err(
                        format!("{p}.options[{j}]"),
                        format!("{o:?}: give one option per list item"),
                    );
                } else if matches!(key, "remount" | "bind" | "rbind" | "move") {
                    self.err(
                        format!("{p}.options[{j}]"),
                        format!("{o:?} is not a filesystem mount option"),
                    );
                }
            }
            let device = m
                .device
                .as_ref()
                .and_then(|text| self.block_reference(d, &format!("{p}.device"), text));
            if let Some((device, true)) = &device {
                if let Some(dax) = dax.filter(|x| *x != DaxMode::Never) {
                    if let Some(why) = not_dax_capable(d, device) {
                        self.err(
                            format!("{p}.device"),
                            format!("dax={} needs a DAX-capable device, but {why}; use an fsdax namespace or set dax: never", dax.as_str()),
                        );
                    }
                }
            }
            if let (Some(path), Some((device, _)), Some(dax), Some(options)) =
                (path, device, dax, &m.options)
            {
                out.push(MountSpec {
                    path,
                    device,
                    dax,
                    options: options.iter().flatten().cloned().collect(),
                });
            }
        }
        out
    }
}

/// Whether each device, partition and filesystem spec stands at its item's index in the
/// arguments, with every member: specs are made in order, an item that did not read or
/// did not resolve makes none, so equal counts mean equal indices.
fn specs_match_items(draft: &Draft, d: &Desired) -> bool {
    fn count<T>(list: &Items<T>) -> usize {
        list.as_ref().map_or(0, Vec::len)
    }
    count(&draft.devices) == d.devices.len()
        && read_items(&draft.devices)
            .zip(&d.devices)
            .all(|((_, item), spec)| count(&item.members) == spec.members.len())
        && count(&draft.partitions) == d.partitions.len()
        && count(&draft.volume_groups) == d.volume_groups.len()
        && read_items(&draft.volume_groups)
            .zip(&d.volume_groups)
            .all(|((_, item), spec)| count(&item.pvs) == spec.pvs.len())
        && count(&draft.filesystems) == d.filesystems.len()
}

fn kind_word(k: Kind) -> &'static str {
    match k {
        Kind::Namespace => "namespace",
        Kind::Device => "dm device",
        Kind::Partition => "partition",
        Kind::LogicalVolume => "logical volume",
    }
}

/// `/mnt//x/` -> `/mnt/x`; relative paths and `.`/`..` components are refused.
fn normalize_mount_path(p: &str) -> Option<String> {
    if !p.starts_with('/') || p.contains('\0') {
        return None;
    }
    let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    if parts.iter().any(|s| *s == "." || *s == "..") {
        return None;
    }
    Some(format!("/{}", parts.join("/")))
}

/// Whether `s` is a uuid as ndctl prints one (8-4-4-4-12 hexadecimal digits); also
/// what the real system's uncleared markers are named by.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Whether two partitions' sector ranges meet (a missing size runs to the disk's end).
fn overlap(a: &PartitionSpec, b: &PartitionSpec) -> bool {
    let below = |x: &PartitionSpec, y: &PartitionSpec| {
        x.size.is_some_and(|z| x.start.saturating_add(z) <= y.start)
    };
    !below(a, b) && !below(b, a)
}
