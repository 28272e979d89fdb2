//! Module arguments: the JSON an operator (or Ansible) hands us, as serde + schemars
//! types, and the one place where raw input is read.
//!
//! `parse_input` accepts the flat object Ansible writes into a binary module's args file
//! and the `{"ANSIBLE_MODULE_ARGS": {...}}` shape Python modules get; it splits off the
//! internal `_ansible_*` keys, refuses unknown options with Ansible's own wording, and
//! reads each option, list item, field and list word on its own ([`draft`]) so that every
//! bad value is reported (with its JSON path), not just the first. Semantic checks live
//! in [`validate`], which turns [`ModuleArgs`] into the typed [`validate::Desired`] and
//! also checks a [`Draft`] that did not read whole, so that type errors and semantic
//! errors are reported together. [`parse_info_input`] reads the arguments of
//! `pmem_stack_info`, which takes Ansible's internal keys and no option.

pub mod desired;
pub mod draft;
pub mod mkfs;
pub mod validate;

use crate::units::{arg_schema, SizeArg};
use draft::{json_kind, Draft};
use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// The module's name, as Ansible prints it in messages.
pub const MODULE_NAME: &str = "pmem_stack";

/// The name under which the same binary is the read-only facts module (see
/// [`crate::invoked_as_info`]).
pub const INFO_MODULE_NAME: &str = "pmem_stack_info";

/// A boolean as Ansible users write it: true/false, yes/no, on/off, 1/0 (any case),
/// as a JSON boolean, string or integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct AnsibleBool(pub bool);

/// Ansible's boolean coercion (module_utils `boolean()`), shared by options and internal keys.
pub fn coerce_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "on" | "true" | "1" | "y" | "t" => Some(true),
            "no" | "off" | "false" | "0" | "n" | "f" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

impl<'de> Deserialize<'de> for AnsibleBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        coerce_bool(&v).map(AnsibleBool).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{v} is not a boolean (use true/false, yes/no, on/off or 1/0)"
            ))
        })
    }
}

arg_schema!(AnsibleBool, "AnsibleBool", {
    "description": "A boolean; Ansible's string forms are accepted (yes/no, on/off, true/false, 1/0, any case).",
    "oneOf": [
        {"type": "boolean"},
        {"type": "integer", "enum": [0, 1]},
        {"type": "string", "pattern": "^(?i)\\s*(yes|no|on|off|true|false|y|n|t|f|1|0)\\s*$"}
    ]
});

/// ndctl namespace modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceMode {
    /// Block device with DAX support (`/dev/pmemN`); sysfs mode `memory`.
    Fsdax,
    /// Character device `/dev/daxN.M`, no block device; sysfs mode `dax`.
    Devdax,
    /// Block device with BTT (atomic sectors), no DAX; sysfs mode `safe`.
    Sector,
    /// Plain block device, no DAX; sysfs mode `raw`.
    Raw,
}

impl NamespaceMode {
    /// ndctl's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            NamespaceMode::Fsdax => "fsdax",
            NamespaceMode::Devdax => "devdax",
            NamespaceMode::Sector => "sector",
            NamespaceMode::Raw => "raw",
        }
    }
}

impl fmt::Display for NamespaceMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where fsdax/devdax keep their page metadata (`struct page`, 64 B per 4 KiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MapMode {
    /// In system RAM.
    Mem,
    /// On the device itself (ndctl's default); the usable size is smaller.
    Dev,
}

impl MapMode {
    /// ndctl's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MapMode::Mem => "mem",
            MapMode::Dev => "dev",
        }
    }
}

/// Device-mapper targets we build (the ones that support DAX).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DmTarget {
    /// Members concatenated in order.
    Linear,
    /// Members interleaved in chunks (RAID-0).
    Striped,
}

/// Filesystems we make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FsType {
    /// ext4 (`-b 4096 -E stride=512[,stripe_width=...]`).
    Ext4,
    /// xfs (`-d su=2m,sw=N -m reflink=0`, extsize 2m on the root).
    Xfs,
}

