//! Outgoing gRPC calls: one builder that sets a deadline (passing on what is left of the caller's), injects the
//! trace context and the service's token, and retries only what is safe (UNAVAILABLE) within a budget.
use std::{
    collections::HashSet,
    future::Future,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicIsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures::future::BoxFuture;

use tonic::{
    Request, Status,
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint, channel::Change},
};
use tower::retry::budget::{Budget, TpsBudget};

use crate::auth::{Authenticator, Role};

/// Where the bearer token of outgoing calls comes from.
#[derive(Clone)]
enum Token {
    None,
    Static(Arc<str>),
    /// Minted with the service's own key, and minted again well before it expires: a service calling with its own
    /// identity never holds an expired token.
    Minted(Arc<Authenticator>, Arc<str>, Role),
}

/// How a client calls another service.
#[derive(Clone)]
pub struct Outgoing {
    token: Token,
    timeout: Duration,
}

impl Outgoing {
    /// Calls with a fixed `token` (e.g. an operator's) and `timeout` per call.
    pub fn new(token: Option<String>, timeout: Duration) -> Self {
        Self { token: token.map_or(Token::None, |t| Token::Static(Arc::from(t))), timeout }
    }

    /// Calls as `subject` with `role`, minting short-lived tokens with `auth`.
    pub fn as_service(auth: Arc<Authenticator>, subject: &str, role: Role, timeout: Duration) -> Self {
        Self { token: Token::Minted(auth, Arc::from(subject), role), timeout }
    }
}

impl Interceptor for Outgoing {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        // The shortest of: the client's own timeout, one the caller set on this request, what is left of the RPC
        // being served.
        let asked =
            req.metadata().get("grpc-timeout").and_then(|v| v.to_str().ok()).and_then(crate::guard::parse_timeout);
        let budget =
            [Some(self.timeout), asked, crate::guard::remaining()].into_iter().flatten().min().unwrap_or(self.timeout);
        if budget.is_zero() {
            return Err(Status::deadline_exceeded("no time left of the caller's deadline"));
        }
        req.set_timeout(budget);
        rapport_telemetry::inject(req.metadata_mut());
        let token = match &self.token {
            Token::None => None,
            Token::Static(t) => Some(t.to_string()),
            Token::Minted(auth, subject, role) => Some(
                auth.service_token(subject, *role)
                    // UNAVAILABLE: a relay retries it (and parks nothing) until the service has its key.
                    .map_err(|_| Status::unavailable("no signing key for this service's calls"))?
                    .to_string(),
            ),
        };
        if let Some(token) = token {
            let v = MetadataValue::try_from(format!("Bearer {token}"))
                .map_err(|_| Status::internal("invalid client token"))?;
            req.metadata_mut().insert("authorization", v);
        }
        Ok(req)
    }
}

/// A channel to another service, with the interceptor.
pub type OutgoingChannel = InterceptedService<PeerChannel, Outgoing>;

/// A tonic channel whose calls end by their deadline even when no replica is there to take them.
///
/// tonic leaves `grpc-timeout` to the server: a call to a name that stands for no reachable replica would wait in the
/// channel's queue for ever. Here each call, its wait for a replica included, is bounded by the `grpc-timeout` the
/// [`Outgoing`] interceptor set (plus a little, so that the server's own answer wins the race), and a name known to
/// stand for no reachable replica fails at once with UNAVAILABLE, which callers retry.
#[derive(Clone)]
pub struct PeerChannel {
    inner: Channel,
    /// For a name: how many replicas answer (-1 until the first resolution). `None` for an address.
    replicas: Option<Arc<AtomicIsize>>,
    peer: Arc<str>,
}

/// How long past its `grpc-timeout` a call waits for the server's DEADLINE_EXCEEDED before giving up itself.
const GRACE: Duration = Duration::from_millis(200);

/// The bound of a call that carries no `grpc-timeout` (the interceptor always sets one).
const UNBOUNDED_CALL: Duration = Duration::from_secs(30);

impl tower::Service<http::Request<tonic::body::Body>> for PeerChannel {
    type Response = http::Response<tonic::body::Body>;
    type Error = tower::BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is awaited inside the call, under its deadline.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        use tower::ServiceExt;
        if self.replicas.as_ref().is_some_and(|n| n.load(Ordering::Acquire) == 0) {
            let status = Status::unavailable(format!("no replica of {} answers", self.peer));
            return Box::pin(async move { Err(status.into()) });
        }
        let bound = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::guard::parse_timeout)
            .map_or(UNBOUNDED_CALL, |t| t + GRACE);
        let channel = self.inner.clone();
        let peer = self.peer.clone();
        Box::pin(async move {
            match tokio::time::timeout(bound, channel.oneshot(req)).await {
                Ok(answer) => answer.map_err(Into::into),
                Err(_) => Err(Status::deadline_exceeded(format!("no answer from {peer} within the deadline")).into()),
            }
        })
    }
}

