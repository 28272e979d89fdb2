//! Fuzzing the input side: argument parsing and validation never panic, and every
//! failure explains itself (at least one error, each with a message, each path either
//! empty, meaning the whole input, or a real JSON path into the input). Also the kernel
//! text parsers (dm table lines, device numbers) and `--actual` snapshot reading.
//!
//! Inputs: arbitrary JSON values (a recursive strategy with the real option and field
//! names, sizes such as "2M", "-1", "99999999999999999999T", unicode, huge numbers,
//! wrong types at every depth), arguments shaped like the real ones with values from
//! both sides of every rule, raw bytes, and valid texts mutated byte by byte.
//!
//! Case counts: by default about 20,000 in total (8,000 JSON values, 8,000 texts,
//! 3,000 dm table lines, 1,000 snapshots), well under a minute in debug. With
//! `PMEM_STACK_FUZZ_CASES=N` each of the two argument properties runs N cases and the
//! kernel-text ones N/4. The "millions of cases" run (4 million argument cases, 1 million
//! dm table lines and snapshots):
//!
//! ```sh
//! PMEM_STACK_FUZZ_CASES=2000000 cargo test --release --test fuzz_args
//! ```
//!
//! A property stops at its first failure. While some are known to fail, the survey
//! runs N cases of every property through to the end and prints each distinct failure
//! with its own shrunk input. Release builds do not check arithmetic overflow; turn it
//! on (in a separate target directory, so as not to rebuild everyone's):
//!
//! ```sh
//! CARGO_TARGET_DIR=/tmp/pmem-fuzz-target CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true \
//!   PMEM_STACK_SURVEY=2000000 cargo test --release --test fuzz_args survey -- --ignored --nocapture
//! ```

use pmem_stack::actual::dm::{parse_table, Devno, TableLine};
use pmem_stack::actual::Actual;
use pmem_stack::args::validate::{check_draft, validate};
use pmem_stack::args::{parse_input, InputError};
use pmem_stack::report::ModuleResult;
use pmem_stack::system::fake::FakeSystem;
use pmem_stack::system::Snapshot;
use pmem_stack::units::Bytes;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

// ---------------------------------------------------------------------------------------
// Case counts
// ---------------------------------------------------------------------------------------

