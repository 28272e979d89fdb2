//! A survey of all distinct failures of a proptest property (an ignored test's tool,
//! shared by tests/fuzz_args.rs and tests/properties.rs): runs every case, groups the
//! failures by a key (panic site, or the assertion's words without digits and quoted
//! input), and shrinks one case per key.
#![allow(dead_code)]

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{TestCaseError, TestRunner};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    static SITE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Run `f`; on failure, the failure's key (panic site + message, or assertion text
/// without digits) and the full message.
fn outcome<T>(f: impl FnOnce() -> Result<(), TestCaseError>, _: &T) -> Option<(String, String)> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            let msg = e.to_string();
            // the class of an assertion: its words without the quoted parts, the
            // numbers and the input they quote
            let head = msg.split(" is not in the input").next().unwrap_or_default();
            let mut key = String::new();
            let mut quoted: Option<char> = None;
            for c in head.chars() {
                match quoted {
                    Some(q) if c == q => quoted = None,
                    Some(_) => {}
                    None if c == '"' || c == '`' => quoted = Some(c),
                    None if !c.is_ascii_digit() => key.push(c),
                    None => {}
                }
            }
            let key: String = key.chars().take(120).collect();
            Some((format!("assertion: {key}"), msg))
        }
        Err(_) => {
            let site = SITE.with(|s| s.borrow_mut().take()).unwrap_or_default();
            Some((format!("panic: {site}"), site))
        }
    }
}

/// How many cases a survey runs: `PMEM_STACK_SURVEY`, else 1000.
pub fn cases() -> u32 {
    std::env::var("PMEM_STACK_SURVEY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

pub fn run<S, F>(name: &str, strategy: S, cases: u32, body: F)
where
    S: Strategy,
    S::Value: Debug + Clone,
    F: Fn(S::Value) -> Result<(), TestCaseError>,
{
    if std::env::var("PMEM_STACK_SURVEY_ONLY").is_ok_and(|only| !name.contains(&only)) {
        return;
    }
    let started = std::time::Instant::now();
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let loc = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        SITE.with(|s| *s.borrow_mut() = Some(format!("{loc}: {msg}")));
    }));
    let mut runner = TestRunner::default();
    let mut found: BTreeMap<String, (usize, S::Tree, String)> = BTreeMap::new();
    for _ in 0..cases {
        let Ok(tree) = strategy.new_tree(&mut runner) else {
            continue;
        };
        let v = tree.current();
        if let Some((key, msg)) = outcome(|| body(v.clone()), &v) {
            let e = found.entry(key).or_insert((0, tree, msg));
            e.0 += 1;
        }
    }
    println!(
        "[{name}] {cases} cases in {:.1}s, {} distinct failures",
        started.elapsed().as_secs_f64(),
        found.len()
    );
    for (key, (count, mut tree, _)) in found {
        // shrink while it fails with the same key
        let mut last = tree.current();
        let mut last_msg = String::new();
        if tree.simplify() {
            loop {
                let v = tree.current();
                let same = outcome(|| body(v.clone()), &v);
                match same {
                    Some((k, m)) if k == key => {
                        last = v;
                        last_msg = m;
                        if !tree.simplify() {
                            break;
                        }
                    }
                    _ => {
                        if !tree.complicate() {
                            break;
                        }
                    }
                }
            }
        }
        if last_msg.is_empty() {
            last_msg = outcome(|| body(last.clone()), &last)
                .map(|(_, m)| m)
                .unwrap_or_default();
        }
        println!("[{name}] {count} x {key}\n  message: {last_msg}\n  minimal: {last:?}\n");
    }
    std::panic::set_hook(prev);
}
