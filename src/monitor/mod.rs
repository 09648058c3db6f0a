//! Telling outside monitors (healthchecks.io and the like) that lifeboat is alive and how
//! its backups go, so someone hears of it when lifeboat itself is gone: the heartbeat of
//! `serve` (`heartbeat`) and each backup's start, success and failure (`pings`).
//!
//! A monitor's URL is a secret (whoever has it can report for us), so it is never put in
//! a log line, an error or the audit: failures are described without it.

pub mod heartbeat;
pub mod pings;

use std::time::Duration;

/// How long one request to a monitor may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Request `url` once (POST, with `body`), within `timeout`. A 2xx answer is success;
/// anything else is described without the URL.
pub fn send(url: &str, body: &str, timeout: Duration) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent
        .post(url)
        .header("content-type", "text/plain; charset=utf-8")
        .send(body)
        .map_err(|e| describe(&e))?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("the monitor answered HTTP {status}"))
    }
}

/// What went wrong, in words that cannot carry the URL (some of ureq's errors quote it).
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::StatusCode(code) => format!("the monitor answered HTTP {code}"),
        ureq::Error::Timeout(_) => "no answer in time".into(),
        ureq::Error::HostNotFound => "the monitor's host name does not resolve".into(),
        ureq::Error::ConnectionFailed => "cannot connect to the monitor".into(),
        ureq::Error::Io(io) => format!("network error ({})", io.kind()),
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => "the URL is not valid".into(),
        _ => "the request failed (TLS or protocol error)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_never_quote_the_url() {
        let url = "http://127.0.0.1:1/ping/secret-uuid-1234";
        let e = send(url, "", Duration::from_secs(2)).unwrap_err();
        assert!(!e.contains("secret-uuid"), "{e}");
        let e = send(
            "http://bad host/secret-uuid-1234",
            "",
            Duration::from_secs(2),
        )
        .unwrap_err();
        assert!(!e.contains("secret-uuid"), "{e}");
    }
}
