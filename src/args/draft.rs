//! The lenient reading of the options: every option, list item, field and list word is
//! read on its own, so that one bad value hides nothing else.
//!
//! A value that does not read is reported (an [`InputError`] with its JSON path, in the
//! wording serde would use) and is missing from the [`Draft`]; the draft keeps the rest.
//! Semantic validation ([`super::validate::check_draft`]) then runs on what did read, so
//! a bad mode, a bad size and a dangling reference elsewhere are all reported in one run.
//! A draft with nothing missing converts into [`ModuleArgs`] ([`Draft::into_args`]); the
//! serde types stay what the schema and the saved boot state are made of.
//!
//! Within one object the errors follow the keys' order in the input; missing required
//! fields come last, and every missing one is named (serde names only the first).

use super::{
    AnsibleBool, BootArg, CxlRegionArg, CxlRegionType, DaxMode, DeviceArg, DmTarget, FilesystemArg,
    FsType, InputError, LogicalVolumeArg, MapMode, ModuleArgs, MountArg, NamespaceArg,
    NamespaceMode, PartitionArg, RegionArg, SerialArg, State, SystemRamArg, VolumeGroupArg,
};
use crate::units::SizeArg;
use serde::de::{DeserializeOwned, Error as _};
use serde_json::{Map, Value};

/// An optional field as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field<T> {
    /// Not given (for an `Option` field, also `null`): the default applies.
    Absent,
    /// Given, and read.
    Given(T),
    /// Given but unreadable: its error is already reported, its value is unknown.
    Bad,
}

impl<T> Field<T> {
    /// The value, when given and read.
    pub fn given(&self) -> Option<&T> {
        match self {
            Field::Given(t) => Some(t),
            _ => None,
        }
    }

    /// Whether the input has this field at all (readable or not).
    pub fn is_written(&self) -> bool {
        !matches!(self, Field::Absent)
    }

    /// `f` of the value when read, `absent` when not given, `None` when unreadable
    /// (unknown: a rule that needs it is skipped).
    pub fn known<U>(&self, absent: U, f: impl FnOnce(&T) -> U) -> Option<U> {
        match self {
            Field::Absent => Some(absent),
            Field::Given(t) => Some(f(t)),
            Field::Bad => None,
        }
    }

    /// `Some(None)` when absent, `Some(Some(t))` when read, `None` when unreadable.
    fn complete(self) -> Option<Option<T>> {
        match self {
            Field::Absent => Some(None),
            Field::Given(t) => Some(Some(t)),
            Field::Bad => None,
        }
    }

    fn from_option(o: Option<T>) -> Self {
        o.map_or(Field::Absent, Field::Given)
    }
}

/// A list as read: `None` when the value was not a list (or a required list is
/// missing); an item `None` when it could not be read at all.
pub type Items<T> = Option<Vec<Option<T>>>;

/// The items of `list` that were read, with their index in the input.
pub fn read_items<T>(list: &Items<T>) -> impl Iterator<Item = (usize, &T)> {
    list.iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, item)| item.as_ref().map(|t| (i, t)))
}

/// Whether every item of `list` was read (and it was a list).
pub fn all_read<T>(list: &Items<T>) -> bool {
    list.as_ref().is_some_and(|l| l.iter().all(Option::is_some))
}

/// A CXL region item as read ([`CxlRegionArg`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CxlRegionDraft {
    /// `name`.
    pub name: Option<String>,
    /// `type`.
    pub region_type: Field<CxlRegionType>,
    /// `memdevs`, each read on its own.
    pub memdevs: Items<SerialArg>,
    /// `root_decoder`.
    pub root_decoder: Field<String>,
    /// `granularity`.
    pub granularity: Field<u32>,
    /// `size`.
    pub size: Field<SizeArg>,
}

