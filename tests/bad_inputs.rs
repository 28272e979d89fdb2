//! Bad input: each case fails with `failed: true`, a message naming the JSON path, and
//! nothing done on the (fake) machine.

mod common;

use common::{assert_warned, DIMM};
use pmem_stack::report::ModuleResult;
use pmem_stack::system::fake::FakeSystem;
use serde_json::json;

/// (arguments, expected fragments of msg). Every fragment must appear.
fn cases() -> Vec<(serde_json::Value, Vec<&'static str>)> {
    let ns =
        |name: &str, region: u32, mode: &str| json!({"name": name, "region": region, "mode": mode});
    vec![
        (json!({"colour": "blue"}), vec!["Unsupported parameters for (pmem_stack) module: colour."]),
        (json!({"state": "gone"}), vec!["state: unknown variant `gone`, expected `present` or `absent`"]),
        (json!({"allow_data_loss": "perhaps"}), vec!["allow_data_loss: \"perhaps\" is not a boolean"]),
        (json!({"namespaces": {"name": "x"}}), vec!["namespaces: expected a list, got an object"]),
        (json!({"namespaces": ["pm0"]}), vec!["namespaces[0]: expected an object, got a string"]),
        (json!({"namespaces": [{"name": "a", "region": 0, "mode": "fsdax", "colour": 1}]}), vec!["namespaces[0].colour: unknown field `colour`, expected one of `name`"]),
        (json!({"namespaces": [{"name": "a", "region": 0, "mode": "pmem"}]}), vec!["namespaces[0].mode: unknown variant `pmem`"]),
        (json!({"namespaces": [{"name": "a", "region": "r0", "mode": "fsdax"}]}), vec!["namespaces[0].region: \"r0\" is neither an NVDIMM region"]),
        (json!({"namespaces": [{"name": "a", "region": 0, "mode": "fsdax", "size": "1.5G"}]}), vec!["namespaces[0].size: \"1.5G\" has an unknown unit"]),
        (json!({"namespaces": [{"name": "a", "region": 0, "mode": "fsdax", "size": -5}]}), vec!["namespaces[0].size: -5 is not a size"]),
        (json!({"namespaces": [{"name": "a", "region": 0, "mode": "fsdax", "align": "64K"}]}), vec!["namespaces[0].align: 64K is not a supported alignment"]),
        (json!({"namespaces": [{"name": "a", "region": 0, "mode": "fsdax", "size": "3M"}]}), vec!["namespaces[0].size: 3M is not a multiple of the alignment 2M"]),
        (json!({"namespaces": [{"name": "a", "region": 0, "mode": "sector", "map": "mem"}]}), vec!["namespaces[0].map: map applies to fsdax and devdax namespaces, not sector"]),
        (json!({"namespaces": [ns("a", 0, "fsdax"), ns("b", 0, "fsdax")]}), vec!["namespaces[1].size: namespaces[0] already takes the rest of region0"]),
        (json!({"namespaces": [ns("a", 0, "fsdax"), ns("a", 1, "fsdax")]}), vec!["namespaces[1].name: duplicate name \"a\" (already used at namespaces[0].name)"]),
        (json!({"namespaces": [ns("", 0, "fsdax")]}), vec!["namespaces[0].name: the namespace name must not be empty"]),
        (json!({"devices": [{"name": "bad/name", "target": "linear", "members": ["/dev/pmem0"]}]}), vec!["devices[0].name: \"bad/name\" is not a valid dm device name"]),
        (json!({"devices": [{"name": "s", "target": "striped", "members": ["/dev/pmem0"]}]}), vec!["devices[0].members: a striped device needs at least 2 members, got 1"]),
        (json!({"devices": [{"name": "s", "target": "raid5", "members": []}]}), vec!["devices[0].target: unknown variant `raid5`, expected `linear` or `striped`"]),
        (json!({"devices": [{"name": "s", "target": "striped", "members": ["/dev/pmem0", "/dev/pmem1"], "chunk": "3K"}]}), vec!["devices[0].chunk: 3K is not a multiple of 4 KiB; DAX needs page-sized chunks"]),
        (json!({"devices": [{"name": "s", "target": "linear", "members": ["/dev/pmem0"], "chunk": "2M"}]}), vec!["devices[0].chunk: chunk applies to striped devices only"]),
        (json!({"devices": [{"name": "s", "target": "linear", "members": ["nowhere"]}]}), vec!["devices[0].members[0]: \"nowhere\" is neither a name declared in these arguments nor an absolute /dev path"]),
        (json!({"devices": [{"name": "s", "target": "linear", "members": ["/etc/passwd"]}]}), vec!["devices[0].members[0]: \"/etc/passwd\" is not a device path under /dev"]),
        (json!({"devices": [{"name": "s", "target": "striped", "members": ["/dev/pmem0", "/dev/pmem0"]}]}), vec!["devices[0].members[1]: \"/dev/pmem0\" is listed twice"]),
        (json!({"devices": [
            {"name": "a", "target": "linear", "members": ["b"]},
            {"name": "b", "target": "linear", "members": ["a"]}]}), vec!["reference cycle: a -> b -> a"]),
        (json!({"devices": [{"name": "d", "target": "linear", "members": ["p"]}],
                "partitions": [{"name": "p", "disk": "d"}]}), vec!["devices[0].members: reference cycle: d -> p -> d"]),
        (json!({"partitions": [{"name": "p", "disk": "/dev/pmem0", "start": "1000"}]}), vec!["partitions[0].start: 1000 is not a multiple of 4 KiB; the kernel refuses DAX on an unaligned partition"]),
        (json!({"partitions": [{"name": "p", "disk": "/dev/pmem0", "start": "4K"}]}), vec!["partitions[0].start: 4K overlaps the GPT header"]),
        (json!({"partitions": [{"name": "p", "disk": "/dev/pmem0", "size": "10000"}]}), vec!["partitions[0].size: 10000 is not a multiple of 4 KiB"]),
        (json!({"partitions": [{"name": "p", "disk": "/dev/pmem0", "number": 0}]}), vec!["partitions[0].number: 0 is not a GPT partition number (1-128)"]),
        (json!({"partitions": [{"name": "p", "disk": "/dev/pmem0", "number": 1}, {"name": "q", "disk": "/dev/pmem0", "number": 1}]}), vec!["partitions[1].number: partition 1 of \"/dev/pmem0\" is already declared at partitions[0]"]),
        (json!({"partitions": [{"name": "a-very-long-partition-name-over-36-chars", "disk": "/dev/pmem0"}]}), vec!["partitions[0].name", "longer than 36 bytes"]),
        (json!({"partitions": [{"name": "p", "disk": "/dev/pmem0", "number": 4, "size": "224M"}, {"name": "q", "disk": "/dev/pmem0"}]}),
         vec!["partitions[1].start: partition \"q\" (sectors 4096 to the end of the disk) overlaps partition \"p\" (partitions[0], sectors 4096-462847) on the same disk"]),
        (json!({"partitions": [{"name": "p", "disk": "/dev/pmem0"}, {"name": "q", "disk": "/dev/pmem0", "start": "1G"}]}),
         vec!["partitions[1].start: partition \"q\" (sectors 2097152 to the end of the disk) overlaps partition \"p\" (partitions[0], sectors 4096 to the end of the disk)"]),
        (json!({"namespaces": [ns("p", 0, "fsdax")], "partitions": [{"name": "q", "disk": "p"}], "devices": [{"name": "d", "target": "linear", "members": ["q"]}],
                "filesystems": [{"device": "q", "type": "ext4"}, {"device": "q", "type": "xfs"}]}), vec!["filesystems[1].device: partition q already has a filesystem declared at filesystems[0]"]),
        (json!({"filesystems": [{"device": "/dev/pmem0", "type": "btrfs"}]}), vec!["filesystems[0].type: unknown variant `btrfs`, expected `ext4` or `xfs`"]),
        (json!({"filesystems": [{"device": "/dev/pmem0", "type": "xfs", "label": "much-too-long-label"}]}), vec!["filesystems[0].label: \"much-too-long-label\" is longer than 12 bytes, the xfs label limit"]),
        (json!({"namespaces": [ns("dd", 0, "devdax")], "filesystems": [{"device": "dd", "type": "xfs"}]}), vec!["filesystems[0].device: namespace \"dd\" is devdax, which has a character device and no block device"]),
        (json!({"namespaces": [ns("dd", 0, "devdax")], "devices": [{"name": "d", "target": "linear", "members": ["dd"]}]}), vec!["devices[0].members[0]: namespace \"dd\" is devdax, which has a character device and no block device; a dm member must be a block device"]),
        (json!({"namespaces": [ns("dd", 0, "devdax")], "partitions": [{"name": "p", "disk": "dd"}]}), vec!["partitions[0].disk: namespace \"dd\" is devdax", "a partition table needs a block device"]),
        (json!({"devices": [{"name": "a", "target": "linear", "members": ["/dev/pmem0"]}, {"name": "b", "target": "linear", "members": ["/dev/pmem1", "/dev/pmem0"]}]}),
         vec!["devices[1].members[1]: /dev/pmem0 is already a member of dm device \"a\" (devices[0]); a block device can be in one dm device only"]),
        (json!({"namespaces": [ns("pm0", 0, "fsdax")], "devices": [{"name": "a", "target": "linear", "members": ["pm0"]}], "partitions": [{"name": "p", "disk": "pm0"}]}),
         vec!["partitions[0].disk: namespace pm0 is a member of dm device \"a\" (devices[0]); it cannot also hold a partition table"]),
        (json!({"partitions": [{"name": "p", "disk": "/dev/pmem0", "size": "512M"}, {"name": "q", "disk": "/dev/pmem0", "start": "1G"}], "filesystems": [{"device": "/dev/pmem0", "type": "ext4"}]}),
         vec!["filesystems[0].device: /dev/pmem0 is the disk of partition \"p\" (partitions[0]); a filesystem on it would overwrite that"]),
        (json!({"mounts": [{"path": "mnt/x", "device": "/dev/pmem0"}]}), vec!["mounts[0].path: \"mnt/x\" is not an absolute path"]),
        (json!({"mounts": [{"path": "/mnt/../etc", "device": "/dev/pmem0"}]}), vec!["mounts[0].path: \"/mnt/../etc\" is not an absolute path"]),
        (json!({"mounts": [{"path": "/mnt/x", "device": "/dev/pmem0"}, {"path": "/mnt//x/", "device": "/dev/pmem1"}]}), vec!["mounts[1].path: /mnt/x is already a mount point at mounts[0]"]),
        (json!({"mounts": [{"path": "/mnt/x", "device": "/dev/pmem0", "dax": "sometimes"}]}), vec!["mounts[0].dax: unknown variant `sometimes`, expected one of `always`, `inode`, `never`"]),
        (json!({"mounts": [{"path": "/mnt/x", "device": "/dev/pmem0", "options": ["dax"]}]}), vec!["mounts[0].options[0]: \"dax\": set DAX with the dax field"]),
        (json!({"mounts": [{"path": "/mnt/x", "device": "/dev/pmem0", "options": ["noatime,nodev"]}]}), vec!["mounts[0].options[0]: \"noatime,nodev\": give one option per list item"]),
        (json!({"namespaces": [ns("s", 0, "sector")], "mounts": [{"path": "/mnt/x", "device": "s"}]}),
            vec!["mounts[0].device: dax=always needs a DAX-capable device, but namespace \"s\" is in sector mode"]),
        (json!({"namespaces": [ns("r", 0, "raw"), ns("f", 1, "fsdax")], "devices": [{"name": "st", "target": "striped", "members": ["f", "r"]}],
                "mounts": [{"path": "/mnt/x", "device": "st", "dax": "inode"}]}),
            vec!["mounts[0].device: dax=inode needs a DAX-capable device, but dm device \"st\" has a member that is not: namespace \"r\" is in raw mode"]),
        (json!({"boot": {"persist": "maybe"}}), vec!["boot.persist: \"maybe\" is not a boolean"]),
        (json!({"boot": {"persist": true, "when": "now"}}), vec!["boot.when: unknown field `when`"]),
        // every input error at once: type errors (unknown enum value, wrong JSON type, bad
        // size) together with each other and with the semantic errors of what did read
        (json!({"namespaces": [{"name": "a", "region": "region0", "mode": "bogus", "size": "12Q"}]}),
            vec!["namespaces[0].mode: unknown variant `bogus`", "namespaces[0].size: \"12Q\" has an unknown unit"]),
        (json!({"namespaces": [{"mode": "fsdax"}]}), vec!["namespaces[0]: missing field `name`", "namespaces[0]: missing field `region`"]),
        (json!({"namespaces": [{"name": "a", "region": "r0", "mode": "sector", "map": "mem"}, ns("b", 0, "fsdax"), ns("c", 0, "fsdax")]}),
            vec!["namespaces[0].region: \"r0\" is neither an NVDIMM region", "namespaces[0].map: map applies to fsdax and devdax namespaces, not sector",
                 "namespaces[2].size: namespaces[1] already takes the rest of region0"]),
        (json!({"namespaces": ["pm0", {"name": "a", "region": 0, "mode": "fsdax", "align": "64K"}]}),
            vec!["namespaces[0]: expected an object, got a string", "namespaces[1].align: 64K is not a supported alignment"]),
        (json!({"devices": [{"name": "s", "target": "striped", "members": ["/dev/pmem0"], "chunk": "2.5M"},
                            {"name": "t", "target": "mirror", "members": ["nowhere", 7]}]}),
            vec!["devices[0].chunk: \"2.5M\" has an unknown unit", "devices[0].members: a striped device needs at least 2 members, got 1",
                 "devices[1].target: unknown variant `mirror`", "devices[1].members[0]: \"nowhere\" is neither a name declared",
                 "devices[1].members[1]: wrong type: integer `7`, expected a string"]),
        (json!({"partitions": [{"name": "p", "disk": "/dev/pmem0", "number": "one", "start": "4K"},
                               {"name": "q", "disk": "/dev/pmem0", "size": "10000", "colour": "red"}]}),
            vec!["partitions[0].number: wrong type: string \"one\"", "partitions[0].start: 4K overlaps the GPT header",
                 "partitions[1].size: 10000 is not a multiple of 4 KiB", "partitions[1].colour: unknown field `colour`"]),
        (json!({"filesystems": [{"device": "/dev/pmem0", "type": "btrfs", "label": 12},
                                {"device": "nowhere", "type": "xfs", "label": "much-too-long-label", "mkfs_options": [7, ""]}]}),
            vec!["filesystems[0].type: unknown variant `btrfs`", "filesystems[0].label: wrong type: integer `12`, expected a string",
                 "filesystems[1].device: \"nowhere\" is neither a name declared", "filesystems[1].label: \"much-too-long-label\" is longer than 12 bytes",
                 "filesystems[1].mkfs_options[0]: wrong type: integer `7`, expected a string", "filesystems[1].mkfs_options[1]: an empty argument"]),
        (json!({"mounts": [{"path": "relative", "device": "/dev/pmem0", "dax": "sometimes"},
                           {"path": "/mnt/y", "device": 42, "options": "noatime"},
                           {"path": "/mnt/z", "device": "/dev/pmem1", "options": ["noatime,nodev", false]}]}),
            vec!["mounts[0].path: \"relative\" is not an absolute path", "mounts[0].dax: unknown variant `sometimes`",
                 "mounts[1].device: wrong type: integer `42`, expected a string", "mounts[1].options: wrong type: string \"noatime\", expected a sequence",
                 "mounts[2].options[0]: \"noatime,nodev\": give one option per list item", "mounts[2].options[1]: wrong type: boolean `false`, expected a string"]),
        (json!({"boot": {"persist": "maybe"}, "allow_data_loss": "maybe", "verify_pmd": 2,
                "namespaces": [{"name": "a", "region": 0, "mode": "fsdax", "size": "3M"}]}),
            vec!["boot.persist: \"maybe\" is not a boolean", "allow_data_loss: \"maybe\" is not a boolean", "verify_pmd: 2 is not a boolean",
                 "namespaces[0].size: 3M is not a multiple of the alignment 2M"]),
        (json!({"boot": "yes", "mounts": [{"path": "/", "device": "/dev/pmem0"}]}),
            vec!["boot: expected an object, got a string", "mounts[0].path: refusing to manage a mount on /"]),
        (json!({"colour": "blue", "state": "gone", "devices": [{"name": "s", "target": "linear", "members": ["/dev/pmem0"], "chunk": "2M"}]}),
            vec!["Unsupported parameters for (pmem_stack) module: colour.", "state: unknown variant `gone`", "devices[0].chunk: chunk applies to striped devices only"]),
        (json!({"_ansible_check_mode": "perhaps", "devices": {"name": "d"},
                "mounts": [{"path": "/mnt/x", "device": "/dev/pmem0", "options": ["dax"]}]}),
            vec!["_ansible_check_mode: \"perhaps\" is not a boolean", "devices: expected a list, got an object",
                 "mounts[0].options[0]: \"dax\": set DAX with the dax field"]),
        (json!({"namespaces": [{"name": "dd", "region": 0, "mode": "devdax", "size": "1.5G"}],
                "filesystems": [{"device": "dd", "type": "ext4", "mkfs_options": {"-b": 4096}}]}),
            vec!["namespaces[0].size: \"1.5G\" has an unknown unit", "filesystems[0].mkfs_options: wrong type: map, expected a sequence",
                 "filesystems[0].device: namespace \"dd\" is devdax"]),
        // force flags in mkfs_options: forcing comes only from allow_data_loss
        (json!({"filesystems": [{"device": "/dev/pmem0", "type": "xfs", "mkfs_options": ["-K", "-f"]}]}),
            vec!["filesystems[0].mkfs_options[1]: \"-f\" makes mkfs.xfs force (-f); forcing comes only from allow_data_loss"]),
        (json!({"filesystems": [{"device": "/dev/pmem0", "type": "ext4", "mkfs_options": ["-F"]}]}),
            vec!["filesystems[0].mkfs_options[0]: \"-F\" makes mkfs.ext4 force (-F); forcing comes only from allow_data_loss"]),
        (json!({"allow_data_loss": true, "filesystems": [{"device": "/dev/pmem0", "type": "ext4", "mkfs_options": ["-E", "stride=16", "-FF"]}]}),
            vec!["filesystems[0].mkfs_options[2]: \"-FF\" makes mkfs.ext4 force (-F)"]),
        (json!({"filesystems": [{"device": "/dev/pmem0", "type": "ext4", "mkfs_options": ["-m", "0", "-qF"]}]}),
            vec!["filesystems[0].mkfs_options[2]: \"-qF\" makes mkfs.ext4 force (-F)"]),
        (json!({"filesystems": [{"device": "/dev/pmem0", "type": "xfs", "mkfs_options": ["-Kf"]}, {"device": "/dev/pmem1", "type": "xfs", "mkfs_options": ["--force"]}]}),
            vec!["filesystems[0].mkfs_options[0]: \"-Kf\" makes mkfs.xfs force (-f)", "filesystems[1].mkfs_options[0]: \"--force\" makes mkfs.xfs force (-f)"]),
        (json!({"filesystems": [{"device": "/dev/pmem0", "type": "ext4", "mkfs_options": ["--force"]}]}),
            vec!["filesystems[0].mkfs_options[0]: \"--force\" makes mkfs.ext4 force (-F)"]),
        (json!({"filesystems": [{"device": "/dev/pmem0", "type": "ext5", "mkfs_options": ["-F"]}]}),
            vec!["filesystems[0].type: unknown variant `ext5`", "filesystems[0].mkfs_options[0]: \"-F\" makes mkfs.ext4 force (-F)"]),
        // LVM: volume_groups and logical_volumes
        (json!({"volume_groups": [{"name": "vg", "pvs": ["/dev/pmem0"], "colour": 1}]}), vec!["volume_groups[0].colour: unknown field `colour`, expected one of `name`, `pvs`, `extent_size`"]),
        (json!({"volume_groups": [{"name": "vg"}]}), vec!["volume_groups[0]: missing field `pvs`"]),
        (json!({"volume_groups": [{"name": "vg", "pvs": []}]}), vec!["volume_groups[0].pvs: a volume group needs at least 1 PV"]),
        (json!({"logical_volumes": [{"name": "lv", "vg": "vg", "stripes": "two"}]}), vec!["logical_volumes[0].stripes: wrong type: string \"two\""]),
        (json!({"volume_groups": [{"name": "-vg", "pvs": ["/dev/pmem0"]}]}), vec!["volume_groups[0].name: \"-vg\" is not a valid volume group name (use letters, digits and + _ . -, not starting with -, not . or ..)"]),
        (json!({"volume_groups": [{"name": "..", "pvs": ["/dev/pmem0"]}]}), vec!["volume_groups[0].name: \"..\" is not a valid volume group name"]),
        (json!({"volume_groups": [{"name": "v:g", "pvs": ["/dev/pmem0"]}]}), vec!["volume_groups[0].name: \"v:g\" is not a valid volume group name"]),
        (json!({"volume_groups": [{"name": "v".repeat(128), "pvs": ["/dev/pmem0"]}]}), vec!["volume_groups[0].name", "is longer than 127 characters, the LVM limit"]),
        (json!({"volume_groups": [{"name": "vg", "pvs": ["/dev/pmem0"]}], "logical_volumes": [{"name": ".", "vg": "vg"}]}), vec!["logical_volumes[0].name: \".\" is not a valid logical volume name"]),
        (json!({"volume_groups": [{"name": "vg", "pvs": ["/dev/pmem0"]}, {"name": "vg", "pvs": ["/dev/pmem1"]}]}), vec!["volume_groups[1].name: duplicate volume group \"vg\" (already declared at volume_groups[0])"]),
        (json!({"volume_groups": [{"name": "vg", "pvs": ["/dev/pmem0"]}], "logical_volumes": [{"name": "lv", "vg": "vg", "size": "1G"}, {"name": "lv", "vg": "vg", "size": "1G"}]}),
            vec!["logical_volumes[1].name: duplicate logical volume vg/lv (already declared at logical_volumes[0])"]),
        (json!({"devices": [{"name": "fast", "target": "linear", "members": ["/dev/pmem0"]}], "volume_groups": [{"name": "fast", "pvs": ["/dev/pmem1"]}]}),
            vec!["volume_groups[0].name: \"fast\" is also the name of the dm device at devices[0].name; give the volume group another name"]),
        (json!({"volume_groups": [{"name": "vg", "pvs": ["/dev/pmem0"]}], "logical_volumes": [{"name": "lv", "vg": "other"}]}),
            vec!["logical_volumes[0].vg: \"other\" is not a volume group declared in volume_groups"]),
        (json!({"volume_groups": [{"name": "vg", "pvs": ["/dev/pmem0", "/dev/pmem0"]}]}), vec!["volume_groups[0].pvs[1]: \"/dev/pmem0\" is listed twice"]),
        (json!({"volume_groups": [{"name": "a", "pvs": ["/dev/pmem0"]}, {"name": "b", "pvs": ["/dev/pmem1", "/dev/pmem0"]}]}),
            vec!["volume_groups[1].pvs[1]: \"/dev/pmem0\" is already a PV of volume_groups[0]; a PV belongs to one volume group"]),
        (json!({"volume_groups": [{"name": "vg", "pvs": ["nowhere"]}]}), vec!["volume_groups[0].pvs[0]: \"nowhere\" is neither a name declared in these arguments nor an absolute /dev path"]),
        (json!({"devices": [{"name": "d", "target": "linear", "members": ["/dev/pmem0"]}], "volume_groups": [{"name": "vg", "pvs": ["d"]}]}),
            vec!["volume_groups[0].pvs[0]: \"d\" is a dm device and cannot be used here"]),
        (json!({"namespaces": [ns("s", 0, "sector")], "volume_groups": [{"name": "vg", "pvs": ["s"]}]}),
            vec!["volume_groups[0].pvs[0]: namespace \"s\" is in sector mode (only fsdax namespaces are DAX-capable block devices); a PV must be DAX-capable"]),
        (json!({"namespaces": [ns("dd", 0, "devdax")], "volume_groups": [{"name": "vg", "pvs": ["dd"]}]}),
            vec!["volume_groups[0].pvs[0]: namespace \"dd\" is in devdax mode"]),
        (json!({"namespaces": [ns("r", 0, "raw")], "partitions": [{"name": "p", "disk": "r"}], "volume_groups": [{"name": "vg", "pvs": ["p"]}]}),
            vec!["volume_groups[0].pvs[0]: namespace \"r\" is in raw mode", "a PV must be DAX-capable"]),
        (json!({"namespaces": [ns("pm0", 0, "fsdax")], "devices": [{"name": "d", "target": "linear", "members": ["pm0"]}], "volume_groups": [{"name": "vg", "pvs": ["pm0"]}]}),
            vec!["volume_groups[0].pvs[0]: namespace pm0 is already a member of dm device \"d\" (devices[0]); it cannot also be a PV"]),
        (json!({"volume_groups": [{"name": "vg", "pvs": ["/dev/pmem0"], "extent_size": "1M"}]}),
            vec!["volume_groups[0].extent_size: 1M is not a multiple of 2 MiB; every extent must start on a 2 MiB page"]),
        (json!({"volume_groups": [{"name": "vg", "pvs": ["/dev/pmem0"], "extent_size": "0"}]}), vec!["volume_groups[0].extent_size: 0 is not a multiple of 2 MiB"]),
        (json!({"volume_groups": [{"name": "vg", "pvs": ["/dev/pmem0"]}], "logical_volumes": [{"name": "a", "vg": "vg"}, {"name": "b", "vg": "vg"}]}),
            vec!["logical_volumes[1].size: logical_volumes[0] already takes the rest of volume group \"vg\"; give the others a size"]),
        (json!({"volume_groups": [{"name": "vg", "pvs": ["/dev/pmem0"]}], "logical_volumes": [{"name": "a", "vg": "vg", "size": "0"}]}),
            vec!["logical_volumes[0].size: the size must not be 0"]),
        (json!({"volume_groups": [{"name": "vg", "pvs": ["/dev/pmem0"]}], "logical_volumes": [{"name": "a", "vg": "vg", "stripes": 0}]}),
            vec!["logical_volumes[0].stripes: stripes must be at least 1 (1 = linear)"]),
        (json!({"volume_groups": [{"name": "vg", "pvs": ["/dev/pmem0", "/dev/pmem1"]}], "logical_volumes": [{"name": "a", "vg": "vg", "stripes": 3}]}),
            vec!["logical_volumes[0].stripes: 3 stripes need 3 PVs, but volume group \"vg\" has 2"]),
        (json!({"volume_groups": [{"name": "vg", "pvs": ["/dev/pmem0", "/dev/pmem1"]}], "logical_volumes": [{"name": "a", "vg": "vg", "stripe_size": "2M"}]}),
            vec!["logical_volumes[0].stripe_size: stripe_size applies to striped volumes (stripes of 2 or more) only"]),
        (json!({"volume_groups": [{"name": "vg", "pvs": ["/dev/pmem0", "/dev/pmem1"]}], "logical_volumes": [{"name": "a", "vg": "vg", "stripes": 2, "stripe_size": "3K"}]}),
            vec!["logical_volumes[0].stripe_size: 3K is not a multiple of 4 KiB; DAX needs page-sized stripes"]),
        (json!({"volume_groups": [{"name": "vg", "pvs": ["/dev/pmem0", "/dev/pmem1"]}], "logical_volumes": [{"name": "a", "vg": "vg", "stripes": 2, "stripe_size": "12K"}]}),
            vec!["logical_volumes[0].stripe_size: 12K is not a power of 2, which LVM requires of a stripe size"]),
        (json!({"volume_groups": [{"name": "vg", "pvs": ["/dev/pmem0"]}], "filesystems": [{"device": "vg/nope", "type": "xfs"}]}),
            vec!["filesystems[0].device: \"vg/nope\" is not a logical volume declared in logical_volumes"]),
        (json!({"volume_groups": [{"name": "vg", "pvs": ["/dev/pmem0"]}], "logical_volumes": [{"name": "lv", "vg": "vg"}],
                "volume_groups_extra": 1}), vec!["Unsupported parameters for (pmem_stack) module: volume_groups_extra."]),
        (json!({"volume_groups": [{"name": "vg", "pvs": ["/dev/pmem0"]}, {"name": "vg2", "pvs": ["vg/lv"]}], "logical_volumes": [{"name": "lv", "vg": "vg"}]}),
            vec!["volume_groups[1].pvs[0]: \"vg/lv\" is a logical volume and cannot be used here"]),
        (json!({"volume_groups": [{"name": "vg", "pvs": ["/dev/pmem0"]}], "logical_volumes": [{"name": "lv", "vg": "vg"}],
                "filesystems": [{"device": "vg/lv", "type": "xfs"}, {"device": "/dev/vg/lv", "type": "ext4"}]}),
            vec!["filesystems[1].device: logical volume vg/lv already has a filesystem declared at filesystems[0]"]),
        (json!({"namespaces": [ns("pm0", 0, "fsdax")], "partitions": [{"name": "p", "disk": "pm0"}],
                "volume_groups": [{"name": "vg", "pvs": ["p"]}], "logical_volumes": [{"name": "lv", "vg": "vg"}],
                "devices": [{"name": "d", "target": "linear", "members": ["vg/lv"]}], "filesystems": [{"device": "vg/lv", "type": "xfs"}]}),
            vec!["filesystems[0].device: logical volume vg/lv is a member of dm device \"d\" (devices[0]); a filesystem on it would overwrite that"]),
    ]
}