fn env_cases() -> Option<u32> {
    std::env::var("PMEM_STACK_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
}

/// `default` cases, or `PMEM_STACK_FUZZ_CASES / divisor`.
fn cases(default: u32, divisor: u32) -> Config {
    Config {
        cases: env_cases().map_or(default, |n| (n / divisor).max(1)),
        // no proptest-regressions/ files next to the tests
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------
// Checking a result
// ---------------------------------------------------------------------------------------

/// The options object `parse_input` reads paths against (the wrapped shape unwrapped).
fn options_root(text: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(text).ok()?;
    match v {
        Value::Object(o) => {
            if o.len() == 1 {
                if let Some(Value::Object(inner)) = o.get("ANSIBLE_MODULE_ARGS") {
                    return Some(Value::Object(inner.clone()));
                }
            }
            Some(Value::Object(o))
        }
        other => Some(other),
    }
}

/// One step of an error path.
#[derive(Debug, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Split an error path: `devices[0].members[1]`, `boot.persist`, `_ansible_diff`, and
/// keys that are not plain words quoted as Rust prints strings: `namespaces[0]["[x"]`.
/// `None` if it does not follow that grammar.
fn segments(path: &str) -> Option<Vec<Seg>> {
    let mut out = Vec::new();
    let mut chars = path.chars().peekable();
    let word = |chars: &mut std::iter::Peekable<std::str::Chars>| {
        let mut w = String::new();
        while let Some(&c) = chars.peek() {
            if c == '.' || c == '[' {
                break;
            }
            w.push(c);
            chars.next();
        }
        w
    };
    let first = word(&mut chars);
    if !first.is_empty() {
        out.push(Seg::Key(first));
    }
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                let w = word(&mut chars);
                if w.is_empty() {
                    return None;
                }
                out.push(Seg::Key(w));
            }
            '[' if chars.peek() == Some(&'"') => {
                chars.next();
                let mut key = String::new();
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            'n' => key.push('\n'),
                            'r' => key.push('\r'),
                            't' => key.push('\t'),
                            '0' => key.push('\0'),
                            'u' => {
                                if chars.next()? != '{' {
                                    return None;
                                }
                                let mut hex = String::new();
                                loop {
                                    match chars.next()? {
                                        '}' => break,
                                        h => hex.push(h),
                                    }
                                }
                                key.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                            }
                            other => key.push(other), // \" \\ \'
                        },
                        other => key.push(other),
                    }
                }
                if chars.next()? != ']' {
                    return None;
                }
                out.push(Seg::Key(key));
            }
            '[' => {
                let mut digits = String::new();
                loop {
                    match chars.next()? {
                        ']' => break,
                        d => digits.push(d),
                    }
                }
                out.push(Seg::Index(digits.parse().ok()?));
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Whether `path` leads to a value in `v`.
fn path_exists(v: &Value, path: &str) -> bool {
    let Some(segs) = segments(path) else {
        return false;
    };
    let mut at = v;
    for s in &segs {
        let next = match (s, at) {
            (Seg::Key(k), Value::Object(m)) => m.get(k),
            (Seg::Index(i), Value::Array(a)) => a.get(*i),
            _ => None,
        };
        match next {
            Some(n) => at = n,
            None => return false,
        }
    }
    true
}

/// The path reader itself, on the shapes the module prints.
#[test]
fn error_paths_are_read_as_the_module_writes_them() {
    let v = json!({"devices": [{"members": ["a", "b"], "[x": {"\"q\u{1da12}\n": 1}}],
                   "boot": {"persist": "maybe"}, "_ansible_diff": 2});
    for p in [
        "devices",
        "devices[0].members[1]",
        "devices[0][\"[x\"]",
        "devices[0][\"[x\"][\"\\\"q\\u{1da12}\\n\"]",
        "boot.persist",
        "_ansible_diff",
    ] {
        assert!(path_exists(&v, p), "{p}");
    }
    for p in [
        "devices[1]",
        "devices[0][x",
        "devices[0].members[2]",
        "boot[0]",
        "devices[0].[x",
    ] {
        assert!(!path_exists(&v, p), "{p}");
    }
}

/// A path to an option a list item lacks, where the message asks for it
/// (`namespaces[1].size: namespaces[0] already takes the rest of region0; give the
/// others a size`): the item exists and the field is one of its documented fields. The
/// brief's "a real path into the input" cannot hold for a field whose absence is the
/// problem; pointing at where it must be added is the useful answer.
fn names_missing_field(root: &Value, path: &str) -> bool {
    let Some((parent, field)) = path.rsplit_once('.') else {
        return false;
    };
    let Some(list) = parent.split('[').next() else {
        return false;
    };
    let documented = FIELDS
        .iter()
        .any(|(l, fields)| *l == list && fields.contains(&field));
    documented && path_exists(root, parent) && !path_exists(root, path) && parent.ends_with(']')
}

/// Every error says something, and its path is the whole input or a real path into it.
fn check_errors(
    errors: &[InputError],
    root: Option<&Value>,
    text: &str,
) -> Result<(), TestCaseError> {
    prop_assert!(!errors.is_empty(), "a failure without errors for {text:?}");
    for e in errors {
        prop_assert!(
            !e.msg.trim().is_empty(),
            "an error without a message at {:?} for {text:?}",
            e.path
        );
        if e.path.is_empty() {
            continue;
        }
        let root = root.ok_or_else(|| {
            TestCaseError::fail(format!(
                "error path {:?} ({}) but the input is not JSON: {text:?}",
                e.path, e.msg
            ))
        })?;
        prop_assert!(
            path_exists(root, &e.path) || names_missing_field(root, &e.path),
            "error path {:?} ({}) is not in the input {}",
            e.path,
            e.msg,
            root
        );
    }
    Ok(())
}

/// Small machines to plan against offline when the arguments are valid.
fn machines() -> &'static [Actual] {
    static M: OnceLock<Vec<Actual>> = OnceLock::new();
    M.get_or_init(|| {
        // xfs with the DAX stripe unit wants more than 512 MiB
        let mut stacked = FakeSystem::with_fsdax(2, Bytes(1 << 30));
        let r = pmem_stack::run(
            &json!({
                "namespaces": [{"name": "pm0", "region": 0, "mode": "fsdax"},
                               {"name": "pm1", "region": 1, "mode": "fsdax"}],
                "devices": [{"name": "dv0", "target": "striped", "members": ["pm0", "pm1"]}],
                "partitions": [{"name": "pt0", "disk": "dv0", "size": "600M"}],
                "filesystems": [{"device": "pt0", "type": "xfs"}],
                "mounts": [{"path": "/mnt/x", "device": "pt0"}]
            })
            .to_string(),
            &mut stacked,
            false,
        );
        assert!(!r.failed, "setting up the stacked machine: {}", r.msg);
        vec![
            FakeSystem::fresh_dimms(2, Bytes(256 << 20)).state,
            stacked.state,
        ]
    })
}

