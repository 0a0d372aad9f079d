//! `wharf`: the docker-compatible command line for the Wharf engine.
#![deny(unsafe_code)]

mod cli;
mod commands;
mod config;
mod credentials;
mod format;
mod help;
mod template;
mod tty;

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches};
use wharf_client::{Client, Host, TlsOptions};

use cli::{
    Cli, Command, ContainerCommand as C, GlobalOpts, ImageCommand as I, SystemCommand as S,
    VolumeCommand as V,
};
use commands::{
    build, container, cp, image, network, registry, run, system, volume, Ctx, StatusError,
};

fn main() {
    let code = match real_main() {
        Ok(code) => code,
        Err(e) => report(&e),
    };
    std::process::exit(code);
}

/// Prints an error on one line (docker's wording) and picks the exit code.
fn report(e: &anyhow::Error) -> i32 {
    if let Some(s) = e.downcast_ref::<StatusError>() {
        if !s.message.is_empty() {
            eprintln!("{}", s.message);
        }
        return s.code;
    }
    if let Some(t) = e.downcast_ref::<template::TemplateError>() {
        eprintln!("{t}");
        return 1;
    }
    eprintln!("{e}");
    1
}

/// Builds the client from flags and the environment, as the docker CLI resolves them.
fn client(g: &GlobalOpts) -> anyhow::Result<Client> {
    if let Some(c) = g.context.as_deref().filter(|c| *c != "default") {
        return Err(StatusError::exit(
            1,
            format!("context \"{c}\" does not exist"),
        ));
    }
    let host = g
        .host
        .clone()
        .or_else(|| std::env::var("WHARF_HOST").ok().filter(|h| !h.is_empty()))
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| wharf_client::DEFAULT_HOST.to_string());
    let env_verify = std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty());
    let verify = g.tlsverify || env_verify;
    let mut tls = TlsOptions {
        enabled: g.tls || verify,
        verify,
        ca: g.tlscacert.as_ref().map(PathBuf::from),
        cert: g.tlscert.as_ref().map(PathBuf::from),
        key: g.tlskey.as_ref().map(PathBuf::from),
    };
    if tls.enabled {
        let dir = std::env::var_os("DOCKER_CERT_PATH")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| config::config_dir(g.config.as_deref()));
        if let Some(d) = dir {
            tls = tls.with_cert_dir(&d);
        }
    }
    let parsed = Host::parse(&host)
        .map_err(|e| StatusError::exit(1, e.to_string()))?
        .with_default_port(if tls.enabled { 2376 } else { 2375 });
    let mut c = Client::new(parsed, Some(&tls))?;
    if let Ok(v) = std::env::var("DOCKER_API_VERSION") {
        if !v.is_empty() {
            c.set_version(v);
        }
    }
    Ok(c)
}

fn real_main() -> anyhow::Result<i32> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let matches = match Cli::command().try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) => return parse_error(&e, &args),
    };
    let cli = Cli::from_arg_matches(&matches)?;
    if cli.global.version {
        commands::out(&format!("Wharf version {}\n", env!("CARGO_PKG_VERSION")));
        return Ok(0);
    }
    let Some(command) = cli.command else {
        return print_help(&[]);
    };
    if !matches!(
        cli.global.log_level.as_str(),
        "debug" | "info" | "warn" | "error" | "fatal"
    ) {
        return Err(StatusError::exit(
            1,
            format!("Unable to parse logging level: {}", cli.global.log_level),
        ));
    }
    if let Command::Help(a) = &command {
        return print_help(&a.command.iter().map(String::as_str).collect::<Vec<_>>());
    }
    if let Command::Completion(a) = &command {
        return completion(&a.shell);
    }
    let cfg_dir = config::config_dir(cli.global.config.as_deref());
    let config = config::load(cfg_dir.as_deref())?;
    let mut client = client(&cli.global)?;
    // Pinned versions (DOCKER_API_VERSION) skip the ping; version still reports a dead daemon.
    let ping_err = if client.version().is_none() {
        client.negotiate_version().err()
    } else {
        None
    };
    if cli.global.debug {
        eprintln!(
            "DEBU[0000] daemon {} API version {:?}",
            client.host(),
            client.version()
        );
    }
    let ctx = Ctx { client, config };
    if let Command::Version(a) = &command {
        return system::version(&ctx, a, ping_err.as_ref());
    }
    if let Some(e) = ping_err {
        return Err(anyhow::Error::new(e));
    }
    dispatch(&ctx, command)
}

