//! The command-line definition (clap derive), kept apart from behaviour. Command and flag names
//! follow the docker CLI so `alias docker=wharf` keeps scripts working.
//!
//! Help text is docker's, word for word (help.rs lays it out as docker does): each value flag's
//! `value_name` is docker's type word, and a default docker prints but clap does not hold (Go's
//! "[]", "map[]", "0s", ...) is written into the description.

use clap::{Args, Parser, Subcommand};

/// docker's `--format` help for commands with a table view (multi-line, as docker prints it).
const FORMAT_TABLE_HELP: &str = "Format output using a custom template:
'table':            Print output in table format with column headers (default)
'table TEMPLATE':   Print output in table format using the given Go template
'json':             Print in JSON format
'TEMPLATE':         Print output using the given Go template.
Refer to https://docs.docker.com/go/formatting/ for more information about formatting output with templates";

/// docker's `--format` help for commands without a table view.
const FORMAT_JSON_HELP: &str = "Format output using a custom template:
'json':             Print in JSON format
'TEMPLATE':         Print output using the given Go template.
Refer to https://docs.docker.com/go/formatting/ for more information about formatting output with templates";

/// `cp`'s description; the variant's doc comment would reset a long_about set on `CpArgs`.
const CP_LONG_ABOUT: &str = "Copy files/folders between a container and the local filesystem

Use '-' as the source to read a tar archive from stdin
and extract it to a directory destination in a container.
Use '-' as the destination to stream a tar archive of a
container source to stdout.";

