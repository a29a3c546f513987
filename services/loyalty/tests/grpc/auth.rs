//! Authentication and the role × RPC matrix.
use rapport_kit::auth::{Authenticator, Policy, Role};
use rapport_proto::loyalty::v1 as pb;
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::support::{Db, assert_status, client_as, spawn_app, with_token};

#[test]
fn matrix_covers_every_rpc_and_names_no_other() {
    let policy = rapport_loyalty::app::policy().unwrap();
    let (missing, unknown) =
        policy.coverage(rapport_proto::FILE_DESCRIPTOR_SET, rapport_loyalty::app::SERVICE_NAME).unwrap();
    assert!(missing.is_empty(), "RPCs missing from authz.txt: {missing:?}");
    assert!(unknown.is_empty(), "authz.txt names RPCs that do not exist: {unknown:?}");
    assert!(policy.paths().count() >= 15);
}

#[test]
fn an_rpc_missing_from_the_matrix_is_denied() {
    let p = Policy::parse(rapport_loyalty::app::SERVICE_NAME, "GetMember: sre").unwrap();
    for role in Role::ALL {
        assert!(!p.allows("/rapport.loyalty.v1.LoyaltyService/EarnPoints", role));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_roles_are_enforced() {
    let app = spawn_app(Db::Sqlite).await;
    app.enrol("z").await;
    let get = || pb::GetMemberRequest { customer_id: "z".into() };
    let earn = || pb::EarnPointsRequest {
        request_id: "x".into(),
        customer_id: "z".into(),
        points: 1,
        reason: String::new(),
        reference: String::new(),
    };

    let err = with_token(app.addr, None).get_member(get()).await.unwrap_err();
    assert_status(&err, Code::Unauthenticated, "TOKEN_MISSING", None);
    let err = with_token(app.addr, Some("garbage".into())).get_member(get()).await.unwrap_err();
    assert_status(&err, Code::Unauthenticated, "TOKEN_INVALID", None);
    // (every other forgery, for every service: the system tests' token table)
    let forger = Authenticator::development();
    let err =
        with_token(app.addr, Some(forger.issue("x", Role::Sre, 60).unwrap())).get_member(get()).await.unwrap_err();
    assert_status(&err, Code::Unauthenticated, "KEY_UNKNOWN", None);
    let expired = expired_token(&app.auth);
    let err = with_token(app.addr, Some(expired)).get_member(get()).await.unwrap_err();
    assert_status(&err, Code::Unauthenticated, "TOKEN_EXPIRED", None);

    // a reader reads but may not write; marketing may not earn either
    client_as(app.addr, &app.auth, Role::Reader).get_member(get()).await.unwrap();
    let err = client_as(app.addr, &app.auth, Role::Reader).earn_points(earn()).await.unwrap_err();
    assert_status(&err, Code::PermissionDenied, "ROLE_NOT_ALLOWED", None);
    let err = client_as(app.addr, &app.auth, Role::Marketing).earn_points(earn()).await.unwrap_err();
    assert_status(&err, Code::PermissionDenied, "ROLE_NOT_ALLOWED", None);
    client_as(app.addr, &app.auth, Role::Agent).earn_points(earn()).await.unwrap();

    // health needs no token (Kubernetes probes)
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr)).unwrap().connect().await.unwrap();
    let s = HealthClient::new(ch.clone())
        .check(HealthCheckRequest { service: rapport_loyalty::app::SERVICE_NAME.into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.status, ServingStatus::Serving as i32);
    app.stop().await;
}

fn expired_token(auth: &Authenticator) -> String {
    let now = rapport_kit::auth::now_secs();
    let claims = rapport_kit::auth::Claims {
        sub: "x".into(),
        role: "sre".into(),
        iss: rapport_kit::auth::DEVELOPMENT_ISSUER.into(),
        aud: rapport_kit::auth::DEFAULT_AUDIENCE.into(),
        exp: now - 600,
        iat: now - 700,
        nbf: None,
    };
    auth.sign_as(Role::Sre, &claims).unwrap()
}

/// Request ids are the caller's own: two agents who pick the same id earn twice, one agent's retry earns once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_scoped_per_caller() {
    let app = spawn_app(Db::Sqlite).await;
    app.enrol("z").await;
    let earn = || pb::EarnPointsRequest {
        request_id: "same-id".into(),
        customer_id: "z".into(),
        points: 10,
        reason: String::new(),
        reference: String::new(),
    };
    let as_agent = |who: &str| with_token(app.addr, Some(app.auth.issue(who, Role::Agent, 60).unwrap()));
    as_agent("ann").earn_points(earn()).await.unwrap();
    as_agent("ann").earn_points(earn()).await.unwrap();
    let b = as_agent("bob").earn_points(earn()).await.unwrap().into_inner();
    assert_eq!(b.balance.unwrap().active, 20, "ann's retry earned nothing, bob's own request did");
    app.stop().await;
}
