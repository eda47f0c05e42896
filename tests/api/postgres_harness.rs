//! The `TestPostgres` harness itself: databases, stop and start again, the TCP variant, cleanup
//! on drop and when the test process is killed, and the notice for a missing PostgreSQL.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::postgres::{INSTALL_ROOT, TestPostgres, locate, skip};

/// Whether process `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !matches!(stat.rsplit(')').next().unwrap_or("").trim_start().chars().next(), Some('Z' | 'X'))
    })
}

/// Waits up to `limit` for `done`.
fn eventually(limit: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

#[test]
fn two_databases_answer_and_a_stopped_server_comes_back() {
    let Some(pg) = TestPostgres::start() else { return };
    let (a, b) = (pg.create_database(), pg.create_database());
    assert_ne!(a, b);
    assert!(pg.is_running());
    assert_eq!(pg.psql(&a, "select 1").unwrap(), "1");
    assert_eq!(pg.psql(&b, "select 2").unwrap(), "2");
    pg.psql(&a, "create table kept (n int); insert into kept values (7)").unwrap();
    assert!(pg.psql(&b, "select n from kept").is_err(), "each database is its own");

    pg.stop();
    assert!(!pg.is_running());
    assert_eq!(pg.postmaster_pid(), None);
    let refused = pg.psql(&a, "select 1").unwrap_err();
    assert!(refused.contains(&pg.socket_dir().display().to_string()), "{refused}");

    pg.start_again();
    assert!(pg.is_running());
    assert_eq!(pg.psql(&a, "select n from kept").unwrap(), "7", "the data survives");
    assert_eq!(pg.psql(&b, "select 1").unwrap(), "1");
}

#[test]
fn the_tcp_variant_answers_on_127_0_0_1() {
    let Some(pg) = TestPostgres::start_with_tcp() else { return };
    let port = pg.tcp_port().expect("a TCP port");
    let url = pg.create_database();
    assert!(url.starts_with(&format!("postgres://postgres@127.0.0.1:{port}/")), "{url}");
    assert_eq!(
        pg.psql(&url, "select host(inet_server_addr()), inet_server_port()").unwrap(),
        format!("127.0.0.1|{port}")
    );
    assert_eq!(pg.psql(&url, "show listen_addresses").unwrap(), "127.0.0.1");
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("a TCP listener on 127.0.0.1");
    let database = url.rsplit('/').next().unwrap();
    assert_eq!(pg.psql(&pg.socket_url(database), "select 1").unwrap(), "1", "the socket answers too");

    pg.stop();
    let refused = pg.psql(&url, "select 1").unwrap_err();
    assert!(refused.contains("127.0.0.1") && refused.contains(&port.to_string()), "{refused}");
    pg.start_again();
    assert_eq!(pg.tcp_port(), Some(port), "the same port");
    assert_eq!(pg.psql(&url, "select 1").unwrap(), "1");
}

#[test]
fn the_shared_server_is_socket_only_and_gives_each_test_its_own_database() {
    let Some(pg) = TestPostgres::shared() else { return };
    assert!(std::ptr::eq(pg, TestPostgres::shared().unwrap()), "one server");
    assert_eq!(pg.tcp_port(), None);
    let (a, b) = (pg.create_database(), pg.create_database());
    assert_ne!(a, b);
    assert_eq!(a, pg.socket_url(a.rsplit('/').next().unwrap()));
    assert_eq!(pg.psql(&a, "show listen_addresses").unwrap(), "", "no TCP listener");
    assert_eq!(pg.psql(&b, "select current_database()").unwrap(), b.rsplit('/').next().unwrap());
}

#[test]
fn a_dropped_server_leaves_no_process_or_directory() {
    let Some(pg) = TestPostgres::start() else { return };
    let dir = pg.socket_dir().to_owned();
    let pid = pg.postmaster_pid().expect("a running postmaster");
    assert!(alive(pid) && dir.exists());
    drop(pg);
    assert!(!dir.exists(), "{} is left", dir.display());
    assert!(eventually(Duration::from_secs(2), || !alive(pid)), "postmaster {pid} is left");
}

/// Run in a child test process by `a_killed_test_process_leaves_no_server_behind`: starts the
/// shared server and one of its own, prints their directories and postmasters, and waits to be
/// killed.
#[test]
#[ignore = "a helper process for a_killed_test_process_leaves_no_server_behind"]
fn child_holds_servers_until_killed() {
    if std::env::var_os("PG_HARNESS_CHILD").is_none() {
        return;
    }
    let own = TestPostgres::start_with_tcp().expect("PostgreSQL");
    let shared = TestPostgres::shared().expect("PostgreSQL");
    for pg in [&own, shared] {
        println!("SERVER {} {}", pg.postmaster_pid().unwrap(), pg.socket_dir().display());
    }
    println!("READY");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_killed_test_process_leaves_no_server_behind() {
    if TestPostgres::shared().is_none() {
        return;
    }
    // `postgres_harness::child_holds_servers_until_killed`, whatever this module is called.
    let child_test =
        format!("{}::child_holds_servers_until_killed", module_path!().split_once("::").unwrap().1);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &child_test, "--ignored", "--nocapture"])
        .env("PG_HARNESS_CHILD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the test binary runs");
    let mut servers: Vec<(u32, PathBuf)> = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "READY" {
            break;
        }
        if let Some(server) = line.strip_prefix("SERVER ") {
            let (pid, dir) = server.split_once(' ').unwrap();
            servers.push((pid.parse().unwrap(), dir.into()));
        }
    }
    assert_eq!(servers.len(), 2, "the child reports two servers");
    assert!(servers.iter().all(|(pid, dir)| alive(*pid) && dir.exists()));

    child.kill().unwrap(); // SIGKILL: no unwinding, no destructors
    child.wait().unwrap();

    let prefix = format!("pgt-{}-", child.id());
    let leftovers = || {
        let dirs = std::fs::read_dir("/tmp")
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix));
        let pids = servers.iter().filter(|(pid, _)| alive(*pid)).map(|(pid, _)| format!("postmaster {pid}"));
        dirs.map(|e| e.path().display().to_string()).chain(pids).collect::<Vec<_>>()
    };
    assert!(eventually(Duration::from_secs(3), || leftovers().is_empty()), "left behind: {:?}", leftovers());
}