impl FsType {
    /// The kernel's and mkfs's name.
    pub fn as_str(self) -> &'static str {
        match self {
            FsType::Ext4 => "ext4",
            FsType::Xfs => "xfs",
        }
    }
}

impl fmt::Display for FsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `dax=` mount option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum DaxMode {
    /// Every file uses DAX (`-o dax` means this).
    #[default]
    Always,
    /// Per-file, by the FS_XFLAG_DAX inode flag.
    Inode,
    /// No DAX (page cache).
    Never,
}

impl DaxMode {
    /// The option value as mountinfo shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            DaxMode::Always => "always",
            DaxMode::Inode => "inode",
            DaxMode::Never => "never",
        }
    }
}

/// Whether the declared stack should exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Build and keep the stack.
    #[default]
    Present,
    /// Tear the declared stack down.
    Absent,
}

/// A region: an NVDIMM region, as `region0`, `"0"` or `0`, or the `name` of one of the
/// declared `cxl_regions` (any other string; validation checks that it is declared).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RegionArg(pub String);

impl RegionArg {
    /// The NVDIMM region (`regionN`) `s` names, if it names one by number.
    pub fn nvdimm(s: &str) -> Option<String> {
        let s = s.trim();
        s.strip_prefix("region")
            .unwrap_or(s)
            .parse::<u64>()
            .ok()
            .map(|n| format!("region{n}"))
    }

    /// Whether it names an NVDIMM region by number (else a declared CXL region).
    pub fn is_nvdimm(&self) -> bool {
        RegionArg::nvdimm(&self.0).is_some()
    }
}

impl<'de> Deserialize<'de> for RegionArg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let r = match &v {
            Value::Number(n) => n.as_u64().map(|n| format!("region{n}")),
            Value::String(s) => RegionArg::nvdimm(s).or_else(|| {
                let s = s.trim();
                (!s.is_empty()).then(|| s.to_string())
            }),
            _ => None,
        };
        r.map(RegionArg).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{v} is not a region (use \"region0\", \"0\" or 0, as `ndctl list -R` names them, or the name of one of cxl_regions)"
            ))
        })
    }
}

arg_schema!(RegionArg, "Region", {
    "description": "An NVDIMM region: \"region0\", \"0\" or 0; or the name of one of cxl_regions (the namespace then lands in the NVDIMM region that CXL region shows as, whatever its number at this boot).",
    "oneOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": "\\S"}
    ]
});

/// A CXL memory device's serial number (`cxl list -M`'s `serial`): an integer, or a
/// string in decimal or `0x` hexadecimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SerialArg(pub u64);

impl<'de> Deserialize<'de> for SerialArg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let n = match &v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => {
                let s = s.trim();
                match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                    Some(h) => u64::from_str_radix(h, 16).ok(),
                    None => s.parse::<u64>().ok(),
                }
            }
            _ => None,
        };
        n.map(SerialArg).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{v} is not a memory device serial number (an integer, or a string such as \"0x2\" or \"2\", as `cxl list -M` shows it)"
            ))
        })
    }
}

arg_schema!(SerialArg, "MemdevSerial", {
    "description": "A CXL memory device's serial number, as `cxl list -M` shows it: an integer, or a string in decimal or 0x hexadecimal (\"0x2\").",
    "oneOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": "^\\s*(0[xX][0-9a-fA-F]+|[0-9]+)\\s*$"}
    ]
});

/// The kind of CXL region (only persistent memory, for now).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CxlRegionType {
    /// Persistent memory: shows as an NVDIMM region.
    #[default]
    Pmem,
}

