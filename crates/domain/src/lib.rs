//! xueji's pure domain: identifiers, codes, the working-day calendar, the transfer state machine
//! and the error vocabulary. No I/O, no async.

pub mod access;
pub mod calendar;
pub mod change;
pub mod error;
pub mod ids;
pub mod password;
pub mod policy;
pub mod sanction;
pub mod transfer;

pub use error::{Error, ErrorCode, Result};
