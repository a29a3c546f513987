//! Sending any bytes to any RPC of a running server, and judging the answer.
use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Mutex, OnceLock},
    time::Duration,
};

use bytes::{Buf, BufMut, Bytes};
use rapport_kit::{
    auth::{Policy, Role},
    client::{self, Outgoing, OutgoingChannel},
};
use tonic::{
    Code, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
};
use tonic_types::StatusExt;

use crate::{generate::IDS, schema::Rpc};

/// The roles a case calls with, first allowed first: staff see the most of a service; a customer's token names
/// one of the plausible ids so that some self-service calls are its own.
const PREFERENCE: [Role; 10] = [
    Role::Sre,
    Role::Marketing,
    Role::Agent,
    Role::Reader,
    Role::Loyalty,
    Role::Segmentation,
    Role::Feedback,
    Role::Referrals,
    Role::Improvement,
    Role::Customer,
];

/// The longest a case may take before it counts as a hang (the server's own request timeout is 10 s).
pub const HANG: Duration = Duration::from_secs(20);

/// Calls on one server with a channel per role.
pub struct Harness {
    url: String,
    policy: Policy,
    channels: HashMap<Role, OutgoingChannel>,
}

impl Harness {
    /// For the server at `addr` enforcing `policy`.
    pub fn new(addr: SocketAddr, policy: Policy) -> Self {
        Self { url: format!("http://{addr}"), policy, channels: HashMap::new() }
    }

    /// The role cases of `path` call with, if any may.
    pub fn role(&self, path: &str) -> Option<Role> {
        PREFERENCE.into_iter().find(|r| self.policy.allows(path, *r))
    }

    /// Sends `body` to `rpc`; the answer, or a finding when it does not come within [`HANG`].
    pub async fn send(&mut self, rpc: &Rpc, body: Vec<u8>) -> Result<Result<(), Status>, String> {
        let role = self.role(&rpc.path()).ok_or_else(|| format!("no role may call {}", rpc.path()))?;
        let channel = match self.channels.get(&role) {
            Some(c) => c.clone(),
            None => {
                // Tokens minted again before they expire: long runs outlive any one token.
                let out = Outgoing::as_service(rapport_kit::testing::authenticator(), IDS[0], role, HANG);
                let c = client::channel(&self.url, out).map_err(|e| format!("channel: {e}"))?;
                self.channels.insert(role, c.clone());
                c
            }
        };
        match tokio::time::timeout(HANG, call(channel, rpc, Bytes::from(body))).await {
            Ok(answer) => Ok(answer),
            Err(_) => Err(format!("no answer within {} s", HANG.as_secs())),
        }
    }
}

/// Sends `body` as the request (the one message of a stream) of `rpc`, reading every response.
pub async fn call(channel: OutgoingChannel, rpc: &Rpc, body: Bytes) -> Result<(), Status> {
    let path = http::uri::PathAndQuery::try_from(rpc.path()).map_err(|e| Status::internal(e.to_string()))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| Status::unavailable(format!("not ready: {e}")))?;
    if rpc.client_streaming {
        let stream = futures::stream::iter([body]);
        grpc.client_streaming(tonic::Request::new(stream), path, Raw).await.map(|_| ())
    } else if rpc.server_streaming {
        let mut s = grpc.server_streaming(tonic::Request::new(body), path, Raw).await?.into_inner();
        while s.message().await?.is_some() {}
        Ok(())
    } else {
        grpc.unary(tonic::Request::new(body), path, Raw).await.map(|_| ())
    }
}

/// Whether an answer is one a hostile caller may get: OK, or a refusal of the caller's request (a code that
/// blames the request, with an `ErrorInfo` reason it can act on). A finding otherwise: INTERNAL, UNKNOWN (a
/// panic resets the stream), UNAVAILABLE, DEADLINE_EXCEEDED (a handler that runs out the server's timeout),
/// UNIMPLEMENTED, DATA_LOSS, or a refusal without a reason.
pub fn verdict(answer: &Result<(), Status>) -> Result<(), String> {
    let Err(s) = answer else { return Ok(()) };
    match s.code() {
        Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::FailedPrecondition
        | Code::Aborted
        | Code::OutOfRange
        | Code::ResourceExhausted => {}
        other => return Err(format!("{other:?}: {}", s.message())),
    }
    match s.get_details_error_info() {
        Some(info) if !info.reason.is_empty() => Ok(()),
        _ => Err(format!("{:?} without an ErrorInfo reason: {}", s.code(), s.message())),
    }
}

/// Panics seen on threads whose name starts with the prefix given to [`watch_panics`] (the fuzzed servers'
/// runtime), with their messages; other threads' panics are left to the default hook alone.
pub fn watch_panics(prefix: &'static str) -> &'static Mutex<Vec<String>> {
    static SEEN: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    let seen = SEEN.get_or_init(|| Mutex::new(Vec::new()));
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            if thread.name().is_some_and(|n| n.starts_with(prefix)) {
                // Where in our code: the panic's own location is often in the standard library.
                let trace = std::backtrace::Backtrace::force_capture().to_string();
                let ours: Vec<&str> = trace
                    .lines()
                    .map(str::trim)
                    .filter(|l| l.starts_with("at ") && (l.contains("/services/") || l.contains("/libs/")))
                    .take(4)
                    .collect();
                if let Ok(mut s) = SEEN.get_or_init(|| Mutex::new(Vec::new())).lock() {
                    s.push(format!("{info} {}", ours.join(" ")));
                }
            }
            previous(info);
        }));
    });
    seen
}

/// Bytes in, bytes out: the request is whatever the case is, the response is not decoded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap as Map;

    use tonic_types::ErrorDetails;

    use super::*;

    #[test]
    fn refusals_need_a_blaming_code_and_a_reason() {
        let with_reason =
            |code| Status::with_error_details(code, "no", ErrorDetails::with_error_info("WHY", "rapport", Map::new()));
        assert!(verdict(&Ok(())).is_ok());
        assert!(verdict(&Err(with_reason(Code::InvalidArgument))).is_ok());
        assert!(verdict(&Err(with_reason(Code::NotFound))).is_ok());
        assert!(verdict(&Err(Status::invalid_argument("bare"))).is_err(), "a refusal without a reason");
        assert!(verdict(&Err(with_reason(Code::Internal))).is_err());
        assert!(verdict(&Err(Status::unknown("stream reset"))).is_err());
    }
}