/// A CXL region to have: assembled from memory devices (by serial, in interleave order)
/// in a root decoder, at every boot when `boot.persist` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CxlRegionArg {
    /// Our handle for it (what `namespaces[].region` names): letters, digits and _ . -, not a number or `regionN` (the kernel's regionN follows creation order and changes between boots).
    pub name: String,
    /// The region's kind (default pmem, the only one supported).
    #[serde(default, rename = "type")]
    #[schemars(extend("default" = "pmem"))]
    pub region_type: Option<CxlRegionType>,
    /// Its memory devices by serial number, in interleave order (memN follows enumeration; the serial does not). Their number is the interleave ways.
    pub memdevs: Vec<SerialArg>,
    /// The root decoder to make it in (decoderN.M; default: the first pmem-capable, unlocked one with room).
    #[serde(default)]
    pub root_decoder: Option<String>,
    /// Interleave granularity in bytes (default: the root decoder's; with more than one memory device it must be the root decoder's).
    #[serde(default)]
    pub granularity: Option<u32>,
    /// Its size (default: all the pmem capacity the memory devices have, in whole 256 MiB steps per device, as cxl create-region takes it).
    #[serde(default)]
    pub size: Option<SizeArg>,
}

// The optional fields that read as `None` when left out carry, in the schema, the value
// that then applies (`#[schemars(extend("default" = ...))]`, which overrides the `null`
// that `#[serde(default)]` gives): the schema documents the effective default, as the
// module docs (collection/plugins/modules/pmem_stack.yml) do, and a test keeps both equal.

/// A namespace to have: identified by `name` (ndctl's alt_name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamespaceArg {
    /// The namespace's name (ndctl `--name`, sysfs `alt_name`): its identity. At most 63 bytes.
    pub name: String,
    /// The region that holds it.
    pub region: RegionArg,
    /// ndctl mode.
    pub mode: NamespaceMode,
    /// Size; default: all of the region's available space (or the whole raw namespace being converted).
    #[serde(default)]
    pub size: Option<SizeArg>,
    /// Page alignment of fsdax/devdax mappings (default 2M; 4K, 2M or 1G).
    #[serde(default)]
    #[schemars(extend("default" = "2M"))]
    pub align: Option<SizeArg>,
    /// Where page metadata lives for fsdax/devdax (default dev).
    #[serde(default)]
    #[schemars(extend("default" = "dev"))]
    pub map: Option<MapMode>,
    /// A devdax namespace given to the kernel as system RAM (daxctl reconfigure-device --mode=system-ram), its memory online as declared; left out: a devdax namespace in system-ram mode is taken back (offlined first). Default: none.
    #[serde(default)]
    pub system_ram: Option<SystemRamArg>,
    /// Adopt the existing namespace with this uuid as this one, keeping its data: its label's uuid, or the uuid of its fsdax/devdax/sector info block, as `ndctl list` shows it. For a namespace made by hand that has no name (a label-less one cannot carry one): the module keeps the name for it. Default: none (found by name, or made).
    #[serde(default)]
    pub uuid: Option<String>,
}

/// A devdax namespace as system RAM: how its memory is onlined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct SystemRamArg {
    /// Online its memory blocks (default true); false: added to the kernel but left offline.
    #[serde(default)]
    #[schemars(extend("default" = true))]
    pub online: Option<AnsibleBool>,
    /// Online them in ZONE_MOVABLE (default true), so that they can be offlined again and only movable (application) pages go there; false: ZONE_NORMAL, which kernel allocations may pin.
    #[serde(default)]
    #[schemars(extend("default" = true))]
    pub movable: Option<AnsibleBool>,
}

/// A device-mapper device to have, named `/dev/mapper/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceArg {
    /// The dm name.
    pub name: String,
    /// `linear` or `striped`.
    pub target: DmTarget,
    /// Members in order: names of namespaces or partitions, or `VG/LV`s, from these arguments, or absolute /dev paths.
    pub members: Vec<String>,
    /// Stripe chunk for `striped` (default 2M; a multiple of 4K, ideally of 2M).
    #[serde(default)]
    #[schemars(extend("default" = "2M"))]
    pub chunk: Option<SizeArg>,
}

/// An LVM volume group to have, over physical volumes it makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeGroupArg {
    /// The VG name (letters, digits and + _ . -, not starting with -, at most 127 characters); its LVs appear as /dev/NAME/LV.
    pub name: String,
    /// Its physical volumes: names of fsdax namespaces or partitions from these arguments, or absolute /dev paths.
    pub pvs: Vec<String>,
    /// Physical extent size (default 4M; a multiple of 2M, so that every extent starts on a 2 MiB page).
    #[serde(default)]
    #[schemars(extend("default" = "4M"))]
    pub extent_size: Option<SizeArg>,
}

