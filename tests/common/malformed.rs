//! The regression inputs in `tests/fixtures/malformed/` (shared by tests/fuzz_args.rs
//! and tests/properties.rs).

use std::path::PathBuf;

/// `tests/fixtures/malformed`.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/malformed")
}

/// The `PREFIX*.json` fixtures, sorted; at least one must exist.
pub fn json_files(prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("tests/fixtures/malformed")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no {prefix}*.json in {}",
        dir().display()
    );
    files
}