/// Parse, validate, and run offline: no panic, and failures explain themselves.
fn check_text(text: &str, machine: usize) -> Result<(), TestCaseError> {
    let root = options_root(text);
    match parse_input(text) {
        Ok(input) => {
            if let Err(errors) = validate(&input.args) {
                check_errors(&errors, root.as_ref(), text)?;
            }
        }
        Err(f) => {
            check_errors(&f.errors, root.as_ref(), text)?;
            if let Some(draft) = f.draft {
                let errors = check_draft(&draft);
                if !errors.is_empty() {
                    check_errors(&errors, root.as_ref(), text)?;
                }
            }
        }
    }
    let ms = machines();
    let r: ModuleResult =
        pmem_stack::run(text, &mut Snapshot(ms[machine % ms.len()].clone()), true);
    prop_assert!(
        !r.msg.trim().is_empty(),
        "a result without msg for {text:?}"
    );
    prop_assert!(r.done.is_empty(), "an offline run did something");
    if r.failed && !r.errors.is_empty() {
        let errors: Vec<InputError> = r
            .errors
            .iter()
            .map(|e| InputError::new(e.path.clone(), e.msg.clone()))
            .collect();
        check_errors(&errors, root.as_ref(), text)?;
    }
    prop_assert!(
        !r.failed || !r.errors.is_empty() || !r.refusals.is_empty() || r.plan.is_empty(),
        "failed with a plan but neither errors nor refusals: {}",
        r.msg
    );
    // the result is one JSON object
    let out: Value = serde_json::from_str(&r.to_json()).expect("the result is JSON");
    prop_assert!(out.is_object());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------

const FIELDS: &[(&str, &[&str])] = &[
    (
        "namespaces",
        &["name", "region", "mode", "size", "align", "map"],
    ),
    ("devices", &["name", "target", "members", "chunk"]),
    ("partitions", &["name", "disk", "number", "start", "size"]),
    ("filesystems", &["device", "type", "label", "mkfs_options"]),
    ("mounts", &["path", "device", "dax", "options"]),
];

fn pick(words: &[&'static str]) -> BoxedStrategy<String> {
    proptest::sample::select(words.to_vec())
        .prop_map(String::from)
        .boxed()
}

const SIZES: &[&str] = &[
    "2M",
    "4K",
    "1G",
    "8K",
    "1M",
    "3K",
    "0",
    "-1",
    "99999999999999999999T",
    "18446744073709551615",
    "18446744073709551616",
    "16383P",
    "16384P",
    "17179869183G",
    "2MiB",
    " 2 m ",
    "1.5G",
    "",
    "K",
    "0x10",
    "\u{0663}M",
    "2\u{0}M",
    "2Mé",
    "64M",
    "256M",
    "20K",
    "20479",
    "1000",
    "4096",
];

fn size_text() -> BoxedStrategy<String> {
    prop_oneof![
        pick(SIZES),
        (0u64..=4096, pick(&["", "K", "M", "G", "T", "P", "b", "Kb"]))
            .prop_map(|(n, u)| format!("{n}{u}")),
    ]
    .boxed()
}

fn interesting_string() -> BoxedStrategy<String> {
    prop_oneof![
        4 => size_text(),
        2 => pick(&[
            "pm0", "pm1", "dv0", "dv1", "pt0", "pt1", "", ".x", "a/b", "ü", "😀", "pm0 ",
            "/dev/pmem0", "/dev/pmem1", "/dev/../etc", "/dev/..", "/dev/", "/dev/mapper/dv0",
            "/etc/passwd", "dv0p1",
        ]),
        1 => (1usize..300).prop_map(|n| "x".repeat(n)),
        2 => pick(&[
            "region0", "0", "region99999999999999999999", "region-1", " region1 ", "r0",
            "fsdax", "devdax", "sector", "raw", "memory", "FSDAX", "linear", "striped", "raid5",
            "ext4", "xfs", "btrfs", "dev", "mem", "always", "inode", "never", "sometimes",
            "present", "absent", "yes", "no", "on", "OFF", "maybe", " y ",
        ]),
        2 => pick(&[
            "/mnt/x", "/", "//", "/mnt/../x", "mnt", "/mnt/./x", "/mnt/x\u{0}", "/mnt//x/",
            "/mnt/x y", "noatime", "dax", "nodax", "dax=always", "noatime,nodev", "remount",
            "bind", "-E", "stride=16",
        ]),
        1 => "\\PC{0,12}",
    ]
    .boxed()
}

fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        proptest::sample::select(vec![
            json!(0),
            json!(1),
            json!(2),
            json!(128),
            json!(129),
            json!(-1),
            json!(4_294_967_296u64),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(1e300),
            json!(0.5),
            json!(-0.0),
            json!(2_097_152),
        ]),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
    ]
    .boxed()
}

