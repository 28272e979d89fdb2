//! The VM suite: each test boots Debian's kernel in QEMU (TCG) with emulated NVDIMMs
//! (tests/vm/run-guest.sh) and runs one guest script from tests/vm/guest/ against the
//! built binary, as root with udev. A script groups many checks into one boot and ends
//! with `SUMMARY: N passed, M failed`; the test fails unless it exits 0 with no check
//! failed and at least as many checks passed as the suite is known to hold (a suite that
//! stops early, or runs none of its checks, fails). Each suite's time goes to
//! target/test-report/vm-times, which scripts/test.sh prints at the end.
//!
//! Without the VM tools the tests fail, unless `PMEM_STACK_SKIP_VM=1` is set outside CI,
//! in which case they say loudly that they skipped (past the harness's capture) and
//! record the skip in target/test-report/skipped, which scripts/test.sh counts. In CI
//! (`CI` set) they always run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

/// VM slots, one per guest vCPU: `PMEM_STACK_VM_SLOTS` (default 2, the machine's cores).
/// TCG runs each vCPU on one host thread and a suite's work in its guest is mostly
/// sequential, so two one-vCPU guests side by side end sooner than two two-vCPU guests
/// in turn. With 1 slot, one guest at a time with the rig's default vCPUs.
static SLOTS_USED: Mutex<usize> = Mutex::new(0);
static SLOT_FREED: Condvar = Condvar::new();

fn slot_count() -> usize {
    std::env::var("PMEM_STACK_VM_SLOTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(2)
}

/// The rig's vCPU option for a guest: one vCPU when guests share the machine.
fn cpus() -> Vec<&'static str> {
    if slot_count() > 1 {
        vec!["-p", "1"]
    } else {
        vec![]
    }
}

/// `n` slots held until dropped.
struct Slots(usize);

impl Slots {
    fn take(n: usize) -> Slots {
        let n = n.min(slot_count());
        let mut used = SLOTS_USED.lock().unwrap_or_else(|e| e.into_inner());
        while *used + n > slot_count() {
            used = SLOT_FREED.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += n;
        Slots(n)
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        let mut used = SLOTS_USED.lock().unwrap_or_else(|e| e.into_inner());
        *used -= self.0;
        SLOT_FREED.notify_all();
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The binary the guests run: `PMEM_STACK_TEST_BIN` (scripts/test.sh sets it to the
/// `cargo dist` build, the one operators deploy), else this test build's own.
fn module_bin() -> PathBuf {
    std::env::var_os("PMEM_STACK_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_pmem_stack")))
}

/// Why the VM cannot run here, if it cannot.
fn missing_tools() -> Option<String> {
    let have = |p: &str| {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .any(|d| d.join(p).is_file())
    };
    for tool in [
        "qemu-system-x86_64",
        "cpio",
        "ndctl",
        "dmsetup",
        "lvm",
        "strace",
        "python3",
    ] {
        if !have(tool) {
            return Some(format!("{tool} is not installed"));
        }
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("busybox-static is not installed".into());
    }
    let kernel = std::fs::read_dir("/boot").ok().and_then(|d| {
        d.filter_map(Result::ok)
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_prefix("vmlinuz-"))
                    .map(String::from)
            })
            .find(|v| {
                Path::new("/lib/modules")
                    .join(v)
                    .join("modules.dep")
                    .exists()
            })
    });
    if kernel.is_none() {
        return Some("no Debian kernel with modules in /boot (linux-image-amd64)".into());
    }
    None
}

#[path = "common/report.rs"]
mod report;

/// Run `script` in a fresh VM with `dimms` NVDIMMs of `mib` MiB each; at least
/// `min_passed` of its checks must pass.
fn guest(script: &str, dimms: u32, mib: u32, min_passed: u32) {
    guest_with(script, dimms, mib, &[], &[], min_passed);
}

/// Whether the VM suite can run here; panics when it cannot (unless skipping loudly is
/// allowed: `PMEM_STACK_SKIP_VM=1` outside CI).
fn vm_available(script: &str) -> bool {
    let Some(why) = missing_tools() else {
        return true;
    };
    report::skip_or_fail(
        &format!("VM suite {script}"),
        &why,
        "PMEM_STACK_SKIP_VM",
        "run `bash scripts/install-deps.sh`",
    );
    false
}

