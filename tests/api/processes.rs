//! Server processes for tests that need real ones: started with a clean environment in an
//! empty directory, their log drained in the background, killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_oauth2-jwt-server");

/// A key every test instance shares, as instances behind one load balancer must.
pub const SHARED_SECRET_KEY: &str = "multi-instance-test-key-0123456789abcdef0123456789abcdef";

/// A running server binary.
pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:<port>`
    pub address: String,
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts the binary with only `vars` set (plus `BIND_ADDR=127.0.0.1:0` and
    /// `SHUTDOWN_DRAIN_SECS=0`, so that SIGTERM stops it at once, unless given) and waits until
    /// it listens.
    pub fn start(vars: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(BINARY);
        command
            .env_clear()
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("SHUTDOWN_DRAIN_SECS", "0")
            .envs(vars.iter().copied())
            .current_dir(dir.path());
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        // Owned from here on: a panic below kills the process on the way out.
        let mut server = Self { child, address: String::new(), log, _dir: dir };
        let started = Instant::now();
        server.address = loop {
            let text = server.log();
            if let Some(rest) = text.split("listening on http://").nth(1) {
                // The address ends where the line or, in JSON logs, the string does.
                let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || ".:[]".contains(c)));
                break format!("http://{}", &rest[..end.unwrap_or(rest.len())]);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("the server exited with {status}: {text}");
            }
            assert!(started.elapsed() < Duration::from_secs(20), "the server did not start: {text}");
            std::thread::sleep(Duration::from_millis(20));
        };
        server
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM (a graceful stop).
    pub fn terminate(&self) {
        signal(self.child.id(), "-TERM");
    }

    /// Sends SIGKILL (a crash).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn signal(pid: u32, which: &str) {
    Command::new("kill").args([which, &pid.to_string()]).status().unwrap();
}