fn key() -> BoxedStrategy<String> {
    key_unboxed().boxed()
}

fn key_unboxed() -> impl Strategy<Value = String> {
    let mut names: Vec<&'static str> = pmem_stack::args::OPTION_NAMES.to_vec();
    for (_, fields) in FIELDS {
        names.extend_from_slice(fields);
    }
    names.extend_from_slice(&[
        "persist",
        "ANSIBLE_MODULE_ARGS",
        "_ansible_check_mode",
        "_ansible_diff",
        "_ansible_verbosity",
        "_ansible_foo",
        "_ansible_",
        "colour",
        "",
        "a.b",
        "x[0]",
        "[0]",
        "[x",
    ]);
    prop_oneof![
        8 => proptest::sample::select(names).prop_map(String::from),
        1 => "\\PC{0,8}",
    ]
}

fn leaf() -> BoxedStrategy<Value> {
    leaf_unboxed().boxed()
}

fn leaf_unboxed() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => number(),
        5 => interesting_string().prop_map(Value::String),
    ]
}

/// Any JSON value, biased towards the real keys.
fn any_value() -> BoxedStrategy<Value> {
    any_value_unboxed().boxed()
}

fn any_value_unboxed() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A valid-looking value for a field (so that validation and planning are reached).
fn plausible(field: &'static str) -> BoxedStrategy<Value> {
    let s = |words: &'static [&'static str]| pick(words).prop_map(Value::String).boxed();
    let refs: &'static [&'static str] = &[
        "pm0",
        "pm1",
        "dv0",
        "dv1",
        "pt0",
        "pt1",
        "/dev/pmem0",
        "/dev/pmem1",
        "/dev/mapper/dv0",
    ];
    match field {
        "name" => s(&["pm0", "pm1", "dv0", "dv1", "pt0", "pt1"]),
        "region" => prop_oneof![
            (0u32..3).prop_map(|r| json!(r)),
            s(&["region0", "region1", "1"])
        ]
        .boxed(),
        "mode" => s(&["fsdax", "fsdax", "devdax", "sector", "raw"]),
        "map" => s(&["dev", "mem"]),
        "target" => s(&["linear", "striped"]),
        "members" => proptest::collection::vec(pick(refs).prop_map(Value::String), 0..4)
            .prop_map(Value::Array)
            .boxed(),
        "disk" | "device" => s(refs),
        "number" => (0u32..6).prop_map(|n| json!(n)).boxed(),
        "type" => s(&["ext4", "xfs"]),
        "label" => s(&["data", "pmemfs", "a-label-of-17-chr"]),
        "dax" => s(&["always", "inode", "never"]),
        "path" => s(&["/mnt/x", "/mnt/y", "/mnt//x/"]),
        "options" => proptest::collection::vec(s(&["noatime", "nodev", "ro"]), 0..3)
            .prop_map(Value::Array)
            .boxed(),
        "mkfs_options" => proptest::collection::vec(s(&["-E", "stride=16", "-m", ""]), 0..3)
            .prop_map(Value::Array)
            .boxed(),
        "size" | "start" | "chunk" | "align" => s(&["2M", "4M", "64M", "128M", "8K", "1G"]),
        _ => interesting_string().prop_map(Value::String).boxed(),
    }
}

