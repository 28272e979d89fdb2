//! mkfs: refused over an existing signature unless forced, or over a device in use;
//! the filesystem it makes records the geometry asked for (the typed geometry, as the
//! user's options leave it) and the label.

use super::FakeSystem;
use crate::actual::Filesystem;
use crate::geometry::Layout;
use crate::system::argv::command_line;
use crate::system::{Op, SystemError};
use crate::units::Bytes;

impl FakeSystem {
    /// The mkfs `op` (an [`Op::Mkfs`]), making a filesystem laid out as `made`; a failure
    /// reports its command line.
    pub(super) fn mkfs(&mut self, op: &Op, made: Layout) -> Result<(), SystemError> {
        let Op::Mkfs {
            device,
            fstype,
            label,
            force,
            ..
        } = op
        else {
            return Err(Self::fail("mkfs", format!("not a mkfs: {op:?}")));
        };
        let argv = command_line(op).unwrap_or_default();
        let bd = self
            .state
            .block(device.devno)
            .cloned()
            .ok_or_else(|| Self::fail("mkfs", "no device"))?;
        // as mke2fs and mkfs.xfs: nothing is made on an empty device
        if bd.size.0 == 0 {
            return Err(SystemError::Command {
                argv: argv.clone(),
                rc: Some(1),
                stdout: String::new(),
                stderr: format!("{}: Device size reported to be zero", device.path),
            });
        }
        if !*force
            && (self.state.filesystem(bd.devno).is_some() || self.state.gpt(bd.devno).is_some())
        {
            return Err(SystemError::Command {
                argv: argv.clone(),
                rc: Some(1),
                stdout: String::new(),
                stderr: format!(
                    "{}: appears to contain an existing filesystem or partition table",
                    bd.path
                ),
            });
        }
        if let Some(why) = self.busy(&bd) {
            return Err(SystemError::Command {
                argv: argv.clone(),
                rc: Some(1),
                stdout: String::new(),
                stderr: why,
            });
        }
        self.wipe(bd.devno);
        self.state.filesystems.push(Filesystem {
            device: bd.devno,
            fstype: fstype.as_str().to_string(),
            uuid: Some(format!("fs-{}", self.executed.len() + 1)),
            label: label.clone(),
            block_size: Some(Bytes(4096)),
            stripe_unit: Some(made.stripe_unit),
            stripe_width: Some(made.stripe_width),
            reflink: (fstype.as_str() == "xfs").then_some(made.reflink),
            size: Some(bd.size.bytes()),
        });
        Ok(())
    }
}