/// An LVM logical volume to have, referred to elsewhere as `VG/LV`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogicalVolumeArg {
    /// The LV name (letters, digits and + _ . -, not starting with -, at most 127 characters), unique within its VG.
    pub name: String,
    /// The volume group that holds it: a name from `volume_groups`.
    pub vg: String,
    /// Size; default: the rest of the VG.
    #[serde(default)]
    pub size: Option<SizeArg>,
    /// Number of stripes (default 1 = linear; at most the VG's PV count).
    #[serde(default)]
    #[schemars(extend("default" = 1), range(min = 1))]
    pub stripes: Option<u32>,
    /// Stripe size for a striped LV (default 2M; a power of 2 and a multiple of 4K, ideally of 2M).
    #[serde(default)]
    #[schemars(extend("default" = "2M"))]
    pub stripe_size: Option<SizeArg>,
}

/// A GPT partition to have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionArg {
    /// The GPT partition name (at most 36 characters); other entries refer to it by this name.
    pub name: String,
    /// The disk: a namespace or device name, or a `VG/LV`, from these arguments, or an absolute /dev path.
    pub disk: String,
    /// Partition number (1-128); default: the lowest free number.
    #[serde(default)]
    pub number: Option<u32>,
    /// Start offset (default 2M; a multiple of 4K, ideally of 2M).
    #[serde(default)]
    #[schemars(extend("default" = "2M"))]
    pub start: Option<SizeArg>,
    /// Size (default: the rest of the disk, rounded down to 2 MiB).
    #[serde(default)]
    pub size: Option<SizeArg>,
}

/// A filesystem to have on a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilesystemArg {
    /// The device: a namespace, device or partition name, or a `VG/LV`, from these arguments, or an absolute /dev path.
    pub device: String,
    /// `ext4` or `xfs`.
    #[serde(rename = "type")]
    pub fstype: FsType,
    /// Filesystem label (ext4: at most 16 bytes, xfs: at most 12).
    #[serde(default)]
    pub label: Option<String>,
    /// Extra mkfs arguments, one argv word each, appended after the DAX geometry. Force
    /// flags (mkfs.ext4 `-F`, mkfs.xfs `-f`, `--force`, also inside a cluster such as
    /// `-qF`) are refused: forcing comes only from `allow_data_loss`.
    #[serde(default)]
    pub mkfs_options: Vec<String>,
}

/// A mount to have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MountArg {
    /// Absolute mount point; created if missing.
    pub path: String,
    /// The device: a namespace, device or partition name, or a `VG/LV`, from these arguments, or an absolute /dev path.
    pub device: String,
    /// `dax=` mode (default always).
    #[serde(default)]
    #[schemars(extend("default" = "always"))]
    pub dax: Option<DaxMode>,
    /// Further mount options (e.g. noatime); `dax` is set by the `dax` field, not here.
    #[serde(default)]
    pub options: Vec<String>,
}

/// Boot persistence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct BootArg {
    /// Rebuild the stack at boot from the saved desired state (dm tables have no on-disk metadata).
    #[serde(default)]
    pub persist: AnsibleBool,
}

