//! Authentication and the role × RPC matrix.
use rapport_kit::auth::{Authenticator, Policy, Role};
use rapport_proto::loyalty::v1 as pb;
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::support::{Db, SECRET, assert_status, client_as, spawn_app, with_token};

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
    let forger =
        Authenticator::new("another-secret-another-secret-another".to_string().into(), "rapport", "rapport").unwrap();
    let err = with_token(app.addr, Some(forger.issue("x", Role::Sre, 60))).get_member(get()).await.unwrap_err();
    assert_status(&err, Code::Unauthenticated, "TOKEN_INVALID", None);
    let other_aud = Authenticator::new(SECRET.to_string().into(), "rapport", "elsewhere").unwrap();
    let err = with_token(app.addr, Some(other_aud.issue("x", Role::Sre, 60))).get_member(get()).await.unwrap_err();
    assert_status(&err, Code::Unauthenticated, "TOKEN_INVALID", None);
    let other_iss = Authenticator::new(SECRET.to_string().into(), "mallory", "rapport").unwrap();
    let err = with_token(app.addr, Some(other_iss.issue("x", Role::Sre, 60))).get_member(get()).await.unwrap_err();
    assert_status(&err, Code::Unauthenticated, "TOKEN_INVALID", None);
    let expired = expired_token();
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

fn expired_token() -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = rapport_kit::auth::Claims {
        sub: "x".into(),
        role: "sre".into(),
        iss: "rapport".into(),
        aud: "rapport".into(),
        exp: now - 600,
        iat: now - 700,
    };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}