/// A self-sufficient runtime for containers
#[derive(Debug, Parser)]
#[command(
    name = "wharf",
    version,
    disable_version_flag = true,
    disable_help_subcommand = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct GlobalOpts {
    /// Location of client config files
    #[arg(long, value_name = "string")]
    pub config: Option<String>,
    /// Name of the context to use to connect to the daemon (only "default" exists)
    #[arg(short = 'c', long, value_name = "string")]
    pub context: Option<String>,
    /// Enable debug mode
    #[arg(short = 'D', long)]
    pub debug: bool,
    /// Daemon socket to connect to
    #[arg(short = 'H', long, value_name = "list")]
    pub host: Option<String>,
    /// Set the logging level ("debug", "info", "warn", "error", "fatal")
    #[arg(
        short = 'l',
        long = "log-level",
        value_name = "string",
        default_value = "info"
    )]
    pub log_level: String,
    /// Use TLS; implied by --tlsverify
    #[arg(long)]
    pub tls: bool,
    /// Trust certs signed only by this CA
    #[arg(long, value_name = "string")]
    pub tlscacert: Option<String>,
    /// Path to TLS certificate file
    #[arg(long, value_name = "string")]
    pub tlscert: Option<String>,
    /// Path to TLS key file
    #[arg(long, value_name = "string")]
    pub tlskey: Option<String>,
    /// Use TLS and verify the remote
    #[arg(long)]
    pub tlsverify: bool,
    /// Print version information and quit
    #[arg(short = 'v', long = "version")]
    pub version: bool,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and run a new container from an image
    Run(RunArgs),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// List containers
    Ps(PsArgs),
    /// List images
    Images(ImagesArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Authenticate to a registry
    #[command(
        long_about = "Authenticate to a registry.\nDefaults to Docker Hub if no server is specified."
    )]
    Login(LoginArgs),
    /// Log out from a registry
    #[command(
        long_about = "Log out from a registry.\nIf no server is specified, the default is defined by the daemon."
    )]
    Logout(LogoutArgs),
    /// Show the Docker version information
    Version(FormatOnly),
    /// Display system-wide information
    Info(FormatOnly),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage Docker image manifests and manifest lists
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Manage networks
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Manage Docker
    #[command(subcommand)]
    System(SystemCommand),
    /// Manage volumes
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Build an image from a Dockerfile
    Build(BuildArgs),
    /// Create a new image from a container's changes
    Commit(CommitArgs),
    /// Copy files/folders between a container and the local filesystem
    #[command(long_about = CP_LONG_ABOUT)]
    Cp(CpArgs),
    /// Create a new container
    Create(CreateArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(OneContainer),
    /// Get real time events from the server
    Events(EventsArgs),
    /// Export a container's filesystem as a tar archive
    Export(ExportArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Return low-level information on Docker objects
    Inspect(InspectArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Pause all processes within one or more containers
    Pause(Containers),
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Remove one or more containers
    Rm(RmArgs),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Unpause all processes within one or more containers
    Unpause(Containers),
    /// Update configuration of one or more containers
    Update(UpdateArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(Containers),
    /// Generate shell completion scripts (bash, zsh, fish) or man pages
    Completion(CompletionArgs),
    /// Help about the command
    // Ours rather than clap's: docker has it at the root only and names an unknown topic.
    #[command(hide = true)]
    Help(HelpArgs),
}

/// `wharf container ...`
#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Create a new image from a container's changes
    Commit(CommitArgs),
    /// Copy files/folders between a container and the local filesystem
    #[command(long_about = CP_LONG_ABOUT)]
    Cp(CpArgs),
    /// Create a new container
    Create(CreateArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(OneContainer),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Export a container's filesystem as a tar archive
    Export(ExportArgs),
    /// Display detailed information on one or more containers
    #[command(
        override_usage = "wharf container inspect [OPTIONS] CONTAINER [CONTAINER...]",
        mut_arg("size", |a| a.help("Display total file sizes"))
    )]
    Inspect(InspectArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// List containers
    #[command(visible_aliases = ["list", "ps"])]
    Ls(PsArgs),
    /// Pause all processes within one or more containers
    Pause(Containers),
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
    /// Remove all stopped containers
    Prune(PruneArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Remove one or more containers
    #[command(visible_aliases = ["remove"])]
    Rm(RmArgs),
    /// Create and run a new container from an image
    Run(RunArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Unpause all processes within one or more containers
    Unpause(Containers),
    /// Update configuration of one or more containers
    Update(UpdateArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(Containers),
}

/// `wharf image ...`
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build an image from a Dockerfile
    Build(BuildArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Display detailed information on one or more images
    #[command(override_usage = "wharf image inspect [OPTIONS] IMAGE [IMAGE...]")]
    Inspect(InspectArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// List images
    #[command(visible_aliases = ["list"])]
    Ls(ImagesArgs),
    /// Remove unused images
    Prune(ImagePruneArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Remove one or more images
    #[command(visible_aliases = ["remove"])]
    Rm(RmiArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
}

/// `wharf manifest ...`
#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Display an image manifest, or manifest list
    #[command(override_usage = "wharf manifest inspect [OPTIONS] [MANIFEST_LIST] MANIFEST")]
    Inspect(ManifestInspectArgs),
}

/// `manifest inspect`
#[derive(Debug, Args)]
pub struct ManifestInspectArgs {
    /// Allow communication with an insecure registry
    #[arg(long)]
    pub insecure: bool,
    /// Output additional info including layers and platform
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// A local manifest list (not supported) and the image reference
    #[arg(value_name = "MANIFEST", num_args = 1..=2, required = true)]
    pub refs: Vec<String>,
}

/// `wharf volume ...`
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create(VolumeCreateArgs),
    /// Display detailed information on one or more volumes
    Inspect(VolumeInspectArgs),
    /// List volumes
    #[command(visible_aliases = ["list"])]
    Ls(VolumeLsArgs),
    /// Remove unused local volumes
    Prune(VolumePruneArgs),
    /// Remove one or more volumes
    #[command(visible_aliases = ["remove"])]
    Rm(VolumeRmArgs),
}

/// `volume create`
#[derive(Debug, Args)]
pub struct VolumeCreateArgs {
    /// Specify volume driver name
    #[arg(short = 'd', long, default_value = "local", value_name = "string")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(long, value_name = "list")]
    pub label: Vec<String>,
    /// Specify volume name
    #[arg(long, value_name = "string", hide = true)]
    pub name: Option<String>,
    /// Set driver specific options
    #[arg(short = 'o', long, value_name = "map")]
    pub opt: Vec<String>,
    /// The volume's name
    #[arg(value_name = "VOLUME")]
    pub volume: Option<String>,
}

/// `volume inspect`
#[derive(Debug, Args)]
pub struct VolumeInspectArgs {
    #[arg(short = 'f', long, value_name = "string", help = FORMAT_TABLE_HELP)]
    pub format: Option<String>,
    #[arg(value_name = "VOLUME", required = true)]
    pub volumes: Vec<String>,
}

/// `volume ls`
#[derive(Debug, Args)]
pub struct VolumeLsArgs {
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short = 'f', long, value_name = "filter")]
    pub filter: Vec<String>,
    #[arg(long, value_name = "string", help = FORMAT_TABLE_HELP)]
    pub format: Option<String>,
    /// Only display volume names
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// `volume rm`
#[derive(Debug, Args)]
pub struct VolumeRmArgs {
    /// Force the removal of one or more volumes
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(value_name = "VOLUME", required = true)]
    pub volumes: Vec<String>,
}

/// `volume prune`
#[derive(Debug, Args)]
pub struct VolumePruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long, value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// `wharf network ...`
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Connect a container to a network
    Connect(NetworkConnectArgs),
    /// Create a network
    Create(NetworkCreateArgs),
    /// Disconnect a container from a network
    Disconnect(NetworkDisconnectArgs),
    /// Display detailed information on one or more networks
    Inspect(NetworkInspectArgs),
    /// List networks
    #[command(visible_aliases = ["list"])]
    Ls(NetworkLsArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Remove one or more networks
    #[command(visible_aliases = ["remove"])]
    Rm(NetworkRmArgs),
}

/// `network create`
#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    /// Driver to manage the Network
    #[arg(short = 'd', long, value_name = "string", default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long, value_name = "strings")]
    pub subnet: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long, value_name = "strings")]
    pub gateway: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range", value_name = "strings")]
    pub ip_range: Vec<String>,
    /// Auxiliary IPv4 or IPv6 addresses used by Network driver
    #[arg(long = "aux-address", value_name = "map")]
    pub aux_address: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt", value_name = "map")]
    pub opt: Vec<String>,
    /// Set metadata on a network
    #[arg(long, value_name = "list")]
    pub label: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Enable manual container attachment
    #[arg(long)]
    pub attachable: bool,
    /// Enable or disable IPv6 address assignment
    #[arg(long)]
    pub ipv6: bool,
    /// The network name
    #[arg(value_name = "NETWORK")]
    pub name: String,
}

/// `network connect`
#[derive(Debug, Args)]
pub struct NetworkConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long, value_name = "strings")]
    pub alias: Vec<String>,
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long, value_name = "string")]
    pub ip: Option<String>,
    /// The network
    #[arg(value_name = "NETWORK")]
    pub network: String,
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `network disconnect`
#[derive(Debug, Args)]
pub struct NetworkDisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short = 'f', long)]
    pub force: bool,
    /// The network
    #[arg(value_name = "NETWORK")]
    pub network: String,
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `network inspect`
#[derive(Debug, Args)]
pub struct NetworkInspectArgs {
    #[arg(short = 'f', long, value_name = "string", help = FORMAT_JSON_HELP)]
    pub format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// The networks
    #[arg(value_name = "NETWORK", required = true)]
    pub names: Vec<String>,
}

