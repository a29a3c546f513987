//! Authentication (bearer JWT, HS256 pinned, issuer, audience and expiry checked) and authorisation (a checked-in
//! matrix of role × RPC per service, default deny).
use std::{
    collections::{HashMap, HashSet},
    fmt,
    str::FromStr,
};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};

/// Who may call: each service with its own identity, and the people's roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The segmentation service.
    Segmentation,
    /// The loyalty service.
    Loyalty,
    /// The referrals service.
    Referrals,
    /// The feedback service.
    Feedback,
    /// The improvement service.
    Improvement,
    /// Marketing people: offers, segments, campaigns.
    Marketing,
    /// Customer-care staff.
    Agent,
    /// Operators.
    Sre,
    /// Read-only access.
    Reader,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 9] = [
        Role::Segmentation,
        Role::Loyalty,
        Role::Referrals,
        Role::Feedback,
        Role::Improvement,
        Role::Marketing,
        Role::Agent,
        Role::Sre,
        Role::Reader,
    ];

    /// The name used in tokens and the matrix.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Segmentation => "segmentation",
            Role::Loyalty => "loyalty",
            Role::Referrals => "referrals",
            Role::Feedback => "feedback",
            Role::Improvement => "improvement",
            Role::Marketing => "marketing",
            Role::Agent => "agent",
            Role::Sre => "sre",
            Role::Reader => "reader",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| format!("unknown role {s:?}"))
    }
}

/// The claims of a Rapport token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The caller (a service name, or a person's opaque id).
    pub sub: String,
    /// The caller's role.
    pub role: String,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
}

/// The authenticated caller of a request, put in the request extensions by the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's subject.
    pub subject: String,
    /// The token's role.
    pub role: Role,
}

/// Verifies and issues tokens with one shared key.
pub struct Authenticator {
    secret: SecretString,
    issuer: String,
    audience: String,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator").field("issuer", &self.issuer).field("audience", &self.audience).finish()
    }
}

/// Shortest shared key accepted (HS256 wants at least 256 bits).
pub const MIN_SECRET_LEN: usize = 32;

impl Authenticator {
    /// An authenticator with a shared key (at least 32 bytes), issuer and audience.
    pub fn new(secret: SecretString, issuer: &str, audience: &str) -> Result<Self, String> {
        if secret.expose_secret().len() < MIN_SECRET_LEN {
            return Err(format!("the token key must be at least {MIN_SECRET_LEN} bytes"));
        }
        Ok(Self { secret, issuer: issuer.into(), audience: audience.into() })
    }

    /// A fresh random key, for development on loopback only.
    pub fn generate(issuer: &str, audience: &str) -> Self {
        use rand::Rng;
        let bytes: [u8; 32] = rand::rng().random();
        let secret = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
        Self { secret: secret.into(), issuer: issuer.into(), audience: audience.into() }
    }

    /// Issues a token for `subject` with `role`, valid for `ttl_secs`.
    pub fn issue(&self, subject: &str, role: Role, ttl_secs: u64) -> String {
        let now = now_secs();
        let claims = Claims {
            sub: subject.into(),
            role: role.as_str().into(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: now + ttl_secs,
            iat: now,
        };
        // Encoding HS256 claims of plain strings and numbers cannot fail.
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(self.secret.expose_secret().as_bytes()),
        )
        .unwrap_or_default()
    }

    /// Checks a bearer token: algorithm (HS256 only), signature, issuer, audience, expiry and role.
    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        let data = jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_secret(self.secret.expose_secret().as_bytes()),
            &validation,
        )
        .map_err(|e| {
            let reason = match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "TOKEN_EXPIRED",
                _ => "TOKEN_INVALID",
            };
            ApiError::new(ErrorCode::Unauthenticated, reason, "invalid or expired token")
        })?;
        let role =
            data.claims.role.parse::<Role>().map_err(|_| {
                ApiError::new(ErrorCode::PermissionDenied, "ROLE_UNKNOWN", "the token's role is unknown")
            })?;
        Ok(Caller { subject: data.claims.sub, role })
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Token settings from the environment: `RAPPORT_AUTH_SECRET` (shared HS256 key, at least 32 bytes),
/// `RAPPORT_AUTH_ISSUER` and `RAPPORT_AUTH_AUDIENCE` (both default `rapport`). Without a key a development key is
/// generated, and only when every listen address is loopback; the returned flag says so (print a token then).
pub fn from_env(loopback_only: bool) -> Result<(Authenticator, bool), String> {
    let issuer = std::env::var("RAPPORT_AUTH_ISSUER").unwrap_or_else(|_| "rapport".into());
    let audience = std::env::var("RAPPORT_AUTH_AUDIENCE").unwrap_or_else(|_| "rapport".into());
    let secret = std::env::var("RAPPORT_AUTH_SECRET").ok().filter(|s| !s.is_empty());
    from_settings(secret, &issuer, &audience, loopback_only)
}

/// [`from_env`] with the values given.
pub fn from_settings(
    secret: Option<String>,
    issuer: &str,
    audience: &str,
    loopback_only: bool,
) -> Result<(Authenticator, bool), String> {
    match secret {
        Some(secret) => Ok((Authenticator::new(secret.into(), issuer, audience)?, false)),
        None if loopback_only => Ok((Authenticator::generate(issuer, audience), true)),
        None => Err("RAPPORT_AUTH_SECRET is required when listening beyond loopback".into()),
    }
}

/// Which roles may call which RPC (full path `/package.Service/Method`). What is not listed is denied.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    allowed: HashMap<String, HashSet<Role>>,
}