/// A namespace item as read ([`NamespaceArg`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceDraft {
    /// `name`.
    pub name: Option<String>,
    /// `region`.
    pub region: Option<RegionArg>,
    /// `mode`.
    pub mode: Option<NamespaceMode>,
    /// `size`.
    pub size: Field<SizeArg>,
    /// `align`.
    pub align: Field<SizeArg>,
    /// `map`.
    pub map: Field<MapMode>,
    /// `uuid`.
    pub uuid: Field<String>,
    /// `system_ram`.
    pub system_ram: Field<SystemRamArg>,
}

/// A device item as read ([`DeviceArg`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceDraft {
    /// `name`.
    pub name: Option<String>,
    /// `target`.
    pub target: Option<DmTarget>,
    /// `members`, each read on its own.
    pub members: Items<String>,
    /// `chunk`.
    pub chunk: Field<SizeArg>,
}

/// A partition item as read ([`PartitionArg`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDraft {
    /// `name`.
    pub name: Option<String>,
    /// `disk`.
    pub disk: Option<String>,
    /// `number`.
    pub number: Field<u32>,
    /// `start`.
    pub start: Field<SizeArg>,
    /// `size`.
    pub size: Field<SizeArg>,
}

/// A volume group item as read ([`VolumeGroupArg`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeGroupDraft {
    /// `name`.
    pub name: Option<String>,
    /// `pvs`, each read on its own.
    pub pvs: Items<String>,
    /// `extent_size`.
    pub extent_size: Field<SizeArg>,
}

/// A logical volume item as read ([`LogicalVolumeArg`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalVolumeDraft {
    /// `name`.
    pub name: Option<String>,
    /// `vg`.
    pub vg: Option<String>,
    /// `size`.
    pub size: Field<SizeArg>,
    /// `stripes`.
    pub stripes: Field<u32>,
    /// `stripe_size`.
    pub stripe_size: Field<SizeArg>,
}

/// A filesystem item as read ([`FilesystemArg`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesystemDraft {
    /// `device`.
    pub device: Option<String>,
    /// `type`.
    pub fstype: Option<FsType>,
    /// `label`.
    pub label: Field<String>,
    /// `mkfs_options`, each read on its own.
    pub mkfs_options: Items<String>,
}

/// A mount item as read ([`MountArg`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountDraft {
    /// `path`.
    pub path: Option<String>,
    /// `device`.
    pub device: Option<String>,
    /// `dax`.
    pub dax: Field<DaxMode>,
    /// `options`, each read on its own.
    pub options: Items<String>,
}

/// The options as read ([`ModuleArgs`] with holes where values did not read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// `cxl_regions`.
    pub cxl_regions: Items<CxlRegionDraft>,
    /// `namespaces`.
    pub namespaces: Items<NamespaceDraft>,
    /// `devices`.
    pub devices: Items<DeviceDraft>,
    /// `partitions`.
    pub partitions: Items<PartitionDraft>,
    /// `volume_groups`.
    pub volume_groups: Items<VolumeGroupDraft>,
    /// `logical_volumes`.
    pub logical_volumes: Items<LogicalVolumeDraft>,
    /// `filesystems`.
    pub filesystems: Items<FilesystemDraft>,
    /// `mounts`.
    pub mounts: Items<MountDraft>,
    /// `boot.persist` (`Bad` also when `boot` is not an object).
    pub persist: Field<AnsibleBool>,
    /// `state`.
    pub state: Field<State>,
    /// `allow_data_loss`.
    pub allow_data_loss: Field<AnsibleBool>,
    /// `verify_pmd`.
    pub verify_pmd: Field<AnsibleBool>,
}

impl Default for Draft {
    /// No options given: empty lists, every default.
    fn default() -> Self {
        Draft {
            cxl_regions: Some(Vec::new()),
            namespaces: Some(Vec::new()),
            devices: Some(Vec::new()),
            partitions: Some(Vec::new()),
            volume_groups: Some(Vec::new()),
            logical_volumes: Some(Vec::new()),
            filesystems: Some(Vec::new()),
            mounts: Some(Vec::new()),
            persist: Field::Absent,
            state: Field::Absent,
            allow_data_loss: Field::Absent,
            verify_pmd: Field::Absent,
        }
    }
}