/// The module's options (the user-facing part of the arguments).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
#[schemars(title = "pmem_stack module arguments")]
pub struct ModuleArgs {
    /// CXL persistent memory regions, assembled before the namespaces on them (left out of the saved state when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("default" = []))]
    pub cxl_regions: Vec<CxlRegionArg>,
    /// Namespaces, by name.
    #[serde(default)]
    pub namespaces: Vec<NamespaceArg>,
    /// Device-mapper devices.
    #[serde(default)]
    pub devices: Vec<DeviceArg>,
    /// GPT partitions.
    #[serde(default)]
    pub partitions: Vec<PartitionArg>,
    // The LVM lists are left out of the saved state when empty, so that state saved
    // before LVM existed reads (and compares) the same.
    /// LVM volume groups: PVs made with a 2 MiB data alignment, `vgcreate -s extent_size`; a found VG is kept and grows by declared PVs not in it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("default" = []))]
    pub volume_groups: Vec<VolumeGroupArg>,
    /// LVM logical volumes, referred to as `VG/LV` by partitions, filesystems, mounts and dm devices: made in whole extents and stripes, grown in place; another stripe count, stripe size or a smaller size makes one again (only with `allow_data_loss`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("default" = []))]
    pub logical_volumes: Vec<LogicalVolumeArg>,
    /// Filesystems.
    #[serde(default)]
    pub filesystems: Vec<FilesystemArg>,
    /// Mounts.
    #[serde(default)]
    pub mounts: Vec<MountArg>,
    /// Boot persistence.
    #[serde(default)]
    pub boot: BootArg,
    /// `present` (default) builds the stack; `absent` tears it down.
    #[serde(default)]
    pub state: State,
    /// Allow steps that destroy data (reconfigure a namespace, re-make a filesystem, reload a table in use).
    #[serde(default)]
    pub allow_data_loss: AnsibleBool,
    /// After converging, fault a file in on each DAX mount and count 2 MiB (PMD) faults
    /// from tracefs; fail when all of them fell back to 4 KiB pages.
    #[serde(default)]
    pub verify_pmd: AnsibleBool,
}

/// The top-level option names, as Ansible lists them in its "Unsupported parameters" message.
pub const OPTION_NAMES: [&str; 12] = [
    "allow_data_loss",
    "boot",
    "cxl_regions",
    "devices",
    "filesystems",
    "logical_volumes",
    "mounts",
    "namespaces",
    "partitions",
    "state",
    "verify_pmd",
    "volume_groups",
];

/// Ansible's internal keys that change what we do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Internal {
    /// `_ansible_check_mode`: plan only.
    pub check_mode: bool,
    /// `_ansible_diff`: include before/after in the result.
    pub diff: bool,
    /// `_ansible_verbosity`.
    pub verbosity: u8,
}

/// One input problem, with the JSON path of the offending value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputError {
    /// JSON path such as `devices[0].chunk` (empty for the whole input).
    pub path: String,
    /// What is wrong and, where it helps, how to fix it.
    pub msg: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.msg)
        } else {
            write!(f, "{}: {}", self.path, self.msg)
        }
    }
}