/// `network ls`
#[derive(Debug, Args)]
pub struct NetworkLsArgs {
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short = 'f', long, value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only display network IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// `network rm`
#[derive(Debug, Args)]
pub struct NetworkRmArgs {
    /// Do not error if the network does not exist
    #[arg(short = 'f', long)]
    pub force: bool,
    /// The networks
    #[arg(value_name = "NETWORK", required = true)]
    pub names: Vec<String>,
}

/// `wharf system ...`
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show wharf disk usage
    Df(DfArgs),
    /// Get real time events from the server
    Events(EventsArgs),
    /// Display system-wide information
    Info(FormatOnly),
    /// Remove unused data
    Prune(SystemPruneArgs),
}

/// Flags only `run` has (it attaches; `create` does not). `--pull` is worded for `run` (and
/// `create`'s wording keeps docker's "|missing" typo).
#[derive(Debug, Args, Clone, Default)]
#[command(
    disable_help_flag = true,
    trailing_var_arg = true,
    next_display_order = None,
    mut_arg("pull", |a| a.help(r#"Pull image before running ("always", "missing", "never")"#))
)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "string")]
    pub detach_keys: Option<String>,
    /// Proxy received signals to the process
    #[arg(long = "sig-proxy", value_name = "bool", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    #[command(flatten)]
    pub opts: CreateArgs,
}

