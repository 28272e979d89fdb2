//! Device-mapper (to be written).
use crate::actual::dm::TableLine;
use crate::actual::DmDevice;
use crate::system::{Output, SystemError};

fn todo(what: &str) -> SystemError {
    SystemError::Unavailable {
        msg: format!("{what} is not implemented yet"),
    }
}
/// dm devices.
pub fn probe() -> Result<Vec<DmDevice>, SystemError> {
    Ok(Vec::new())
}
/// Create.
pub fn create(_n: &str, _t: &[TableLine]) -> Result<Output, SystemError> {
    Err(todo("dm create"))
}
/// Reload.
pub fn reload(_n: &str, _t: &[TableLine]) -> Result<Output, SystemError> {
    Err(todo("dm reload"))
}
/// Remove.
pub fn remove(_n: &str) -> Result<Output, SystemError> {
    Err(todo("dm remove"))
}