/// A value for a field: usually valid, often of the right kind, sometimes anything.
fn field_value(field: &'static str) -> BoxedStrategy<Value> {
    let right: BoxedStrategy<Value> = match field {
        "members" | "options" | "mkfs_options" => {
            proptest::collection::vec(interesting_string().prop_map(Value::String), 0..4)
                .prop_map(Value::Array)
                .boxed()
        }
        "number" | "region" => {
            prop_oneof![number(), interesting_string().prop_map(Value::String)].boxed()
        }
        "size" | "start" | "chunk" | "align" => {
            prop_oneof![3 => size_text().prop_map(Value::String), 1 => number()].boxed()
        }
        _ => interesting_string().prop_map(Value::String).boxed(),
    };
    prop_oneof![14 => plausible(field), 5 => right, 1 => any_value()].boxed()
}

fn item(fields: &'static [&'static str]) -> BoxedStrategy<Value> {
    let parts: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
        .iter()
        .map(|f| {
            proptest::option::weighted(0.8, field_value(f))
                .prop_map(move |v| v.map(|v| (f.to_string(), v)))
                .boxed()
        })
        .collect();
    (
        parts,
        proptest::option::weighted(0.05, (key(), any_value())),
    )
        .prop_map(|(parts, extra)| {
            let mut m: Map<String, Value> = parts.into_iter().flatten().collect();
            if let Some((k, v)) = extra {
                m.insert(k, v);
            }
            Value::Object(m)
        })
        .boxed()
}

fn bool_like() -> BoxedStrategy<Value> {
    bool_like_unboxed().boxed()
}

fn bool_like_unboxed() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        proptest::sample::select(vec!["yes", "no", "ON", "off", "1", "0", "maybe", "", " y "])
            .prop_map(|s| json!(s)),
        prop_oneof![
            Just(json!(0)),
            Just(json!(1)),
            Just(json!(2)),
            Just(json!(-1)),
            Just(Value::Null)
        ],
    ]
}

/// Arguments shaped like the real ones.
fn shaped_args() -> BoxedStrategy<Value> {
    shaped_args_unboxed().boxed()
}

fn shaped_args_unboxed() -> impl Strategy<Value = Value> {
    let lists: Vec<BoxedStrategy<Option<(String, Value)>>> = FIELDS
        .iter()
        .map(|(name, fields)| {
            proptest::option::weighted(
                0.6,
                prop_oneof![
                    12 => proptest::collection::vec(item(fields), 0..4).prop_map(Value::Array),
                    1 => any_value(),
                ],
            )
            .prop_map(move |v| v.map(|v| (name.to_string(), v)))
            .boxed()
        })
        .collect();
    (
        lists,
        proptest::option::weighted(
            0.2,
            prop_oneof![bool_like().prop_map(|b| json!({"persist": b})), any_value()],
        ),
        proptest::option::weighted(
            0.3,
            prop_oneof![Just(json!("present")), Just(json!("absent")), leaf()],
        ),
        proptest::option::weighted(0.4, bool_like()),
        proptest::option::weighted(0.3, bool_like()),
        proptest::option::weighted(0.2, prop_oneof![number(), leaf()]),
        proptest::option::weighted(0.05, (key(), any_value())),
        proptest::bool::weighted(0.1),
    )
        .prop_map(
            |(lists, boot, state, allow, check, verbosity, extra, wrap)| {
                let mut m: Map<String, Value> = lists.into_iter().flatten().collect();
                for (k, v) in [
                    ("boot", boot),
                    ("state", state),
                    ("allow_data_loss", allow),
                    ("_ansible_check_mode", check),
                    ("_ansible_verbosity", verbosity),
                ] {
                    if let Some(v) = v {
                        m.insert(k.to_string(), v);
                    }
                }
                if let Some((k, v)) = extra {
                    m.insert(k, v);
                }
                if wrap {
                    json!({ "ANSIBLE_MODULE_ARGS": Value::Object(m) })
                } else {
                    Value::Object(m)
                }
            },
        )
}

/// Top-level inputs: mostly objects, sometimes anything.
fn top_value() -> BoxedStrategy<Value> {
    top_value_unboxed().boxed()
}