/// Flags of `create`, shared by `run`.
#[derive(Debug, Args, Clone, Default)]
#[command(disable_help_flag = true, trailing_var_arg = true, next_display_order = None)]
pub struct CreateArgs {
    /// Print usage
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host", value_name = "list")]
    pub add_host: Vec<String>,
    /// Add an annotation to the container (passed through to the OCI runtime) (default map[])
    #[arg(long, value_name = "map")]
    pub annotation: Vec<String>,
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long, value_name = "list")]
    pub attach: Vec<String>,
    #[command(flatten)]
    pub resources: ResourceArgs,
    /// Block IO weight (relative device weight) (default [])
    #[arg(long = "blkio-weight-device", value_name = "list")]
    pub blkio_weight_device: Vec<String>,
    /// Add Linux capabilities
    #[arg(long = "cap-add", value_name = "list")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop", value_name = "list")]
    pub cap_drop: Vec<String>,
    /// Optional parent cgroup for the container
    #[arg(long = "cgroup-parent", value_name = "string")]
    pub cgroup_parent: Option<String>,
    #[arg(
        long,
        value_name = "string",
        help = "Cgroup namespace to use (host|private)
'host':    Run the container in the Docker host's cgroup namespace
'private': Run the container in its own private cgroup namespace
'':        Use the cgroup namespace as configured by the
           default-cgroupns-mode option on the daemon (default)"
    )]
    pub cgroupns: Option<String>,
    /// Write the container ID to the file
    #[arg(long, value_name = "string")]
    pub cidfile: Option<String>,
    /// CPU count (Windows only; hidden, as docker hides it against a Linux daemon)
    #[arg(long = "cpu-count", value_name = "int", hide = true)]
    pub cpu_count: Option<i64>,
    /// CPU percent (Windows only)
    #[arg(long = "cpu-percent", value_name = "int", hide = true)]
    pub cpu_percent: Option<i64>,
    /// Add a host device to the container
    #[arg(long, value_name = "list")]
    pub device: Vec<String>,
    /// Add a rule to the cgroup allowed devices list
    #[arg(long = "device-cgroup-rule", value_name = "list")]
    pub device_cgroup_rule: Vec<String>,
    /// Limit read rate (bytes per second) from a device (default [])
    #[arg(long = "device-read-bps", value_name = "list")]
    pub device_read_bps: Vec<String>,
    /// Limit read rate (IO per second) from a device (default [])
    #[arg(long = "device-read-iops", value_name = "list")]
    pub device_read_iops: Vec<String>,
    /// Limit write rate (bytes per second) to a device (default [])
    #[arg(long = "device-write-bps", value_name = "list")]
    pub device_write_bps: Vec<String>,
    /// Limit write rate (IO per second) to a device (default [])
    #[arg(long = "device-write-iops", value_name = "list")]
    pub device_write_iops: Vec<String>,
    /// Skip image verification
    // Content trust is never enforced, as by docker without DOCKER_CONTENT_TRUST.
    #[arg(long = "disable-content-trust", value_name = "bool", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub disable_content_trust: bool,
    /// Set custom DNS servers
    #[arg(long, value_name = "list")]
    pub dns: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", value_name = "list")]
    pub dns_option: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search", value_name = "list")]
    pub dns_search: Vec<String>,
    /// Container NIS domain name
    #[arg(long, value_name = "string")]
    pub domainname: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long, value_name = "string")]
    pub entrypoint: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long, value_name = "list")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "list")]
    pub env_file: Vec<String>,
    /// Expose a port or a range of ports
    #[arg(long, value_name = "list")]
    pub expose: Vec<String>,
    /// GPU devices to add to the container ('all' to pass all GPUs)
    #[arg(long, value_name = "gpu-request")]
    pub gpus: Vec<String>,
    /// Add additional groups to join
    #[arg(long = "group-add", value_name = "list")]
    pub group_add: Vec<String>,
    /// Command to run to check health
    #[arg(long = "health-cmd", value_name = "string")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 0s)
    #[arg(long = "health-interval", value_name = "duration")]
    pub health_interval: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries", value_name = "int")]
    pub health_retries: Option<i64>,
    /// Time between running the check during the start period (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-interval", value_name = "duration")]
    pub health_start_interval: Option<String>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-period", value_name = "duration")]
    pub health_start_period: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 0s)
    #[arg(long = "health-timeout", value_name = "duration")]
    pub health_timeout: Option<String>,
    /// Container host name
    #[arg(short = 'h', long, value_name = "string")]
    pub hostname: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Maximum IO bandwidth limit for the system drive (Windows only)
    #[arg(long = "io-maxbandwidth", value_name = "bytes", hide = true)]
    pub io_maxbandwidth: Option<String>,
    /// Maximum IOps limit for the system drive (Windows only)
    #[arg(long = "io-maxiops", value_name = "uint", hide = true)]
    pub io_maxiops: Option<u64>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long, value_name = "string")]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long, value_name = "string")]
    pub ip6: Option<String>,
    /// IPC mode to use
    #[arg(long, value_name = "string")]
    pub ipc: Option<String>,
    /// Container isolation technology
    #[arg(long, value_name = "string")]
    pub isolation: Option<String>,
    /// Kernel memory limit
    // Ignored, as by docker's API since 1.42.
    #[arg(long = "kernel-memory", value_name = "bytes")]
    pub kernel_memory: Option<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long, value_name = "list")]
    pub label: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long = "label-file", value_name = "list")]
    pub label_file: Vec<String>,
    /// Add link to another container
    #[arg(long, value_name = "list")]
    pub link: Vec<String>,
    /// Container IPv4/IPv6 link-local addresses
    #[arg(long = "link-local-ip", value_name = "list")]
    pub link_local_ip: Vec<String>,
    /// Logging driver for the container
    #[arg(long = "log-driver", value_name = "string")]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt", value_name = "list")]
    pub log_opt: Vec<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address", value_name = "string")]
    pub mac_address: Option<String>,
    /// Tune container memory swappiness (0 to 100)
    #[arg(long = "memory-swappiness", value_name = "int", default_value_t = -1, allow_hyphen_values = true)]
    pub memory_swappiness: i64,
    /// Attach a filesystem mount to the container
    #[arg(long, value_name = "mount")]
    pub mount: Vec<String>,
    /// Assign a name to the container
    #[arg(long, value_name = "string")]
    pub name: Option<String>,
    /// Connect a container to a network
    #[arg(long, alias = "net", value_name = "network")]
    pub network: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", value_name = "list")]
    pub network_alias: Vec<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Disable OOM Killer
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(long = "oom-score-adj", value_name = "int", allow_hyphen_values = true)]
    pub oom_score_adj: Option<i64>,
    /// PID namespace to use
    #[arg(long, value_name = "string")]
    pub pid: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long, value_name = "list")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Pull image before creating ("always", "|missing", "never")
    #[arg(long, value_name = "string", default_value = "missing")]
    pub pull: String,
    /// Suppress the pull output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Restart policy to apply when a container exits
    #[arg(long, value_name = "string", default_value = "no")]
    pub restart: String,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long)]
    pub rm: bool,
    /// Runtime to use for this container
    #[arg(long, value_name = "string")]
    pub runtime: Option<String>,
    /// Security Options
    #[arg(long = "security-opt", value_name = "list")]
    pub security_opt: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size", value_name = "bytes")]
    pub shm_size: Option<String>,
    /// Signal to stop the container
    #[arg(long = "stop-signal", value_name = "string")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout", value_name = "int")]
    pub stop_timeout: Option<i64>,
    /// Storage driver options for the container
    #[arg(long = "storage-opt", value_name = "list")]
    pub storage_opt: Vec<String>,
    /// Sysctl options (default map[])
    #[arg(long, value_name = "map")]
    pub sysctl: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long, value_name = "list")]
    pub tmpfs: Vec<String>,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Ulimit options (default [])
    #[arg(long, value_name = "ulimit")]
    pub ulimit: Vec<String>,
    /// Bind mount Docker API socket and required auth
    #[arg(long = "use-api-socket")]
    pub use_api_socket: bool,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long, value_name = "string")]
    pub user: Option<String>,
    /// User namespace to use
    #[arg(long, value_name = "string")]
    pub userns: Option<String>,
    /// UTS namespace to use
    #[arg(long, value_name = "string")]
    pub uts: Option<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long, value_name = "list")]
    pub volume: Vec<String>,
    /// Optional volume driver for the container
    #[arg(long = "volume-driver", value_name = "string")]
    pub volume_driver: Option<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from", value_name = "list")]
    pub volumes_from: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long, value_name = "string")]
    pub workdir: Option<String>,
    /// The image to run
    #[arg(value_name = "IMAGE", required = true)]
    pub image: String,
    /// The command and its arguments
    #[arg(value_name = "COMMAND", allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// The cgroup resource flags `create`/`run` and `update` share.
