//! Refresh grants per second, for `bench/load.sh`'s `refresh_cN` scenarios: N clients each log
//! in once, then exchange their refresh token for a new one as fast as the server answers, for
//! the given seconds (wrk cannot: every answer carries the token the next request needs). Prints
//! one `RESULT {json}` line in wrk.lua's shape, latencies in milliseconds.
//!
//! `cargo run --release --example refresh_load -- http://127.0.0.1:8000 4 6`

use std::time::{Duration, Instant};

use serde_json::Value;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(base), Some(connections), Some(seconds)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: refresh_load BASE_URL CONNECTIONS SECONDS");
        std::process::exit(2);
    };
    let connections: usize = connections.parse().expect("CONNECTIONS is a number");
    let duration = Duration::from_secs(seconds.parse().expect("SECONDS is a number"));
    let client = reqwest::Client::new();
    let token_url = format!("{}/token", base.trim_end_matches('/'));

    let started = Instant::now();
    let workers = (0..connections).map(|_| {
        let (client, token_url) = (client.clone(), token_url.clone());
        tokio::spawn(async move {
            let login = [("username", "johndoe"), ("password", "secret")];
            let body: Value =
                client.post(&token_url).form(&login).send().await.unwrap().json().await.unwrap();
            let mut refresh = body["refresh_token"].as_str().expect("refresh tokens are on").to_owned();
            let (mut latencies, mut failed, mut errors) = (Vec::new(), 0u64, 0u64);
            let window = Instant::now();
            while window.elapsed() < duration {
                let sent = Instant::now();
                let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
                match client.post(&token_url).form(&form).send().await {
                    Ok(response) if response.status().is_success() => {
                        let body: Value = response.json().await.unwrap();
                        refresh = body["refresh_token"].as_str().unwrap().to_owned();
                        latencies.push(sent.elapsed());
                    }
                    Ok(_) => failed += 1,
                    Err(_) => errors += 1,
                }
            }
            (latencies, failed, errors)
        })
    });
    let mut latencies = Vec::new();
    let (mut failed, mut errors) = (0, 0);
    for worker in futures::future::join_all(workers).await {
        let (mut some, f, e) = worker.expect("a worker panicked");
        latencies.append(&mut some);
        failed += f;
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .map_or(-1.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        r#"RESULT {{"requests":{},"secs":{secs:.3},"rps":{:.2},"p50_ms":{:.3},"p90_ms":{:.3},"p99_ms":{:.3},"max_ms":{:.3},"non2xx":{failed},"socket_errors":{errors},"timeouts":0}}"#,
        latencies.len(),
        latencies.len() as f64 / secs,
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0),
    );
}