fn top_value_unboxed() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => shaped_args(),
        3 => proptest::collection::vec((key(), any_value()), 0..8)
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        1 => any_value(),
    ]
}

// ---------------------------------------------------------------------------------------
// Texts
// ---------------------------------------------------------------------------------------

/// One edit of a byte string.
#[derive(Clone, Debug)]
enum Edit {
    Flip(Index, u8),
    Insert(Index, u8),
    Token(Index, &'static str),
    Delete(Index, usize),
    Duplicate(Index, usize),
    Truncate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Edit::Flip(i, b)),
        (
            any::<Index>(),
            proptest::sample::select(b"{}[]\",:\\-09e. n\x00\xff\xc3\xa9".to_vec())
        )
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        (
            any::<Index>(),
            proptest::sample::select(vec![
                "null",
                "true",
                "1e999",
                "-0",
                "\"\\ud800\"",
                "99999999999999999999",
                "{}",
                "[]",
                "\"2M\"",
                ",",
                "\"ANSIBLE_MODULE_ARGS\":",
                "\"_ansible_check_mode\":1,",
                "\"\\u0000\"",
                "\"region\":",
                "\"size\":\"-1\",",
                "[[[[[[[[",
                "]}",
            ])
        )
            .prop_map(|(i, t)| Edit::Token(i, t)),
        (any::<Index>(), 1usize..16).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<Index>(), 1usize..32).prop_map(|(i, n)| Edit::Duplicate(i, n)),
        any::<Index>().prop_map(Edit::Truncate),
    ]
}

fn apply_edits(mut b: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let at = |i: &Index, b: &Vec<u8>| i.index(b.len() + 1);
        match e {
            Edit::Flip(i, bit) => {
                if !b.is_empty() {
                    let k = i.index(b.len());
                    b[k] ^= 1 << bit;
                }
            }
            Edit::Insert(i, c) => {
                let k = at(i, &b);
                b.insert(k, *c);
            }
            Edit::Token(i, t) => {
                let k = at(i, &b);
                b.splice(k..k, t.bytes());
            }
            Edit::Delete(i, n) => {
                let k = at(i, &b);
                let end = (k + n).min(b.len());
                b.drain(k..end);
            }
            Edit::Duplicate(i, n) => {
                let k = at(i, &b);
                let end = (k + n).min(b.len());
                let piece = b[k..end].to_vec();
                b.splice(end..end, piece);
            }
            Edit::Truncate(i) => {
                let k = at(i, &b);
                b.truncate(k);
            }
        }
    }
    b
}

const SEEDS: &[&str] = &[
    r#"{"namespaces":[{"name":"pm0","region":"region0","mode":"fsdax"},{"name":"pm1","region":"region1","mode":"fsdax"}],"devices":[{"name":"pmem-striped","target":"striped","members":["pm0","pm1"],"chunk":"2M"}],"filesystems":[{"device":"pmem-striped","type":"xfs","label":"pmemfs"}],"mounts":[{"path":"/mnt/pmem","device":"pmem-striped","dax":"always"}]}"#,
    r#"{"ANSIBLE_MODULE_ARGS":{"namespaces":[{"name":"pm0","region":0,"mode":"fsdax","size":"128M","align":"2M","map":"dev"}],"partitions":[{"name":"pt0","disk":"pm0","number":1,"start":"2M","size":"64M"}],"filesystems":[{"device":"pt0","type":"ext4","mkfs_options":["-E","stride=16"]}],"mounts":[{"path":"/mnt/x","device":"pt0","options":["noatime"]}],"boot":{"persist":true},"state":"present","allow_data_loss":"yes","_ansible_check_mode":true,"_ansible_diff":"on","_ansible_verbosity":3}}"#,
    r#"{"devices":[{"name":"lin","target":"linear","members":["/dev/pmem0","/dev/pmem1"]}],"state":"absent","allow_data_loss":1}"#,
    "{}",
];

/// Raw bytes, or a valid text (a seed or generated arguments) with edits.
fn text() -> BoxedStrategy<String> {
    text_unboxed().boxed()
}

