//! Keys: the Ed25519 key a service signs its outgoing calls with, the key sets (JWKS) of public keys a receiver
//! trusts, and the development set, generated in memory or written to a folder (`rapport keys generate`).
//!
//! Two key sets are trusted, and a key speaks only for its side:
//! - the services' set: each key's `kid` is `<service>.<label>` (`loyalty.2026-12`) and binds it to that service;
//!   (labels are generated: seconds since the epoch and a random suffix, so kids stay unique across rotations);
//!   a token signed with it is valid only as that service (issuer `rapport-<service>`, subject and role the
//!   service's name), so a compromised service cannot pass for another or for a person;
//! - the people's set (the development issuer's, or any OIDC provider's JWKS saved to a file): its tokens carry
//!   the people's roles (sre, marketing, agent, reader) and never a service's.
use std::{collections::HashMap, path::Path};

use ed25519_dalek::{
    SigningKey,
    pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding},
};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm},
};

use super::Role;

/// The issuer of a service's own tokens.
pub fn service_issuer(service: Role) -> String {
    format!("rapport-{}", service.as_str())
}

/// Whose tokens a trusted key verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    /// One service, as itself only.
    Service(Role),
    /// People (operators and staff), through the people's issuer.
    People,
}

/// A public key receivers trust.
#[derive(Clone)]
pub struct TrustedKey {
    /// The algorithm its tokens must say (pinned by the key's type: no `none`, no HMAC).
    pub alg: Algorithm,
    /// The issuer its tokens must say.
    pub issuer: String,
    /// Whose tokens it verifies.
    pub speaker: Speaker,
    pub(super) key: DecodingKey,
}

/// The public keys a receiver trusts, by `kid`.
#[derive(Clone, Default)]
pub struct KeySet {
    pub(super) keys: HashMap<String, TrustedKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("KeySet").field("kids", &kids).finish()
    }
}

fn algorithm_of(jwk: &Jwk, services: bool) -> Result<Algorithm, String> {
    let kid = jwk.common.key_id.as_deref().unwrap_or("?");
    if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature) {
        return Err(format!("key {kid}: not a signing key (use is not sig)"));
    }
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => Algorithm::EdDSA,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 && !services => Algorithm::ES384,
        AlgorithmParameters::RSA(_) if !services => Algorithm::RS256,
        AlgorithmParameters::OctetKey(_) => return Err(format!("key {kid}: shared (oct) keys are not accepted")),
        _ => {
            return Err(format!(
                "key {kid}: unsupported key type (Ed25519, P-256{} only)",
                if services { "" } else { ", P-384, RSA" }
            ));
        }
    };
    let alg = match jwk.common.key_algorithm {
        None => by_type,
        Some(KeyAlgorithm::EdDSA) if by_type == Algorithm::EdDSA => Algorithm::EdDSA,
        Some(KeyAlgorithm::ES256) if by_type == Algorithm::ES256 => Algorithm::ES256,
        Some(KeyAlgorithm::ES384) if by_type == Algorithm::ES384 => Algorithm::ES384,
        Some(KeyAlgorithm::RS256) if by_type == Algorithm::RS256 => Algorithm::RS256,
        Some(KeyAlgorithm::RS384) if by_type == Algorithm::RS256 => Algorithm::RS384,
        Some(KeyAlgorithm::RS512) if by_type == Algorithm::RS256 => Algorithm::RS512,
        Some(KeyAlgorithm::PS256) if by_type == Algorithm::RS256 => Algorithm::PS256,
        Some(other) => return Err(format!("key {kid}: algorithm {other:?} does not fit its key type")),
    };
    Ok(alg)
}

impl KeySet {
    /// The services' set (a JWKS document) and, if given, the people's set with the people's issuer.
    pub fn parse(services: &str, people: Option<&str>, people_issuer: &str) -> Result<Self, String> {
        let mut set = KeySet::default();
        let doc: JwkSet = serde_json::from_str(services).map_err(|e| format!("services' key set: {e}"))?;
        for jwk in &doc.keys {
            let kid = jwk.common.key_id.clone().ok_or("services' key set: a key without kid")?;
            let service = kid
                .split_once('.')
                .and_then(|(s, _)| s.parse::<Role>().ok())
                .filter(|r| r.is_service())
                .ok_or_else(|| format!("services' key set: kid {kid:?} must be <service>.<label>"))?;
            let alg = algorithm_of(jwk, true)?;
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {kid}: {e}"))?;
            set.insert(
                kid,
                TrustedKey { alg, issuer: service_issuer(service), speaker: Speaker::Service(service), key },
            )?;
        }
        if let Some(people) = people {
            let doc: JwkSet = serde_json::from_str(people).map_err(|e| format!("people's key set: {e}"))?;
            for jwk in &doc.keys {
                let kid = jwk.common.key_id.clone().ok_or("people's key set: a key without kid")?;
                let alg = algorithm_of(jwk, false)?;
                let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {kid}: {e}"))?;
                set.insert(kid, TrustedKey { alg, issuer: people_issuer.to_string(), speaker: Speaker::People, key })?;
            }
        }
        Ok(set)
    }

