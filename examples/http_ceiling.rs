//! The machine's HTTP limit, for `bench/ceiling.sh`: a server that answers every request with
//! johndoe's JSON and does nothing else (no token check, no routing, no logging), built on bare
//! hyper (`http_ceiling hyper`) or on axum with one route (`http_ceiling axum`). What it serves
//! per second bounds what any server of ours can serve on the same machine and load generator.
//!
//! `BIND_ADDR=127.0.0.1:8300 cargo run --release --example http_ceiling -- hyper`

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Response};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const ME: &[u8] =
    br#"{"username":"johndoe","email":"johndoe@example.com","full_name":"John Doe","disabled":false}"#;

fn me() -> Response<Body> {
    let mut response = Response::new(Body::from(Bytes::from_static(ME)));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:8300".into());
    let listener = TcpListener::bind(&address).await?;
    println!("listening on http://{}", listener.local_addr()?);
    if std::env::args().nth(1).as_deref() == Some("axum") {
        let app = axum::Router::new().route("/users/me/", axum::routing::get(|| async { me() }));
        return axum::serve(listener, app).await;
    }
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|_| async { Ok::<_, Infallible>(me()) });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