impl Policy {
    /// Parses a matrix for `service` (e.g. `rapport.loyalty.v1.LoyaltyService`). Each line: `Method: role role ...`;
    /// `#` starts a comment.
    pub fn parse(service: &str, text: &str) -> Result<Self, String> {
        let mut policy = Self::default();
        policy.extend(service, text)?;
        Ok(policy)
    }

    /// Adds the matrix of another service (several services share one process in `rapport up`).
    pub fn extend(&mut self, service: &str, text: &str) -> Result<(), String> {
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (method, roles) =
                line.split_once(':').ok_or_else(|| format!("line {}: expected `Method: roles`", n + 1))?;
            let roles = roles
                .split_whitespace()
                .map(|r| r.trim_end_matches(',').parse::<Role>().map_err(|e| format!("line {}: {e}", n + 1)))
                .collect::<Result<HashSet<_>, _>>()?;
            let path = format!("/{service}/{}", method.trim());
            if self.allowed.insert(path.clone(), roles).is_some() {
                return Err(format!("line {}: {path} listed twice", n + 1));
            }
        }
        Ok(())
    }

    /// Whether `role` may call `path`.
    pub fn allows(&self, path: &str, role: Role) -> bool {
        self.allowed.get(path).is_some_and(|r| r.contains(&role))
    }

    /// The listed RPC paths.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.allowed.keys().map(String::as_str)
    }

    /// RPC paths of `service` in an encoded descriptor set that the matrix does not list (must be empty), and
    /// listed paths that the descriptors do not have (typos; must be empty too).
    pub fn coverage(&self, descriptor_set: &[u8], service: &str) -> Result<(Vec<String>, Vec<String>), String> {
        use prost::Message;
        let fds = prost_types::FileDescriptorSet::decode(descriptor_set).map_err(|e| e.to_string())?;
        let mut rpcs = Vec::new();
        for file in &fds.file {
            for svc in &file.service {
                let full = format!("{}.{}", file.package(), svc.name());
                if full != service {
                    continue;
                }
                rpcs.extend(svc.method.iter().map(|m| format!("/{full}/{}", m.name())));
            }
        }
        let missing = rpcs.iter().filter(|p| !self.allowed.contains_key(*p)).cloned().collect();
        let prefix = format!("/{service}/");
        let unknown = self.allowed.keys().filter(|p| p.starts_with(&prefix) && !rpcs.contains(p)).cloned().collect();
        Ok((missing, unknown))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        Authenticator::new("0123456789abcdef0123456789abcdef".to_string().into(), "rapport", "rapport").unwrap()
    }

    #[test]
    fn issued_token_verifies() {
        let a = auth();
        let c = a.verify(&a.issue("ops-1", Role::Sre, 60)).unwrap();
        assert_eq!(c, Caller { subject: "ops-1".into(), role: Role::Sre });
    }

    #[test]
    fn forged_wrong_audience_and_none_algorithm_are_refused() {
        let a = auth();
        let other =
            Authenticator::new("another-key-another-key-another-key".to_string().into(), "rapport", "rapport").unwrap();
        let forged = other.issue("x", Role::Sre, 60);
        assert_eq!(a.verify(&forged).unwrap_err().reason, "TOKEN_INVALID");
        let wrong_aud = Authenticator::new("0123456789abcdef0123456789abcdef".to_string().into(), "rapport", "else")
            .unwrap()
            .issue("x", Role::Sre, 60);
        assert_eq!(a.verify(&wrong_aud).unwrap_err().reason, "TOKEN_INVALID");
        // alg "none": header {"alg":"none"} with the same claims and no signature
        let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s);
        let claims =
            format!(r#"{{"sub":"x","role":"sre","iss":"rapport","aud":"rapport","exp":{},"iat":0}}"#, now_secs() + 60);
        let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&claims));
        assert_eq!(a.verify(&none).unwrap_err().code, ErrorCode::Unauthenticated);
    }

    #[test]
    fn expired_token_is_refused() {
        let a = auth();
        let now = now_secs();
        let claims = Claims {
            sub: "x".into(),
            role: "sre".into(),
            iss: "rapport".into(),
            aud: "rapport".into(),
            exp: now - 120,
            iat: now - 180,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert_eq!(a.verify(&token).unwrap_err().reason, "TOKEN_EXPIRED");
    }

    #[test]
    fn development_keys_only_on_loopback() {
        let (dev, generated) = from_settings(None, "rapport", "rapport", true).unwrap();
        assert!(generated);
        assert!(dev.verify(&dev.issue("me", Role::Sre, 60)).is_ok());
        assert!(from_settings(None, "rapport", "rapport", false).is_err());
        let (_, generated) =
            from_settings(Some("0123456789abcdef0123456789abcdef".into()), "rapport", "rapport", false).unwrap();
        assert!(!generated);
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(Authenticator::new("short".to_string().into(), "i", "a").is_err());
    }

    #[test]
    fn policy_default_denies() {
        let p = Policy::parse("pkg.S", "# comment\nGet: reader agent\nPut: agent\n").unwrap();
        assert!(p.allows("/pkg.S/Get", Role::Reader));
        assert!(!p.allows("/pkg.S/Put", Role::Reader));
        assert!(!p.allows("/pkg.S/Delete", Role::Sre));
        assert!(Policy::parse("pkg.S", "Get: wizard").is_err());
        assert!(Policy::parse("pkg.S", "Get: sre\nGet: agent").is_err());
    }
}
