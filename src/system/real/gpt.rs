//! GPT (to be written).
use crate::actual::{BlockDevice, PartitionTable};
use crate::plan::resolve::DevId;
use crate::system::{Output, SystemError};
use crate::units::Sectors;

fn todo(what: &str) -> SystemError {
    SystemError::Unavailable {
        msg: format!("{what} is not implemented yet"),
    }
}
/// GPTs on whole disks.
pub fn probe(_b: &[BlockDevice]) -> Result<Vec<PartitionTable>, SystemError> {
    Ok(Vec::new())
}
/// New GPT.
pub fn create(_d: &DevId) -> Result<Output, SystemError> {
    Err(todo("gpt create"))
}
/// Add entry.
pub fn add(
    _d: &DevId,
    _n: u32,
    _name: &str,
    _s: Sectors,
    _z: Sectors,
    _dm: bool,
) -> Result<Output, SystemError> {
    Err(todo("gpt add"))
}
/// Delete entry.
pub fn delete(_d: &DevId, _n: u32, _dm: bool) -> Result<Output, SystemError> {
    Err(todo("gpt delete"))
}
