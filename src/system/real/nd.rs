//! Regions and namespaces from sysfs (to be written).
use crate::actual::{Namespace, Region};
use crate::system::SystemError;
use std::path::Path;

/// Regions and namespaces under `sys`/bus/nd/devices.
pub fn probe(_sys: &Path) -> Result<(Vec<Region>, Vec<Namespace>), SystemError> {
    Ok((Vec::new(), Vec::new()))
}