/// A private copy of the binary under test in `dir`: a rebuild while the VM runs must
/// not swap the binary under it.
fn private_bin(dir: &Path) -> String {
    std::fs::create_dir_all(dir).expect("temp dir");
    let bin = dir.join("pmem_stack");
    std::fs::copy(module_bin(), &bin).expect("copy the binary");
    bin.display().to_string()
}

/// The guest's `PMEM_STACK_CHECK_REPROBE`: in every suite, each run of the module checks
/// every re-probe after a step against a full probe and fails on a difference
/// (src/system/real/reprobe.rs, `CHECK_REPROBE`), on the binary operators deploy and the
/// real kernel; the result's `timing.reprobe_checks` counts them. On unless
/// `PMEM_STACK_CHECK_REPROBE=0` is set here.
fn check_reprobe() -> String {
    let v = std::env::var("PMEM_STACK_CHECK_REPROBE").unwrap_or_else(|_| "1".into());
    format!("PMEM_STACK_CHECK_REPROBE={v}")
}

/// Same, with extra run-guest.sh options and guest environment (`NAME=value`).
fn guest_with(script: &str, dimms: u32, mib: u32, rig: &[&str], env: &[String], min_passed: u32) {
    if !vm_available(script) {
        return;
    }
    let _slot = Slots::take(1);
    // one directory per guest: the same script may run on two kernels at once
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "pmem-stack-vm-{}-{run}-{script}",
        std::process::id()
    ));
    let bin = private_bin(&dir);
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(repo().join("tests/vm/run-guest.sh"))
        .args([
            "-n",
            &dimms.to_string(),
            "-s",
            &mib.to_string(),
            "-m",
            "768M",
            "-t",
            "1200",
        ])
        .args(cpus())
        .args(rig)
        .args([
            "--",
            "env",
            &format!("PMEM_STACK_BIN={bin}"),
            &check_reprobe(),
        ])
        .args(env)
        .arg("bash")
        .arg(repo().join("tests/vm/guest").join(script))
        .current_dir(repo())
        .output()
        .expect("run tests/vm/run-guest.sh");
    let _ = std::fs::remove_dir_all(&dir);
    // one log per script and kernel (`-K 6.12` runs get `.6.12` in the name)
    let kernel = rig
        .iter()
        .position(|a| *a == "-K")
        .and_then(|i| rig.get(i + 1))
        .map(|k| format!(".{k}"))
        .unwrap_or_default();
    judge(&format!("{script}{kernel}"), &out, started, min_passed);
}

/// Keep a suite's output in target/vm-logs/NAME.log and its time in
/// target/test-report/vm-times, and fail the test unless it exited 0 with
/// `SUMMARY: N passed, 0 failed` and N at least `min_passed`, the failed checks listed
/// first.
fn judge(name: &str, out: &std::process::Output, started: Instant, min_passed: u32) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // the whole guest output is kept, pass or fail: the evidence behind the checks
    let logs = repo().join("target/vm-logs");
    let _ = std::fs::create_dir_all(&logs);
    let _ = std::fs::write(logs.join(format!("{name}.log")), stdout.as_bytes());
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("SUMMARY:"))
        .unwrap_or("no SUMMARY line");
    let secs = started.elapsed().as_secs_f64();
    eprintln!("{name}: {summary} ({secs:.0} s in the VM)");
    report::time(name, secs, summary);
    // the failed checks first, each after the last heading before it (which kill, which
    // recipe): a CI log shortened in the middle still shows what failed
    let failed = failed_checks(&stdout);
    if !failed.is_empty() {
        eprintln!("{name}: FAILED CHECKS\n{failed}");
    }
    for l in stdout.lines().filter(|l| l.starts_with("CHECK ")) {
        eprintln!("  {l}");
    }
    assert!(
        out.status.success(),
        "{name} failed (status {:?}).\n--- failed checks ---\n{failed}\n--- output ---\n{stdout}\n--- stderr ---\n{stderr}\n--- failed checks (again) ---\n{failed}",
        out.status.code()
    );
    assert!(
        summary.ends_with(" 0 failed"),
        "{name}: {summary}\n--- failed checks ---\n{failed}\n--- output ---\n{stdout}\n--- failed checks (again) ---\n{failed}"
    );
    assert!(
        enough_checks(summary, min_passed),
        "{name}: {summary}, but the suite holds at least {min_passed} checks: it stopped early or skipped some\n--- output ---\n{stdout}"
    );
}