#[derive(Debug, Args, Clone, Default)]
#[command(next_display_order = None)]
pub struct ResourceArgs {
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)
    #[arg(long = "blkio-weight", value_name = "uint16")]
    pub blkio_weight: Option<u16>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period", value_name = "int")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", value_name = "int", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// Limit CPU real-time period in microseconds
    #[arg(long = "cpu-rt-period", value_name = "int")]
    pub cpu_rt_period: Option<i64>,
    /// Limit CPU real-time runtime in microseconds
    #[arg(long = "cpu-rt-runtime", value_name = "int")]
    pub cpu_rt_runtime: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "int")]
    pub cpu_shares: Option<i64>,
    /// Number of CPUs
    #[arg(long, value_name = "decimal")]
    pub cpus: Option<f64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "string")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems", value_name = "string")]
    pub cpuset_mems: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long, value_name = "bytes")]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_name = "bytes")]
    pub memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "bytes", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", value_name = "int", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
}

/// `exec`
#[derive(Debug, Args)]
#[command(trailing_var_arg = true)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "string")]
    pub detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long, value_name = "list")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "list")]
    pub env_file: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long, value_name = "string")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long, value_name = "string")]
    pub workdir: Option<String>,
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// The command and its arguments
    #[arg(value_name = "COMMAND", required = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `ps` / `container ls`