/// A lazily connected channel to `url`, spread over every replica of the peer.
///
/// - An address (`http://127.0.0.1:50051`, as `rapport up` gives): one connection.
/// - A name (`http://loyalty:50052`; in Kubernetes a headless Service, whose name resolves to every ready pod): one
///   connection per address it resolves to that accepts a TCP connection, each call sent to one of two picked at
///   random (tower's power of two choices; tonic's connections all report the same load). Every [`RESOLVE_EVERY`]
///   the name is resolved again and every address probed again, so replicas that come and go, or stop answering,
///   are followed. Until the first resolution calls wait (within their deadline); once the name stands for no
///   replica that answers, calls fail at once with UNAVAILABLE; a failed resolution keeps the addresses known.
pub fn channel(url: &str, outgoing: Outgoing) -> Result<OutgoingChannel, tonic::transport::Error> {
    channel_with(url, outgoing, Arc::new(Dns), RESOLVE_EVERY)
}

/// How often a peer's name is resolved again.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(10);

/// Turns a peer's name into the addresses of its replicas.
pub trait Resolve: Send + Sync + 'static {
    /// The addresses `host:port` stands for now.
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<'_, std::io::Result<Vec<SocketAddr>>>;
}

/// The system's resolver (cluster DNS in Kubernetes).
pub struct Dns;

impl Resolve for Dns {
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<'_, std::io::Result<Vec<SocketAddr>>> {
        let target = format!("{host}:{port}");
        Box::pin(async move { Ok(tokio::net::lookup_host(target).await?.collect()) })
    }
}

/// [`channel`] with names resolved by `resolver`, again every `every`.
pub fn channel_with(
    url: &str,
    outgoing: Outgoing,
    resolver: Arc<dyn Resolve>,
    every: Duration,
) -> Result<OutgoingChannel, tonic::transport::Error> {
    // With mutual TLS on, every peer is called over TLS with this service's certificate.
    let tls = crate::tls::client();
    let url = match tls {
        Some(_) => url.replacen("http://", "https://", 1),
        None => url.to_string(),
    };
    let endpoint = Endpoint::from_shared(url)?;
    let uri = endpoint.uri().clone();
    let name = uri.host().filter(|h| h.trim_matches(['[', ']']).parse::<IpAddr>().is_err()).map(str::to_string);
    // A name is the certificate's name for every replica's address; an address literal is left to tonic.
    let service_host = name.clone();
    let configure = move |e: Endpoint| -> Result<Endpoint, tonic::transport::Error> {
        let mut e = e;
        if let Some(tls) = tls {
            // The certificate names the service, not the replica's address.
            let mut config = tls.client();
            if let Some(host) = &service_host {
                config = config.domain_name(host);
            }
            e = e.tls_config(config)?;
        }
        Ok(e.connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30)))
    };
    let peer: Arc<str> = Arc::from(uri.host().unwrap_or_default());
    let channel = match name {
        None => PeerChannel { inner: configure(endpoint)?.connect_lazy(), replicas: None, peer },
        Some(host) => {
            let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
            let (channel, changes) = Channel::balance_channel(16);
            let scheme = uri.scheme_str().unwrap_or("http").to_string();
            let origin = uri.clone();
            let replica = move |addr: SocketAddr| {
                // The replica's address to connect to, the service's name as the authority of every call.
                configure(Endpoint::from_shared(format!("{scheme}://{addr}"))?.origin(origin.clone()))
            };
            let replicas = Arc::new(AtomicIsize::new(-1));
            tokio::spawn(follow(resolver, host, port, every, replica, changes, replicas.clone()));
            PeerChannel { inner: channel, replicas: Some(replicas), peer }
        }
    };
    Ok(InterceptedService::new(channel, outgoing))
}

