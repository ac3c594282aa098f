//! `worker dlq …`'s command line, parsed by clap: the subcommands, their arguments, and
//! the usage and help an operator sees (docs/dead-letters.md).

use super::DlqError;
use clap::{ArgGroup, Parser, Subcommand};
use std::ffi::OsString;

/// How many messages `list` shows unless told otherwise.
pub const DEFAULT_LIST_LIMIT: usize = 100;

/// One `worker dlq …` invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DlqCommand {
    List { limit: usize },
    Show { id: String },
    Replay(Selection),
    Purge { confirmed: bool },
}

/// Which messages `replay` republishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Every message with this id (copies of one command are replayed together).
    Id(String),
    All,
}

/// Lists, inspects, replays and purges the dead-letter queue, <AMQP_PREFIX>.dead-letter
/// (docs/dead-letters.md). Reads the services' environment (AMQP_URL, AMQP_PREFIX, …);
/// any error exits with status 1.
#[derive(Debug, Parser)]
#[command(
    name = "worker dlq",
    bin_name = "worker dlq",
    disable_help_subcommand = true,
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// One line per dead-lettered message, oldest failure first (the queue is left as it was)
    List {
        /// Show at most N messages
        #[arg(long, value_name = "N", default_value_t = DEFAULT_LIST_LIMIT, value_parser = positive)]
        limit: usize,
    },
    /// Everything about one message: summary, properties, headers and body
    Show {
        /// The id `list` shows
        #[arg(value_name = "MESSAGE-ID")]
        id: String,
    },
    /// Republish messages to their original route; each leaves the queue once the broker
    /// confirms it
    #[command(group(ArgGroup::new("which").required(true).args(["id", "all"])))]
    Replay {
        /// Every message with this id
        #[arg(value_name = "MESSAGE-ID")]
        id: Option<String>,
        /// Every message that was in the queue when the replay started
        #[arg(long)]
        all: bool,
    },
    /// Delete every dead-lettered message for good (refused without --yes)
    Purge {
        /// Yes, delete them all (run `worker dlq list` first)
        #[arg(long)]
        yes: bool,
    },
}

fn positive(n: &str) -> Result<usize, String> {
    match n.parse::<usize>() {
        Ok(limit) if limit > 0 => Ok(limit),
        _ => Err("a positive number".to_owned()),
    }
}

impl DlqCommand {
    /// Parses the arguments after `dlq`. `--help` and every mistake come back as
    /// [`DlqError::Usage`]; [`DlqCommand::parse_or_exit`] prints them.
    pub fn parse<I, S>(args: I) -> Result<Self, DlqError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let argv = std::iter::once(OsString::from("worker dlq"))
            .chain(args.into_iter().map(|a| OsString::from(a.as_ref())));
        let cli = Cli::try_parse_from(argv).map_err(|e| DlqError::Usage(Box::new(e)))?;
        Ok(match cli.command {
            Sub::List { limit } => Self::List { limit },
            Sub::Show { id } => Self::Show { id },
            // The group takes exactly one of the two: an id, or `--all`.
            Sub::Replay { id: Some(id), .. } => Self::Replay(Selection::Id(id)),
            Sub::Replay { id: None, .. } => Self::Replay(Selection::All),
            Sub::Purge { yes } => Self::Purge { confirmed: yes },
        })
    }

    /// As `main` runs it: a mistake prints its usage to stderr and exits with status 1;
    /// `--help` prints the help to stdout and exits with 0.
    pub fn parse_or_exit<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        match Self::parse(args) {
            Ok(cmd) => cmd,
            Err(DlqError::Usage(e)) => {
                let _ = e.print();
                std::process::exit(if e.use_stderr() { 1 } else { 0 })
            }
            Err(other) => {
                eprintln!("Error: {other}");
                std::process::exit(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn arguments_parse_into_subcommands() {
        let p = |args: &[&str]| DlqCommand::parse(args);
        assert_eq!(
            p(&["list"]).ok(),
            Some(DlqCommand::List {
                limit: DEFAULT_LIST_LIMIT
            })
        );
        assert_eq!(
            p(&["list", "--limit", "5"]).ok(),
            Some(DlqCommand::List { limit: 5 })
        );
        assert_eq!(
            p(&["list", "--limit=7"]).ok(),
            Some(DlqCommand::List { limit: 7 })
        );
        assert!(p(&["list", "--limit", "0"]).is_err());
        assert_eq!(
            p(&["show", "m-1"]).ok(),
            Some(DlqCommand::Show { id: "m-1".into() })
        );
        assert_eq!(
            p(&["replay", "--all"]).ok(),
            Some(DlqCommand::Replay(Selection::All))
        );
        assert_eq!(
            p(&["replay", "m-1"]).ok(),
            Some(DlqCommand::Replay(Selection::Id("m-1".into())))
        );
        assert_eq!(
            p(&["purge"]).ok(),
            Some(DlqCommand::Purge { confirmed: false })
        );
        assert_eq!(
            p(&["purge", "--yes"]).ok(),
            Some(DlqCommand::Purge { confirmed: true })
        );
        for bad in [
            &[][..],
            &["replay"][..],
            &["show"][..],
            &["purge", "-y"][..],
            &["drop"][..],
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn help_names_every_subcommand_and_a_mistake_names_the_usage() {
        let help = |args: &[&str]| match DlqCommand::parse(args) {
            Err(DlqError::Usage(e)) => (e.use_stderr(), e.to_string()),
            other => panic!("{other:?}"),
        };
        let (to_stderr, text) = help(&["--help"]);
        assert!(!to_stderr, "help goes to stdout");
        for sub in ["list", "show", "replay", "purge"] {
            assert!(text.contains(sub), "{text}");
        }
        let (to_stderr, text) = help(&["replay"]);
        assert!(to_stderr);
        assert!(text.contains("Usage: worker dlq replay"), "{text}");
        let (_, text) = help(&["list", "--limit", "0"]);
        assert!(text.contains("a positive number"), "{text}");
    }
}
