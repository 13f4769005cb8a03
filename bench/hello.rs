//! A bare warp hello-world: the ceiling of this HTTP stack, measured side by side with `meet` by
//! `bench/http.sh`.
//!
//! `cargo run --release --example hello -- [ADDR]` (default `127.0.0.1:0`, or `HELLO_LISTEN`)
//! binds, prints `listening on ADDR:PORT` on stdout, and answers `GET /` with `Hello, world!`.

use std::io::Write as _;
use std::net::SocketAddr;

use warp::Filter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("HELLO_LISTEN").ok())
        .unwrap_or_else(|| "127.0.0.1:0".to_owned())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let mut out = std::io::stdout();
    writeln!(out, "listening on {}", listener.local_addr()?)?;
    out.flush()?;
    let routes = warp::path::end().map(|| "Hello, world!");
    warp::serve(routes).incoming(listener).run().await;
    Ok(())
}