/// Keeps a balanced channel's replicas those `host` resolves to and that accept a connection, until the channel is
/// dropped; `replicas` says how many there are.
async fn follow(
    resolver: Arc<dyn Resolve>,
    host: String,
    port: u16,
    every: Duration,
    replica: impl Fn(SocketAddr) -> Result<Endpoint, tonic::transport::Error>,
    changes: tokio::sync::mpsc::Sender<Change<SocketAddr, Endpoint>>,
    replicas: Arc<AtomicIsize>,
) {
    let mut known: HashSet<SocketAddr> = HashSet::new();
    loop {
        let found = match resolver.resolve(&host, port).await {
            Ok(found) if !found.is_empty() => Some(found),
            Ok(_) => {
                tracing::warn!(peer = %host, "peer name resolves to no address; keeping the known replicas");
                None
            }
            Err(e) => {
                tracing::warn!(peer = %host, error = %e, "peer name did not resolve; keeping the known replicas");
                None
            }
        };
        if let Some(found) = found {
            let probes = found.iter().map(|a| answers(*a));
            let up: HashSet<SocketAddr> = found
                .iter()
                .copied()
                .zip(futures::future::join_all(probes).await)
                .filter_map(|(a, up)| up.then_some(a))
                .collect();
            let mut changed = Vec::new();
            for gone in known.difference(&up).copied().collect::<Vec<_>>() {
                known.remove(&gone);
                changed.push(Change::Remove(gone));
            }
            // Only what was inserted is known: an address refused now is tried again at the next resolution.
            for new in up.difference(&known).copied().collect::<Vec<_>>() {
                match replica(new) {
                    Ok(e) => {
                        known.insert(new);
                        changed.push(Change::Insert(new, e));
                    }
                    Err(e) => tracing::warn!(peer = %host, error = %e, "replica address refused"),
                }
            }
            if !changed.is_empty() {
                tracing::info!(peer = %host, replicas = known.len(), unreachable = found.len() - up.len(),
                    "peer replicas changed");
            }
            for change in changed {
                if changes.send(change).await.is_err() {
                    return;
                }
            }
        }
        replicas.store(isize::try_from(known.len()).unwrap_or(isize::MAX), Ordering::Release);
        tokio::select! {
            () = changes.closed() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Whether `addr` accepts a TCP connection within a second: a replica address that does not is left out of the
/// balance, so calls are not sent to a pod that is gone while the name still stands for it.
async fn answers(addr: SocketAddr) -> bool {
    matches!(tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await, Ok(Ok(_)))
}

/// How long a replica address has to accept a connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A retry budget shared by a client: retries may add at most 20 % to the calls (plus 10 per second).
#[derive(Clone)]
pub struct RetryBudget(Arc<TpsBudget>);

impl Default for RetryBudget {
    fn default() -> Self {
        Self(Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2)))
    }
}

/// Calls `f` and retries UNAVAILABLE answers with exponential backoff, at most `attempts` times in all, while
/// the budget allows. Other errors are returned at once: they are not safe to retry blindly.
pub async fn with_retry<T, F, Fut>(budget: &RetryBudget, attempts: u32, mut f: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    budget.0.deposit();
    let mut backoff = Duration::from_millis(25);
    let mut tries = 1;
    loop {
        match f().await {
            Err(s) if s.code() == tonic::Code::Unavailable && tries < attempts && budget.0.withdraw() => {
                tries += 1;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn outgoing_calls_carry_what_is_left_of_the_deadline_and_the_token() {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        let req = crate::guard::DEADLINE
            .scope(deadline, async {
                let mut o = Outgoing::new(Some("t0k3n".into()), Duration::from_secs(10));
                o.call(Request::new(())).unwrap()
            })
            .await;
        let h = req.metadata().clone().into_headers();
        let left = crate::guard::grpc_timeout(&h).unwrap();
        assert!(left <= Duration::from_millis(200) && left > Duration::ZERO, "{left:?}");
        assert_eq!(h.get("authorization").unwrap(), "Bearer t0k3n");
        // outside a served request: the client's own timeout
        let mut o = Outgoing::new(None, Duration::from_secs(3));
        let h = o.call(Request::new(())).unwrap().metadata().clone().into_headers();
        assert_eq!(crate::guard::grpc_timeout(&h), Some(Duration::from_secs(3)));
        assert!(h.get("authorization").is_none());
        // a timeout the caller set on the request is kept when shorter
        let mut asked = Request::new(());
        asked.set_timeout(Duration::from_millis(250));
        let h = o.call(asked).unwrap().metadata().clone().into_headers();
        assert_eq!(crate::guard::grpc_timeout(&h), Some(Duration::from_millis(250)));
        // no time left: refused before sending
        let past = tokio::time::Instant::now();
        let r = crate::guard::DEADLINE
            .scope(past, async { Outgoing::new(None, Duration::from_secs(1)).call(Request::new(())) })
            .await;
        assert_eq!(r.unwrap_err().code(), tonic::Code::DeadlineExceeded);
    }

    #[tokio::test]
    async fn retries_only_unavailable() {
        let budget = RetryBudget::default();
        let n = AtomicU32::new(0);
        let r: Result<u32, Status> = with_retry(&budget, 3, || async {
            let k = n.fetch_add(1, Ordering::SeqCst);
            if k < 2 { Err(Status::unavailable("down")) } else { Ok(k) }
        })
        .await;
        assert_eq!(r.unwrap(), 2);
        let m = AtomicU32::new(0);
        let r: Result<u32, Status> = with_retry(&budget, 3, || async {
            m.fetch_add(1, Ordering::SeqCst);
            Err(Status::invalid_argument("bad"))
        })
        .await;
        assert_eq!(r.unwrap_err().code(), tonic::Code::InvalidArgument);
        assert_eq!(m.load(Ordering::SeqCst), 1);
    }
}