impl InputError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, msg: impl Into<String>) -> Self {
        InputError {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

/// Parsed input: the options (as given, for `invocation.module_args`) and internal keys.
#[derive(Debug, Clone)]
pub struct Input {
    /// The typed options.
    pub args: ModuleArgs,
    /// The user's options exactly as received (without `_ansible_*`), for `invocation`.
    pub raw_options: Map<String, Value>,
    /// Ansible's internal keys.
    pub internal: Internal,
}

/// What a failed parse still knows.
#[derive(Debug, Clone)]
pub struct ParseFailure {
    /// The options as received (for `invocation`).
    pub raw_options: Map<String, Value>,
    /// The errors: the input's shape, unknown options and every value that did not read.
    pub errors: Vec<InputError>,
    /// What did read, when the input was an object: semantic validation
    /// ([`validate::check_draft`]) reports its findings on it too.
    pub draft: Option<Box<Draft>>,
}

/// The arguments' JSON text as one object: the flat object Ansible writes for a binary
/// module, or the inside of `{"ANSIBLE_MODULE_ARGS": {...}}`. `empty_ok` reads empty
/// text as no arguments (for `pmem_stack_info`, which takes none).
fn read_object(text: &str, empty_ok: bool) -> Result<Map<String, Value>, InputError> {
    if empty_ok && text.trim().is_empty() {
        return Ok(Map::new());
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let msg = if text.trim().is_empty() {
                "no module arguments: give a JSON object in a file (argv[1]) or on stdin"
                    .to_string()
            } else {
                format!("the module arguments are not valid JSON: {e}")
            };
            return Err(InputError::new("", msg));
        }
    };
    let mut obj = match value {
        Value::Object(o) => o,
        other => {
            return Err(InputError::new(
                "",
                format!(
                    "the module arguments must be a JSON object, not {}",
                    json_kind(&other)
                ),
            ))
        }
    };
    // The Python-module shape: {"ANSIBLE_MODULE_ARGS": {...}}.
    if obj.len() == 1 {
        if let Some(Value::Object(inner)) = obj.get("ANSIBLE_MODULE_ARGS") {
            obj = inner.clone();
        }
    }
    Ok(obj)
}

/// Split Ansible's internal `_ansible_*` keys (read into [`Internal`]; the others are
/// ignored) from the user's options.
fn split_internal(
    obj: Map<String, Value>,
    errors: &mut Vec<InputError>,
) -> (Internal, Map<String, Value>) {
    let mut internal = Internal::default();
    let mut options = Map::new();
    for (k, v) in obj {
        if let Some(key) = k.strip_prefix("_ansible_") {
            match key {
                "check_mode" | "diff" => match coerce_bool(&v) {
                    Some(b) if key == "check_mode" => internal.check_mode = b,
                    Some(b) => internal.diff = b,
                    None => errors.push(InputError::new(&k, format!("{v} is not a boolean"))),
                },
                "verbosity" => {
                    internal.verbosity = v
                        .as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                        .map(|n| n.min(u64::from(u8::MAX)) as u8)
                        .unwrap_or(0)
                }
                _ => {} // other internal keys are Ansible's business
            }
        } else {
            options.insert(k, v);
        }
    }
    (internal, options)
}

/// The module Ansible says it is running: `_ansible_module_name` in the arguments, as the
/// task named it (`pmem_stack_info`, `pmemstack.pmem.pmem_stack_info`, ...). `None` when
/// the arguments do not read or do not say.
pub fn module_name(text: &str) -> Option<String> {
    read_object(text, false)
        .ok()?
        .get("_ansible_module_name")?
        .as_str()
        .map(str::to_string)
}

/// Read the arguments of `pmem_stack_info`: Ansible's internal keys only. Any other key
/// is an error naming it (the info module reports; it has nothing to declare).
pub fn parse_info_input(text: &str) -> Result<Internal, ParseFailure> {
    let failure = |raw_options, errors| ParseFailure {
        raw_options,
        errors,
        draft: None,
    };
    let obj = read_object(text, true).map_err(|e| failure(Map::new(), vec![e]))?;
    let mut errors = Vec::new();
    let (internal, options) = split_internal(obj, &mut errors);
    if !options.is_empty() {
        let names: Vec<&str> = options.keys().map(String::as_str).collect();
        errors.push(InputError::new(
            "",
            format!(
                "Unsupported parameters for ({INFO_MODULE_NAME}) module: {}. \
                 {INFO_MODULE_NAME} takes no options: it only reads the machine \
                 (use {MODULE_NAME} to declare a stack).",
                names.join(", ")
            ),
        ));
    }
    if errors.is_empty() {
        Ok(internal)
    } else {
        Err(failure(options, errors))
    }
}

/// Read the options and internal keys from the input JSON text.
///
/// Errors are collected: unknown options, and every option, list item, field and list
/// word that does not read, each with its path (see [`draft`]).
pub fn parse_input(text: &str) -> Result<Input, ParseFailure> {
    let obj = read_object(text, false).map_err(|e| ParseFailure {
        raw_options: Map::new(),
        errors: vec![e],
        draft: None,
    })?;
    let mut errors = Vec::new();
    let (internal, options) = split_internal(obj, &mut errors);
    let unknown: Vec<&str> = options
        .keys()
        .map(String::as_str)
        .filter(|k| !OPTION_NAMES.contains(k))
        .collect();
    if !unknown.is_empty() {
        errors.push(InputError::new(
            "",
            format!(
                "Unsupported parameters for ({MODULE_NAME}) module: {}. Supported parameters include: {}.",
                unknown.join(", "),
                OPTION_NAMES.join(", ")
            ),
        ));
    }
    let draft = Draft::read(&options, &mut errors);
    if errors.is_empty() {
        if let Some(args) = draft.clone().into_args() {
            return Ok(Input {
                args,
                raw_options: options,
                internal,
            });
        }
        // every hole in a draft comes with its error; this is a bug, but say so calmly
        errors.push(InputError::new(
            "",
            "the arguments did not read completely, though no value was reported as wrong",
        ));
    }
    Err(ParseFailure {
        raw_options: options,
        errors,
        draft: Some(Box::new(draft)),
    })
}

/// The JSON Schema of the arguments (what `--schema` prints and `schemas/` holds).
pub fn args_schema() -> Schema {
    let mut s = schemars::schema_for!(ModuleArgs);
    // Ansible's internal keys are allowed alongside the options.
    s.insert(
        "patternProperties".into(),
        serde_json::json!({"^_ansible_": {}}),
    );
    s
}

/// What the command line says on top of the arguments: each `Some` replaces the
/// matching Ansible internal key of the arguments, whatever they say (`--check`,
/// `--diff`). `None` leaves the key as the arguments have it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `_ansible_check_mode`: plan only.
    pub check_mode: Option<bool>,
    /// `_ansible_diff`: before/after in the result.
    pub diff: Option<bool>,
}

