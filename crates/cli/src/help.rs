//! Docker-style help, rendered from the clap definition: the docker CLI's usage template
//! (Usage, Aliases, Options, command lists) and pflag's flag table, so `wharf <cmd> --help`
//! reads like `docker <cmd> --help`. Clap's own help is never shown; clap only reports which
//! command the help was asked for (see [`mark_paths`]).

use std::path::PathBuf;

use clap::{Arg, ArgAction, Command, CommandFactory};

use crate::cli::Cli;

/// Docker's "category-top" commands, in docker's order: the root help lists them first.
const COMMON: &[&str] = &[
    "run", "exec", "ps", "build", "pull", "push", "images", "login", "logout", "search", "version",
    "info",
];

/// cobra's minimum width of a command name column.
const MIN_NAME_PADDING: usize = 11;

/// Makes clap's help for every command render as that command's path ("wharf container run"),
/// so a help request (`--help`, `help <cmd>`, a management command alone) names its command.
pub(crate) fn mark_paths(cmd: Command) -> Command {
    fn mark(cmd: Command, path: String) -> Command {
        cmd.help_template(path.clone()).mut_subcommands(|sub| {
            let p = format!("{path} {}", sub.get_name());
            mark(sub, p)
        })
    }
    let name = cmd.get_name().to_string();
    mark(cmd, name)
}

