//! `<service> healthcheck`: probes the running service's readiness endpoint
//! and exits 0 or 1, so that container health checks work in images that have
//! no shell and no curl (distroless).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::paths;
use shared_config::Env;

/// When the process was started as `<binary> healthcheck`, probes
/// `http://127.0.0.1:$PORT/health/ready` ([`paths::READY`]) and returns the exit code to use.
pub fn from_args(default_port: u16) -> Option<i32> {
    if std::env::args().nth(1).as_deref() != Some("healthcheck") {
        return None;
    }
    let port = Env::from_process()
        .port("PORT", default_port)
        .unwrap_or(default_port);
    Some(match probe(port) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("unhealthy: {e}");
            1
        }
    })
}

/// A minimal HTTP/1.0 GET: enough for a liveness decision, no client library.
///
/// # Errors
/// When the service does not answer 200 within two seconds.
pub fn probe(port: u16) -> std::io::Result<()> {
    let timeout = Some(Duration::from_secs(2));
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(timeout)?;
    stream.set_write_timeout(timeout)?;
    let request = format!("GET {} HTTP/1.0\r\nHost: localhost\r\n\r\n", paths::READY);
    stream.write_all(request.as_bytes())?;
    let mut head = [0u8; 16];
    let n = stream.read(&mut head)?;
    let status_line = String::from_utf8_lossy(&head[..n]);
    if status_line.starts_with("HTTP/1.1 200") || status_line.starts_with("HTTP/1.0 200") {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "readiness answered {status_line:?}"
        )))
    }
}
