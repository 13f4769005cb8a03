//! `meet top`.

use std::process::ExitCode;

use crate::cli::CommonArgs;

/// The live dashboard comes with the realtime and media statistics it shows.
pub fn run(_: &CommonArgs) -> anyhow::Result<ExitCode> {
    eprintln!("meet top: the live dashboard arrives in a later version");
    Ok(ExitCode::from(2))
}
