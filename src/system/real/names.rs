//! The names this module keeps for namespaces that no label can carry
//! ([`crate::actual::NameRecord`]): one JSON file per name under [`NAMES_DIR`], written
//! atomically (temp file, fsync, rename, fsync of the directory) before the namespace
//! is converted, and removed after it is destroyed. On disk under /var/lib, not in /run:
//! the name must survive a reboot, as a label would. The boot replay reads it before
//! local-fs.target, when the root filesystem (and so /var/lib, on most hosts) is there.

use super::files;
use crate::actual::{FileContent, NameRecord};
use crate::system::{Output, SystemError};
use std::path::Path;

/// Where the records are: `NAMES_DIR/<name>.json`.
pub const NAMES_DIR: &str = "/var/lib/pmem-stack/names";

fn path_of(name: &str) -> String {
    format!("{NAMES_DIR}/{name}.json")
}

/// The records found under `root`, by name. A file that is not one of ours (another
/// name, not JSON, a record of another name) is left out, never an error: it is not a
/// reason to fail a run.
pub fn probe(root: &Path) -> Result<Vec<NameRecord>, SystemError> {
    let dir = root.join(NAMES_DIR.trim_start_matches('/'));
    let mut out = Vec::new();
    for file in super::nd::list_dir(&dir)? {
        let Some(name) = file.strip_suffix(".json") else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(dir.join(&file)) else {
            continue;
        };
        match serde_json::from_str::<NameRecord>(&text) {
            Ok(r) if r.name == name => out.push(r),
            _ => {}
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Keep `record` (replacing an older record of the same name).
pub fn record(root: &Path, record: &NameRecord) -> Result<Output, SystemError> {
    let text = serde_json::to_string(record).map_err(|e| SystemError::Os {
        what: format!("writing the name record of {}", record.name),
        error: e.to_string(),
    })?;
    files::write(
        root,
        &path_of(&record.name),
        &FileContent::Text { text: text + "\n" },
        0o644,
    )
}

/// Drop the record of `name` (none is fine).
pub fn forget(root: &Path, name: &str) -> Result<Output, SystemError> {
    files::remove(root, &path_of(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actual::{Named, RegionId};
    use crate::units::Bytes;

    #[test]
    fn records_are_written_read_back_and_forgotten() {
        let root = std::env::temp_dir().join(format!("pmem-stack-names-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(probe(&root).expect("no dir is no record"), vec![]);
        let r = NameRecord {
            name: "pm0".into(),
            planned: false,
            of: Named::Region(RegionId {
                start: 0x3000_0000,
                size: Bytes(512 << 20),
            }),
        };
        let u = NameRecord {
            name: "pm1".into(),
            planned: false,
            of: Named::Uuid("9373f071-7e9b-4202-87a5-22dd14039a7b".into()),
        };
        record(&root, &u).expect("write");
        record(&root, &r).expect("write");
        // not ours: another suffix, a record under another name, not JSON
        let dir = root.join(NAMES_DIR.trim_start_matches('/'));
        std::fs::write(dir.join("notes.txt"), "x").expect("write");
        std::fs::write(
            dir.join("pm9.json"),
            serde_json::to_string(&r).expect("json"),
        )
        .expect("write");
        std::fs::write(dir.join("pm8.json"), "{").expect("write");
        assert_eq!(probe(&root).expect("read"), vec![r.clone(), u]);
        let text = std::fs::read_to_string(dir.join("pm0.json")).expect("read");
        assert_eq!(
            text,
            "{\"name\":\"pm0\",\"region\":{\"start\":805306368,\"size\":536870912}}\n"
        );
        forget(&root, "pm1").expect("forget");
        forget(&root, "pm1").expect("forgetting twice is fine");
        assert_eq!(probe(&root).expect("read"), vec![r]);
        let _ = std::fs::remove_dir_all(&root);
    }
}