#[derive(Debug, Args, Default)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long, value_name = "filter")]
    pub filter: Vec<String>,
    #[arg(long, value_name = "string", help = FORMAT_TABLE_HELP)]
    pub format: Option<String>,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long, value_name = "int", default_value_t = -1, allow_hyphen_values = true)]
    pub last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Display total file sizes
    #[arg(short = 's', long)]
    pub size: bool,
}

/// `images` / `image ls`
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long, value_name = "filter")]
    pub filter: Vec<String>,
    #[arg(long, value_name = "string", help = FORMAT_TABLE_HELP)]
    pub format: Option<String>,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Repository (and optional tag) to list
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// `pull`
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// The image
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub image: String,
}

/// `push`
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Push all tags of an image to the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// The image
    #[arg(value_name = "NAME[:TAG]")]
    pub image: String,
}

/// `login`
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Password or Personal Access Token (PAT)
    #[arg(short = 'p', long, value_name = "string")]
    pub password: Option<String>,
    /// Take the Password or Personal Access Token (PAT) from stdin
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// Username
    #[arg(short = 'u', long, value_name = "string")]
    pub username: Option<String>,
    /// The registry (Docker Hub when none)
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

/// `logout`
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry (Docker Hub when none)
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

/// Commands whose only flag is `--format` (`version`, `info`).
#[derive(Debug, Args)]
pub struct FormatOnly {
    #[arg(short = 'f', long, value_name = "string", help = FORMAT_JSON_HELP)]
    pub format: Option<String>,
}

/// `attach`
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "string")]
    pub detach_keys: Option<String>,
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", value_name = "bool", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `commit`
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long, value_name = "string")]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long, value_name = "list")]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long, value_name = "string")]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short = 'p', long, value_name = "bool", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub pause: bool,
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// The new image reference
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// `cp`
#[derive(Debug, Args)]
#[command(override_usage = "wharf cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-
\twharf cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH")]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Suppress progress output during copy. Progress output is automatically suppressed if no terminal is attached
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// CONTAINER:SRC_PATH or local SRC_PATH (- for a tar on stdin)
    #[arg(value_name = "SRC")]
    pub src: String,
    /// CONTAINER:DEST_PATH or local DEST_PATH (- for a tar on stdout)
    #[arg(value_name = "DEST")]
    pub dest: String,
}

/// Commands taking exactly one container.
#[derive(Debug, Args)]
pub struct OneContainer {
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// Commands taking one or more containers and nothing else.
#[derive(Debug, Args)]
pub struct Containers {
    /// The containers
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

/// `events`
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Filter output based on conditions provided
    #[arg(short = 'f', long, value_name = "filter")]
    pub filter: Vec<String>,
    #[arg(long, value_name = "string", help = FORMAT_JSON_HELP)]
    pub format: Option<String>,
    /// Show all events created since timestamp
    #[arg(long, value_name = "string")]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long, value_name = "string")]
    pub until: Option<String>,
}

/// `export`
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long, value_name = "string")]
    pub output: Option<String>,
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `history`
#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[arg(long, value_name = "string", help = FORMAT_TABLE_HELP)]
    pub format: Option<String>,
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, value_name = "bool", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub human: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// The image
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