fn text_unboxed() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        3 => (proptest::sample::select(SEEDS.to_vec()), proptest::collection::vec(edit(), 1..6))
            .prop_map(|(s, e)| String::from_utf8_lossy(&apply_edits(s.as_bytes().to_vec(), &e)).into_owned()),
        3 => (shaped_args(), proptest::collection::vec(edit(), 0..6))
            .prop_map(|(v, e)| String::from_utf8_lossy(&apply_edits(v.to_string().into_bytes(), &e)).into_owned()),
    ]
}

proptest! {
    #![proptest_config(cases(8000, 1))]

    /// (a) Arbitrary JSON values: parsing and validation never panic, every failure
    /// carries errors with messages and real paths; an offline run never panics.
    #[test]
    fn arbitrary_json_arguments(v in top_value(), machine in 0usize..2) {
        check_text(&v.to_string(), machine)?;
    }

    /// (b) Arbitrary bytes and mutated valid texts: the same.
    #[test]
    fn arbitrary_argument_texts(t in text(), machine in 0usize..2) {
        check_text(&t, machine)?;
    }
}

// ---------------------------------------------------------------------------------------
// Kernel text and snapshots
// ---------------------------------------------------------------------------------------

fn table_word() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(vec![
            "0", "8", "1", "2", "4096", "-1", "x", "", "18446744073709551615",
            "18446744073709551616", "9223372036854775808", "4611686018427387904",
            "9223372036854775807", "1:2", "259:0", "4294967296:1", ":", "1:", ":2", "-1:2",
            "1:2:3", "253:0", "linear", "striped", "crypt", "error",
        ]).prop_map(String::from),
        1 => "\\PC{0,6}",
    ]
}

fn table_text() -> BoxedStrategy<String> {
    table_text_unboxed().boxed()
}

fn table_text_unboxed() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "\\PC{0,40}",
        1 => "[0-9 :a-z]{0,40}",
        4 => (
            table_word(),
            table_word(),
            proptest::sample::select(vec!["linear", "striped", "crypt", "", "thin-pool", "Linear"]),
            proptest::collection::vec(table_word(), 0..9),
            proptest::sample::select(vec![" ", "  ", "\t", " \u{a0}"]),
        )
            .prop_map(|(s, l, t, rest, sep)| {
                let mut words = vec![s, l, t.to_string()];
                words.extend(rest);
                words.join(sep)
            }),
        // striped with a stripe count from the edges and 0-3 <dev> <offset> pairs
        2 => (
            table_word(),
            proptest::sample::select(vec![
                "0", "1", "2", "3", "4611686018427387904", "9223372036854775807",
                "9223372036854775808", "9223372036854775809", "18446744073709551615",
            ]),
            table_word(),
            proptest::collection::vec((table_word(), table_word()), 0..4),
        )
            .prop_map(|(l, n, chunk, pairs)| {
                let mut t = format!("0 {l} striped {n} {chunk}");
                for (d, o) in pairs {
                    t.push_str(&format!(" {d} {o}"));
                }
                t
            }),
    ]
}

fn snapshot_seeds() -> &'static [String] {
    static S: OnceLock<Vec<String>> = OnceLock::new();
    S.get_or_init(|| {
        let mut out: Vec<String> = machines()
            .iter()
            .map(|a| serde_json::to_string(a).expect("snapshot JSON"))
            .collect();
        let mut fake = FakeSystem::with_fsdax(1, Bytes(256 << 20));
        out.push(pmem_stack::facts(&mut fake).to_json());
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sysfs-trees");
        for tree in ["nolabel", "foreign"] {
            if let Ok(t) = std::fs::read_to_string(dir.join(tree).join("facts.json")) {
                out.push(t);
            }
        }
        out
    })
}

fn snapshot_text() -> BoxedStrategy<String> {
    snapshot_text_unboxed().boxed()
}

fn snapshot_text_unboxed() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => "\\PC{0,60}",
        1 => any_value().prop_map(|v| v.to_string()),
        4 => (any::<Index>(), proptest::collection::vec(edit(), 1..5)).prop_map(|(i, e)| {
            let seeds = snapshot_seeds();
            let s = &seeds[i.index(seeds.len())];
            String::from_utf8_lossy(&apply_edits(s.clone().into_bytes(), &e)).into_owned()
        }),
    ]
}

proptest! {
    #![proptest_config(cases(3000, 4))]

    /// dm table lines (`0 8 striped x`, huge counts, odd separators, random text): an
    /// error with a message, or a line that prints and parses back to itself.
    #[test]
    fn dm_table_lines(line in table_text()) {
        dm_table_line_body(line)?;
    }
}

