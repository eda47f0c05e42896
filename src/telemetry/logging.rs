//! The log: tracing's readable lines by default, or one JSON object per line
//! (`LOG_FORMAT=json`), filtered by `RUST_LOG`.

use std::fmt;
use std::str::FromStr;

use tracing_subscriber::EnvFilter;

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// tracing's readable lines: time, level, target, message, `key=value` fields.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `message`, the event's fields at the
    /// top level, `target`, and the fields of the request's span when there is one.
    Json,
}

/// The reason a `LOG_FORMAT` was refused.
#[derive(Debug)]
pub struct BadLogFormat;

impl fmt::Display for BadLogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("text or json")
    }
}

impl FromStr for LogFormat {
    type Err = BadLogFormat;

    fn from_str(text: &str) -> Result<Self, BadLogFormat> {
        match text.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(BadLogFormat),
        }
    }
}

/// Where the log goes: the server logs to standard output; the other commands to standard
/// error, since their standard output is their answer (`users list --json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTo {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Installs the global subscriber: `RUST_LOG` as the filter (`default` when it is unset or
/// invalid), in `format`, to `to`.
pub fn init(format: LogFormat, default: &str, to: LogTo) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let terminal = match to {
        LogTo::Stdout => std::io::IsTerminal::is_terminal(&std::io::stdout()),
        LogTo::Stderr => std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    match (format, to) {
        (LogFormat::Text, LogTo::Stdout) => builder.with_ansi(terminal).init(),
        (LogFormat::Text, LogTo::Stderr) => builder.with_ansi(terminal).with_writer(std::io::stderr).init(),
        (LogFormat::Json, LogTo::Stdout) => json(builder).init(),
        (LogFormat::Json, LogTo::Stderr) => json(builder).with_writer(std::io::stderr).init(),
    }
}

type Builder = tracing_subscriber::fmt::SubscriberBuilder<
    tracing_subscriber::fmt::format::DefaultFields,
    tracing_subscriber::fmt::format::Format,
    EnvFilter,
>;

type JsonBuilder = tracing_subscriber::fmt::SubscriberBuilder<
    tracing_subscriber::fmt::format::JsonFields,
    tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Json>,
    EnvFilter,
>;

/// JSON lines: the event's fields beside `timestamp` and `level` (no field of ours is named
/// like those), the request's span, no list of every enclosing span.
fn json(builder: Builder) -> JsonBuilder {
    builder.json().flatten_event(true).with_current_span(true).with_span_list(false).with_ansi(false)
}
