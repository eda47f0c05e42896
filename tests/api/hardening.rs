//! Abuse: oversized and ambiguous requests, slow clients, login storms, brute force and
//! timing. Each test checks the refusal and then that normal service goes on.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use oauth2_jwt_server::auth::hash_pool::HashingConfig;
use oauth2_jwt_server::http::server::Limits;
use oauth2_jwt_server::store::UserStore;

use crate::helpers::{Answer, TestApp, now, test_config, token_with_claims};

const BUSY: &str = r#"{"detail":"Server busy, try again later"}"#;

fn short_timeouts() -> Limits {
    Limits {
        header_read_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(3),
        ..Limits::default()
    }
}

async fn spawn_with_limits(limits: Limits) -> TestApp {
    TestApp::spawn_with(oauth2_jwt_server::config::Config { limits, ..test_config() }, UserStore::seeded())
        .await
}

#[tokio::test]
async fn both_content_length_and_transfer_encoding_get_400_and_the_connection_closes() {
    let app = TestApp::spawn().await;
    let body = "username=johndoe&password=secret";

    for head in [
        format!(
            "POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
            body.len()
        ),
        format!(
            "POST /token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ),
    ] {
        let request =
            format!("{head}{:x}\r\n{body}\r\n0\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n", body.len());
        let response = app.raw(request.as_bytes()).await;
        assert!(response.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{response}");
        assert!(response.contains("\r\nconnection: close\r\n"), "{response}");
        assert!(
            response.ends_with(r#"{"detail":"Both Content-Length and Transfer-Encoding"}"#),
            "{response}"
        );
    }
    // A plain chunked login on a kept-alive connection is fine, and so is what follows it.
    let request = format!(
        "POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let response = app.raw(request.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with(r#"{"detail":"Not Found"}"#), "{response}");
    app.assert_still_serves().await;
}

#[tokio::test]
async fn an_oversized_body_gets_413_whether_or_not_its_length_is_declared() {
    let app = TestApp::spawn().await;
    let password = "x".repeat(20 * 1024);

    let declared = Answer::of(app.login("johndoe", &password).await).await;
    declared.assert_json(413, r#"{"detail":"Request body too large"}"#);
    let chunks = futures_stream(format!("username=johndoe&password={password}").into_bytes());
    let streamed = app
        .client
        .post(format!("{}/token", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    Answer::of(streamed).await.assert_json(413, r#"{"detail":"Request body too large"}"#);
    app.assert_still_serves().await;
}

/// A body sent as a stream of 1 KiB chunks, so reqwest cannot declare its length.
fn futures_stream(bytes: Vec<u8>) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = bytes.chunks(1024).map(|c| Ok(c.to_vec())).collect();
    futures::stream::iter(chunks)
}

#[tokio::test]
async fn too_many_form_fields_get_400() {
    let app = TestApp::spawn().await;
    let body = format!("username=johndoe&password=secret{}", "&a=b".repeat(60));

    let answer = Answer::of(app.post_token_body(Some("application/x-www-form-urlencoded"), body).await).await;

    answer.assert_json(400, r#"{"detail":"Too many fields. Maximum number of fields is 50."}"#);
    app.assert_still_serves().await;
}

#[tokio::test]
async fn a_repeated_form_field_is_refused_instead_of_last_one_wins() {
    let app = TestApp::spawn().await;
    let repeated = |field: &str| {
        format!(
            r#"{{"detail":[{{"type":"repeated_field","loc":["body","{field}"],"msg":"Field must not be sent more than once"}}]}}"#
        )
    };

    let usernames =
        app.post_form(&[("username", "mallory"), ("username", "johndoe"), ("password", "secret")]).await;
    Answer::of(usernames).await.assert_json(422, &repeated("username"));
    let passwords =
        app.post_form(&[("username", "johndoe"), ("password", "x"), ("password", "secret")]).await;
    let answer = Answer::of(passwords).await;
    answer.assert_json(422, &repeated("password"));
    assert!(!answer.body.contains("secret"), "a password is never echoed");
    let grants = app
        .post_form(&[
            ("grant_type", "password"),
            ("grant_type", "password"),
            ("username", "a"),
            ("password", "b"),
        ])
        .await;
    Answer::of(grants).await.assert_json(422, &repeated("grant_type"));
    app.assert_still_serves().await;
}

#[tokio::test]
async fn an_overlong_password_is_refused_but_a_long_passphrase_is_checked() {
    let app = TestApp::spawn().await;

    let too_long = Answer::of(app.login("johndoe", &"p".repeat(1025)).await).await;
    too_long.assert_json(
        422,
        r#"{"detail":[{"type":"string_too_long","loc":["body","password"],"msg":"String should have at most 1024 characters","ctx":{"max_length":1024}}]}"#,
    );
    let passphrase = Answer::of(app.login("johndoe", &"p".repeat(1024)).await).await;
    passphrase.assert_401("Incorrect username or password");
    app.assert_still_serves().await;
}

#[tokio::test]
async fn a_token_over_8_kib_is_refused_even_when_correctly_signed() {
    let app = TestApp::spawn().await;
    let padding = "x".repeat(9 * 1024);
    let token = token_with_claims(&json!({"sub": "johndoe", "exp": now() + 600, "pad": padding}));

    let answer = Answer::of(app.get_with_token("/users/me/", &token).await).await;

    answer.assert_401("Could not validate credentials");
    app.assert_still_serves().await;
}

#[tokio::test]
async fn a_client_sending_its_headers_a_byte_at_a_time_is_cut_off() {
    let app = spawn_with_limits(short_timeouts()).await;
    let mut stream = TcpStream::connect(app.socket).await.unwrap();
    let started = Instant::now();

    let mut cut_off = false;
    for byte in
        b"GET /users/me/ HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            .iter()
    {
        if stream.write_all(&[*byte]).await.is_err() {
            cut_off = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !cut_off {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        cut_off = read.is_ok();
    }

    assert!(cut_off, "the connection is closed");
    assert!(started.elapsed() < Duration::from_secs(4), "within seconds, took {:?}", started.elapsed());
    app.assert_still_serves().await;
}

/// Reads one answer of a kept-alive connection (one without a body is not expected here).
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains(r#""disabled":false}"#) {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await;
        match read {
            Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn each_head_on_a_kept_alive_connection_gets_the_whole_timeout_and_an_idle_one_is_closed() {
    let app = spawn_with_limits(short_timeouts()).await;
    let token = app.token_for("johndoe", "secret").await;
    let request = format!("GET /users/me/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
    let mut stream = TcpStream::connect(app.socket).await.unwrap();
    let started = Instant::now();

    // Four requests 0.6 s apart: 1.8 s in all, each head well within its own 1 s.
    for _ in 0..4 {
        stream.write_all(request.as_bytes()).await.unwrap();
        let answer = read_answer(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut rest)).await;

    assert!(matches!(closed, Ok(Ok(0))), "the idle connection was closed without an answer: {closed:?}");
    let idle = started.elapsed();
    assert!(idle >= Duration::from_millis(2_800) && idle < Duration::from_secs(4), "closed after {idle:?}");
    app.assert_still_serves().await;
}

#[tokio::test]
async fn a_body_arriving_for_longer_than_the_header_timeout_is_still_read() {
    let limits = Limits { body_timeout: Duration::from_secs(4), ..short_timeouts() };
    let app = spawn_with_limits(limits).await;
    let body = b"username=johndoe&password=secret";
    let head = format!(
        "POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut stream = TcpStream::connect(app.socket).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();

    // 1.6 s of body: the head's 1 s does not apply once the head is in.
    for part in body.chunks(4) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stream.write_all(part).await.unwrap();
    }
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer)).await;

    let answer = String::from_utf8_lossy(&answer[..read.unwrap().unwrap()]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains(r#""token_type":"bearer""#), "{answer}");
}

#[tokio::test]
async fn a_client_sending_its_body_slowly_gets_408() {
    let app = spawn_with_limits(short_timeouts()).await;
    let mut stream = TcpStream::connect(app.socket).await.unwrap();
    let head = "POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 64\r\n\r\nusername=";
    stream.write_all(head.as_bytes()).await.unwrap();

    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;

    assert!(read.is_ok(), "the server answers and closes within seconds");
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{response}");
    assert!(response.ends_with(r#"{"detail":"Request Timeout"}"#), "{response}");
    app.assert_still_serves().await;
}

#[tokio::test]
async fn a_full_hashing_queue_answers_503_with_retry_after_and_reads_stay_served() {
    let config = oauth2_jwt_server::config::Config {
        hashing: HashingConfig { workers: 1, lane_threads: 2, queue: 1 },
        ..test_config()
    };
    let app = TestApp::spawn_with(config, UserStore::seeded()).await;
    let token = crate::helpers::PYJWT_JOHNDOE_TOKEN;

    let logins = (0..8).map(|_| app.login("johndoe", "secret"));
    let (answers, me) =
        tokio::join!(futures::future::join_all(logins), app.get_with_token("/users/me/", token));

    assert_eq!(me.status(), 200, "reads are served during the storm");
    let mut busy = 0;
    for response in answers {
        let answer = Answer::of(response).await;
        if answer.status == 503 {
            busy += 1;
            answer.assert_json(503, BUSY);
            assert_eq!(answer.header("retry-after"), Some("1"));
        } else {
            assert_eq!(answer.status, 200);
        }
    }
    assert!((1..8).contains(&busy), "some logins were shed, some served: {busy} busy");
    app.assert_still_serves().await;
}

#[tokio::test]
async fn the_connection_cap_makes_extra_clients_wait_for_a_free_slot() {
    let limits = Limits { max_connections: 2, ..short_timeouts() };
    let app = spawn_with_limits(limits).await;
    let _idle =
        [TcpStream::connect(app.socket).await.unwrap(), TcpStream::connect(app.socket).await.unwrap()];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();

    let response = app.get("/users/me/", None).await;

    assert_eq!(response.status(), 401, "served once the idle connections were cut");
    assert!(started.elapsed() >= Duration::from_millis(500), "it had to wait: {:?}", started.elapsed());
    app.assert_still_serves().await;
}

#[tokio::test]
async fn an_unknown_username_costs_as_much_as_a_wrong_password() {
    let app = TestApp::spawn().await;
    app.login("johndoe", "warm-up").await;

    let median = |samples: &mut Vec<Duration>| {
        samples.sort();
        samples[samples.len() / 2]
    };
    let mut wrong_password = Vec::new();
    let mut unknown_user = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(app.login("johndoe", "wrong").await.status(), 401);
        wrong_password.push(started.elapsed());
        let started = Instant::now();
        assert_eq!(app.login("nobody", "wrong").await.status(), 401);
        unknown_user.push(started.elapsed());
    }

    let (known, unknown) = (median(&mut wrong_password), median(&mut unknown_user));
    assert!(unknown * 2 >= known, "unknown user {unknown:?} vs wrong password {known:?}");
}

#[tokio::test]
async fn a_request_over_the_time_limit_gets_503_and_its_queued_hash_is_skipped() {
    let config = oauth2_jwt_server::config::Config {
        hashing: HashingConfig { workers: 1, lane_threads: 2, queue: 100 },
        limits: Limits { request_timeout: Duration::from_secs(1), ..Limits::default() },
        ..test_config()
    };
    let app = TestApp::spawn_with(config, UserStore::seeded()).await;

    let logins = (0..30).map(|_| app.login("johndoe", "secret"));
    let answers = futures::future::join_all(logins).await;

    let mut timed_out = 0;
    for response in answers {
        let answer = Answer::of(response).await;
        if answer.status == 503 {
            timed_out += 1;
            answer.assert_json(503, BUSY);
        }
    }
    assert!(timed_out > 0, "some logins ran over the 1 s limit");
    app.assert_still_serves().await;
}