/// The fields of each object, as serde knows them (a unit test holds them to the schema).
pub(super) const CXL_REGION_FIELDS: &[&str] = &[
    "name",
    "type",
    "memdevs",
    "root_decoder",
    "granularity",
    "size",
];
pub(super) const NAMESPACE_FIELDS: &[&str] = &[
    "name",
    "region",
    "mode",
    "size",
    "align",
    "map",
    "system_ram",
    "uuid",
];
pub(super) const DEVICE_FIELDS: &[&str] = &["name", "target", "members", "chunk"];
pub(super) const PARTITION_FIELDS: &[&str] = &["name", "disk", "number", "start", "size"];
pub(super) const VOLUME_GROUP_FIELDS: &[&str] = &["name", "pvs", "extent_size"];
pub(super) const LOGICAL_VOLUME_FIELDS: &[&str] = &["name", "vg", "size", "stripes", "stripe_size"];
pub(super) const FILESYSTEM_FIELDS: &[&str] = &["device", "type", "label", "mkfs_options"];
pub(super) const MOUNT_FIELDS: &[&str] = &["path", "device", "dax", "options"];
pub(super) const BOOT_FIELDS: &[&str] = &["persist"];

impl Draft {
    /// Read the known options of `options` (unknown ones are reported by the caller),
    /// pushing every value that does not read onto `errors`.
    pub fn read(options: &Map<String, Value>, errors: &mut Vec<InputError>) -> Draft {
        let mut d = Draft::default();
        for (k, v) in options {
            match k.as_str() {
                "cxl_regions" => {
                    d.cxl_regions = read_list(k, v, errors, CXL_REGION_FIELDS, CxlRegionDraft::read)
                }
                "namespaces" => {
                    d.namespaces = read_list(k, v, errors, NAMESPACE_FIELDS, NamespaceDraft::read)
                }
                "devices" => d.devices = read_list(k, v, errors, DEVICE_FIELDS, DeviceDraft::read),
                "partitions" => {
                    d.partitions = read_list(k, v, errors, PARTITION_FIELDS, PartitionDraft::read)
                }
                "volume_groups" => {
                    d.volume_groups =
                        read_list(k, v, errors, VOLUME_GROUP_FIELDS, VolumeGroupDraft::read)
                }
                "logical_volumes" => {
                    d.logical_volumes = read_list(
                        k,
                        v,
                        errors,
                        LOGICAL_VOLUME_FIELDS,
                        LogicalVolumeDraft::read,
                    )
                }
                "filesystems" => {
                    d.filesystems =
                        read_list(k, v, errors, FILESYSTEM_FIELDS, FilesystemDraft::read)
                }
                "mounts" => d.mounts = read_list(k, v, errors, MOUNT_FIELDS, MountDraft::read),
                "boot" => {
                    d.persist = match v {
                        Value::Null => Field::Absent,
                        Value::Object(o) => {
                            let mut f = Fields::new(k, o, BOOT_FIELDS);
                            let persist = f.defaulted("persist");
                            f.finish(errors);
                            persist
                        }
                        other => {
                            errors.push(not_an_object(k, other));
                            Field::Bad
                        }
                    }
                }
                "state" => d.state = read_option(k, v, errors),
                "allow_data_loss" => d.allow_data_loss = read_option(k, v, errors),
                "verify_pmd" => d.verify_pmd = read_option(k, v, errors),
                _ => {}
            }
        }
        d
    }

