//! The command lines of the ops that run an external program (see `exec::PROGRAMS`):
//! `ndctl create-namespace` (new or in place) and `destroy-namespace`, `mkfs.ext4` and
//! `mkfs.xfs` with their typed geometry, `systemctl daemon-reload`. The one place an op
//! becomes argv: the real system runs these words, and the same words show in plan
//! details and in a failed step's `argv`.

use crate::args::{FsType, NamespaceMode};
use crate::geometry::FsGeometry;
use crate::op::{Extents, LvmOp, NamespaceConfig, Op};
use crate::units::Bytes;

/// The command `op` runs, if it runs one.
pub fn command_line(op: &Op) -> Option<Vec<String>> {
    match op {
        Op::CreateCxlRegion {
            decoder,
            memdevs,
            granularity,
            size,
        } => {
            let mut v = words(&["cxl", "create-region", "-t", "pmem", "-m", "-d", decoder]);
            v.extend(["-w".to_string(), memdevs.len().to_string()]);
            if let Some(g) = granularity {
                v.extend(["-g".to_string(), g.to_string()]);
            }
            if let Some(s) = size {
                v.extend(["-s".to_string(), s.0.to_string()]);
            }
            v.extend(memdevs.iter().cloned());
            Some(v)
        }
        Op::DestroyCxlRegion { region } => Some(words(&["cxl", "destroy-region", "-f", region])),
        Op::DaxToSystemRam {
            dev,
            online,
            movable,
        } => {
            let mut v = words(&["daxctl", "reconfigure-device", "--mode=system-ram"]);
            if !online {
                v.push("--no-online".into());
            }
            if !movable {
                v.push("--no-movable".into());
            }
            v.push(dev.clone());
            Some(v)
        }
        Op::DaxOnlineMemory { dev, movable } => {
            let mut v = words(&["daxctl", "online-memory"]);
            if !movable {
                v.push("--no-movable".into());
            }
            v.push(dev.clone());
            Some(v)
        }
        Op::DaxToDevdax { dev, .. } => Some(words(&[
            "daxctl",
            "reconfigure-device",
            "--mode=devdax",
            dev,
        ])),
        Op::CreateNamespace { region, config } => Some(ndctl_create(&["-r", region], config)),
        Op::ReconfigureNamespace { dev, config } => Some(ndctl_create(&["-f", "-e", dev], config)),
        Op::DestroyNamespace { dev } => Some(words(&["ndctl", "destroy-namespace", "-f", dev])),
        Op::Mkfs {
            device,
            fstype,
            geometry,
            label,
            force,
            extra,
        } => Some(mkfs(
            *fstype,
            geometry,
            label.as_deref(),
            *force,
            extra,
            &device.path,
        )),
        Op::DaemonReload => Some(daemon_reload()),
        Op::Lvm(l) => Some(lvm(l)),
        _ => None,
    }
}

/// Words as argv.
pub fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| s.to_string()).collect()
}

/// `ndctl create-namespace` with `place` (`-r REGION` for a new one, `-f -e DEV` in
/// place), then the configuration.
fn ndctl_create(place: &[&str], c: &NamespaceConfig) -> Vec<String> {
    let mut v = words(&["ndctl", "create-namespace"]);
    v.extend(words(place));
    v.extend(words(&["-m", c.mode.as_str(), "-n", &c.name]));
    if let Some(s) = c.size {
        v.extend(["-s".to_string(), s.0.to_string()]);
    }
    if matches!(c.mode, NamespaceMode::Fsdax | NamespaceMode::Devdax) {
        v.extend(words(&["-a", &c.align.to_string(), "-M", c.map.as_str()]));
    }
    v
}

