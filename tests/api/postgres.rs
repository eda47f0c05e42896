//! `TestPostgres`: a throwaway PostgreSQL server from Debian's package (`apt-get install -y
//! postgresql`), started by the tests themselves with `initdb` and `pg_ctl` in a short directory
//! under `/tmp`. It listens on a unix socket in that directory and, with `start_with_tcp()`, also
//! on 127.0.0.1 at a free port; never anywhere else. Authentication is `trust`, user `postgres`,
//! durability off (`fsync`, `synchronous_commit`, `full_page_writes`): this is for tests only.
//!
//! Most tests share one server (`TestPostgres::shared()`, started on first use) and take a fresh
//! database each with `create_database()`. Tests that take the database away (`stop()`,
//! `start_again()`) start their own with `TestPostgres::start()`.
//!
//! Where PostgreSQL is not installed, `start()` and `shared()` return `None` after printing one
//! notice to the real stderr, and the test should return early, unless `POSTGRES_REQUIRED=1` (as
//! `.ci/run` sets it): then the missing server is a test failure.
//!
//! ```ignore
//! let Some(pg) = TestPostgres::shared() else { return }; // skipped: the notice is printed
//! let url = pg.create_database(); // postgres://postgres@%2Ftmp%2Fpgt-…:5432/test_3
//! assert_eq!(pg.psql(&url, "select 1").unwrap(), "1");
//! ```
//!
//! No leftovers: every server comes with a watchdog, a small `sh` in its own process group that
//! waits for end-of-file on a pipe whose only writer is the test process. That end closes when
//! the server is dropped or when the test process exits in any way (a panic, `exit`, SIGKILL),
//! and the watchdog then stops the server (`pg_ctl -m immediate`) and removes its directory.
//! Dropping a `TestPostgres` waits for its watchdog, so the processes and the directory are gone
//! when `drop` returns; the shared server, in a static and never dropped, goes when the test
//! process does.
//!
//! As root (CI), the server's programs run as the `postgres` user through `runuser`, since
//! `initdb` and `pg_ctl` refuse root; otherwise they run as the current user. `psql` runs as
//! the current user either way: `trust` lets it in as `postgres`.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Once, OnceLock};

/// Where Debian's `postgresql` package puts each major version: `<root>/<version>/bin`.
pub const INSTALL_ROOT: &str = "/usr/lib/postgresql";

/// The port in the socket's name (`.s.PGSQL.5432`) when the server has no TCP listener.
const SOCKET_ONLY_PORT: u16 = 5432;

/// How long `pg_ctl` may wait for a start or a stop, in seconds.
const PG_CTL_TIMEOUT: &str = "30";

/// A running (or deliberately stopped) PostgreSQL server in its own temporary directory.
pub struct TestPostgres {
    /// The `bin` directory of the PostgreSQL version in use.
    bin: PathBuf,
    /// `/tmp/pgt-<pid>-<n>`: the socket directory; the cluster is in `data/`, the log in `log`.
    dir: PathBuf,
    /// The TCP port, or the socket-only port that only names the socket file.
    port: u16,
    /// Whether the server also listens on 127.0.0.1:`port`.
    tcp: bool,
    /// Whether `initdb` and `pg_ctl` run as `postgres` through `runuser` (we are root).
    as_postgres: bool,
    /// Stops the server and removes `dir` when its stdin closes.
    watchdog: Child,
}

/// The notice for a missing PostgreSQL, or the `bin` directory of the newest version under
/// `root` that has `initdb`, `pg_ctl` and `psql`.
pub fn locate(root: &Path) -> Result<PathBuf, String> {
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name.split('.').map(|part| part.parse().ok()).collect::<Option<Vec<u32>>>()?;
            let bin = entry.path().join("bin");
            ["initdb", "pg_ctl", "psql"].iter().all(|p| bin.join(p).is_file()).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        format!(
            "PostgreSQL tests SKIPPED: {}/*/bin/initdb not found (apt-get install -y postgresql), or run .ci/run",
            root.display()
        )
    })
}