/// `import`
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long, value_name = "list")]
    pub change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long, value_name = "string")]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    /// A tar file path, or - for STDIN
    #[arg(value_name = "file|URL|-")]
    pub source: String,
    /// The new image reference
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// `inspect`
#[derive(Debug, Args)]
pub struct InspectArgs {
    #[arg(short = 'f', long, value_name = "string", help = FORMAT_JSON_HELP)]
    pub format: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short = 's', long)]
    pub size: bool,
    /// Only inspect objects of the given type
    #[arg(long = "type", value_name = "string")]
    pub kind: Option<String>,
    /// The objects
    #[arg(value_name = "NAME|ID", required = true)]
    pub names: Vec<String>,
}

/// `kill`
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long, value_name = "string")]
    pub signal: Option<String>,
    /// The containers
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

/// `build`
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Add a custom host-to-IP mapping ("host:ip")
    #[arg(long = "add-host", value_name = "list")]
    pub add_host: Vec<String>,
    /// Set build-time variables
    #[arg(long = "build-arg", value_name = "list")]
    pub build_arg: Vec<String>,
    /// Name of the Dockerfile (Default is "PATH/Dockerfile")
    #[arg(short = 'f', long, value_name = "string")]
    pub file: Option<String>,
    /// Always remove intermediate containers
    #[arg(long = "force-rm")]
    pub force_rm: bool,
    /// Write the image ID to the file
    #[arg(long, value_name = "string")]
    pub iidfile: Option<String>,
    /// Set metadata for an image
    #[arg(long, value_name = "list")]
    pub label: Vec<String>,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long, value_name = "string", default_value = "default")]
    pub network: String,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Do not cache specified stages
    #[arg(long = "no-cache-filter", value_name = "list")]
    pub no_cache_filter: Vec<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    /// Secret to expose to the build (format: "id=mysecret[,src=/local/secret]" or
    /// "id=mysecret,env=VAR")
    #[arg(long, value_name = "list")]
    pub secret: Vec<String>,
    /// Set type of progress output ("auto", "plain", "tty", "quiet")
    #[arg(long, value_name = "string", default_value = "auto")]
    pub progress: String,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pub pull: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Remove intermediate containers after a successful build
    #[arg(long = "rm", value_name = "bool", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub rm: bool,
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short = 't', long, value_name = "list")]
    pub tag: Vec<String>,
    /// Set the target build stage to build.
    #[arg(long, value_name = "string")]
    pub target: Option<String>,
    /// The build context: a directory, a Git or HTTP(S) URL, or - for a Dockerfile on STDIN
    #[arg(value_name = "PATH | URL | -")]
    pub path: String,
}

/// `load`
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long, value_name = "string")]
    pub input: Option<String>,
    /// Suppress the load output
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// `logs`
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Show extra details provided to logs
    #[arg(long)]
    pub details: bool,
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long, value_name = "string")]
    pub since: Option<String>,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, value_name = "string", default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long, value_name = "string")]
    pub until: Option<String>,
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `port`
#[derive(Debug, Args)]
pub struct PortArgs {
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// PRIVATE_PORT[/PROTO]
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub port: Option<String>,
}

/// `container prune`
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long, value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// `image prune`: `container prune`'s flags and `--all`.
#[derive(Debug, Args)]
pub struct ImagePruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    #[command(flatten)]
    pub prune: PruneArgs,
}

/// `system prune`
#[derive(Debug, Args)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long, value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    pub volumes: bool,
}

/// `system df`
#[derive(Debug, Args)]
pub struct DfArgs {
    #[arg(long, value_name = "string", help = FORMAT_TABLE_HELP)]
    pub format: Option<String>,
    /// Show detailed information on space usage
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

/// `rename`
#[derive(Debug, Args)]
pub struct RenameArgs {
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// The new name
    #[arg(value_name = "NEW_NAME")]
    pub new_name: String,
}

/// `stop` / `restart`
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Signal to send to the container
    #[arg(short = 's', long, value_name = "string")]
    pub signal: Option<String>,
    /// Seconds to wait before killing the container
    #[arg(
        short = 't',
        long,
        value_name = "int",
        alias = "time",
        allow_hyphen_values = true
    )]
    pub timeout: Option<i64>,
    /// The containers
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

/// `rm`
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove the specified link
    #[arg(short = 'l', long)]
    pub link: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// The containers
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

