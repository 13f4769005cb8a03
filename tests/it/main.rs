//! One integration-test binary: real servers on 127.0.0.1:0, the embedded database in memory
//! (or on disk for the smoke test), real HTTP clients.

mod backup;
mod bad_input;
mod common;
mod compat;
mod crash;
mod faults;
mod flows;
mod import;
mod limits;
mod openapi;
mod realtime;
mod recorder;
mod recording;
mod roles;
mod rtc;
mod s3;
mod security;
mod sfu;
mod sio;
mod slow;
mod smoke;
mod top;
