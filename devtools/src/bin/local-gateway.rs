//! `local-gateway LISTEN_PORT UPSTREAM_PORT [READY_FILE]`: serves
//! 127.0.0.1:LISTEN_PORT and forwards every request to `cargo lambda
//! watch` on 127.0.0.1:UPSTREAM_PORT, repairing only what its emulator
//! cannot take (see the `devtools` crate); with READY_FILE, answers 503
//! with `Retry-After: 1` until that file exists. `make run` starts it; it
//! is never deployed.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

fn port(arg: Option<String>) -> Option<u16> {
    arg?.parse().ok()
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (port(args.next()), port(args.next())) else {
        eprintln!("usage: local-gateway LISTEN_PORT UPSTREAM_PORT [READY_FILE]");
        return ExitCode::from(2);
    };
    let listener = match tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, listen)).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("[local-gateway] cannot listen on 127.0.0.1:{listen}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let ready_file = args.next().map(std::path::PathBuf::from);
    devtools::serve(
        listener,
        SocketAddr::from((Ipv4Addr::LOCALHOST, upstream)),
        ready_file,
    )
    .await;
    ExitCode::SUCCESS
}
