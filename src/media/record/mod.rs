//! The recorder's parts: a reorder buffer per RTP stream, Ogg Opus files written from the
//! packets as they are, a speaker's track placing packets on the recording's timeline, a reader
//! of files still being written, and the mixer that follows them.

pub mod mix;
pub mod ogg;
pub mod pcm;
pub mod recorder;
pub mod reorder;
pub mod salvage;
pub mod session;
pub mod tail;
pub mod track;