fn dm_table_line_body(line: String) -> Result<(), TestCaseError> {
    match line.parse::<TableLine>() {
        Ok(t) => {
            let again = t.to_string().parse::<TableLine>();
            prop_assert_eq!(again.as_ref(), Ok(&t), "{:?} -> {}", line, t);
        }
        Err(e) => prop_assert!(!e.trim().is_empty()),
    }
    let _ = parse_table(&[line.clone(), line.clone()]);
    for word in line.split_whitespace() {
        if let Ok(d) = word.parse::<Devno>() {
            prop_assert_eq!(d.to_string().parse::<Devno>(), Ok(d));
        }
    }
    Ok(())
}

fn snapshot_text_body(text: &str, args: usize) -> Result<(), TestCaseError> {
    match pmem_stack::read_snapshot(text) {
        Err(e) => prop_assert!(!e.trim().is_empty()),
        Ok(actual) => {
            let r = pmem_stack::run(SEEDS[args % 3], &mut Snapshot(actual), true);
            prop_assert!(!r.msg.trim().is_empty());
            prop_assert!(r.done.is_empty());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(1000, 4))]

    /// `--actual` snapshots: random and mutated texts read as a snapshot or fail with a
    /// message; a snapshot that reads plans offline without panicking.
    #[test]
    fn snapshot_texts(text in snapshot_text(), args in 0usize..3) {
        snapshot_text_body(&text, args)?;
    }
}

#[path = "common/malformed.rs"]
mod malformed;

/// Run `f` on each item; a panic or failure is recorded, not fatal, so that one test
/// lists every bad fixture.
fn each_cleanly<T: std::fmt::Debug>(
    items: Vec<T>,
    f: impl Fn(&T) -> Result<(), String>,
) -> Vec<String> {
    items
        .iter()
        .filter_map(|item| {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(item))) {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("{item:?}: {e}")),
                Err(p) => Some(format!(
                    "{item:?}: panicked: {}",
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default()
                )),
            }
        })
        .collect()
}

/// `tests/fixtures/malformed/dm-table-lines.txt`: each line is an error, not a panic.
#[test]
fn malformed_dm_table_lines_are_errors() {
    let text = std::fs::read_to_string(malformed::dir().join("dm-table-lines.txt"))
        .expect("tests/fixtures/malformed/dm-table-lines.txt");
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    assert!(!lines.is_empty());
    let bad = each_cleanly(lines, |l| match l.parse::<TableLine>() {
        Err(e) if !e.trim().is_empty() => Ok(()),
        Err(_) => Err("an error without a message".into()),
        Ok(t) => Err(format!("accepted as {t}")),
    });
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// `tests/fixtures/malformed/args-*.json`: failures explain themselves with real paths.
#[test]
fn malformed_argument_fixtures_fail_cleanly() {
    let files = malformed::json_files("args-");
    let bad = each_cleanly(files, |p| {
        let text = std::fs::read_to_string(p).map_err(|e| e.to_string())?;
        (0..machines().len())
            .try_for_each(|m| check_text(&text, m))
            .map_err(|e| e.to_string())
    });
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

// ---------------------------------------------------------------------------------------
// Survey: every distinct failure, each shrunk on its own (same as in properties.rs)
// ---------------------------------------------------------------------------------------

/// A property stops at its first failure; to see all the distinct problems at once run
/// `PMEM_STACK_SURVEY=20000 cargo test --test fuzz_args survey -- --ignored --nocapture`.
#[path = "common/survey.rs"]
mod survey;

#[test]
#[ignore = "a survey of all distinct failures: set PMEM_STACK_SURVEY=<cases>"]
fn survey() {
    let n = survey::cases();
    survey::run("json_arguments", (top_value(), 0usize..2), n, |(v, m)| {
        check_text(&v.to_string(), m)
    });
    survey::run("argument_texts", (text(), 0usize..2), n, |(t, m)| {
        check_text(&t, m)
    });
    survey::run("dm_table_lines", table_text(), n, dm_table_line_body);
    survey::run(
        "snapshot_texts",
        (snapshot_text(), 0usize..3),
        n,
        |(t, a)| snapshot_text_body(&t, a),
    );
}