    /// The typed options, when nothing is missing.
    pub fn into_args(self) -> Option<ModuleArgs> {
        Some(ModuleArgs {
            cxl_regions: complete_items(self.cxl_regions, CxlRegionDraft::into_arg)?,
            namespaces: complete_items(self.namespaces, NamespaceDraft::into_arg)?,
            devices: complete_items(self.devices, DeviceDraft::into_arg)?,
            partitions: complete_items(self.partitions, PartitionDraft::into_arg)?,
            volume_groups: complete_items(self.volume_groups, VolumeGroupDraft::into_arg)?,
            logical_volumes: complete_items(self.logical_volumes, LogicalVolumeDraft::into_arg)?,
            filesystems: complete_items(self.filesystems, FilesystemDraft::into_arg)?,
            mounts: complete_items(self.mounts, MountDraft::into_arg)?,
            boot: BootArg {
                persist: self.persist.complete()?.unwrap_or_default(),
            },
            state: self.state.complete()?.unwrap_or_default(),
            allow_data_loss: self.allow_data_loss.complete()?.unwrap_or_default(),
            verify_pmd: self.verify_pmd.complete()?.unwrap_or_default(),
        })
    }
}

impl From<&ModuleArgs> for Draft {
    /// Typed options as a draft with nothing missing (what validation reads).
    fn from(a: &ModuleArgs) -> Self {
        fn items<A, T>(list: &[A], f: impl Fn(&A) -> T) -> Items<T> {
            Some(list.iter().map(|a| Some(f(a))).collect())
        }
        fn words(list: &[String]) -> Items<String> {
            Some(list.iter().cloned().map(Some).collect())
        }
        Draft {
            cxl_regions: items(&a.cxl_regions, |c| CxlRegionDraft {
                name: Some(c.name.clone()),
                region_type: Field::from_option(c.region_type),
                memdevs: Some(c.memdevs.iter().copied().map(Some).collect()),
                root_decoder: Field::from_option(c.root_decoder.clone()),
                granularity: Field::from_option(c.granularity),
                size: Field::from_option(c.size.clone()),
            }),
            namespaces: items(&a.namespaces, |n| NamespaceDraft {
                name: Some(n.name.clone()),
                region: Some(n.region.clone()),
                mode: Some(n.mode),
                size: Field::from_option(n.size.clone()),
                align: Field::from_option(n.align.clone()),
                map: Field::from_option(n.map),
                uuid: Field::from_option(n.uuid.clone()),
                system_ram: Field::from_option(n.system_ram.clone()),
            }),
            devices: items(&a.devices, |d| DeviceDraft {
                name: Some(d.name.clone()),
                target: Some(d.target),
                members: words(&d.members),
                chunk: Field::from_option(d.chunk.clone()),
            }),
            partitions: items(&a.partitions, |p| PartitionDraft {
                name: Some(p.name.clone()),
                disk: Some(p.disk.clone()),
                number: Field::from_option(p.number),
                start: Field::from_option(p.start.clone()),
                size: Field::from_option(p.size.clone()),
            }),
            volume_groups: items(&a.volume_groups, |g| VolumeGroupDraft {
                name: Some(g.name.clone()),
                pvs: words(&g.pvs),
                extent_size: Field::from_option(g.extent_size.clone()),
            }),
            logical_volumes: items(&a.logical_volumes, |l| LogicalVolumeDraft {
                name: Some(l.name.clone()),
                vg: Some(l.vg.clone()),
                size: Field::from_option(l.size.clone()),
                stripes: Field::from_option(l.stripes),
                stripe_size: Field::from_option(l.stripe_size.clone()),
            }),
            filesystems: items(&a.filesystems, |f| FilesystemDraft {
                device: Some(f.device.clone()),
                fstype: Some(f.fstype),
                label: Field::from_option(f.label.clone()),
                mkfs_options: words(&f.mkfs_options),
            }),
            mounts: items(&a.mounts, |m| MountDraft {
                path: Some(m.path.clone()),
                device: Some(m.device.clone()),
                dax: Field::from_option(m.dax),
                options: words(&m.options),
            }),
            persist: Field::Given(a.boot.persist),
            state: Field::Given(a.state),
            allow_data_loss: Field::Given(a.allow_data_loss),
            verify_pmd: Field::Given(a.verify_pmd),
        }
    }
}