/// Whether `POSTGRES_REQUIRED` asks for a missing PostgreSQL to fail the tests (set, not "0").
fn required() -> bool {
    std::env::var_os("POSTGRES_REQUIRED").is_some_and(|v| !v.is_empty() && v != "0")
}

/// A missing PostgreSQL: a panic when `required`, otherwise the notice, once per test process,
/// straight to stderr, past the test harness's capture, so that it is seen.
pub fn skip(notice: &str, required: bool) {
    assert!(!required, "POSTGRES_REQUIRED is set but {notice}");
    static NOTICE: Once = Once::new();
    NOTICE.call_once(|| {
        let _ = writeln!(std::io::stderr(), "\n{notice}\n");
    });
}

/// The `bin` directory, or `None` after `skip`.
fn bin_dir() -> Option<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(|| locate(Path::new(INSTALL_ROOT))) {
        Ok(bin) => Some(bin.clone()),
        Err(notice) => {
            skip(notice, required());
            None
        }
    }
}

/// `runuser`, by its full path when there is one: root's PATH in CI may lack the sbin dirs.
fn runuser() -> &'static str {
    ["/usr/sbin/runuser", "/sbin/runuser"].into_iter().find(|p| Path::new(p).exists()).unwrap_or("runuser")
}

/// A new empty directory `/tmp/pgt-<pid>-<n>` (short: a socket path must fit in 107 bytes),
/// owned by `postgres` when we are root. Returns it and whether we are root.
fn make_dir() -> (PathBuf, bool) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    loop {
        let dir = PathBuf::from(format!(
            "/tmp/pgt-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            // Left by an earlier process with our pid whose cleanup is still running: skip it.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create {}: {e}", dir.display()),
        }
        let root = std::fs::metadata(&dir).expect("stat the new directory").uid() == 0;
        if root {
            let chown = Command::new("chown").arg("postgres:").arg(&dir).output().expect("chown runs");
            assert!(
                chown.status.success(),
                "chown postgres: {} failed (is there a postgres user?): {}",
                dir.display(),
                String::from_utf8_lossy(&chown.stderr)
            );
        }
        return (dir, root);
    }
}

/// A port on 127.0.0.1 that was free a moment ago (PostgreSQL refuses port 0).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

/// `/tmp/x` as a URL host: `%2Ftmp%2Fx` (libpq and sqlx read a host starting with `/` as a
/// socket directory).
fn encode_socket_dir(dir: &Path) -> String {
    let dir = dir.to_str().expect("a UTF-8 temp dir");
    assert!(
        dir.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b)),
        "unexpected characters in {dir}"
    );
    dir.replace('/', "%2F")
}

/// The output, or a panic naming `what` with the program's output.
fn succeed(what: &str, output: std::io::Result<Output>, context: impl FnOnce() -> String) -> Output {
    let output = output.unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        context()
    );
    output
}

impl TestPostgres {
    /// A fresh server in its own temporary directory, on a unix socket only; `None` (after the
    /// notice) when PostgreSQL is not installed.
    pub fn start() -> Option<Self> {
        Some(Self::start_in(bin_dir()?, false))
    }

    /// Like `start`, and also listening on 127.0.0.1 at a free port (`tcp_port()`); `url()` then
    /// names 127.0.0.1.
    pub fn start_with_tcp() -> Option<Self> {
        Some(Self::start_in(bin_dir()?, true))
    }