    fn insert(&mut self, kid: String, key: TrustedKey) -> Result<(), String> {
        if self.keys.insert(kid.clone(), key).is_some() {
            return Err(format!("kid {kid:?} appears twice in the key sets"));
        }
        Ok(())
    }

    /// The trusted key named `kid`.
    pub fn get(&self, kid: &str) -> Option<&TrustedKey> {
        self.keys.get(kid)
    }

    /// The `kid`s, sorted.
    pub fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.keys.keys().cloned().collect();
        kids.sort();
        kids
    }
}

/// A private key and its `kid`: what signs tokens.
#[derive(Clone)]
pub struct Signer {
    /// The `kid` in the tokens' header.
    pub kid: String,
    pub(super) key: EncodingKey,
    seed: [u8; 32],
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl Signer {
    /// A fresh random Ed25519 key named `kid`.
    pub fn generate(kid: &str) -> Self {
        use rand::Rng;
        Self::from_seed(kid, rand::rng().random())
    }

    fn from_seed(kid: &str, seed: [u8; 32]) -> Self {
        let sk = SigningKey::from_bytes(&seed);
        // A 32-byte seed always encodes as PKCS#8.
        let der = sk.to_pkcs8_der().map(|d| d.as_bytes().to_vec()).unwrap_or_default();
        Self { kid: kid.to_string(), key: EncodingKey::from_ed_der(&der), seed }
    }

    /// A key from its PKCS#8 PEM text.
    pub fn from_pem(kid: &str, pem: &str) -> Result<Self, String> {
        let sk = SigningKey::from_pkcs8_pem(pem)
            .map_err(|e| format!("signing key {kid}: not an Ed25519 PKCS#8 key ({e})"))?;
        Ok(Self::from_seed(kid, sk.to_bytes()))
    }

    /// Its PKCS#8 PEM text (a secret).
    pub fn to_pem(&self) -> String {
        SigningKey::from_bytes(&self.seed).to_pkcs8_pem(LineEnding::LF).map(|p| p.to_string()).unwrap_or_default()
    }

    /// Its public half as a JWK (`kty` OKP, `crv` Ed25519, `alg` EdDSA, `use` sig).
    pub fn public_jwk(&self) -> serde_json::Value {
        let x = SigningKey::from_bytes(&self.seed).verifying_key().to_bytes();
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": "EdDSA",
            "use": "sig",
            "kid": self.kid,
            "x": base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, x),
        })
    }
}

/// A JWKS document of `keys`.
pub fn jwks(keys: &[&Signer]) -> String {
    let keys: Vec<serde_json::Value> = keys.iter().map(|k| k.public_jwk()).collect();
    serde_json::to_string_pretty(&serde_json::json!({ "keys": keys })).unwrap_or_default()
}

/// A whole key set in memory: one key per service and one for the people's issuer.
#[derive(Debug, Clone)]
pub struct DevelopmentKeys {
    /// Each service's key.
    pub services: HashMap<Role, Signer>,
    /// The people's issuer's key.
    pub people: Signer,
}

/// The label of keys generated now (`<seconds since the epoch>-<4 hex digits>`): kids stay unique across rotations.
fn label() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let suffix: u16 = rand::random();
    format!("{secs}-{suffix:04x}")
}

impl DevelopmentKeys {
    /// Fresh keys for every service and the people's issuer.
    pub fn generate() -> Self {
        let l = label();
        let services = Role::SERVICES.iter().map(|r| (*r, Signer::generate(&format!("{}.{l}", r.as_str())))).collect();
        Self { services, people: Signer::generate(&format!("people.{l}")) }
    }

    /// The services' JWKS.
    pub fn services_jwks(&self) -> String {
        let mut keys: Vec<&Signer> = self.services.values().collect();
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        jwks(&keys)
    }

    /// The people's JWKS.
    pub fn people_jwks(&self) -> String {
        jwks(&[&self.people])
    }
}