impl CxlRegionDraft {
    fn read(f: &mut Fields) -> Self {
        CxlRegionDraft {
            name: f.required("name"),
            region_type: f.optional("type"),
            memdevs: f.list("memdevs", true),
            root_decoder: f.optional("root_decoder"),
            granularity: f.optional("granularity"),
            size: f.optional("size"),
        }
    }
    fn into_arg(self) -> Option<CxlRegionArg> {
        Some(CxlRegionArg {
            name: self.name?,
            region_type: self.region_type.complete()?,
            memdevs: self.memdevs?.into_iter().collect::<Option<Vec<_>>>()?,
            root_decoder: self.root_decoder.complete()?,
            granularity: self.granularity.complete()?,
            size: self.size.complete()?,
        })
    }
}

impl NamespaceDraft {
    fn read(f: &mut Fields) -> Self {
        NamespaceDraft {
            name: f.required("name"),
            region: f.required("region"),
            mode: f.required("mode"),
            size: f.optional("size"),
            align: f.optional("align"),
            map: f.optional("map"),
            uuid: f.optional("uuid"),
            system_ram: f.optional("system_ram"),
        }
    }
    fn into_arg(self) -> Option<NamespaceArg> {
        Some(NamespaceArg {
            name: self.name?,
            region: self.region?,
            mode: self.mode?,
            size: self.size.complete()?,
            align: self.align.complete()?,
            map: self.map.complete()?,
            uuid: self.uuid.complete()?,
            system_ram: self.system_ram.complete()?,
        })
    }
}

impl DeviceDraft {
    fn read(f: &mut Fields) -> Self {
        DeviceDraft {
            name: f.required("name"),
            target: f.required("target"),
            members: f.words("members", true),
            chunk: f.optional("chunk"),
        }
    }
    fn into_arg(self) -> Option<DeviceArg> {
        Some(DeviceArg {
            name: self.name?,
            target: self.target?,
            members: complete_words(self.members)?,
            chunk: self.chunk.complete()?,
        })
    }
}

impl PartitionDraft {
    fn read(f: &mut Fields) -> Self {
        PartitionDraft {
            name: f.required("name"),
            disk: f.required("disk"),
            number: f.optional("number"),
            start: f.optional("start"),
            size: f.optional("size"),
        }
    }
    fn into_arg(self) -> Option<PartitionArg> {
        Some(PartitionArg {
            name: self.name?,
            disk: self.disk?,
            number: self.number.complete()?,
            start: self.start.complete()?,
            size: self.size.complete()?,
        })
    }
}

impl VolumeGroupDraft {
    fn read(f: &mut Fields) -> Self {
        VolumeGroupDraft {
            name: f.required("name"),
            pvs: f.words("pvs", true),
            extent_size: f.optional("extent_size"),
        }
    }
    fn into_arg(self) -> Option<VolumeGroupArg> {
        Some(VolumeGroupArg {
            name: self.name?,
            pvs: complete_words(self.pvs)?,
            extent_size: self.extent_size.complete()?,
        })
    }
}

impl LogicalVolumeDraft {
    fn read(f: &mut Fields) -> Self {
        LogicalVolumeDraft {
            name: f.required("name"),
            vg: f.required("vg"),
            size: f.optional("size"),
            stripes: f.optional("stripes"),
            stripe_size: f.optional("stripe_size"),
        }
    }
    fn into_arg(self) -> Option<LogicalVolumeArg> {
        Some(LogicalVolumeArg {
            name: self.name?,
            vg: self.vg?,
            size: self.size.complete()?,
            stripes: self.stripes.complete()?,
            stripe_size: self.stripe_size.complete()?,
        })
    }
}

