//! The Ansible collection pmemstack.pmem (collection/): its version is Cargo's, the
//! sidecar documentation of `pmem_stack` describes exactly the options of the JSON Schema
//! (names, nesting, types, elements, choices, defaults, required) and the keys of the
//! result schema, `pmem_stack_info`'s documents what it returns, both follow Ansible's
//! documentation rules that ansible-test cannot check on a binary module, and
//! playbooks/library/ carries the same documentation as the collection.

mod common;

use common::key_set;
use pmem_stack::actual::lvm::{Lvm, Pv};
use pmem_stack::actual::{Actual, Devno, Uncleared};
use pmem_stack::system::fake::FakeSystem;
use pmem_stack::units::Bytes;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn text(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Value {
    serde_norway::from_str(&text(path)).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"))
}

fn json_file(path: &str) -> Value {
    serde_json::from_str(&text(path)).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

const PMEM_STACK_DOC: &str = "collection/plugins/modules/pmem_stack.yml";
const INFO_DOC: &str = "collection/plugins/modules/pmem_stack_info.yml";

#[test]
fn galaxy_version_is_cargos_and_the_metadata_is_complete() {
    let galaxy = yaml("collection/galaxy.yml");
    assert_eq!(
        galaxy["version"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "collection/galaxy.yml's version must be Cargo.toml's version"
    );
    assert_eq!(galaxy["namespace"], json!("pmemstack"));
    assert_eq!(galaxy["name"], json!("pmem"));
    assert_eq!(galaxy["readme"], json!("README.md"));
    assert!(repo("collection/README.md").is_file());
    assert!(
        galaxy.get("manifest").is_none(),
        "a `manifest:` key (distlib mode) leaves the extension-less binary modules out of the tarball"
    );
    let runtime = yaml("collection/meta/runtime.yml");
    assert_eq!(runtime["requires_ansible"], json!(">=2.14.0"));
}

#[test]
fn the_library_copy_of_the_documentation_is_the_collections() {
    for module in ["pmem_stack", "pmem_stack_info"] {
        let doc = format!("collection/plugins/modules/{module}.yml");
        let copy = format!("playbooks/library/{module}.yml");
        assert!(
            text(&copy) == text(&doc),
            "{copy} differs from {doc}: cp {doc} {copy}"
        );
    }
}

// ---- options -------------------------------------------------------------------------

/// Follow a `$ref` into `$defs`.
fn resolve<'a>(s: &'a Value, defs: &'a Value) -> &'a Value {
    match s.get("$ref").and_then(Value::as_str) {
        Some(r) => &defs[r.trim_start_matches("#/$defs/")],
        None => s,
    }
}

/// The schema of a value that may also be null (`anyOf: [X, null]`, `type: [T, "null"]`).
fn non_null<'a>(s: &'a Value, defs: &'a Value) -> &'a Value {
    let s = resolve(s, defs);
    match s.get("anyOf").and_then(Value::as_array) {
        Some(alts) => {
            let real: Vec<&Value> = alts.iter().filter(|a| a["type"] != json!("null")).collect();
            assert_eq!(real.len(), 1, "more than one non-null alternative: {s}");
            resolve(real[0], defs)
        }
        None => s,
    }
}

fn json_type(s: &Value) -> Option<&str> {
    match &s["type"] {
        Value::String(t) => Some(t),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    }
}

/// An option as Ansible documents it, derived from its JSON Schema: `type`, `elements`,
/// `choices`, `default`, `required`, `suboptions`.
fn option_from_schema(prop: &Value, required: bool, defs: &Value) -> Value {
    let s = non_null(prop, defs);
    let mut o = Map::new();
    let (kind, sub) = kind_of(s, defs);
    o.insert("type".into(), json!(kind));
    if kind == "list" {
        let (elements, sub) = kind_of(non_null(&s["items"], defs), defs);
        o.insert("elements".into(), json!(elements));
        if let Some(sub) = sub {
            o.insert("suboptions".into(), sub);
        }
    } else if let Some(sub) = sub {
        o.insert("suboptions".into(), sub);
    }
    if let Some(alts) = s.get("oneOf").and_then(Value::as_array) {
        let consts: Vec<&Value> = alts.iter().filter_map(|a| a.get("const")).collect();
        if consts.len() == alts.len() {
            o.insert("choices".into(), json!(consts));
        }
    }
    if let Some(d) = prop.get("default").filter(|d| !d.is_null()) {
        o.insert("default".into(), d.clone());
    }
    o.insert("required".into(), json!(required));
    Value::Object(o)
}

/// Ansible's type for a (resolved, non-null) schema, and the suboptions of an object.
fn kind_of(s: &Value, defs: &Value) -> (&'static str, Option<Value>) {
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        let required: BTreeSet<&str> = s["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let sub: Map<String, Value> = props
            .iter()
            .map(|(k, p)| {
                (
                    k.clone(),
                    option_from_schema(p, required.contains(k.as_str()), defs),
                )
            })
            .collect();
        return ("dict", Some(Value::Object(sub)));
    }
    if let Some(alts) = s.get("oneOf").and_then(Value::as_array) {
        // AnsibleBool is a boolean, or its string and integer spellings
        if alts.iter().any(|a| a["type"] == json!("boolean")) {
            return ("bool", None);
        }
        // enums (consts) and the integer-or-string values (Region, Size) are strings
        return ("str", None);
    }
    let kind = match json_type(s) {
        Some("array") => "list",
        Some("object") => "dict",
        Some("integer") => "int",
        Some("number") => "float",
        Some("boolean") => "bool",
        Some("string") => "str",
        other => panic!("no Ansible type for {other:?}: {s}"),
    };
    (kind, None)
}

/// The same shape, read from the documentation's option.
fn option_from_doc(o: &Value, path: &str, errs: &mut Vec<String>) -> Value {
    let mut n = Map::new();
    match o.get("description") {
        Some(Value::String(d)) if !d.trim().is_empty() => {}
        Some(Value::Array(d)) if !d.is_empty() && d.iter().all(|l| l.is_string()) => {}
        _ => errs.push(format!("{path}: no description")),
    }
    for key in ["type", "elements", "choices"] {
        if let Some(v) = o.get(key) {
            n.insert(key.into(), v.clone());
        }
    }
    if let Some(d) = o.get("default").filter(|d| !d.is_null()) {
        n.insert("default".into(), d.clone());
    }
    n.insert(
        "required".into(),
        json!(o.get("required").and_then(Value::as_bool).unwrap_or(false)),
    );
    if let Some(sub) = o.get("suboptions").and_then(Value::as_object) {
        let sub: Map<String, Value> = sub
            .iter()
            .map(|(k, v)| (k.clone(), option_from_doc(v, &format!("{path}.{k}"), errs)))
            .collect();
        n.insert("suboptions".into(), Value::Object(sub));
    }
    Value::Object(n)
}

/// Every difference between two option trees, by path.
fn compare_options(
    doc: &Map<String, Value>,
    schema: &Map<String, Value>,
    path: &str,
) -> Vec<String> {
    let mut errs = Vec::new();
    let names: BTreeSet<&String> = doc.keys().chain(schema.keys()).collect();
    for name in names {
        let at = format!("{path}{name}");
        match (doc.get(name), schema.get(name)) {
            (None, Some(_)) => errs.push(format!("{at}: in the schema, not documented")),
            (Some(_), None) => errs.push(format!("{at}: documented, not in the schema")),
            (Some(d), Some(s)) => {
                for key in ["type", "elements", "choices", "default", "required"] {
                    if d.get(key) != s.get(key) {
                        errs.push(format!(
                            "{at}: {key} is {} in the documentation, {} in the schema",
                            d.get(key).unwrap_or(&Value::Null),
                            s.get(key).unwrap_or(&Value::Null)
                        ));
                    }
                }
                let empty = Map::new();
                let ds = d["suboptions"].as_object().unwrap_or(&empty);
                let ss = s["suboptions"].as_object().unwrap_or(&empty);
                errs.extend(compare_options(ds, ss, &format!("{at}.")));
            }
            (None, None) => {}
        }
    }
    errs
}

#[test]
fn pmem_stack_options_are_the_json_schemas() {
    let schema = json_file("schemas/pmem_stack.args.schema.json");
    let defs = &schema["$defs"];
    let (kind, from_schema) = kind_of(&schema, defs);
    assert_eq!(kind, "dict");
    let from_schema = from_schema.expect("the schema has properties");

    let doc = yaml(PMEM_STACK_DOC);
    let mut errs = Vec::new();
    let options = doc["DOCUMENTATION"]["options"]
        .as_object()
        .expect("DOCUMENTATION.options");
    let from_doc: Map<String, Value> = options
        .iter()
        .map(|(k, v)| (k.clone(), option_from_doc(v, k, &mut errs)))
        .collect();
    errs.extend(compare_options(
        &from_doc,
        from_schema.as_object().expect("object"),
        "",
    ));
    assert!(
        errs.is_empty(),
        "{PMEM_STACK_DOC} does not match schemas/pmem_stack.args.schema.json:\n  {}",
        errs.join("\n  ")
    );
    // the binary's own list of option names, used in its "Unsupported parameters" message
    let mut names: Vec<&str> = options.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, pmem_stack::args::OPTION_NAMES);
}

#[test]
fn pmem_stack_info_has_no_options() {
    let doc = yaml(INFO_DOC);
    assert_eq!(doc["DOCUMENTATION"]["options"], json!({}));
}

// ---- return values -------------------------------------------------------------------

/// Ansible's return type for a schema.
fn return_type(s: &Value, defs: &Value) -> &'static str {
    let s = non_null(s, defs);
    if s.get("properties").is_some() {
        return "dict";
    }
    if s.get("type").is_none() && s.get("oneOf").is_none() {
        return "dict"; // ansible_facts: any object
    }
    kind_of(s, defs).0
}

/// Check one documented return value (and what it `contains`) against its schema:
/// description and type everywhere; at the top level `returned` and `sample` too.
fn check_return(
    doc: &Value,
    schema: Option<&Value>,
    defs: &Value,
    path: &str,
    top: bool,
    errs: &mut Vec<String>,
) {
    let mut need = vec!["description", "type"];
    if top {
        need.extend(["returned", "sample"]);
    }
    for key in need {
        if doc.get(key).is_none_or(Value::is_null) {
            errs.push(format!("{path}: no {key}"));
        }
    }
    let Some(schema) = schema else { return };
    let want = return_type(schema, defs);
    if doc["type"] != json!(want) {
        errs.push(format!(
            "{path}: type {} documented, {want} in the schema",
            doc["type"]
        ));
    }
    let s = non_null(schema, defs);
    let item = if want == "list" {
        let item = non_null(&s["items"], defs);
        let elements = return_type(item, defs);
        if doc["elements"] != json!(elements) {
            errs.push(format!(
                "{path}: elements {} documented, {elements} in the schema",
                doc["elements"]
            ));
        }
        item
    } else {
        s
    };
    let (Some(contains), Some(props)) = (
        doc.get("contains").and_then(Value::as_object),
        item.get("properties").and_then(Value::as_object),
    ) else {
        return;
    };
    let documented: BTreeSet<&str> = contains.keys().map(String::as_str).collect();
    let fields: BTreeSet<&str> = props.keys().map(String::as_str).collect();
    if documented != fields {
        errs.push(format!(
            "{path}: contains {documented:?}, the schema has {fields:?}"
        ));
    }
    for (k, v) in contains {
        check_return(v, props.get(k), defs, &format!("{path}.{k}"), false, errs);
    }
}

/// The RETURN section of a module's documentation, with the result schema it is checked
/// against.
struct Returns {
    /// The documentation file.
    doc: &'static str,
    /// The schema's `$defs`.
    defs: Value,
    /// The schema's `properties`.
    props: Map<String, Value>,
    /// The documented return values.
    ret: Map<String, Value>,
}

impl Returns {
    fn of(doc: &'static str) -> Returns {
        let mut schema = json_file("schemas/pmem_stack.result.schema.json");
        let props = schema["properties"]
            .as_object()
            .expect("properties")
            .clone();
        let ret = yaml(doc)["RETURN"].as_object().expect("RETURN").clone();
        Returns {
            doc,
            defs: schema["$defs"].take(),
            props,
            ret,
        }
    }

    /// Assert that exactly the keys `want` are documented (`against`: what they are),
    /// then check each against the schema; the problems found.
    fn check(&self, want: BTreeSet<&str>, against: &str) -> Vec<String> {
        let documented: BTreeSet<&str> = self.ret.keys().map(String::as_str).collect();
        assert_eq!(documented, want, "RETURN of {} against {against}", self.doc);
        let mut errs = Vec::new();
        for (k, d) in &self.ret {
            check_return(d, self.props.get(k), &self.defs, k, true, &mut errs);
        }
        errs
    }
}

#[test]
fn pmem_stack_returns_are_the_result_schemas() {
    let r = Returns::of(PMEM_STACK_DOC);
    // every key of the result but the facts and the LVM summary, which only the info
    // module (and `--facts`) returns
    let want: BTreeSet<&str> = r
        .props
        .keys()
        .map(|k| k.as_str())
        .filter(|k| !["ansible_facts", "lvm_summary"].contains(k))
        .collect();
    let errs = r.check(want, "the result schema");
    assert!(
        errs.is_empty(),
        "{PMEM_STACK_DOC} RETURN:\n  {}",
        errs.join("\n  ")
    );
}

#[test]
fn pmem_stack_info_documents_what_it_returns() {
    let r = Returns::of(INFO_DOC);

    // what it returns, on a machine and when given an option
    let mut fake = FakeSystem::fresh_dimms(2, Bytes(1 << 30));
    let ok = serde_json::to_value(pmem_stack::info(
        r#"{"_ansible_module_name": "pmemstack.pmem.pmem_stack_info"}"#,
        &mut fake,
    ))
    .expect("json");
    assert_eq!(ok["failed"], json!(false), "{ok}");
    let bad =
        serde_json::to_value(pmem_stack::info(r#"{"state": "absent"}"#, &mut fake)).expect("json");
    assert_eq!(bad["failed"], json!(true), "{bad}");
    let mut returned: BTreeSet<&str> = BTreeSet::new();
    for v in [&ok, &bad] {
        returned.extend(key_set(v, "result"));
    }
    let mut errs = r.check(returned, "what it returns");
    let (defs, ret) = (&r.defs, &r.ret);
    // the snapshot: every field of `Actual` (`uncleared` and `lvm` only when there are
    // any)
    let snapshot = Actual {
        uncleared: vec![Uncleared {
            uuid: "u".into(),
            name: "n".into(),
        }],
        lvm: Lvm {
            pvs: vec![Pv::damaged(
                Devno {
                    major: 259,
                    minor: 0,
                },
                None,
                "label sector: checksum".into(),
            )],
            vgs: Vec::new(),
        },
        ..Actual::default()
    };
    let snapshot = serde_json::to_value(&snapshot).expect("json");
    let fields = key_set(&snapshot, "snapshot");
    let facts = &ret["ansible_facts"]["contains"]["pmem_stack"];
    let documented = key_set(
        &facts["contains"],
        "ansible_facts.contains.pmem_stack.contains",
    );
    assert_eq!(documented, fields, "ansible_facts.pmem_stack of {INFO_DOC}");
    let returned = key_set(&ok["ansible_facts"]["pmem_stack"], "facts");
    assert!(returned.is_subset(&fields), "{returned:?}");
    for (k, v) in facts["contains"].as_object().expect("contains") {
        check_return(
            v,
            None,
            defs,
            &format!("ansible_facts.pmem_stack.{k}"),
            false,
            &mut errs,
        );
        let t = match &ok["ansible_facts"]["pmem_stack"][k] {
            Value::Array(_) => "list",
            Value::Object(_) => "dict",
            Value::Null => continue, // uncleared, lvm: not returned when empty
            other => panic!("{k}: {other}"),
        };
        if v["type"] != json!(t) {
            errs.push(format!(
                "ansible_facts.pmem_stack.{k}: type {} documented, {t} returned",
                v["type"]
            ));
        }
    }
    assert!(
        errs.is_empty(),
        "{INFO_DOC} RETURN:\n  {}",
        errs.join("\n  ")
    );
}

// ---- the rest of the documentation ---------------------------------------------------

/// Task keywords, as opposed to the module a task runs.
const TASK_KEYWORDS: [&str; 18] = [
    "name",
    "register",
    "loop",
    "loop_control",
    "when",
    "check_mode",
    "diff",
    "become",
    "vars",
    "tags",
    "ignore_errors",
    "changed_when",
    "failed_when",
    "notify",
    "delegate_to",
    "environment",
    "no_log",
    "until",
];

#[test]
fn documentation_follows_ansibles_rules() {
    for (path, module) in [
        (PMEM_STACK_DOC, "pmem_stack"),
        (INFO_DOC, "pmem_stack_info"),
    ] {
        let doc = yaml(path);
        assert_eq!(
            key_set(&doc, path),
            BTreeSet::from(["DOCUMENTATION", "EXAMPLES", "RETURN"]),
            "{path}"
        );
        let d = &doc["DOCUMENTATION"];
        assert_eq!(d["module"], json!(module), "{path}");
        assert_eq!(d["version_added"], json!("0.1.0"), "{path}");
        let short = d["short_description"].as_str().expect("short_description");
        assert!(
            !short.is_empty() && !short.ends_with('.'),
            "{path}: {short}"
        );
        for key in ["description", "requirements", "notes", "seealso"] {
            assert!(
                d[key].as_array().is_some_and(|a| !a.is_empty()),
                "{path}: {key} is not a non-empty list"
            );
        }
        // "Name (@github-handle)"
        for author in d["author"].as_array().expect("author list") {
            let a = author.as_str().expect("author string");
            let handle = a
                .strip_suffix(')')
                .and_then(|a| a.rsplit_once(" (@"))
                .map(|(name, handle)| !name.trim().is_empty() && !handle.is_empty());
            assert_eq!(
                handle,
                Some(true),
                "{path}: author {a:?} is not `Name (@handle)`"
            );
        }
        assert!(
            d["extends_documentation_fragment"]
                .as_array()
                .is_some_and(|f| f.contains(&json!("ansible.builtin.action_common_attributes"))),
            "{path}: extends_documentation_fragment"
        );
        let attrs = &d["attributes"];
        for a in ["check_mode", "diff_mode", "platform"] {
            let support = attrs[a]["support"].as_str().unwrap_or_default();
            assert!(
                ["full", "partial", "none"].contains(&support),
                "{path}: attributes.{a}"
            );
        }
        assert_eq!(attrs["check_mode"]["support"], json!("full"), "{path}");
        assert!(
            ["posix", "linux"]
                .contains(&attrs["platform"]["platforms"].as_str().unwrap_or_default()),
            "{path}: attributes.platform.platforms"
        );
        // EXAMPLES: valid YAML, named tasks, modules by their FQCN
        let examples: Value =
            serde_norway::from_str(doc["EXAMPLES"].as_str().expect("EXAMPLES text"))
                .unwrap_or_else(|e| panic!("{path}: EXAMPLES is not YAML: {e}"));
        let tasks = examples.as_array().expect("EXAMPLES is a list of tasks");
        assert!(!tasks.is_empty());
        let own = format!("pmemstack.pmem.{module}");
        assert!(
            tasks.iter().any(|t| t.get(&own).is_some()),
            "{path}: no example runs {own}"
        );
        for t in tasks {
            assert!(
                t["name"].is_string(),
                "{path}: an example task has no name: {t}"
            );
            let actions: Vec<&String> = t
                .as_object()
                .expect("task")
                .keys()
                .filter(|k| !TASK_KEYWORDS.contains(&k.as_str()))
                .collect();
            assert_eq!(actions.len(), 1, "{path}: {t}");
            assert!(
                actions[0].starts_with("pmemstack.pmem.")
                    || actions[0].starts_with("ansible.builtin."),
                "{path}: {} is not a FQCN",
                actions[0]
            );
        }
    }
    assert_eq!(
        yaml(PMEM_STACK_DOC)["DOCUMENTATION"]["attributes"]["diff_mode"]["support"],
        json!("full")
    );
}
