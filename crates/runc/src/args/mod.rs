//! Command-line arguments, compatible with runc's. Parsing only; behaviour is in `commands`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// A runc-compatible OCI runtime.
#[derive(Debug, Parser)]
#[command(name = "wharf-runtime", version, about)]
pub struct Cli {
    /// Root directory for container state.
    #[arg(long, global = true, default_value = "/run/wharf-runtime")]
    pub root: PathBuf,
    /// Log file (errors are also printed to stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format.
    #[arg(long = "log-format", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Verbose logging.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd for cgroups (not supported).
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Path to criu (accepted for compatibility; checkpointing is not supported).
    #[arg(long, global = true)]
    pub criu: Option<String>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `time level msg` lines.
    Text,
    /// runc/logrus JSON objects, one per line.
    Json,
}

/// Options shared by `create` and `run`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Bundle directory.
    #[arg(long, short = 'b', default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// File to write the init pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Use chroot instead of pivot_root.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a session keyring (accepted; no keyring is created).
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N extra descriptors (3..3+N) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: i32,
    /// Container id.
    pub id: String,
}

/// `exec` options.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Unix socket that receives the pty master.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Extra environment variables.
    #[arg(long, short = 'e')]
    pub env: Vec<String>,
    /// Allocate a terminal.
    #[arg(long, short = 't')]
    pub tty: bool,
    /// `uid[:gid]`.
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// Supplementary gids.
    #[arg(long = "additional-gids", short = 'g')]
    pub additional_gids: Vec<u32>,
    /// process.json describing the process.
    #[arg(long, short = 'p')]
    pub process: Option<PathBuf>,
    /// Do not wait for the process.
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// File to write the process pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Set no_new_privileges.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Extra capabilities.
    #[arg(long, short = 'c')]
    pub cap: Vec<String>,
    /// Pass N extra descriptors.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: i32,
    /// Accepted for compatibility.
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Accepted for compatibility.
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Container id.
    pub id: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Output format of `list` and `ps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// JSON.
    Json,
}

/// runc's verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container (init waits for `start`).
    Create(CreateArgs),
    /// Start a created container.
    Start {
        /// Container id.
        id: String,
    },
    /// Create and start a container, wait for it, delete it.
    Run {
        /// Create options.
        #[command(flatten)]
        create: CreateArgs,
        /// Do not wait for the container.
        #[arg(long, short = 'd')]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
    },
    /// Print a container's OCI state.
    State {
        /// Container id.
        id: String,
    },
    /// Send a signal to a container.
    Kill {
        /// Signal every process of the container.
        #[arg(long, short = 'a')]
        all: bool,
        /// Container id.
        id: String,
        /// Signal name or number.
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container.
    Delete {
        /// Kill a running container first.
        #[arg(long, short = 'f')]
        force: bool,
        /// Container id.
        id: String,
    },
    /// Run a process in a container.
    Exec(ExecArgs),
    /// List containers.
    List {
        /// Output format.
        #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Only ids.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// List a container's processes.
    Ps {
        /// Output format.
        #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Container id.
        id: String,
        /// Options for ps(1).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Freeze all processes of a container.
    Pause {
        /// Container id.
        id: String,
    },
    /// Thaw a paused container.
    Resume {
        /// Container id.
        id: String,
    },
    /// Change a container's resource limits.
    Update(UpdateArgs),
    /// Print container events; only `--stats` (one usage snapshot) is supported.
    Events {
        /// Print one stats snapshot and exit.
        #[arg(long)]
        stats: bool,
        /// Accepted for compatibility.
        #[arg(long, default_value = "5s")]
        interval: String,
        /// Container id.
        id: String,
    },
    /// Write a template config.json.
    Spec {
        /// Bundle directory.
        #[arg(long, short = 'b', default_value = ".")]
        bundle: PathBuf,
        /// Template for a rootless container.
        #[arg(long)]
        rootless: bool,
    },
    /// Print what this runtime supports.
    Features,
}

/// `update` options: a resources JSON file or individual limits.
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// JSON file with linux.resources ("-" for stdin).
    #[arg(long, short = 'r')]
    pub resources: Option<PathBuf>,
    /// Memory limit in bytes.
    #[arg(long)]
    pub memory: Option<i64>,
    /// Memory reservation in bytes.
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<i64>,
    /// Memory plus swap limit in bytes.
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<i64>,
    /// CPU shares.
    #[arg(long = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    /// CPU CFS quota in microseconds.
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    /// CPU CFS period in microseconds.
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPUs allowed.
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes allowed.
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Maximum number of tasks.
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// Container id.
    pub id: String,
}