    /// One socket-only server for the whole test binary, started on first use; take a database
    /// of your own with `create_database()`. Never stop it: tests that do start their own.
    pub fn shared() -> Option<&'static Self> {
        static SHARED: OnceLock<Option<TestPostgres>> = OnceLock::new();
        SHARED.get_or_init(Self::start).as_ref()
    }

    /// A server from the binaries in `bin`.
    fn start_in(bin: PathBuf, tcp: bool) -> Self {
        let (dir, as_postgres) = make_dir();
        let watchdog = Self::watchdog(&bin, &dir, as_postgres);
        let port = if tcp { free_port() } else { SOCKET_ONLY_PORT };
        // From here on, a panic drops `pg`, whose watchdog cleans up.
        let mut pg = Self { bin, dir, port, tcp, as_postgres, watchdog };
        pg.init();
        for attempt in 1.. {
            pg.configure();
            let start =
                pg.pg_ctl().arg("-l").arg(pg.dir.join("log")).args(["-t", PG_CTL_TIMEOUT, "start"]).output();
            match start {
                Ok(output) if output.status.success() => break,
                // Someone took the free port between our look and the server's bind.
                _ if tcp && attempt < 5 && pg.log().contains("Address already in use") => {
                    pg.port = free_port()
                }
                _ => {
                    succeed("pg_ctl start", start, || pg.log_tail());
                }
            }
        }
        pg
    }

    /// The watchdog: waits for end-of-file on its stdin, whose writing end only this process
    /// holds (std opens it close-on-exec), then stops the server and removes `dir`. Its own
    /// process group keeps a Ctrl-C meant for the tests from killing it before it cleans up.
    fn watchdog(bin: &Path, dir: &Path, as_postgres: bool) -> Child {
        const SCRIPT: &str = r#"trap '' HUP INT
dir=$1; shift
read -r _ignored
"$@" -D "$dir/data" -m immediate -w -s stop >/dev/null 2>&1
rm -rf "$dir""#;
        let mut command = Command::new("sh");
        command.args(["-c", SCRIPT, "pg-watchdog"]).arg(dir);
        if as_postgres {
            command.args([runuser(), "-u", "postgres", "--"]);
        }
        command
            .arg(bin.join("pg_ctl"))
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start the watchdog (sh)")
    }

    /// `initdb` the cluster into `data/`: a copy of a template made once per test process
    /// (`cp -a`, about 0.15 s) rather than a fresh `initdb` (about 0.7 s) for each server.
    fn init(&self) {
        static TEMPLATE: OnceLock<TestPostgres> = OnceLock::new();
        let template = TEMPLATE.get_or_init(|| {
            // A directory like a server's, so that its watchdog removes it at exit.
            let (dir, as_postgres) = make_dir();
            let watchdog = Self::watchdog(&self.bin, &dir, as_postgres);
            let template = Self { bin: self.bin.clone(), dir, port: 0, tcp: false, as_postgres, watchdog };
            let initdb = template
                .server_command("initdb")
                .arg("-D")
                .arg(template.dir.join("data"))
                .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"])
                .output();
            succeed("initdb", initdb, String::new);
            template
        });
        let copy =
            Command::new("cp").arg("-a").arg(template.dir.join("data")).arg(self.dir.join("data")).output();
        succeed("cp -a of the initdb template", copy, String::new);
    }

    /// Writes the listening and durability settings into `postgresql.conf` (as the last lines,
    /// which win), so that `start_again` needs no options.
    fn configure(&self) {
        let listen = if self.tcp { "127.0.0.1" } else { "" };
        let settings = format!(
            "\n# TestPostgres\nlisten_addresses = '{listen}'\nport = {}\nunix_socket_directories = '{}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 400\n",
            self.port,
            self.dir.display()
        );
        let conf = self.dir.join("data/postgresql.conf");
        let base = std::fs::read_to_string(&conf).expect("read postgresql.conf");
        let base = base.split("\n# TestPostgres\n").next().unwrap();
        std::fs::write(&conf, format!("{base}{settings}")).expect("write postgresql.conf");
    }

    /// A server program from `bin`, run as `postgres` when we are root, in `dir`.
    fn server_command(&self, program: &str) -> Command {
        let mut command = if self.as_postgres {
            let mut command = Command::new(runuser());
            command.args(["-u", "postgres", "--"]).arg(self.bin.join(program));
            command
        } else {
            Command::new(self.bin.join(program))
        };
        command.current_dir(&self.dir).stdin(Stdio::null());
        command
    }

    /// `pg_ctl -D data -w -s`, to which the caller adds the action.
    fn pg_ctl(&self) -> Command {
        let mut command = self.server_command("pg_ctl");
        command.arg("-D").arg(self.dir.join("data")).args(["-w", "-s"]);
        command
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "\n--- {}/log (end) ---\n{}",
            self.dir.display(),
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }

    /// The socket directory (also the server's temporary directory).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The TCP port on 127.0.0.1, for a server from `start_with_tcp`.
    pub fn tcp_port(&self) -> Option<u16> {
        self.tcp.then_some(self.port)
    }

    /// The URL of `database`: through 127.0.0.1 for a server from `start_with_tcp`, otherwise
    /// through the socket (`socket_url`).
    pub fn url(&self, database: &str) -> String {
        match self.tcp_port() {
            Some(port) => format!("postgres://postgres@127.0.0.1:{port}/{database}"),
            None => self.socket_url(database),
        }
    }

    /// The URL of `database` through the unix socket: `postgres://postgres@%2Ftmp%2Fpgt-…:<port>/<database>`,
    /// understood by sqlx and libpq alike.
    pub fn socket_url(&self, database: &str) -> String {
        format!("postgres://postgres@{}:{}/{database}", encode_socket_dir(&self.dir), self.port)
    }

    /// Creates a database with a name unique in this test process, `test_<n>`, and returns its
    /// `url()`. About 50 ms.
    pub fn create_database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let name = format!("test_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        if let Err(e) = self.psql(&self.socket_url("postgres"), &format!("CREATE DATABASE {name}")) {
            panic!("CREATE DATABASE {name}: {e}{}", self.log_tail());
        }
        self.url(&name)
    }

    /// Runs `sql` with `psql` (no psqlrc, stop at the first error, unaligned tuples only) on
    /// `url`: its output, trimmed, or its error message.
    pub fn psql(&self, url: &str, sql: &str) -> Result<String, String> {
        let output = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
            .env("PGCONNECT_TIMEOUT", "5")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("psql: cannot run: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }

    /// Stops the server (`pg_ctl -m fast`: clients are disconnected) and waits until it is down.
    /// The data stays; `start_again` brings it back.
    pub fn stop(&self) {
        let stop = self.pg_ctl().args(["-m", "fast", "-t", PG_CTL_TIMEOUT, "stop"]).output();
        succeed("pg_ctl stop", stop, || self.log_tail());
    }

    /// Starts the stopped server again on the same data, socket and port, and waits until it
    /// accepts connections.
    pub fn start_again(&self) {
        let start =
            self.pg_ctl().arg("-l").arg(self.dir.join("log")).args(["-t", PG_CTL_TIMEOUT, "start"]).output();
        succeed("pg_ctl start (again)", start, || self.log_tail());
    }

    /// Whether the server is running (`pg_ctl status`).
    pub fn is_running(&self) -> bool {
        let status = self.pg_ctl().arg("status").stdout(Stdio::null()).stderr(Stdio::null()).status();
        status.expect("pg_ctl status runs").success()
    }

    /// The postmaster's process id while the server runs (the first line of `postmaster.pid`).
    pub fn postmaster_pid(&self) -> Option<u32> {
        let pidfile = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).ok()?;
        pidfile.lines().next()?.trim().parse().ok()
    }
}

impl Drop for TestPostgres {
    /// Closes the watchdog's stdin and waits for it: the server stopped (`-m immediate`) and its
    /// directory removed.
    fn drop(&mut self) {
        drop(self.watchdog.stdin.take());
        let _ = self.watchdog.wait();
    }
}
