//! Mutual TLS with certificates generated at test time: a loyalty server with its certificate and the suite's CA
//! refuses a plaintext client, a TLS client without a certificate, one whose certificate another CA signed and one
//! whose certificate has expired; a client with a valid certificate reaches the handler; health alone answers in
//! plaintext on its own port, for probes.
use std::time::Duration;

use rapport_kit::{auth::Role, clock::ManualClock, db::testing::fresh_database, tls::Tls};
use rapport_proto::loyalty::v1::{self as lpb, loyalty_service_client::LoyaltyServiceClient};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::support::{Db, T0, auth, free_port, loyalty_tuned};

/// A certificate authority.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `name` (also valid for 127.0.0.1), usable by a server and a client; `expired` makes it a
    /// certificate whose validity ended yesterday.
    fn issue(&self, name: &str, expired: bool) -> (String, String) {
        let mut params = CertificateParams::new(vec![name.to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A client of `addr` over TLS trusting `ca`, presenting `identity` (cert, key) if any.
async fn tls_channel(addr: std::net::SocketAddr, ca: &str, identity: Option<&(String, String)>) -> Option<Channel> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("loyalty");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let endpoint = Endpoint::from_shared(format!("https://{addr}")).unwrap().tls_config(tls).unwrap();
    endpoint.connect_timeout(Duration::from_secs(5)).connect().await.ok()
}

/// Whether a call with `channel` (if it connected) reaches loyalty's handler: a missing member's NOT_FOUND.
async fn reaches_the_handler(channel: Option<Channel>) -> Result<(), String> {
    let channel = channel.ok_or("did not connect")?;
    let token = auth().issue("agent-1", Role::Agent, 600).map_err(|e| e.to_string())?;
    let mut client = LoyaltyServiceClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
        req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
        Ok(req)
    });
    match client.get_member(lpb::GetMemberRequest { customer_id: "nobody".into() }).await {
        Err(e) if e.code() == tonic::Code::NotFound => Ok(()),
        Ok(_) => Err("a member that does not exist".into()),
        Err(e) => Err(format!("{:?}: {}", e.code(), e.message())),
    }
}

#[tokio::test]
async fn only_a_valid_client_certificate_gets_in() {
    let ca = Ca::new("rapport test ca");
    let other = Ca::new("someone else's ca");
    let (server_cert, server_key) = ca.issue("loyalty", false);
    let valid = ca.issue("segmentation", false);
    let foreign = other.issue("segmentation", false);
    let expired = ca.issue("segmentation", true);

    let db = fresh_database(Db::Sqlite).await.unwrap();
    let clock = ManualClock::new(T0);
    let (listen, health) = (free_port(), free_port());
    let server_tls = Tls::from_pem(&server_cert, &server_key, &ca.pem());
    let l = loyalty_tuned(listen, db.url(), None, &clock, auth(), |c| {
        c.common.serve.tls = Some(server_tls);
        c.common.serve.health_listen = Some(health);
    })
    .await;

    // Plaintext: refused.
    let plain = Endpoint::from_shared(format!("http://{}", l.addr)).unwrap().connect().await.ok();
    assert!(reaches_the_handler(plain).await.is_err(), "plaintext must not get in");
    // TLS without a client certificate, with another CA's, with an expired one: refused.
    assert!(reaches_the_handler(tls_channel(l.addr, &ca.pem(), None).await).await.is_err(), "no certificate");
    assert!(reaches_the_handler(tls_channel(l.addr, &ca.pem(), Some(&foreign)).await).await.is_err(), "another ca");
    assert!(reaches_the_handler(tls_channel(l.addr, &ca.pem(), Some(&expired)).await).await.is_err(), "expired");
    // A client that does not trust the server's CA gives up on its own.
    assert!(reaches_the_handler(tls_channel(l.addr, &other.pem(), Some(&valid)).await).await.is_err(), "server ca");
    // Valid: in, through the client side the services use (`Tls::client`).
    reaches_the_handler(tls_channel(l.addr, &ca.pem(), Some(&valid)).await).await.expect("a valid certificate");
    let client_tls = Tls::from_pem(&valid.0, &valid.1, &ca.pem()).client().domain_name("loyalty");
    let endpoint = Endpoint::from_shared(format!("https://{}", l.addr)).unwrap().tls_config(client_tls).unwrap();
    reaches_the_handler(endpoint.connect().await.ok()).await.expect("the services' own client side");

    // Health in plaintext for the probes, and only health.
    let plain_health = Endpoint::from_shared(format!("http://{health}")).unwrap().connect().await.unwrap();
    let status = HealthClient::new(plain_health.clone())
        .check(HealthCheckRequest { service: String::new() })
        .await
        .unwrap()
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);
    let mut other_rpc = LoyaltyServiceClient::new(plain_health);
    let refused = other_rpc.get_member(lpb::GetMemberRequest { customer_id: "nobody".into() }).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unimplemented, "the health port serves health alone");
    l.stop().await;
}