#[test]
fn every_bad_input_fails_with_its_path_and_changes_nothing() {
    let all = cases();
    assert!(all.len() >= 20);
    for (args, fragments) in all {
        let mut fake = FakeSystem::with_fsdax(2, DIMM);
        let before = fake.state.clone();
        let r = pmem_stack::run(&args.to_string(), &mut fake, false);
        assert!(r.failed, "{args} should fail");
        assert!(!r.changed);
        for f in &fragments {
            assert!(
                r.msg.contains(f),
                "{args}\n  wanted: {f}\n  got:    {}",
                r.msg
            );
        }
        assert!(!r.errors.is_empty(), "structured errors for {args}");
        assert_eq!(fake.mutations(), 0, "{args}");
        assert_eq!(fake.probes, 0, "validation happens before probing: {args}");
        assert_eq!(fake.state, before);
    }
}

#[test]
fn all_problems_are_reported_together() {
    let args = json!({
        "namespaces": [{"name": "a", "region": 0, "mode": "fsdax", "size": "3M"}],
        "devices": [{"name": "s", "target": "striped", "members": ["a"], "chunk": "3K"}],
        "mounts": [{"path": "relative", "device": "nowhere"}],
        "state": "gone"
    });
    let mut fake = FakeSystem::with_fsdax(1, DIMM);
    let r = pmem_stack::run(&args.to_string(), &mut fake, false);
    assert_eq!(
        paths(&r),
        [
            "state",
            "namespaces[0].size",
            "devices[0].members",
            "devices[0].chunk",
            "mounts[0].path",
            "mounts[0].device"
        ],
        "type errors first, then the semantic ones, in one run: {}",
        r.msg
    );
    let mut args = args;
    args["state"] = json!("present");
    let r = pmem_stack::run(&args.to_string(), &mut fake, false);
    assert_eq!(
        paths(&r),
        [
            "namespaces[0].size",
            "devices[0].members",
            "devices[0].chunk",
            "mounts[0].path",
            "mounts[0].device"
        ],
        "{}",
        r.msg
    );
    assert!(r.msg.starts_with("5 problems in the arguments: "));
}