/// Help requests print docker's layout; other parse errors exit as docker's do.
fn parse_error(e: &clap::Error, args: &[std::ffi::OsString]) -> anyhow::Result<i32> {
    use clap::error::ErrorKind;
    match e.kind() {
        // A management command alone (`wharf container`) prints its help, as docker does.
        ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // Only a help request pays for marking every command with its path.
            let marked = help::mark_paths(Cli::command())
                .try_get_matches_from(args)
                .err();
            let path = marked.map(|m| help::requested_path(&m)).unwrap_or_default();
            return print_help(&path.iter().map(String::as_str).collect::<Vec<_>>());
        }
        _ if !e.use_stderr() => {
            e.print()?;
            return Ok(0);
        }
        _ => {}
    }
    // Docker exits 125 when its own flags are wrong, 1 when arguments are missing.
    let _ = e.print();
    let missing = matches!(
        e.kind(),
        ErrorKind::MissingRequiredArgument | ErrorKind::MissingSubcommand
    );
    Ok(if missing { 1 } else { 125 })
}

fn print_help(path: &[&str]) -> anyhow::Result<i32> {
    let text = help::render(&help::definition(), path, help::width())
        .map_err(|e| StatusError::exit(1, e.to_string()))?;
    commands::out(&text);
    Ok(0)
}