/// Whether a `SUMMARY: N passed, M failed` line has N at least `min_passed`.
fn enough_checks(summary: &str, min_passed: u32) -> bool {
    summary
        .strip_prefix("SUMMARY: ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| n >= min_passed)
}

#[test]
fn vm_a_summary_with_fewer_checks_than_the_suite_holds_fails() {
    assert!(enough_checks("SUMMARY: 49 passed, 0 failed", 49));
    assert!(enough_checks("SUMMARY: 50 passed, 0 failed", 49));
    assert!(!enough_checks("SUMMARY: 48 passed, 0 failed", 49));
    assert!(!enough_checks("SUMMARY: 0 passed, 0 failed", 49));
    assert!(!enough_checks("no SUMMARY line", 1));
}

/// Every `CHECK FAIL` line of a guest's output, each after the last heading before it
/// (a line starting with `---` or `===`).
fn failed_checks(stdout: &str) -> String {
    let mut heading = "";
    let mut shown = "";
    let mut text = String::new();
    for l in stdout.lines() {
        if l.starts_with("---") || l.starts_with("===") {
            heading = l;
        } else if l.starts_with("CHECK FAIL") {
            if heading != shown {
                text.push_str(heading);
                text.push('\n');
                shown = heading;
            }
            text.push_str(l);
            text.push('\n');
        }
    }
    text
}

#[test]
fn vm_failed_checks_are_listed_after_their_heading() {
    let out = "=== a\nCHECK PASS: x\n--- kill 1\nCHECK FAIL: y -- rc 1\nCHECK FAIL: z\n--- kill 2\nCHECK PASS: w\n";
    assert_eq!(
        failed_checks(out),
        "--- kill 1\nCHECK FAIL: y -- rc 1\nCHECK FAIL: z\n"
    );
    assert_eq!(failed_checks("CHECK PASS: a\n"), "");
}

/// The second kernel of the VM suites: Debian 12's 6.12 (scripts/install-deps.sh).
const SECOND_KERNEL: &str = "6.12";

/// Checks in tests/vm/guest/namespaces-dm.sh.
const NAMESPACES_DM_CHECKS: u32 = 50;
/// Checks in tests/vm/guest/promises.sh.
const PROMISES_CHECKS: u32 = 28;
/// Checks in tests/vm/guest/recipes.sh.
const RECIPES_CHECKS: u32 = 72;
/// Checks in tests/vm/guest/dax-audit.sh.
const DAX_AUDIT_CHECKS: u32 = 14;
/// At least this many checks in tests/vm/guest/kills.py: six per kill, over two
/// starting points of at least seven kills each (one per kind of operation and program
/// of the reference run), and the checks after them.
const KILLS_CHECKS: u32 = 90;
/// Checks in tests/vm/guest/faults.sh.
const FAULTS_CHECKS: u32 = 266;

/// Two tests for each suite: `name` runs its script on the default kernel, `on_second`
/// on [`SECOND_KERNEL`], each in a VM with `dimms` NVDIMMs of `mib` MiB and at least
/// `checks` of its checks to pass.
macro_rules! on_both_kernels {
    ($(
        $(#[$doc:meta])*
        $name:ident, $on_second:ident: $script:literal, $dimms:literal, $mib:literal, $checks:ident;
    )*) => {$(
        $(#[$doc])*
        #[test]
        fn $name() {
            guest($script, $dimms, $mib, $checks);
        }

        #[test]
        fn $on_second() {
            guest_with($script, $dimms, $mib, &["-K", SECOND_KERNEL], &[], $checks);
        }
    )*};
}

on_both_kernels! {
    vm_namespaces_and_device_mapper, vm_namespaces_and_device_mapper_on_6_12: "namespaces-dm.sh", 2, 512, NAMESPACES_DM_CHECKS;
    /// What the README promises that no other suite shows on a real kernel
    /// (tests/vm/guest/promises.sh): sector, raw, `map: mem` and a 4 KiB `align`, the user's
    /// `mkfs_options` on the real mke2fs, `dax: inode`, a GPT on a dm device with its
    /// kpartx-style mapping, a busy mount detached lazily with `allow_data_loss`, and a
    /// mount path through a directory not owned by root refused.
    vm_readme_promises_on_a_real_kernel, vm_readme_promises_on_a_real_kernel_on_6_12: "promises.sh", 2, 1024, PROMISES_CHECKS;
    vm_recipes_through_ansible, vm_recipes_through_ansible_on_6_12: "recipes.sh", 2, 1024, RECIPES_CHECKS;
    vm_dax_audit_and_pmd_faults, vm_dax_audit_and_pmd_faults_on_6_12: "dax-audit.sh", 2, 1024, DAX_AUDIT_CHECKS;
    vm_killed_in_the_middle_of_any_step_converges, vm_killed_in_the_middle_of_any_step_converges_on_6_12: "kills.sh", 2, 512, KILLS_CHECKS;
    // 3 DIMMs: two for the recipes, one for the foreign namespace and dm device
    vm_crash_at_every_step_faults_and_data_safety, vm_crash_at_every_step_faults_and_data_safety_on_6_12: "faults.sh", 3, 1024, FAULTS_CHECKS;
}

/// CXL persistent memory on `kernel`, in three real boots (systemd as PID 1; the rig's
/// `-X`: CXL type-3 memory devices with serials 0x1 and 0x2, no NVDIMM). Boot 1: what
/// the probe reads of CXL against cxl-cli's view; a region made by hand found as the
/// declared one, then taken apart; a half-made region (no commit) taken apart and made
/// again; the persisted stack from nothing (a 2-way region by serial, an fsdax
/// namespace, xfs, DAX) through ansible-playbook --check --diff, check mode, converge,
/// 2 MiB faults, the audit down to the CXL region, idempotence, and pmem_stack_info.
/// Boot 2 (serial 0x2 gone): the replay fails alone, naming it, and makes nothing. Boot 3
/// (both back): the replay assembled the region again by serial, the namespace came back
/// from its labels, mounted with DAX, data intact; then teardown on the booted host.
fn cxl_boots(kernel: &str) {
    boots("cxl", kernel, &[], |boot| {
        boot("cxl-1.sh", 0, 1024, &["-X", "2"], CXL_1_CHECKS)?;
        boot("cxl-2.sh", 0, 1024, &["-X", "1"], CXL_2_CHECKS)?;
        boot("cxl-3.sh", 0, 1024, &["-X", "2"], CXL_3_CHECKS)
    });
}

/// Checks in tests/vm/guest/cxl-1.sh (with boot-lib.sh's one).
const CXL_1_CHECKS: u32 = 15;
/// Checks in tests/vm/guest/cxl-2.sh (with boot-lib.sh's one).
const CXL_2_CHECKS: u32 = 5;
/// Checks in tests/vm/guest/cxl-3.sh (with boot-lib.sh's one).
const CXL_3_CHECKS: u32 = 9;

#[test]
fn vm_cxl_persistent_memory_in_real_boots() {
    cxl_boots("6.1");
}

#[test]
fn vm_cxl_persistent_memory_in_real_boots_on_6_12() {
    cxl_boots(SECOND_KERNEL);
}

/// PMEM as system RAM on `kernel`, in two real boots (systemd as PID 1; one NVDIMM in NUMA
/// node 1, the rig's `-M`). Boot 1: a devdax namespace given to the kernel as memory from
/// nothing (check mode, converge, daxctl's view against the result's, the auto-online
/// policy as it was, idempotent, the facts); used by a process and taken back (migrated
/// away); not movable, with page tables on it, taking it back fails with EBUSY and
/// nothing half-done; the persisted declaration. Boot 2: the replay gave it again; the
/// module unchanged; teardown on the booted host.
fn ram_boots(kernel: &str) {
    boots("ram", kernel, &["-M"], |boot| {
        boot("ram-1.sh", 1, 1024, &[], RAM_1_CHECKS)?;
        boot("ram-2.sh", 1, 1024, &[], RAM_2_CHECKS)
    });
}

/// Checks in tests/vm/guest/ram-1.sh (with boot-lib.sh's one).
const RAM_1_CHECKS: u32 = 15;
/// Checks in tests/vm/guest/ram-2.sh (with boot-lib.sh's one).
const RAM_2_CHECKS: u32 = 7;

#[test]
fn vm_pmem_as_system_ram_in_real_boots() {
    ram_boots("6.1");
}

#[test]
fn vm_pmem_as_system_ram_in_real_boots_on_6_12() {
    ram_boots(SECOND_KERNEL);
}

/// Real boots with systemd as PID 1 on `kernel`: boot 1 converges two persisted stacks
/// and enables a consumer; boot 2 (DIMMs reversed) checks that systemd brought both up
/// by itself, in order; boot 3 (the second DIMM removed) that the stack missing a member
/// fails alone and the boot goes on, then tears the stack that systemd brought back down
/// (`state: absent`, `allow_data_loss`: its mount in every mount namespace, systemd-logind's
/// and a private one's included, the dm device, units, saved state and boot copy) and
/// converges it again. The guest's writes to its root (/etc, /usr/local,
/// /var) and the NVDIMM files are kept between the boots.
fn real_boots(kernel: &str) {
    boots("boots", kernel, &[], |boot| {
        boot("boot-1.sh", 2, 1024, &[], 21)?;
        boot("boot-2.sh", 2, 1024, &["-r"], 23)?;
        boot("boot-3.sh", 1, 1024, &[], 36)
    });
}

/// One boot of a series: script, DIMMs, MiB each, more rig options, the checks it holds.
type Boot<'a> = dyn Fn(&str, u32, u32, &[&str], u32) -> std::thread::Result<()> + 'a;

/// A series of real boots (systemd as PID 1) on `kernel` that share the guest's root
/// writes (`-P`), the NVDIMM files (`-k`) and a directory for the test's own notes
/// (`KEEP`), with `rig` options for every boot; `series` runs the boots in order (a
/// failed one stops it). The kept files are removed at the end, pass or fail.
fn boots(
    name: &str,
    kernel: &str,
    rig: &[&str],
    series: impl FnOnce(&Boot) -> std::thread::Result<()>,
) {
    let keep =
        std::env::temp_dir().join(format!("pmem-stack-{name}-{}-{kernel}", std::process::id()));
    let _ = std::fs::remove_dir_all(&keep);
    std::fs::create_dir_all(&keep).expect("keep dir");
    let k = keep.display().to_string();
    let persist = keep.join("root").display().to_string();
    let env = [format!("KEEP={k}")];
    let boot = |script: &str, dimms: u32, mib: u32, extra: &[&str], min_passed: u32| {
        let mut all = vec!["-S", "-P", &persist, "-k", &k, "-w", &k, "-K", kernel];
        all.extend_from_slice(rig);
        all.extend_from_slice(extra);
        std::panic::catch_unwind(|| guest_with(script, dimms, mib, &all, &env, min_passed))
    };
    let result = series(&boot);
    let _ = std::fs::remove_dir_all(&keep);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn vm_real_boots_with_systemd() {
    real_boots("6.1");
}

#[test]
fn vm_real_boots_with_systemd_on_6_12() {
    real_boots(SECOND_KERNEL);
}

/// LVM over fsdax namespaces on `kernel`, in two real boots (systemd as PID 1, lvm2
/// installed, three DIMMs): boot 1 recognises a VG and LV built by hand with LVM's
/// defaults (the audit names the PV layer, the 2 MiB faults fall back) and tears it down,
/// grows a linear LV by a third namespace with its data, and converges the persisted
/// striped-xfs stack on an LV from nothing (ansible-playbook --check --diff, check mode,
/// converge, killed in the middle of each LVM step and converged again, idempotent through
/// the module and ansible-playbook, 2 MiB faults, the audit, facts, a stripe change
/// refused); boot 2 (DIMMs reversed) checks that LVM and the stack's units brought it back
/// (largest I/O raised by the replay, mounted with DAX after the LV's device, data intact,
/// 2 MiB faults), then tears it down on the booted host.
fn lvm_boots(kernel: &str) {
    boots("lvm", kernel, &[], |boot| {
        boot("lvm-1.sh", 3, 1024, &[], LVM_1_CHECKS)?;
        boot("lvm-2.sh", 3, 1024, &["-r"], LVM_2_CHECKS)
    });
}

/// Checks in tests/vm/guest/lvm-1.sh (with boot-lib.sh's one; one kill fewer on 6.12, where the raise is not needed).
const LVM_1_CHECKS: u32 = 37;
/// Checks in tests/vm/guest/lvm-2.sh (with boot-lib.sh's one).
const LVM_2_CHECKS: u32 = 14;

#[test]
fn vm_lvm_over_pmem_in_real_boots() {
    lvm_boots("6.1");
}

#[test]
fn vm_lvm_over_pmem_in_real_boots_on_6_12() {
    lvm_boots(SECOND_KERNEL);
}

/// PMEM without labels on `kernel`, in two real boots (systemd as PID 1): two
/// `memmap=` ranges (the guest's RAM backed by a kept file, so they survive the
/// power-off as memmap PMEM survives a warm reboot) and two DIMMs without a label area
/// (-L). Boot 1 converges a striped-xfs stack on the ranges and a linear-ext4 stack on
/// the DIMMs (check mode, idempotence, data by checksum, 2 MiB faults, refusals); boot 2
/// (DIMMs reversed) checks that systemd brought both back with the data intact, then
/// tears both down on the booted host and converges again.
fn label_less(kernel: &str) {
    let ram = std::env::temp_dir()
        .join(format!(
            "pmem-stack-label-less-ram-{}-{kernel}.img",
            std::process::id()
        ))
        .display()
        .to_string();
    let _ = std::fs::remove_file(&ram);
    let rig = [
        "-L",
        "-m",
        "2560M",
        "-E",
        "memmap=512M!1G memmap=512M!1536M",
        "-R",
        &ram,
    ];
    boots("label-less", kernel, &rig, |boot| {
        boot("label-less-1.sh", 2, 512, &[], 19)?;
        boot("label-less-2.sh", 2, 512, &["-r"], 17)
    });
    let _ = std::fs::remove_file(&ram);
}

#[test]
fn vm_label_less_pmem_memmap_and_dimms_without_labels() {
    label_less("6.1");
}

#[test]
fn vm_label_less_pmem_memmap_and_dimms_without_labels_on_6_12() {
    label_less(SECOND_KERNEL);
}

/// The Salt and Puppet wrappers of contrib/ through the real clients in the guest
/// (tests/vm/guest/wrappers.sh): `salt-call --local` with the state module and the
/// cmd.run route (test=True, apply, re-apply, a bad argument), then `puppet apply` with
/// pmem_stack::stack (--noop, apply, re-apply, a failure). The salt venv may be moved
/// (`PMEM_STACK_SALT_VENV`, as scripts/install-deps.sh reads it). Named to sort early:
/// the harness starts the tests in name order, and this one guest, among the longest,
/// would otherwise run last, alone.
#[test]
fn vm_by_salt_and_puppet_through_their_wrappers() {
    let env: Vec<String> = std::env::var("PMEM_STACK_SALT_VENV")
        .map(|v| vec![format!("PMEM_STACK_SALT_VENV={v}")])
        .unwrap_or_default();
    guest_with("wrappers.sh", 2, 1024, &[], &env, 26);
}

/// The fleet run (tests/vm/fleet.sh): ansible-playbook on this machine against two VM
/// guests at once over SSH (different DIMM layouts and kernels), the collection installed
/// on the controller only: --check --diff, a bad host_var failing one host while the
/// other converges, the converge, the re-run, facts, the no-op task timed against ping
/// with profile_tasks, and a host without Python.
#[test]
fn vm_fleet_over_ssh() {
    if !vm_available("fleet.sh") {
        return;
    }
    // its two guests, one vCPU each
    let _slots = Slots::take(2);
    let dir = std::env::temp_dir().join(format!("pmem-stack-vm-{}-fleet", std::process::id()));
    let bin = private_bin(&dir);
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(repo().join("tests/vm/fleet.sh"))
        .env("PMEM_STACK_BIN", &bin)
        .current_dir(repo())
        .output()
        .expect("run tests/vm/fleet.sh");
    let _ = std::fs::remove_dir_all(&dir);
    judge("fleet.sh", &out, started, 42);
}