#[test]
fn a_chunk_that_is_not_2m_is_a_warning_not_an_error() {
    let args = json!({"devices": [{"name": "s", "target": "striped", "members": ["/dev/pmem0", "/dev/pmem1"], "chunk": "1M"}]});
    let mut fake = FakeSystem::with_fsdax(2, DIMM);
    let r = pmem_stack::run(&args.to_string(), &mut fake, false);
    assert!(!r.failed, "{}", r.msg);
    assert_warned(&r, |w| {
        w.starts_with("devices[0].chunk: 1M is not a multiple of 2 MiB")
    });
}

#[test]
fn a_stripe_size_that_is_not_2m_is_a_warning_not_an_error() {
    let args = json!({
        "volume_groups": [{"name": "vg", "pvs": ["/dev/pmem0", "/dev/pmem1"]}],
        "logical_volumes": [{"name": "lv", "vg": "vg", "stripes": 2, "stripe_size": "1M"}]
    });
    let d = common::validated(&args);
    assert!(
        d.warnings
            .iter()
            .any(|w| w.starts_with("logical_volumes[0].stripe_size: 1M is not a multiple of 2 MiB")),
        "{:?}",
        d.warnings
    );
}

/// A whole LVM declaration validates: PVs on fsdax namespaces, a partition and a path;
/// `VG/LV` resolves to `/dev/VG/LV` for filesystems, mounts, partitions and dm members;
/// the defaults are filled in.
#[test]
fn a_good_lvm_declaration_validates() {
    use pmem_stack::args::validate::{DevRef, LogicalVolumeSpec, VolumeGroupSpec};
    use pmem_stack::units::Bytes;
    let ns = |name: &str, region: u32| json!({"name": name, "region": region, "mode": "fsdax", "size": "4G"});
    let args = json!({
        "namespaces": [ns("pm0", 0), ns("pm1", 1), ns("pm2", 0)],
        "partitions": [{"name": "p2", "disk": "pm2"}, {"name": "onlv", "disk": "fast/small"}],
        "volume_groups": [
            {"name": "fast", "pvs": ["pm0", "pm1"]},
            {"name": "slow_1.x+y", "pvs": ["p2", "/dev/pmem7"], "extent_size": "32M"}
        ],
        "logical_volumes": [
            {"name": "data", "vg": "fast", "stripes": 2},
            {"name": "small", "vg": "fast", "size": "1G"},
            {"name": "data", "vg": "slow_1.x+y", "size": "8G", "stripes": 2, "stripe_size": "4M"},
            {"name": "rest", "vg": "slow_1.x+y"}
        ],
        "devices": [{"name": "cat", "target": "linear", "members": ["slow_1.x+y/rest"]}],
        "filesystems": [{"device": "fast/data", "type": "xfs"}, {"device": "slow_1.x+y/data", "type": "ext4"}],
        "mounts": [{"path": "/mnt/fast", "device": "fast/data"}, {"path": "/mnt/slow", "device": "/dev/slow_1.x+y/data", "dax": "inode"}]
    });
    let d = common::validated(&args);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    assert_eq!(
        d.volume_groups,
        [
            VolumeGroupSpec {
                name: "fast".into(),
                pvs: vec![
                    DevRef::Namespace("pm0".into()),
                    DevRef::Namespace("pm1".into())
                ],
                extent_size: Bytes(4 << 20),
            },
            VolumeGroupSpec {
                name: "slow_1.x+y".into(),
                pvs: vec![
                    DevRef::Partition("p2".into()),
                    DevRef::Path("/dev/pmem7".into())
                ],
                extent_size: Bytes(32 << 20),
            }
        ]
    );
    assert_eq!(
        d.logical_volumes[0],
        LogicalVolumeSpec {
            name: "data".into(),
            vg: "fast".into(),
            size: None,
            stripes: 2,
            stripe_size: Bytes(2 << 20),
        }
    );
    assert_eq!(
        (d.logical_volumes[1].stripes, d.logical_volumes[1].size),
        (1, Some(Bytes(1 << 30)))
    );
    assert_eq!(d.logical_volumes[2].stripe_size, Bytes(4 << 20));
    let lv = |vg: &str, lv: &str| DevRef::Volume(vg.into(), lv.into());
    assert_eq!(d.partitions[1].disk, lv("fast", "small"));
    assert_eq!(d.devices[0].members, [lv("slow_1.x+y", "rest")]);
    assert_eq!(d.filesystems[0].device, lv("fast", "data"));
    assert_eq!(d.mounts[1].device, lv("slow_1.x+y", "data"));
    // the options read back as given
    assert_eq!(d.args.volume_groups.len(), 2);
    assert_eq!(d.args.logical_volumes[2].stripes, Some(2));
}