/// `rmi`
#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long = "no-prune")]
    pub no_prune: bool,
    /// The images
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

/// `save`
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long, value_name = "string")]
    pub output: Option<String>,
    /// The images
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

/// `start`
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "string")]
    pub detach_keys: Option<String>,
    /// Attach container's STDIN
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// The containers
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

/// `stats`
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    #[arg(long, value_name = "string", help = FORMAT_TABLE_HELP)]
    pub format: Option<String>,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// The containers
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `tag`
#[derive(Debug, Args)]
pub struct TagArgs {
    /// SOURCE_IMAGE[:TAG]
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    /// TARGET_IMAGE[:TAG]
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

/// `top`
#[derive(Debug, Args)]
#[command(
    trailing_var_arg = true,
    override_usage = "wharf top CONTAINER [ps OPTIONS]"
)]
pub struct TopArgs {
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// ps options
    #[arg(value_name = "ps OPTIONS", allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// `update`: `run`'s resource flags, worded as docker's `update` words them.
#[derive(Debug, Args)]
#[command(
    mut_arg("cpu_rt_period", |a| a.help("Limit the CPU real-time period in microseconds")),
    mut_arg("cpu_rt_runtime", |a| a.help("Limit the CPU real-time runtime in microseconds")),
    mut_arg("memory_swap", |a| a.help("Swap limit equal to memory plus swap: -1 to enable unlimited swap"))
)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub resources: ResourceArgs,
    /// Restart policy to apply when a container exits
    #[arg(long, value_name = "string")]
    pub restart: Option<String>,
    /// The containers
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

/// `help`
#[derive(Debug, Args)]
pub struct HelpArgs {
    /// The command path to describe
    #[arg(value_name = "command")]
    pub command: Vec<String>,
}

/// `completion`
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// bash, zsh, fish, or "man" for a roff man page on stdout
    #[arg(value_name = "SHELL")]
    pub shell: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap()
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_flags_stop_at_the_image() {
        let cli = parse(&[
            "wharf",
            "run",
            "--rm",
            "-it",
            "-e",
            "A=1",
            "-h",
            "box",
            "busybox",
            "sh",
            "-c",
            "echo -n hi",
        ]);
        let Some(Command::Run(run)) = cli.command else {
            panic!("not run")
        };
        assert!(run.sig_proxy);
        let r = run.opts;
        assert!(r.rm && r.interactive && r.tty);
        assert_eq!(r.env, vec!["A=1"]);
        assert_eq!(r.hostname.as_deref(), Some("box"));
        assert_eq!(r.image, "busybox");
        assert_eq!(r.command, vec!["sh", "-c", "echo -n hi"]);
    }

    #[test]
    fn sig_proxy_takes_an_optional_bool() {
        let cli = parse(&["wharf", "run", "--sig-proxy=false", "busybox"]);
        let Some(Command::Run(r)) = cli.command else {
            panic!("not run")
        };
        assert!(!r.sig_proxy);
        assert!(Cli::try_parse_from(["wharf", "create", "-d", "busybox"]).is_err());
    }

    #[test]
    fn global_options_precede_the_command_and_management_aliases() {
        // Like docker: global flags go before the command, so `run -c` stays --cpu-shares.
        let cli = parse(&[
            "wharf",
            "-H",
            "unix:///x.sock",
            "container",
            "list",
            "-aq",
            "--filter",
            "status=exited",
        ]);
        assert_eq!(cli.global.host.as_deref(), Some("unix:///x.sock"));
        let Some(Command::Container(ContainerCommand::Ls(ps))) = cli.command else {
            panic!("not ls")
        };
        assert!(ps.all && ps.quiet);
        assert_eq!(ps.filter, vec!["status=exited"]);
    }

    #[test]
    fn exec_keeps_command_flags() {
        let cli = parse(&["wharf", "exec", "-i", "c1", "ls", "-la"]);
        let Some(Command::Exec(e)) = cli.command else {
            panic!("not exec")
        };
        assert_eq!(e.command, vec!["ls", "-la"]);
    }

    #[test]
    fn rejects_unknown_flags() {
        assert!(Cli::try_parse_from(["wharf", "ps", "--bogus"]).is_err());
        assert!(Cli::try_parse_from(["wharf", "run"]).is_err());
        assert!(Cli::try_parse_from(["wharf", "ps", "-H", "unix:///x"]).is_err());
    }
}