#[test]
fn locate_finds_the_newest_complete_version() {
    let root = std::env::temp_dir().join(format!("pgt-locate-{}", std::process::id()));
    for (version, programs) in [
        ("9.6", &["initdb", "pg_ctl", "psql"][..]),
        ("15", &["initdb", "pg_ctl", "psql"]),
        ("16", &["initdb", "pg_ctl"]),
    ] {
        let bin = root.join(version).join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for program in programs {
            std::fs::write(bin.join(program), "").unwrap();
        }
    }
    let found = locate(&root);
    std::fs::remove_dir_all(&root).unwrap();
    assert_eq!(found, Ok(root.join("15/bin")), "16 lacks psql; 15 is newer than 9.6");

    if let Ok(bin) = locate(Path::new(INSTALL_ROOT)) {
        assert!(bin.join("initdb").is_file());
    }
}

#[test]
fn a_missing_postgresql_gives_the_notice() {
    let notice = locate(Path::new("/nonexistent/postgresql")).unwrap_err();
    assert_eq!(
        notice,
        "PostgreSQL tests SKIPPED: /nonexistent/postgresql/*/bin/initdb not found (apt-get install -y postgresql), or run .ci/run"
    );
}

#[test]
#[should_panic(expected = "POSTGRES_REQUIRED is set but PostgreSQL tests SKIPPED: /nonexistent")]
fn a_missing_postgresql_fails_when_required() {
    skip(&locate(Path::new("/nonexistent")).unwrap_err(), true);
}