/// Files of a key folder.
pub mod files {
    /// The services' JWKS.
    pub const SERVICES_JWKS: &str = "services.jwks.json";
    /// The people's JWKS.
    pub const PEOPLE_JWKS: &str = "people.jwks.json";
    /// The private key of `name` (a service, or `people`).
    pub fn key(name: &str) -> String {
        format!("{name}.key.pem")
    }
    /// The `kid` of `name`'s key.
    pub fn kid(name: &str) -> String {
        format!("{name}.kid")
    }
}

/// Writes `name` whole or not at all (a temporary file renamed over it); a secret one is created readable by its
/// owner only.
fn write(dir: &Path, name: &str, text: &str, secret: bool) -> Result<(), String> {
    use std::io::Write;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let _ = secret;
    let mut f = options.open(&tmp).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn write_signer(dir: &Path, name: &str, signer: &Signer) -> Result<(), String> {
    write(dir, &files::key(name), &signer.to_pem(), true)?;
    write(dir, &files::kid(name), &signer.kid, false)
}

/// Reads a file of a key folder.
pub fn read(dir: &Path, name: &str) -> Result<String, String> {
    let path = dir.join(name);
    std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// The signer `name` (a service, or `people`) of a key folder.
pub fn read_signer(dir: &Path, name: &str) -> Result<Signer, String> {
    let kid = read(dir, &files::kid(name))?;
    Signer::from_pem(kid.trim(), &read(dir, &files::key(name))?)
}

impl DevelopmentKeys {
    /// Writes the folder: each private key (mode 600) with its kid, and both JWKS documents.
    pub fn write(&self, dir: &Path) -> Result<(), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("protecting {}: {e}", dir.display()))?;
        }
        for (role, signer) in &self.services {
            write_signer(dir, role.as_str(), signer)?;
        }
        write_signer(dir, "people", &self.people)?;
        write(dir, files::SERVICES_JWKS, &self.services_jwks(), false)?;
        write(dir, files::PEOPLE_JWKS, &self.people_jwks(), false)
    }
}

/// Rotation, first step: a new key for `name` (a service, or `people`) joins its JWKS beside the keys already
/// there (receivers accept both once they reload their set) and is written as its signing key, which the service
/// uses from its next start: restart it only once every receiver has reloaded. Returns the new kid.
pub fn rotate(dir: &Path, name: &str) -> Result<String, String> {
    let jwks_file = if name == "people" { files::PEOPLE_JWKS } else { files::SERVICES_JWKS };
    if name != "people" && !name.parse::<Role>().is_ok_and(Role::is_service) {
        return Err(format!("{name:?} is neither a service nor people"));
    }
    let signer = Signer::generate(&format!("{name}.{}", label()));
    let mut doc: serde_json::Value =
        serde_json::from_str(&read(dir, jwks_file)?).map_err(|e| format!("{jwks_file}: {e}"))?;
    doc.get_mut("keys")
        .and_then(serde_json::Value::as_array_mut)
        .ok_or(format!("{jwks_file}: no keys"))?
        .push(signer.public_jwk());
    write(dir, jwks_file, &serde_json::to_string_pretty(&doc).unwrap_or_default(), false)?;
    write_signer(dir, name, &signer)?;
    Ok(signer.kid)
}

/// Rotation, last step: the key `kid` leaves its JWKS (tokens it signed are refused once receivers reload).
pub fn retire(dir: &Path, kid: &str) -> Result<(), String> {
    for name in Role::SERVICES.iter().map(|r| r.as_str()).chain(["people"]) {
        if read(dir, &files::kid(name)).is_ok_and(|k| k.trim() == kid) {
            return Err(format!("{kid} is still {name}'s signing key: rotate it first"));
        }
    }
    for jwks_file in [files::SERVICES_JWKS, files::PEOPLE_JWKS] {
        let mut doc: serde_json::Value =
            serde_json::from_str(&read(dir, jwks_file)?).map_err(|e| format!("{jwks_file}: {e}"))?;
        let keys =
            doc.get_mut("keys").and_then(serde_json::Value::as_array_mut).ok_or(format!("{jwks_file}: no keys"))?;
        let before = keys.len();
        keys.retain(|k| k["kid"].as_str() != Some(kid));
        if keys.len() < before {
            if keys.is_empty() {
                return Err(format!("{kid} is the last key of {jwks_file}: rotate first"));
            }
            return write(dir, jwks_file, &serde_json::to_string_pretty(&doc).unwrap_or_default(), false);
        }
    }
    Err(format!("no key {kid:?} in this folder's key sets"))
}