#[test]
fn an_lvm_reference_cycle_is_found() {
    // a dm device over an LV whose PV is a partition of that dm device
    let paths = error_paths(&json!({
        "devices": [{"name": "d", "target": "linear", "members": ["vg/lv"]}],
        "partitions": [{"name": "p", "disk": "d"}],
        "volume_groups": [{"name": "vg", "pvs": ["p"]}],
        "logical_volumes": [{"name": "lv", "vg": "vg"}]
    }));
    assert_eq!(paths, ["devices[0].members"]);
}

/// The paths of the errors a run reports for `args`.
fn error_paths(args: &serde_json::Value) -> Vec<String> {
    let mut fake = FakeSystem::with_fsdax(2, DIMM);
    let r = pmem_stack::run(&args.to_string(), &mut fake, false);
    assert!(r.failed, "{args} should fail");
    paths(&r).into_iter().map(String::from).collect()
}

/// The paths of a run's errors, in order.
fn paths(r: &ModuleResult) -> Vec<&str> {
    r.errors.iter().map(|e| e.path.as_str()).collect()
}

#[test]
fn type_errors_hide_no_other_error() {
    // the issue's example: both the mode and the size, and nothing else
    assert_eq!(
        error_paths(
            &json!({"namespaces": [{"name": "a", "region": "region0", "mode": "bogus", "size": "12Q"}]})
        ),
        ["namespaces[0].mode", "namespaces[0].size"]
    );
    // within an item in the input's order, missing fields last; then the semantic errors
    // of the fields that did read, the item's own among them
    assert_eq!(
        error_paths(&json!({
            "devices": [{"chunk": "3K", "members": ["/dev/pmem0", 1, "/dev/pmem0"], "target": "striped", "colour": 0}],
            "filesystems": [{"type": "xfs", "device": "/dev/pmem0", "mkfs_options": ["-f", null]}]
        })),
        [
            "devices[0].members[1]",
            "devices[0].colour",
            "devices[0]",
            "filesystems[0].mkfs_options[1]",
            "devices[0].members[2]",
            "devices[0].chunk",
            "filesystems[0].mkfs_options[0]",
        ]
    );
}

