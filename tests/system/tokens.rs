//! Tokens, for every service: each refused token gets the code and reason documented in the README
//! ("Identity and tokens"), a valid one gets through, and a rotated-out key stops working once the key set is
//! reloaded, while the old and the new key both work during the rotation.
use std::sync::Arc;

use http::uri::PathAndQuery;
use rapport_kit::{
    auth::{self, Authenticator, Claims, DEFAULT_AUDIENCE, DEVELOPMENT_ISSUER, Role, Signer, keys},
    clock::ManualClock,
    db::testing::fresh_database,
    testing::{Backend, TestServer},
};
use tonic::{Code, Request, Status, transport::Endpoint};
use tonic_types::StatusExt;

use crate::support::{T0, any_port, serve_config};

/// One RPC per service that an operator may call and that answers OK on an empty database.
const CALLS: [(&str, &str); 5] = [
    ("segmentation", "/rapport.segmentation.v1.SegmentationService/ListSegments"),
    ("loyalty", "/rapport.loyalty.v1.LoyaltyService/GetProgrammeStats"),
    ("referrals", "/rapport.referrals.v1.ReferralsService/ListProgrammes"),
    ("feedback", "/rapport.feedback.v1.FeedbackService/ListCases"),
    ("improvement", "/rapport.improvement.v1.ImprovementService/ListThemes"),
];

/// Calls `path` with `token`, if any: an empty request, or for loyalty a window of the last day; what the answer
/// holds is ignored.
async fn call(addr: std::net::SocketAddr, path: &'static str, token: Option<&str>) -> Result<(), Status> {
    if path.contains("LoyaltyService") {
        let window = rapport_proto::loyalty::v1::GetProgrammeStatsRequest {
            start_time: Some(rapport_kit::clock::timestamp(T0 - 86_400_000)),
            end_time: Some(rapport_kit::clock::timestamp(T0)),
        };
        return send(addr, path, window, token).await;
    }
    send(addr, path, (), token).await
}