impl FilesystemDraft {
    fn read(f: &mut Fields) -> Self {
        FilesystemDraft {
            device: f.required("device"),
            fstype: f.required("type"),
            label: f.optional("label"),
            mkfs_options: f.words("mkfs_options", false),
        }
    }
    fn into_arg(self) -> Option<FilesystemArg> {
        Some(FilesystemArg {
            device: self.device?,
            fstype: self.fstype?,
            label: self.label.complete()?,
            mkfs_options: complete_words(self.mkfs_options)?,
        })
    }
}

impl MountDraft {
    fn read(f: &mut Fields) -> Self {
        MountDraft {
            path: f.required("path"),
            device: f.required("device"),
            dax: f.optional("dax"),
            options: f.words("options", false),
        }
    }
    fn into_arg(self) -> Option<MountArg> {
        Some(MountArg {
            path: self.path?,
            device: self.device?,
            dax: self.dax.complete()?,
            options: complete_words(self.options)?,
        })
    }
}

fn complete_items<T, A>(list: Items<T>, f: impl Fn(T) -> Option<A>) -> Option<Vec<A>> {
    list?.into_iter().map(|item| item.and_then(&f)).collect()
}

fn complete_words(list: Items<String>) -> Option<Vec<String>> {
    list?.into_iter().collect()
}

/// A top-level option other than a list: `null` means not given, as Ansible passes an
/// omitted option.
fn read_option<T: DeserializeOwned>(
    path: &str,
    v: &Value,
    errors: &mut Vec<InputError>,
) -> Field<T> {
    if v.is_null() {
        return Field::Absent;
    }
    match deserialize_at(path, v) {
        Ok(t) => Field::Given(t),
        Err(e) => {
            errors.push(e);
            Field::Bad
        }
    }
}

/// A list option, item by item (`null`: not given).
fn read_list<T>(
    path: &str,
    v: &Value,
    errors: &mut Vec<InputError>,
    fields: &'static [&'static str],
    read: fn(&mut Fields) -> T,
) -> Items<T> {
    match v {
        Value::Null => Some(Vec::new()),
        Value::Array(items) => Some(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let at = format!("{path}[{i}]");
                    match item {
                        Value::Object(o) => {
                            let mut f = Fields::new(&at, o, fields);
                            let t = read(&mut f);
                            f.finish(errors);
                            Some(t)
                        }
                        other => {
                            errors.push(not_an_object(&at, other));
                            None
                        }
                    }
                })
                .collect(),
        ),
        other => {
            errors.push(InputError::new(
                path,
                format!("expected a list, got {}", json_kind(other)),
            ));
            None
        }
    }
}

fn not_an_object(path: &str, v: &Value) -> InputError {
    InputError::new(path, format!("expected an object, got {}", json_kind(v)))
}

/// "a string", "a list", ... for messages.
pub(super) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// One object's fields, each read on its own; the errors are kept with the position of
/// their key, so that they come out in the input's order.
struct Fields<'a> {
    path: &'a str,
    obj: &'a Map<String, Value>,
    known: &'static [&'static str],
    found: Vec<(usize, InputError)>,
}