/// `mkfs.ext4` or `mkfs.xfs`: quiet, forced when `force`, the geometry, the label, the
/// user's `extra` words, then `device`.
pub fn mkfs(
    fstype: FsType,
    geometry: &FsGeometry,
    label: Option<&str>,
    force: bool,
    extra: &[String],
    device: &str,
) -> Vec<String> {
    let (program, force_flag) = match fstype {
        FsType::Ext4 => ("mkfs.ext4", "-F"),
        FsType::Xfs => ("mkfs.xfs", "-f"),
    };
    let mut v = words(&[program, "-q"]);
    if force {
        v.push(force_flag.into());
    }
    match geometry {
        FsGeometry::Ext4 { block_size, stripe } => {
            if let Some(b) = block_size {
                v.extend(["-b".to_string(), b.0.to_string()]);
            }
            if let Some(s) = stripe {
                let mut e = format!("stride={}", s.stride);
                if let Some(w) = s.stripe_width {
                    e.push_str(&format!(",stripe_width={w}"));
                }
                v.extend(["-E".to_string(), e]);
            }
        }
        FsGeometry::Xfs { reflink, stripe } => {
            if let Some(r) = reflink {
                v.extend(["-m".to_string(), format!("reflink={}", u8::from(*r))]);
            }
            if let Some(s) = stripe {
                v.extend([
                    "-d".to_string(),
                    format!("su={},sw={}", xfs_size(s.su), s.sw),
                ]);
            }
        }
    }
    if let Some(l) = label {
        v.extend(["-L".to_string(), l.to_string()]);
    }
    v.extend(extra.iter().cloned());
    v.push(device.to_string());
    v
}

/// A size as mkfs.xfs reads it (`2m`).
fn xfs_size(b: Bytes) -> String {
    for (unit, suffix) in [(1u64 << 30, "g"), (1 << 20, "m"), (1 << 10, "k")] {
        if b.0 != 0 && b.0.is_multiple_of(unit) {
            return format!("{}{suffix}", b.0 / unit);
        }
    }
    b.0.to_string()
}

/// The `lvm` command of an LVM op. Prompts are never answered by a person: stdin is
/// /dev/null, so LVM takes "no" where it asks, unless `-y` is given (only where the plan
/// decided the answer: wiping what `pvcreate` or `lvcreate` finds, removing an LV).
pub fn lvm(op: &LvmOp) -> Vec<String> {
    let kib = |b: Bytes| format!("{}k", b.0 / 1024);
    let lv = |vg: &str, lv: &str| format!("{vg}/{lv}");
    let mut v = words(&["lvm"]);
    match op {
        LvmOp::PvCreate { device, wipe } => {
            v.extend(words(&["pvcreate", "--dataalignment", "2m"]));
            if *wipe {
                v.push("-y".into());
            }
            v.push(device.path.clone());
        }
        LvmOp::VgCreate {
            vg,
            extent_size,
            pvs,
        } => {
            v.extend(words(&["vgcreate", "-s", &kib(*extent_size), vg]));
            v.extend(pvs.iter().map(|p| p.path.clone()));
        }
        LvmOp::VgExtend { vg, pvs } => {
            v.extend(words(&["vgextend", vg]));
            v.extend(pvs.iter().map(|p| p.path.clone()));
        }
        LvmOp::LvCreate(n) => {
            v.extend(words(&["lvcreate", "-y", "-n", &n.lv, "-l"]));
            v.push(match n.extents {
                Extents::Count(c) => c.to_string(),
                Extents::RestOfVg => "100%FREE".into(),
            });
            if n.stripes > 1 {
                v.extend([
                    "-i".into(),
                    n.stripes.to_string(),
                    "-I".into(),
                    kib(n.stripe_size),
                ]);
            }
            v.push(n.vg.clone());
        }
        LvmOp::LvExtend {
            vg,
            lv: name,
            extents,
        } => {
            v.extend(words(&["lvextend", "-l"]));
            v.push(match extents {
                Extents::Count(n) => n.to_string(),
                Extents::RestOfVg => "+100%FREE".into(),
            });
            v.push(lv(vg, name));
        }
        LvmOp::LvActivate { vg, lv: name } => {
            v.extend(words(&["lvchange", "-ay", &lv(vg, name)]));
        }
        LvmOp::LvRemove { vg, lv: name } => {
            v.extend(words(&["lvremove", "-y", &lv(vg, name)]));
        }
        LvmOp::VgRemove { vg } => v.extend(words(&["vgremove", vg])),
        LvmOp::PvRemove { device } => v.extend(words(&["pvremove", &device.path])),
    }
    v
}