/// The command path (without the program name) a clap help request was for.
pub(crate) fn requested_path(err: &clap::Error) -> Vec<String> {
    err.render()
        .to_string()
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// The CLI definition as help shows it: docker prints where the config and TLS files default to.
pub(crate) fn definition() -> Command {
    let Some(dir) = crate::config::config_dir(None) else {
        return Cli::command();
    };
    let certs = std::env::var_os("DOCKER_CERT_PATH")
        .filter(|d| !d.is_empty())
        .map_or_else(|| dir.clone(), PathBuf::from);
    let file = |name: &str| certs.join(name).display().to_string();
    Cli::command()
        .mut_arg("config", |a| a.default_value(dir.display().to_string()))
        .mut_arg("tlscacert", |a| a.default_value(file("ca.pem")))
        .mut_arg("tlscert", |a| a.default_value(file("cert.pem")))
        .mut_arg("tlskey", |a| a.default_value(file("key.pem")))
}

/// Width docker wraps flag descriptions to: the terminal on stdin, else 80 columns.
pub(crate) fn width() -> usize {
    crate::tty::size(0).map_or(80, |(_, cols)| usize::from(cols))
}

/// A help request for a command that does not exist; holds the words not found.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("unknown help topic: {0}")]
pub(crate) struct UnknownTopic(String);

/// Docker's help for the command at `path` below `root`, wrapped for a `width`-column terminal.
pub(crate) fn render(root: &Command, path: &[&str], width: usize) -> Result<String, UnknownTopic> {
    let mut cmd = root;
    for (i, name) in path.iter().enumerate() {
        cmd = cmd
            .find_subcommand(name)
            .ok_or_else(|| UnknownTopic(path[i..].join(" ")))?;
    }
    let full = std::iter::once(root.get_name())
        .chain(path.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let cols = width.saturating_sub(1);
    let mut out = format!(
        "Usage:  {}\n\n{}",
        usage(root, cmd, &full),
        description(cmd)
    );
    if let Some(aliases) = aliases(root, cmd) {
        out += &format!("\n\nAliases:\n  {aliases}");
    }
    let flags = flags(cmd);
    if !path.is_empty() && !flags.is_empty() {
        out += &format!("\n\nOptions:\n{}", flag_table(&flags, cols).trim_end());
    }
    let subs = subcommands(cmd);
    if path.is_empty() {
        let mut common: Vec<_> = subs.iter().filter(|s| is_common(s)).copied().collect();
        common.sort_by_key(|s| COMMON.iter().position(|c| *c == s.get_name()));
        out += &command_list("Common Commands", &common, cmd);
        let management: Vec<_> = subs
            .iter()
            .filter(|s| s.has_subcommands())
            .copied()
            .collect();
        out += &command_list("Management Commands", &management, cmd);
    }
    let plain: Vec<_> = subs
        .iter()
        .filter(|s| !(s.has_subcommands() || (path.is_empty() && is_common(s))))
        .copied()
        .collect();
    out += &command_list("Commands", &plain, cmd);
    if path.is_empty() && !flags.is_empty() {
        out += &format!(
            "\n\nGlobal Options:\n{}",
            flag_table(&flags, cols).trim_end()
        );
    }
    if cmd.has_subcommands() {
        out += &format!("\n\nRun '{full} COMMAND --help' for more information on a command.");
    }
    out.push('\n');
    Ok(out)
}

fn is_common(cmd: &Command) -> bool {
    !cmd.has_subcommands() && COMMON.contains(&cmd.get_name())
}

/// Visible subcommands in cobra's (alphabetical) order, without clap's `help`.
fn subcommands(cmd: &Command) -> Vec<&Command> {
    let mut subs: Vec<_> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .collect();
    subs.sort_by_key(|s| s.get_name());
    subs
}

fn command_list(title: &str, cmds: &[&Command], parent: &Command) -> String {
    if cmds.is_empty() {
        return String::new();
    }
    let pad = parent
        .get_subcommands()
        .map(|s| s.get_name().len())
        .fold(MIN_NAME_PADDING, usize::max);
    let mut out = format!("\n\n{title}:");
    for c in cmds {
        let about = c.get_about().map(|a| a.to_string()).unwrap_or_default();
        out += &format!("\n  {:<pad$} {about}", c.get_name());
    }
    out
}

/// The usage line after "Usage:  ": docker's `Use` strings, derived from the positionals unless
/// the command overrides them. Overrides are whole commands ("wharf container inspect ..."), as
/// clap's errors print them; the words up to the command's name give way to the path asked for.
fn usage(root: &Command, cmd: &Command, full: &str) -> String {
    let options = if flags(cmd).is_empty() {
        ""
    } else {
        " [OPTIONS]"
    };
    if cmd.has_subcommands() {
        return format!("{full}{options} COMMAND");
    }
    if let Some(u) = cmd.get_overridden_usage() {
        let u = u.to_string();
        let own = format!(" {} ", cmd.get_name());
        let rest = u
            .strip_prefix(root.get_name())
            .and_then(|r| r.find(&own).map(|i| &r[i + own.len()..]));
        return format!("{full} {}", rest.unwrap_or(&u));
    }
    let mut line = format!("{full}{options}");
    for p in cmd.get_positionals().filter(|p| !p.is_hide_set()) {
        let name = p
            .get_value_names()
            .and_then(|v| v.first())
            .map_or_else(|| p.get_id().as_str().to_uppercase(), |n| n.to_string());
        let many = matches!(p.get_action(), ArgAction::Append)
            || p.get_num_args().is_some_and(|n| n.max_values() > 1);
        let part = match (name.as_str(), p.is_required_set(), many) {
            ("COMMAND", true, _) => "COMMAND [ARG...]".to_string(),
            ("COMMAND", false, _) => "[COMMAND] [ARG...]".to_string(),
            (_, true, true) => format!("{name} [{name}...]"),
            (_, true, false) => name,
            (_, false, true) => format!("[{name}...]"),
            (_, false, false) => format!("[{name}]"),
        };
        line = format!("{line} {part}");
    }
    line
}

fn description(cmd: &Command) -> String {
    cmd.get_long_about()
        .or(cmd.get_about())
        .map(|a| a.to_string().trim().to_string())
        .unwrap_or_default()
}

/// Docker lists every spelling of a command: the management form and its aliases first, then
/// the top-level shortcut. Two clap commands are one docker command when they have the same
/// description and the same arguments.
fn aliases(root: &Command, cmd: &Command) -> Option<String> {
    if cmd.has_subcommands() {
        return None;
    }
    let name = root.get_name();
    let mut forms = Vec::new();
    let mut add = |prefix: String, c: &Command| {
        if same_command(c, cmd) {
            forms.push(format!("{prefix}{}", c.get_name()));
            forms.extend(c.get_visible_aliases().map(|a| format!("{prefix}{a}")));
        }
    };
    for group in root.get_subcommands().filter(|g| g.has_subcommands()) {
        for c in group.get_subcommands() {
            add(format!("{name} {} ", group.get_name()), c);
        }
    }
    for c in root.get_subcommands().filter(|c| !c.has_subcommands()) {
        add(format!("{name} "), c);
    }
    (forms.len() > 1).then(|| forms.join(", "))
}

fn same_command(a: &Command, b: &Command) -> bool {
    let about = |c: &Command| c.get_about().map(|s| s.to_string());
    !a.has_subcommands()
        && about(a) == about(b)
        && a.get_arguments()
            .map(Arg::get_id)
            .eq(b.get_arguments().map(Arg::get_id))
}

/// One row of the flag table before alignment: "  -a, --all" plus docker's type word, and the
/// description with any "(default x)" suffix.
#[derive(Debug, PartialEq)]
struct Flag {
    spec: String,
    usage: String,
}

/// The visible flags, sorted by long name as pflag lists them.
fn flags(cmd: &Command) -> Vec<Flag> {
    let mut args: Vec<&Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_positional() && !a.is_hide_set() && !is_generated_help(a))
        .collect();
    args.sort_by_key(|a| a.get_long().unwrap_or_default());
    args.into_iter().map(flag).collect()
}

/// Docker hides its -h/--help; a command's own long-only `--help` (run and create, where -h is
/// the hostname) is listed.
fn is_generated_help(a: &Arg) -> bool {
    matches!(
        a.get_action(),
        ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong
    ) && a.get_short() == Some('h')
}

fn flag(a: &Arg) -> Flag {
    let long = a.get_long().unwrap_or_default();
    let mut spec = match a.get_short() {
        Some(s) => format!("  -{s}, --{long}"),
        None => format!("      --{long}"),
    };
    // Docker's flags carry their Go type as the value word; booleans show none.
    let word = a
        .get_action()
        .takes_values()
        .then(|| {
            a.get_value_names()
                .and_then(|v| v.first())
                .map_or("string", |n| n.as_str())
        })
        .filter(|w| *w != "bool");
    if let Some(w) = word {
        spec = format!("{spec} {w}");
    }
    let mut usage = a
        .get_long_help()
        .or(a.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default();
    if let Some(d) = a.get_default_values().first() {
        let d = d.to_string_lossy();
        // pflag omits zero defaults and quotes only strings (Go's %q, which Debug matches for
        // the ASCII defaults we have).
        match word {
            Some("string") if !d.is_empty() => usage += &format!(" (default {d:?})"),
            Some("string") => {}
            None if d == "false" => {}
            _ if d == "0" => {}
            _ => usage += &format!(" (default {d})"),
        }
    }
    Flag { spec, usage }
}

/// pflag's FlagUsagesWrapped: specs padded to one column, descriptions wrapped to `cols`.
fn flag_table(flags: &[Flag], cols: usize) -> String {
    let max = flags.iter().map(|f| f.spec.len()).max().unwrap_or(0);
    let mut out = String::new();
    for f in flags {
        let pad = " ".repeat(max - f.spec.len() + 2);
        out += &format!("{}{pad} {}\n", f.spec, wrap(max + 3, cols, &f.usage));
    }
    out
}

/// pflag's `wrap`: wraps `s` to `cols` columns with every line after the first indented by
/// `indent`; too narrow a column moves the text to its own block at column 16, or gives up.
fn wrap(indent: usize, cols: usize, s: &str) -> String {
    let nl = |i: usize| format!("\n{}", " ".repeat(i));
    if cols == 0 {
        return s.replace('\n', &nl(indent));
    }
    let (mut indent, mut room) = (indent, cols as isize - indent as isize);
    let mut out = String::new();
    if room < 24 {
        indent = 16;
        room = cols as isize - 16;
        out += &nl(indent);
    }
    if room < 24 {
        return s.replace('\n', &out);
    }
    // Let the last line run up to `SLOP` over rather than leave a short orphan word.
    const SLOP: usize = 5;
    let room = room as usize - SLOP;
    let (first, mut rest) = wrap_line(room, SLOP, s);
    out += &first.replace('\n', &nl(indent));
    while !rest.is_empty() {
        let (line, r) = wrap_line(room, SLOP, rest);
        out += &nl(indent);
        out += &line.replace('\n', &nl(indent));
        rest = r;
    }
    out
}

/// pflag's `wrapN`: splits at the last blank within `room` bytes (or an earlier newline).
fn wrap_line(room: usize, slop: usize, s: &str) -> (&str, &str) {
    if room + slop > s.len() {
        return (s, "");
    }
    // Only ASCII bytes are searched for, so the split points are char boundaries.
    let head = &s.as_bytes()[..room];
    let blank = head.iter().rposition(|b| matches!(b, b' ' | b'\t' | b'\n'));
    let Some(w) = blank.filter(|w| *w > 0) else {
        return (s, "");
    };
    match head.iter().rposition(|b| *b == b'\n') {
        Some(n) if n > 0 && n < w => (&s[..n], &s[n + 1..]),
        _ => (&s[..w], &s[w + 1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Command {
        Command::new("wharf")
            .about("A demo")
            .arg(
                Arg::new("debug")
                    .short('D')
                    .long("debug")
                    .action(ArgAction::SetTrue),
            )
            .subcommand(
                Command::new("box").about("Manage boxes").subcommand(
                    Command::new("ls")
                        .about("List boxes")
                        .visible_alias("list")
                        .arg(
                            Arg::new("all")
                                .short('a')
                                .long("all")
                                .action(ArgAction::SetTrue)
                                .help("Show all"),
                        ),
                ),
            )
            .subcommand(
                Command::new("ls").about("List boxes").arg(
                    Arg::new("all")
                        .short('a')
                        .long("all")
                        .action(ArgAction::SetTrue)
                        .help("Show all"),
                ),
            )
            .subcommand(
                Command::new("run")
                    .about("Run a box")
                    .arg(
                        Arg::new("tail")
                            .short('n')
                            .long("tail")
                            .value_name("string")
                            .default_value("all")
                            .help("Lines to show"),
                    )
                    .arg(
                        Arg::new("last")
                            .long("last")
                            .value_name("int")
                            .default_value("-1")
                            .help("Last"),
                    )
                    .arg(
                        Arg::new("zero")
                            .long("zero")
                            .value_name("int")
                            .default_value("0")
                            .help("Zero"),
                    )
                    .arg(
                        Arg::new("proxy")
                            .long("proxy")
                            .value_name("bool")
                            .default_value("true")
                            .help("Proxy"),
                    )
                    .arg(Arg::new("image").value_name("IMAGE").required(true))
                    .arg(Arg::new("command").value_name("COMMAND").num_args(1..)),
            )
            .subcommand(
                Command::new("rm").about("Remove boxes").arg(
                    Arg::new("boxes")
                        .value_name("BOX")
                        .required(true)
                        .action(ArgAction::Append),
                ),
            )
    }

    #[test]
    fn wraps_like_pflag() {
        let text = "Show n last created containers (includes all states) (default -1)";
        assert_eq!(
            wrap(24, 79, text),
            "Show n last created containers (includes all\n                        states) (default -1)"
        );
        // Embedded newlines start a new indented line.
        assert_eq!(wrap(10, 79, "a:\nb"), "a:\n          b");
        // Too narrow: the text moves to a block at column 16.
        assert_eq!(wrap(40, 50, "short"), "\n                short");
        assert_eq!(wrap(4, 0, "a\nb"), "a\n    b");
        // A word longer than the room is not split.
        let long = "x".repeat(100);
        assert_eq!(wrap(10, 40, &long), long);
    }

    #[test]
    fn flag_rows_carry_type_words_and_defaults() {
        let root = demo();
        let run = root.find_subcommand("run").expect("run");
        let rows = flags(run);
        let specs: Vec<_> = rows
            .iter()
            .map(|f| (f.spec.as_str(), f.usage.as_str()))
            .collect();
        assert_eq!(
            specs,
            [
                ("      --last int", "Last (default -1)"),
                ("      --proxy", "Proxy (default true)"),
                ("  -n, --tail string", "Lines to show (default \"all\")"),
                ("      --zero int", "Zero"),
            ]
        );
        let table = flag_table(&rows, 79);
        assert!(
            table.starts_with("      --last int      Last (default -1)\n"),
            "{table}"
        );
    }

    #[test]
    fn leaf_help_has_usage_aliases_and_options() {
        let root = demo();
        let help = render(&root, &["box", "ls"], 80).expect("box ls");
        assert_eq!(
            help,
            "Usage:  wharf box ls [OPTIONS]\n\nList boxes\n\nAliases:\n  \
             wharf box ls, wharf box list, wharf ls\n\nOptions:\n  -a, --all   Show all\n"
        );
        let run = render(&root, &["run"], 80).expect("run");
        assert!(
            run.starts_with(
                "Usage:  wharf run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun a box\n\nOptions:\n"
            ),
            "{run}"
        );
        let rm = render(&root, &["rm"], 80).expect("rm");
        assert_eq!(rm, "Usage:  wharf rm BOX [BOX...]\n\nRemove boxes\n");
        assert_eq!(
            render(&root, &["box", "nope", "x"], 80),
            Err(UnknownTopic("nope x".into()))
        );
    }

    #[test]
    fn management_and_root_help_list_commands() {
        let root = demo();
        let group = render(&root, &["box"], 80).expect("box");
        assert_eq!(
            group,
            "Usage:  wharf box COMMAND\n\nManage boxes\n\nCommands:\n  ls          List boxes\n\n\
             Run 'wharf box COMMAND --help' for more information on a command.\n"
        );
        let top = render(&root, &[], 80).expect("root");
        assert_eq!(
            top,
            "Usage:  wharf [OPTIONS] COMMAND\n\nA demo\n\n\
             Common Commands:\n  run         Run a box\n\n\
             Management Commands:\n  box         Manage boxes\n\n\
             Commands:\n  ls          List boxes\n  rm          Remove boxes\n\n\
             Global Options:\n  -D, --debug\n\n\
             Run 'wharf COMMAND --help' for more information on a command.\n"
        );
    }

    #[test]
    fn help_requests_name_their_command() {
        let path = |args: &[&str]| {
            let err = mark_paths(Cli::command())
                .try_get_matches_from(args)
                .expect_err("help");
            (err.kind(), requested_path(&err))
        };
        use clap::error::ErrorKind;
        assert_eq!(
            path(&["wharf", "container", "ls", "--help"]),
            (
                ErrorKind::DisplayHelp,
                vec!["container".into(), "ls".into()]
            )
        );
        assert_eq!(
            path(&["wharf", "run", "--help"]),
            (ErrorKind::DisplayHelp, vec!["run".into()])
        );
        assert_eq!(
            path(&["wharf", "image"]),
            (
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand,
                vec!["image".into()]
            )
        );
    }

    #[test]
    fn real_definition_renders_every_command() {
        let cli = definition();
        let first = |p: &[&str]| {
            let help = render(&cli, p, 80).expect("command");
            help.lines().next().unwrap_or_default().to_string()
        };
        assert_eq!(
            first(&["container", "inspect"]),
            "Usage:  wharf container inspect [OPTIONS] CONTAINER [CONTAINER...]"
        );
        assert_eq!(
            first(&["container", "cp"]),
            "Usage:  wharf container cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-"
        );
        assert_eq!(first(&["top"]), "Usage:  wharf top CONTAINER [ps OPTIONS]");
        assert_eq!(
            first(&["exec"]),
            "Usage:  wharf exec [OPTIONS] CONTAINER COMMAND [ARG...]"
        );
        // Every flag that takes a value names docker's type for it, never clap's placeholder.
        fn walk(cmd: &Command, path: &str) {
            for a in cmd.get_arguments().filter(|a| !a.is_positional()) {
                let word = a.get_value_names().and_then(|v| v.first());
                let takes = a.get_action().takes_values();
                assert!(
                    !takes
                        || word.is_some_and(|w| w
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c == '-' || c.is_ascii_digit())),
                    "{path} --{:?}: {word:?}",
                    a.get_long()
                );
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        walk(&cli, "wharf");
        for sub in subcommands(&cli) {
            assert!(render(&cli, &[sub.get_name()], 80).is_ok());
        }
    }
}