impl<'a> Fields<'a> {
    fn new(path: &'a str, obj: &'a Map<String, Value>, known: &'static [&'static str]) -> Self {
        Fields {
            path,
            obj,
            known,
            found: Vec::new(),
        }
    }

    /// The value at `key` and the key's position.
    fn at(&self, key: &str) -> Option<(usize, &'a Value)> {
        self.obj
            .iter()
            .enumerate()
            .find(|(_, (k, _))| k.as_str() == key)
            .map(|(pos, (_, v))| (pos, v))
    }

    fn read<T: DeserializeOwned>(&mut self, pos: usize, key: &str, v: &Value) -> Option<T> {
        match deserialize_at(&key_path(self.path, key), v) {
            Ok(t) => Some(t),
            Err(e) => {
                self.found.push((pos, e));
                None
            }
        }
    }

    fn missing(&mut self, key: &'static str) {
        let msg = serde_json::Error::missing_field(key).to_string();
        self.found
            .push((usize::MAX, InputError::new(self.path, msg)));
    }

    /// A field without a default: missing is an error.
    fn required<T: DeserializeOwned>(&mut self, key: &'static str) -> Option<T> {
        match self.at(key) {
            Some((pos, v)) => self.read(pos, key, v),
            None => {
                self.missing(key);
                None
            }
        }
    }

    /// An `Option` field: absent or `null` means the default.
    fn optional<T: DeserializeOwned>(&mut self, key: &str) -> Field<T> {
        match self.at(key) {
            None | Some((_, Value::Null)) => Field::Absent,
            Some((pos, v)) => self.read(pos, key, v).map_or(Field::Bad, Field::Given),
        }
    }

    /// A field with a default value (not an `Option`): absent means the default; `null`
    /// is read as a value, as serde does.
    fn defaulted<T: DeserializeOwned>(&mut self, key: &str) -> Field<T> {
        match self.at(key) {
            None => Field::Absent,
            Some((pos, v)) => self.read(pos, key, v).map_or(Field::Bad, Field::Given),
        }
    }

    /// A list of strings, word by word (absent: empty, unless `required`).
    fn words(&mut self, key: &'static str, required: bool) -> Items<String> {
        self.list(key, required)
    }

    /// A list, item by item (absent: empty, unless `required`).
    fn list<T: DeserializeOwned>(&mut self, key: &'static str, required: bool) -> Items<T> {
        match self.at(key) {
            None if required => {
                self.missing(key);
                None
            }
            None => Some(Vec::new()),
            Some((pos, Value::Array(words))) => {
                let at = key_path(self.path, key);
                let mut out = Vec::with_capacity(words.len());
                for (j, w) in words.iter().enumerate() {
                    match deserialize_at::<T>(&format!("{at}[{j}]"), w) {
                        Ok(s) => out.push(Some(s)),
                        Err(e) => {
                            self.found.push((pos, e));
                            out.push(None);
                        }
                    }
                }
                Some(out)
            }
            // not a list: serde's own message says what it is
            Some((pos, v)) => {
                let _: Option<Vec<T>> = self.read(pos, key, v);
                None
            }
        }
    }

    /// Report the unknown fields and hand every error over, in the input's order.
    fn finish(mut self, errors: &mut Vec<InputError>) {
        for (pos, key) in self.obj.keys().enumerate() {
            if !self.known.contains(&key.as_str()) {
                let msg = serde_json::Error::unknown_field(key, self.known).to_string();
                self.found
                    .push((pos, InputError::new(key_path(self.path, key), msg)));
            }
        }
        self.found.sort_by_key(|(pos, _)| *pos);
        errors.extend(self.found.into_iter().map(|(_, e)| e));
    }
}

/// `path.key`, or `path["key"]` for a key that is not a plain word (so that a key such
/// as "[0]" cannot pass for an index).
pub(super) fn key_path(path: &str, key: &str) -> String {
    let mut full = path.to_string();
    push_key(&mut full, key);
    full
}

fn push_key(full: &mut String, key: &str) {
    if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        if !full.is_empty() {
            full.push('.');
        }
        full.push_str(key);
    } else {
        full.push_str(&format!("[{key:?}]"));
    }
}

/// Deserialize `v`, reporting the innermost failing path under `path`.
pub(super) fn deserialize_at<T: DeserializeOwned>(path: &str, v: &Value) -> Result<T, InputError> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let mut full = path.to_string();
        for seg in e.path().iter() {
            use serde_path_to_error::Segment;
            match seg {
                Segment::Seq { index } => full.push_str(&format!("[{index}]")),
                Segment::Map { key } | Segment::Enum { variant: key } => push_key(&mut full, key),
                Segment::Unknown => {}
            }
        }
        InputError::new(full, tidy_serde_message(&e.into_inner().to_string()))
    })
}