async fn send<M: prost::Message + Default + Send + Sync + 'static>(
    addr: std::net::SocketAddr,
    path: &'static str,
    message: M,
    token: Option<&str>,
) -> Result<(), Status> {
    let channel = Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut req = Request::new(message);
    if let Some(t) = token {
        req.metadata_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let codec = tonic_prost::ProstCodec::<M, ()>::default();
    grpc.unary(req, PathAndQuery::from_static(path), codec).await.map(|_| ())
}

fn reason(s: &Status) -> String {
    s.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
}

fn people_claims(role: &str) -> Claims {
    let now = auth::now_secs();
    Claims {
        sub: "ops-1".into(),
        role: role.into(),
        iss: DEVELOPMENT_ISSUER.into(),
        aud: DEFAULT_AUDIENCE.into(),
        exp: now + 60,
        iat: now,
        nbf: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_refuses_every_forged_token_as_documented() {
    let dir = std::env::temp_dir().join(format!("rapport-token-keys-{}", uuid::Uuid::new_v4()));
    auth::DevelopmentKeys::generate().write(&dir).unwrap();
    let settings = auth::Settings { dir: Some(dir.clone()), ..auth::Settings::default() };
    let (a, _) = auth::from_settings(settings.clone(), None, false).unwrap();
    let a = Arc::new(a);
    let clock = ManualClock::new(T0);
    let (mut servers, mut dbs): (Vec<TestServer>, Vec<_>) = (Vec::new(), Vec::new());
    for (name, _) in CALLS {
        let db = fresh_database(Backend::Sqlite).await.unwrap();
        let url = db.url().to_string();
        let c = Arc::new(clock.clone());
        let server = match name {
            "segmentation" => {
                let mut config = rapport_segmentation::app::Config::local(&url, &format!("http://{}", any_port()));
                config.common.serve = serve_config();
                TestServer::start::<rapport_segmentation::app::Segmentation>(config, a.clone(), c).await
            }
            "loyalty" => {
                let mut config = rapport_loyalty::app::Config::local(&url);
                config.common.serve = serve_config();
                TestServer::start::<rapport_loyalty::app::Loyalty>(config, a.clone(), c).await
            }
            "referrals" => {
                let mut config = rapport_referrals::app::Config::local(&url);
                config.common.serve = serve_config();
                TestServer::start::<rapport_referrals::app::Referrals>(config, a.clone(), c).await
            }
            "feedback" => {
                let mut config = rapport_feedback::app::Config::local(&url);
                config.common.serve = serve_config();
                TestServer::start::<rapport_feedback::app::Feedback>(config, a.clone(), c).await
            }
            _ => {
                let mut config = rapport_improvement::app::Config::local(&url);
                config.common.serve = serve_config();
                TestServer::start::<rapport_improvement::app::Improvement>(config, a.clone(), c).await
            }
        };
        servers.push(server.unwrap());
        dbs.push(db);
    }

    let now = auth::now_secs();
    let people = |c: Claims| a.sign_as(Role::Sre, &c).unwrap();
    let ok = people_claims("sre");
    let people_kid = keys::read(&dir, &keys::files::kid("people")).unwrap().trim().to_string();
    let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s);
    let none = format!(
        "{}.{}.",
        b64(&format!(r#"{{"alg":"none","typ":"JWT","kid":"{people_kid}"}}"#)),
        b64(&serde_json::to_string(&ok).unwrap())
    );
    let public = keys::read_signer(&dir, "people").unwrap().public_jwk()["x"].as_str().unwrap().to_string();
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some(people_kid.clone());
    let hs256 =
        jsonwebtoken::encode(&hs_header, &ok, &jsonwebtoken::EncodingKey::from_secret(public.as_bytes())).unwrap();
    let stranger = Authenticator::new(
        auth::KeySet::default(),
        Default::default(),
        Some(Signer::generate("people.stranger")),
        DEVELOPMENT_ISSUER,
        DEFAULT_AUDIENCE,
    );
    let loyalty_as_sre =
        Claims { sub: "loyalty".into(), iss: auth::service_issuer(Role::Loyalty), ..people_claims("sre") };
    let cases: Vec<(&str, Option<String>, Code, &str)> = vec![
        ("no token", None, Code::Unauthenticated, "TOKEN_MISSING"),
        ("not a token", Some("garbage".into()), Code::Unauthenticated, "TOKEN_INVALID"),
        (
            "expired",
            Some(people(Claims { exp: now - 60, iat: now - 120, ..ok.clone() })),
            Code::Unauthenticated,
            "TOKEN_EXPIRED",
        ),
        (
            "not yet valid",
            Some(people(Claims { nbf: Some(now + 600), exp: now + 900, ..ok.clone() })),
            Code::Unauthenticated,
            "TOKEN_NOT_YET_VALID",
        ),
        (
            "too long-lived",
            Some(people(Claims { exp: now + auth::DEFAULT_MAX_TTL_SECS + 60, ..ok.clone() })),
            Code::Unauthenticated,
            "TOKEN_TOO_LONG_LIVED",
        ),
        (
            "wrong audience",
            Some(people(Claims { aud: "elsewhere".into(), ..ok.clone() })),
            Code::Unauthenticated,
            "TOKEN_INVALID",
        ),
        (
            "wrong issuer",
            Some(people(Claims { iss: "mallory".into(), ..ok.clone() })),
            Code::Unauthenticated,
            "TOKEN_INVALID",
        ),
        ("alg none", Some(none), Code::Unauthenticated, "TOKEN_INVALID"),
        ("HS256 signed with the public key", Some(hs256), Code::Unauthenticated, "TOKEN_INVALID"),
        ("unknown kid", Some(stranger.issue("ops-1", Role::Sre, 60).unwrap()), Code::Unauthenticated, "KEY_UNKNOWN"),
        (
            "a service's key claiming an operator",
            Some(a.sign_as(Role::Loyalty, &loyalty_as_sre).unwrap()),
            Code::PermissionDenied,
            "ROLE_NOT_FOR_KEY",
        ),
        (
            "the people's key claiming a service",
            Some(people(Claims { role: "loyalty".into(), sub: "loyalty".into(), ..ok.clone() })),
            Code::PermissionDenied,
            "ROLE_NOT_FOR_KEY",
        ),
    ];
    for (server, (name, path)) in servers.iter().zip(CALLS) {
        for (case, token, code, want) in &cases {
            let e = call(server.addr, path, token.as_deref()).await.unwrap_err();
            assert_eq!((e.code(), reason(&e).as_str()), (*code, *want), "{name}: {case}: {e:?}");
        }
        call(server.addr, path, Some(&people(ok.clone()))).await.unwrap_or_else(|e| panic!("{name}: valid: {e:?}"));
    }

    // Rotation: loyalty's new key is trusted beside the old once the set is reloaded; the old one retires.
    let old_kid = keys::read(&dir, &keys::files::kid("loyalty")).unwrap().trim().to_string();
    let old = a.issue("loyalty", Role::Loyalty, 60).unwrap();
    keys::rotate(&dir, "loyalty").unwrap();
    let (rotated, _) = auth::from_settings(settings.clone(), Some(Role::Loyalty), false).unwrap();
    let new = rotated.issue("loyalty", Role::Loyalty, 60).unwrap();
    // loyalty may call segmentation's ListSegmentMembers but not ListSegments: a call past authentication is
    // PERMISSION_DENIED by the matrix, one refused by it is UNAUTHENTICATED.
    let seg = servers[0].addr;
    let path = "/rapport.segmentation.v1.SegmentationService/ListSegments";
    let e = call(seg, path, Some(&new)).await.unwrap_err();
    assert_eq!(reason(&e), "KEY_UNKNOWN", "the new key before the reload");
    assert!(a.reload().unwrap());
    for (token, which) in [(&old, "old"), (&new, "new")] {
        let e = call(seg, path, Some(token)).await.unwrap_err();
        assert_eq!((e.code(), reason(&e).as_str()), (Code::PermissionDenied, "ROLE_NOT_ALLOWED"), "{which} key");
    }
    keys::retire(&dir, &old_kid).unwrap();
    assert!(a.reload().unwrap());
    for (server, (name, path)) in servers.iter().zip(CALLS) {
        let e = call(server.addr, path, Some(&old)).await.unwrap_err();
        assert_eq!(reason(&e), "KEY_UNKNOWN", "{name}: the retired key");
    }
    let e = call(seg, path, Some(&new)).await.unwrap_err();
    assert_eq!(reason(&e), "ROLE_NOT_ALLOWED", "the new key still");
    for s in servers {
        s.stop().await;
    }
    std::fs::remove_dir_all(dir).unwrap();
}