#[test]
fn a_name_that_did_not_read_makes_no_dangling_reference() {
    // "pm0" may be the namespace whose name is unreadable: not reported as undeclared
    let paths = error_paths(&json!({
        "namespaces": [{"name": 5, "region": 0, "mode": "fsdax"}],
        "devices": [{"name": "d", "target": "striped", "members": ["pm0"]}],
        "mounts": [{"path": "/mnt/x", "device": "pm0"}]
    }));
    assert_eq!(paths, ["namespaces[0].name", "devices[0].members"]);
    // once every name reads, it is
    let paths = error_paths(&json!({
        "namespaces": [{"name": "pm1", "region": 0, "mode": "fsdax"}],
        "devices": [{"name": "d", "target": "striped", "members": ["pm0"]}]
    }));
    assert_eq!(paths, ["devices[0].members[0]", "devices[0].members"]);
}

#[test]
fn force_flags_are_refused_and_other_mkfs_words_are_not() {
    // values of options are not flags: a label "-F", mke2fs's fragment size -f
    let ok = json!({"filesystems": [
        {"device": "/dev/pmem0", "type": "ext4", "mkfs_options": ["-L", "-F", "-f", "4096", "-O", "^has_journal"]},
        {"device": "/dev/pmem1", "type": "xfs", "mkfs_options": ["-K", "-m", "crc=1", "-d", "-f"]}
    ]});
    let mut fake = FakeSystem::with_fsdax(2, DIMM);
    let r = pmem_stack::run(&ok.to_string(), &mut fake, true);
    assert!(r.errors.is_empty(), "{}", r.msg);
    // allow_data_loss does not make a force flag acceptable
    let args = json!({"allow_data_loss": true, "filesystems": [
        {"device": "/dev/pmem0", "type": "ext4", "mkfs_options": ["-q", "-jF", "-F"]}
    ]});
    assert_eq!(
        error_paths(&args),
        [
            "filesystems[0].mkfs_options[1]",
            "filesystems[0].mkfs_options[2]"
        ]
    );
}