/// serde's messages mention Rust types; keep the useful part.
fn tidy_serde_message(msg: &str) -> String {
    // "unknown field `x`, expected one of `a`, `b`" and "unknown variant ..." are fine as is;
    // strip serde_json's " at line 1 column 2" tails, which mean nothing for a Value.
    let msg = match msg.find(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    msg.replace("invalid type: ", "wrong type: ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The field lists read here are the serde types' fields, as the schema shows them.
    #[test]
    fn field_lists_are_the_serde_types_fields() {
        let schema = serde_json::to_value(super::super::args_schema()).expect("schema JSON");
        for (def, fields) in [
            ("CxlRegionArg", CXL_REGION_FIELDS),
            ("NamespaceArg", NAMESPACE_FIELDS),
            ("DeviceArg", DEVICE_FIELDS),
            ("PartitionArg", PARTITION_FIELDS),
            ("VolumeGroupArg", VOLUME_GROUP_FIELDS),
            ("LogicalVolumeArg", LOGICAL_VOLUME_FIELDS),
            ("FilesystemArg", FILESYSTEM_FIELDS),
            ("MountArg", MOUNT_FIELDS),
            ("BootArg", BOOT_FIELDS),
        ] {
            let props = schema
                .pointer(&format!("/$defs/{def}/properties"))
                .and_then(Value::as_object)
                .map(|p| p.keys().cloned().collect::<Vec<_>>());
            assert_eq!(
                props.as_deref(),
                Some(&fields.iter().map(|f| f.to_string()).collect::<Vec<_>>()[..]),
                "{def}"
            );
        }
    }

    /// Typed options -> draft -> typed options is the identity, and reading the
    /// options' JSON gives the same draft.
    #[test]
    fn a_whole_draft_is_the_typed_options() {
        let v = json!({
            "namespaces": [{"name": "a", "region": 0, "mode": "fsdax", "size": "2G", "align": "2M", "map": "mem"}],
            "devices": [{"name": "d", "target": "striped", "members": ["a", "/dev/pmem1"], "chunk": "2M"}],
            "partitions": [{"name": "p", "disk": "d", "number": 1, "start": "2M", "size": "64M"}],
            "volume_groups": [{"name": "vg", "pvs": ["/dev/pmem2", "/dev/pmem3"], "extent_size": "4M"}],
            "logical_volumes": [{"name": "lv", "vg": "vg", "size": "1G", "stripes": 2, "stripe_size": "2M"}],
            "filesystems": [{"device": "p", "type": "xfs", "label": "x", "mkfs_options": ["-K"]}],
            "mounts": [{"path": "/mnt/x", "device": "p", "dax": "inode", "options": ["noatime"]}],
            "boot": {"persist": "yes"}, "state": "present", "allow_data_loss": 0, "verify_pmd": true
        });
        let args: ModuleArgs = serde_json::from_value(v.clone()).expect("typed");
        let draft = Draft::from(&args);
        assert_eq!(draft.clone().into_args().as_ref(), Some(&args));
        let mut errors = Vec::new();
        let read = Draft::read(v.as_object().expect("object"), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(read, draft);
    }

    #[test]
    fn a_draft_with_a_hole_is_not_typed_options() {
        let v = json!({"namespaces": [{"name": "a", "region": 0, "mode": "fsdax", "size": "2Q"}]});
        let mut errors = Vec::new();
        let draft = Draft::read(v.as_object().expect("object"), &mut errors);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            read_items(&draft.namespaces)
                .map(|(_, n)| n.size.clone())
                .collect::<Vec<_>>(),
            [Field::Bad]
        );
        assert!(draft.into_args().is_none());
    }
}
