//! meet: a self-hosted audio-meeting appliance. `main.rs` only parses arguments; everything else
//! is here so that tests can run the server in-process.

pub mod app;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod control;
pub mod domain;
pub mod error;
#[cfg(test)]
pub(crate) mod fuzzing;
pub mod http;
pub mod jobs;
pub mod media;
pub mod realtime;
pub mod secret;
pub mod service;
pub mod storage;
pub mod store;
pub mod telemetry;
pub mod top;
