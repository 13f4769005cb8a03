//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "meet",
    version,
    about = "Self-hosted audio meetings for a teacher and their students"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: HTTP API, realtime and jobs.
    Serve(ServeArgs),
    /// Manage hosts, students and meetings (through the running server, or the database when none runs).
    Admin(AdminArgs),
    /// Run maintenance jobs now: cleanup, archive, retention.
    Jobs(JobsArgs),
    /// A live dashboard of the running server.
    Top(TopArgs),
    /// Print shell completions (the Debian package installs them).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page, meet(1), in roff.
    Man,
}

/// Where to find the configuration and the data.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Configuration file (default: $MEET_CONFIG, ./meet.toml, /etc/meet/meet.toml).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Data directory (database, JWT secret, control socket, local recordings).
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Print one snapshot (rates over one second) and exit.
    #[arg(long)]
    pub once: bool,
    /// With --once: JSON for scripts.
    #[arg(long, requires = "once")]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address to listen on: ADDR:PORT, or PORT alone (all interfaces).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Validate the configuration, print a summary and exit.
    #[arg(long)]
    pub check_config: bool,
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub what: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Host accounts.
    #[command(subcommand)]
    Host(HostCommand),
    /// Student accounts.
    #[command(subcommand)]
    Student(StudentCommand),
    /// Meetings.
    #[command(subcommand)]
    Meeting(MeetingCommand),
    /// Recordings.
    #[command(subcommand)]
    Recording(RecordingCommand),
    /// Write the database (accounts, meetings, recording records; not the recordings' audio) to
    /// FILE, as SurrealQL.
    Backup {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Replace the database with a backup made by `meet admin backup`.
    Restore {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Replace a database that holds more than its administrators (everything in it goes).
        #[arg(long)]
        replace: bool,
    },
    /// Import a mongoexport dump of the original Node/MongoDB backend.
    #[command(long_about = IMPORT_ABOUT)]
    Import {
        /// Export files: one document per line (mongoexport's default) or a JSON array
        /// (--jsonArray, with or without --pretty); canonical or relaxed Extended JSON.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Read and check everything, print what would be imported, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

const IMPORT_ABOUT: &str =
    "Import a mongoexport dump of the original Node/MongoDB backend's users, \
meetings and recordings collections.

Files may come in any order and mix collections: a document is told apart by its fields (a user \
has username, password and role; a recording meetingId and fileUrl or status; a meeting topic and \
hostId), so no --collection is needed. Users keep their bcrypt password (replaced by argon2id at \
their first login), their role, their host and isActive. Meetings become history: ended and \
cancelled ones as they were, created/active/paused ones ended at the import (admin_ended). \
Completed recordings become rows whose audio stays where it is in S3 (their key under the \
storage prefix). ObjectIds are kept as meet ids; any other id is mapped to a new one, shown in \
the summary. Running it again imports nothing new. A malformed line, or a document meet cannot \
take, is reported with its file:line and skipped; the exit status is non-zero only when nothing \
could be read at all.

Works against a running server (the files' contents go over the control socket) or, when none \
runs, on the data dir directly.";

#[derive(Debug, Subcommand)]
pub enum RecordingCommand {
    /// List recordings, all or one meeting's.
    List {
        #[arg(long, value_name = "MEETING")]
        meeting: Option<String>,
    },
    /// Delete a recording with every file of it.
    Delete { id: String },
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Create a host; without --password-stdin a random password is generated and printed.
    Add {
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List hosts.
    List,
    /// Disable a host (its tokens stop working; its students cannot log in).
    Disable { name: String },
    /// Enable a host again.
    Enable { name: String },
    /// Set a host's password.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a host with its students, meetings and recordings.
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub enum StudentCommand {
    /// List students, all or one host's.
    List {
        #[arg(long, value_name = "HOST")]
        host: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MeetingCommand {
    /// List meetings.
    List {
        #[arg(long, value_name = "STATUS")]
        status: Option<String>,
    },
    /// End a meeting now.
    End { id: String },
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Print JSON instead of tables and progress bars.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: JobsCommand,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// The jobs: schedule, last run and its outcome, next run.
    List,
    /// Run a job now (cleanup, archive, retention), or all of them, with progress bars.
    Run {
        #[arg(default_value = "all")]
        job: String,
        /// Count what the job would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}
