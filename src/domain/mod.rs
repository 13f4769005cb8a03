//! The rules of the product, free of I/O: who users are, how a meeting moves through its states,
//! the limits, and who may see or hear whom.

pub mod access;
pub mod ice;
pub mod meetings;
pub mod routing;
pub mod speaker;
pub mod users;
