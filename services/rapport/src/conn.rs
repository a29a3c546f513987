//! What every operator command needs: the token and readable errors.
use std::time::Duration;

use anyhow::Context;
use rapport_kit::client::{self, Outgoing, OutgoingChannel};

use crate::cli::Conn;

/// The token: the flag or variable, else the one `rapport up` wrote.
pub fn token(conn: &Conn) -> anyhow::Result<String> {
    if let Some(t) = &conn.token {
        return Ok(t.clone());
    }
    let path = crate::up::token_path("./data");
    std::fs::read_to_string(&path).map(|s| s.trim().to_string()).with_context(|| {
        format!("no --token / RAPPORT_TOKEN and no {} (is `rapport up` running here?)", path.display())
    })
}

/// The services, by the names commands take (`--service`).
pub const SERVICES: [&str; 5] = ["loyalty", "segmentation", "feedback", "referrals", "improvement"];

/// The address of the service named `service`.
pub fn service_addr<'a>(conn: &'a Conn, service: &str) -> anyhow::Result<&'a str> {
    Ok(match service {
        "loyalty" => &conn.loyalty_addr,
        "segmentation" => &conn.segmentation_addr,
        "feedback" => &conn.feedback_addr,
        "referrals" => &conn.referrals_addr,
        "improvement" => &conn.improvement_addr,
        other => anyhow::bail!("--service: unknown service {other:?} (one of {})", SERVICES.join(", ")),
    })
}

/// A channel to `addr` with the operator's token.
pub fn channel(conn: &Conn, addr: &str) -> anyhow::Result<OutgoingChannel> {
    channel_with_timeout(conn, addr, Duration::from_secs(60))
}

/// A channel whose calls may last `timeout` (a stream of a whole data set).
pub fn channel_with_timeout(conn: &Conn, addr: &str, timeout: Duration) -> anyhow::Result<OutgoingChannel> {
    Ok(client::channel(addr, Outgoing::new(Some(token(conn)?), timeout))?)
}

/// A gRPC error with its reason and field violations, for people.
pub fn explain(status: tonic::Status) -> anyhow::Error {
    use tonic_types::StatusExt;
    let d = status.get_error_details();
    let mut msg = format!("{:?}: {}", status.code(), status.message());
    if let Some(info) = d.error_info() {
        msg.push_str(&format!(" [{}]", info.reason));
    }
    if let Some(br) = d.bad_request() {
        for v in &br.field_violations {
            msg.push_str(&format!("\n  {}: {}", v.field, v.description));
        }
    }
    anyhow::anyhow!(msg)
}

/// A fresh request id for one mutation of the CLI.
pub fn request_id() -> String {
    format!("cli-{}", uuid::Uuid::new_v4().simple())
}