fn dispatch(ctx: &Ctx, command: Command) -> anyhow::Result<i32> {
    use container::Kind;
    match command {
        Command::Run(a) | Command::Container(C::Run(a)) => run::run(ctx, &a),
        Command::Create(a) | Command::Container(C::Create(a)) => run::create(ctx, &a),
        Command::Exec(a) | Command::Container(C::Exec(a)) => run::exec(ctx, &a),
        Command::Start(a) | Command::Container(C::Start(a)) => run::start_cmd(ctx, &a),
        Command::Attach(a) | Command::Container(C::Attach(a)) => run::attach(ctx, &a),
        Command::Ps(a) | Command::Container(C::Ls(a)) => container::ps(ctx, &a),
        Command::Inspect(a) => container::inspect(ctx, &a, Kind::Any),
        Command::Container(C::Inspect(a)) => container::inspect(ctx, &a, Kind::Container),
        Command::Image(I::Inspect(a)) => container::inspect(ctx, &a, Kind::Image),
        Command::Logs(a) | Command::Container(C::Logs(a)) => container::logs(ctx, &a),
        Command::Stop(a) | Command::Container(C::Stop(a)) => container::stop(ctx, &a, "stop"),
        Command::Restart(a) | Command::Container(C::Restart(a)) => {
            container::stop(ctx, &a, "restart")
        }
        Command::Kill(a) | Command::Container(C::Kill(a)) => container::kill(ctx, &a),
        Command::Rm(a) | Command::Container(C::Rm(a)) => container::rm(ctx, &a),
        Command::Pause(a) | Command::Container(C::Pause(a)) => {
            container::simple_post(ctx, &a.containers, "pause")
        }
        Command::Unpause(a) | Command::Container(C::Unpause(a)) => {
            container::simple_post(ctx, &a.containers, "unpause")
        }
        Command::Wait(a) | Command::Container(C::Wait(a)) => container::wait(ctx, &a),
        Command::Rename(a) | Command::Container(C::Rename(a)) => container::rename(ctx, &a),
        Command::Top(a) | Command::Container(C::Top(a)) => container::top(ctx, &a),
        Command::Port(a) | Command::Container(C::Port(a)) => container::port(ctx, &a),
        Command::Diff(a) | Command::Container(C::Diff(a)) => container::diff(ctx, &a),
        Command::Export(a) | Command::Container(C::Export(a)) => container::export(ctx, &a),
        Command::Commit(a) | Command::Container(C::Commit(a)) => container::commit(ctx, &a),
        Command::Update(a) | Command::Container(C::Update(a)) => container::update(ctx, &a),
        Command::Stats(a) | Command::Container(C::Stats(a)) => container::stats(ctx, &a),
        Command::Cp(a) | Command::Container(C::Cp(a)) => cp::cp(ctx, &a),
        Command::Container(C::Prune(a)) => container::prune(ctx, &a),
        Command::Images(a) | Command::Image(I::Ls(a)) => image::images(ctx, &a),
        Command::Pull(a) | Command::Image(I::Pull(a)) => image::pull(ctx, &a),
        Command::Push(a) | Command::Image(I::Push(a)) => image::push(ctx, &a),
        Command::Login(a) => registry::login(ctx, &a),
        Command::Logout(a) => registry::logout(ctx, &a),
        Command::Manifest(cli::ManifestCommand::Inspect(a)) => registry::manifest_inspect(ctx, &a),
        Command::Rmi(a) | Command::Image(I::Rm(a)) => image::rmi(ctx, &a),
        Command::Tag(a) | Command::Image(I::Tag(a)) => image::tag(ctx, &a),
        Command::Save(a) | Command::Image(I::Save(a)) => image::save(ctx, &a),
        Command::Load(a) | Command::Image(I::Load(a)) => image::load(ctx, &a),
        Command::Import(a) | Command::Image(I::Import(a)) => image::import(ctx, &a),
        Command::Build(a) | Command::Image(I::Build(a)) => build::build(ctx, &a),
        Command::History(a) | Command::Image(I::History(a)) => image::history(ctx, &a),
        Command::Image(I::Prune(a)) => image::prune(ctx, &a),
        Command::Volume(V::Create(a)) => volume::create(ctx, &a),
        Command::Volume(V::Inspect(a)) => volume::inspect(ctx, &a),
        Command::Volume(V::Ls(a)) => volume::ls(ctx, &a),
        Command::Volume(V::Prune(a)) => volume::prune(ctx, &a),
        Command::Volume(V::Rm(a)) => volume::rm(ctx, &a),
        Command::Info(a) | Command::System(S::Info(a)) => system::info(ctx, &a),
        Command::System(S::Df(a)) => system::df(ctx, &a),
        Command::Network(n) => network::run(ctx, n),
        Command::System(S::Prune(a)) => system::prune(ctx, &a),
        Command::Events(a) | Command::System(S::Events(a)) => system::events(ctx, &a),
        Command::Version(_) | Command::Completion(_) | Command::Help(_) => Ok(0),
    }
}

/// Shell completions or a man page, generated from the clap definition.
fn completion(shell: &str) -> anyhow::Result<i32> {
    let mut cmd = Cli::command();
    // Rendered to memory first: `wharf completion bash | head` must not panic on a closed pipe.
    let mut buf = Vec::new();
    let sh = match shell {
        "bash" => clap_complete::Shell::Bash,
        "zsh" => clap_complete::Shell::Zsh,
        "fish" => clap_complete::Shell::Fish,
        "man" => {
            clap_mangen::Man::new(cmd).render(&mut buf)?;
            commands::out(&String::from_utf8_lossy(&buf));
            return Ok(0);
        }
        other => {
            return Err(StatusError::exit(
                1,
                format!("unsupported shell \"{other}\": use bash, zsh, fish or man"),
            ))
        }
    };
    clap_complete::generate(sh, &mut cmd, "wharf", &mut buf);
    commands::out(&String::from_utf8_lossy(&buf));
    Ok(0)
}