/// `systemctl daemon-reload`.
pub fn daemon_reload() -> Vec<String> {
    words(&["systemctl", "daemon-reload"])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actual::Devno;
    use crate::args::MapMode;
    use crate::geometry::{Ext4Stripe, XfsStripe};
    use crate::system::DevId;
    use crate::units::{HUGE_PAGE, PAGE};

    fn line(op: &Op) -> String {
        command_line(op).expect("runs a command").join(" ")
    }

    fn config(mode: NamespaceMode, size: Option<Bytes>) -> NamespaceConfig {
        NamespaceConfig {
            name: "pm0".into(),
            mode,
            size,
            align: HUGE_PAGE,
            map: MapMode::Dev,
        }
    }

    #[test]
    fn ndctl_words() {
        let new = Op::CreateNamespace {
            region: "region0".into(),
            config: config(NamespaceMode::Fsdax, Some(Bytes(1 << 30))),
        };
        assert_eq!(
            line(&new),
            "ndctl create-namespace -r region0 -m fsdax -n pm0 -s 1073741824 -a 2M -M dev"
        );
        let in_place = Op::ReconfigureNamespace {
            dev: "namespace0.0".into(),
            config: config(NamespaceMode::Devdax, None),
        };
        assert_eq!(
            line(&in_place),
            "ndctl create-namespace -f -e namespace0.0 -m devdax -n pm0 -a 2M -M dev"
        );
        let sector = Op::CreateNamespace {
            region: "region1".into(),
            config: config(NamespaceMode::Sector, None),
        };
        assert_eq!(
            line(&sector),
            "ndctl create-namespace -r region1 -m sector -n pm0"
        );
        let destroy = Op::DestroyNamespace {
            dev: "namespace0.1".into(),
        };
        assert_eq!(line(&destroy), "ndctl destroy-namespace -f namespace0.1");
    }

    #[test]
    fn mkfs_words() {
        let device = DevId {
            path: "/dev/mapper/s".into(),
            devno: Devno {
                major: 253,
                minor: 0,
            },
        };
        let ext4 = Op::Mkfs {
            device: device.clone(),
            fstype: FsType::Ext4,
            geometry: FsGeometry::Ext4 {
                block_size: Some(PAGE),
                stripe: Some(Ext4Stripe {
                    stride: 512,
                    stripe_width: Some(1024),
                }),
            },
            label: Some("d".into()),
            force: true,
            extra: vec!["-m".into(), "0".into()],
        };
        assert_eq!(
            line(&ext4),
            "mkfs.ext4 -q -F -b 4096 -E stride=512,stripe_width=1024 -L d -m 0 /dev/mapper/s"
        );
        let xfs = Op::Mkfs {
            device: device.clone(),
            fstype: FsType::Xfs,
            geometry: FsGeometry::Xfs {
                reflink: Some(false),
                stripe: Some(XfsStripe {
                    su: HUGE_PAGE,
                    sw: 2,
                }),
            },
            label: None,
            force: false,
            extra: vec![],
        };
        assert_eq!(
            line(&xfs),
            "mkfs.xfs -q -m reflink=0 -d su=2m,sw=2 /dev/mapper/s"
        );
        // the options the user gives are theirs alone
        let users = Op::Mkfs {
            device,
            fstype: FsType::Xfs,
            geometry: FsGeometry::Xfs {
                reflink: Some(false),
                stripe: None,
            },
            label: None,
            force: true,
            extra: vec!["-d".into(), "su=1m,sw=2".into()],
        };
        assert_eq!(
            line(&users),
            "mkfs.xfs -q -f -m reflink=0 -d su=1m,sw=2 /dev/mapper/s"
        );
    }

    #[test]
    fn daemon_reload_and_ops_without_a_command() {
        assert_eq!(line(&Op::DaemonReload), "systemctl daemon-reload");
        assert_eq!(command_line(&Op::DmRemove { name: "s".into() }), None);
    }
}