impl Overrides {
    /// The internal keys as the arguments have them, with these overrides applied.
    pub fn apply(self, internal: Internal) -> Internal {
        Internal {
            check_mode: self.check_mode.unwrap_or(internal.check_mode),
            diff: self.diff.unwrap_or(internal.diff),
            ..internal
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(text: &str) -> Vec<String> {
        match parse_input(text) {
            Ok(_) => vec![],
            Err(f) => f.errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn flat_and_wrapped_shapes_are_the_same() {
        let flat = r#"{"state":"present","_ansible_check_mode":true,"_ansible_foo":1}"#;
        let wrapped = r#"{"ANSIBLE_MODULE_ARGS":{"state":"present","_ansible_check_mode":"yes"}}"#;
        let a = parse_input(flat).expect("flat parses");
        let b = parse_input(wrapped).expect("wrapped parses");
        assert_eq!(a.args, b.args);
        assert!(a.internal.check_mode && b.internal.check_mode);
        assert!(!a.raw_options.contains_key("_ansible_foo"));
    }

    #[test]
    fn unknown_options_use_ansibles_wording() {
        let e = errs(r#"{"bogus":1,"state":"present"}"#);
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("Unsupported parameters for (pmem_stack) module: bogus."),
            "{e:?}"
        );
    }

    #[test]
    fn every_bad_item_is_reported_with_its_path() {
        let e = errs(
            r#"{"devices":[{"name":"a","target":"raid5","members":[]},
                          {"name":"b","target":"linear","members":["x"],"chunk":"3Q"}],
                "allow_data_loss":"maybe"}"#,
        );
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(
            e[0].starts_with("devices[0].target: unknown variant `raid5`"),
            "{e:?}"
        );
        assert!(
            e[1].starts_with("devices[1].chunk: \"3Q\" has an unknown unit"),
            "{e:?}"
        );
        assert!(
            e[2].starts_with("allow_data_loss: \"maybe\" is not a boolean"),
            "{e:?}"
        );
    }

    #[test]
    fn ansible_booleans() {
        for (s, b) in [
            ("\"yes\"", true),
            ("\"Off\"", false),
            ("1", true),
            ("\"FALSE\"", false),
        ] {
            let input = parse_input(&format!(r#"{{"allow_data_loss":{s}}}"#)).expect("parses");
            assert_eq!(input.args.allow_data_loss.0, b, "{s}");
        }
    }

    #[test]
    fn not_json_and_not_an_object() {
        assert!(errs("").join("").contains("no module arguments"));
        assert!(errs("{").join("").contains("not valid JSON"));
        assert!(errs("[1]")
            .join("")
            .contains("must be a JSON object, not a list"));
    }
}
