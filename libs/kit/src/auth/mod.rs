//! Authentication (bearer JWT signed with asymmetric keys: each service's own Ed25519 key, and the people's
//! issuer's; key, algorithm, issuer, audience, times and lifetime checked) and authorisation (a checked-in matrix of
//! role × RPC per service, default deny).
use std::{
    collections::{HashMap, HashSet},
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
    sync::{Arc, RwLock},
};

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

pub use self::keys::{DevelopmentKeys, KeySet, Signer, Speaker, service_issuer};
use crate::error::{ApiError, ErrorCode};

pub mod keys;

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
    /// A customer acting on its own data (the token's subject is its customer id): the self-service RPCs only.
    Customer,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 10] = [
        Role::Segmentation,
        Role::Loyalty,
        Role::Referrals,
        Role::Feedback,
        Role::Improvement,
        Role::Marketing,
        Role::Agent,
        Role::Sre,
        Role::Reader,
        Role::Customer,
    ];

    /// The services, each signing its own calls.
    pub const SERVICES: [Role; 5] =
        [Role::Segmentation, Role::Loyalty, Role::Referrals, Role::Feedback, Role::Improvement];

    /// Whether this is a service's role (not a person's).
    pub fn is_service(self) -> bool {
        Self::SERVICES.contains(&self)
    }

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
            Role::Customer => "customer",
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
    /// Not before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// The authenticated caller of a request, put in the request extensions by the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's subject.
    pub subject: String,
    /// The token's role.
    pub role: Role,
}

/// Longest leeway on times (`exp`, `nbf`, `iat`), for clocks a little apart.
pub const LEEWAY_SECS: u64 = 5;
/// Default longest lifetime of a token (`exp - iat`): a working day.
pub const DEFAULT_MAX_TTL_SECS: u64 = 12 * 3600;
/// Lifetime of the tokens a service mints for each outgoing call.
pub const SERVICE_TOKEN_TTL_SECS: u64 = 300;

/// Where the trusted key sets are read from, to read them again (rotation without a restart).
#[derive(Debug, Clone)]
struct Sources {
    services: PathBuf,
    people: Option<PathBuf>,
}

/// Verifies tokens against the trusted key sets, and issues them with the keys this process holds: its own
/// service's (production), or every key of a development set (`rapport up`, tests).
pub struct Authenticator {
    audience: String,
    people_issuer: String,
    max_ttl_secs: u64,
    trust: RwLock<Arc<KeySet>>,
    sources: Option<Sources>,
    services: HashMap<Role, Signer>,
    people: Option<Signer>,
    /// Tokens whose signature and claims were checked here (by the SHA-256 of their text), to check only their
    /// expiry and key again.
    verified: RwLock<HashMap<[u8; 32], Verified>>,
    /// Bumped by every change of the trusted keys: a check that began under older keys is not remembered.
    generation: std::sync::atomic::AtomicU64,
    /// The key set files as last read, to tell a change of any key (not only of the key ids).
    loaded: std::sync::Mutex<Option<(String, Option<String>)>>,
    /// This process's own service tokens, reused while most of their life is left.
    minted: std::sync::Mutex<HashMap<(Role, Box<str>), Minted>>,
}

/// A token this process minted for its own calls, and its expiry.
type Minted = (Arc<str>, u64);

/// What a full check of a token found: who it proves, until when, under which key.
#[derive(Debug, Clone)]
struct Verified {
    caller: Caller,
    exp: u64,
    kid: Box<str>,
}

/// Tokens remembered as verified at most; past it, the expired are dropped, then all if that left it over 3/4 full.
const VERIFIED_CAPACITY: usize = 4096;
/// A minted service token is minted again once less than this is left of its life (so one lives at least this
/// long at the callee, and is reused for the rest).
const MINT_AGAIN_BELOW_SECS: u64 = SERVICE_TOKEN_TTL_SECS - 60;

impl Verified {
    /// The caller again, if the token has not expired at `now` and its key is still trusted.
    fn still(&self, now: u64, trust: &KeySet) -> Result<Caller, ApiError> {
        if trust.get(&self.kid).is_none() {
            return Err(unauthenticated("KEY_UNKNOWN", "the token's signing key is not trusted here"));
        }
        if self.exp.saturating_add(LEEWAY_SECS) < now {
            return Err(unauthenticated("TOKEN_EXPIRED", "the token has expired"));
        }
        Ok(self.caller.clone())
    }
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("audience", &self.audience)
            .field("people_issuer", &self.people_issuer)
            .field("trust", &self.trust())
            .finish_non_exhaustive()
    }
}

fn unauthenticated(reason: &'static str, message: &'static str) -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, reason, message)
}

/// The audience every Rapport token names by default.
pub const DEFAULT_AUDIENCE: &str = "rapport";
/// The development people's issuer.
pub const DEVELOPMENT_ISSUER: &str = "rapport-dev";

impl Authenticator {
    /// Trusts `trust`, signs with `services` (by service) and `people` (the people's issuer's key, if held).
    pub fn new(
        trust: KeySet,
        services: HashMap<Role, Signer>,
        people: Option<Signer>,
        people_issuer: &str,
        audience: &str,
    ) -> Self {
        Self {
            audience: audience.into(),
            people_issuer: people_issuer.into(),
            max_ttl_secs: DEFAULT_MAX_TTL_SECS,
            trust: RwLock::new(Arc::new(trust)),
            sources: None,
            services,
            people,
            verified: RwLock::new(HashMap::new()),
            generation: std::sync::atomic::AtomicU64::new(0),
            loaded: std::sync::Mutex::new(None),
            minted: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// A fresh development set held whole (every service's key and the people's issuer's), for `rapport up` and
    /// tests; returns the keys too.
    pub fn development_with_keys() -> (Self, DevelopmentKeys) {
        let keys = DevelopmentKeys::generate();
        let trust =
            KeySet::parse(&keys.services_jwks(), Some(&keys.people_jwks()), DEVELOPMENT_ISSUER).unwrap_or_default();
        let auth =
            Self::new(trust, keys.services.clone(), Some(keys.people.clone()), DEVELOPMENT_ISSUER, DEFAULT_AUDIENCE);
        (auth, keys)
    }

    /// A fresh development set held whole.
    pub fn development() -> Self {
        Self::development_with_keys().0
    }

    /// The same, with tokens living at most `secs`.
    pub fn with_max_ttl(mut self, secs: u64) -> Self {
        self.max_ttl_secs = secs;
        self
    }

    /// The trusted keys now.
    pub fn trust(&self) -> Arc<KeySet> {
        self.trust.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// Replaces the trusted keys (what a reload does).
    pub fn set_trust(&self, trust: KeySet) {
        if let Ok(mut t) = self.trust.write() {
            *t = Arc::new(trust);
        }
        // What was proven under the old keys is checked again under the new, and a check under way is not kept.
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut v) = self.verified.write() {
            v.clear();
        }
    }

    /// Reads the key sets' files again; on an error the keys trusted so far stay. Returns whether the key ids
    /// changed. Any change of the files' content replaces the trusted keys and forgets the tokens verified so far.
    pub fn reload(&self) -> Result<bool, String> {
        let Some(src) = &self.sources else { return Ok(false) };
        let services = read_file(&src.services)?;
        let people = src.people.as_deref().map(read_file).transpose()?;
        let texts = Some((services, people));
        if self.loaded.lock().is_ok_and(|l| *l == texts) {
            return Ok(false);
        }
        let Some((services, people)) = &texts else { return Ok(false) };
        let fresh = KeySet::parse(services, people.as_deref(), &self.people_issuer)?;
        let changed = fresh.kids() != self.trust().kids();
        self.set_trust(fresh);
        if let Ok(mut l) = self.loaded.lock() {
            *l = texts;
        }
        Ok(changed)
    }

    /// Reloads the key sets every `every` until the process ends, logging a change or a failure.
    pub async fn watch(self: Arc<Self>, every: std::time::Duration) {
        if self.sources.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            match self.reload() {
                Ok(true) => tracing::info!(keys = self.trust().kids().len(), "trusted keys reloaded"),
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "reloading the trusted keys failed; the previous ones stay"),
            }
        }
    }

    /// Issues a token for `subject` with `role`, valid for `ttl_secs`: a person's role with the people's issuer's
    /// key, a service's role with that service's key (and the service as its subject, whatever `subject` says); an
    /// error when this process holds no such key.
    pub fn issue(&self, subject: &str, role: Role, ttl_secs: u64) -> Result<String, String> {
        let now = now_secs();
        let subject = if role.is_service() { role.as_str() } else { subject };
        if role == Role::Customer && subject.is_empty() {
            return Err("a customer's token names its customer id as subject".into());
        }
        let (signer, issuer) = if role.is_service() {
            (self.services.get(&role).ok_or_else(|| format!("no signing key for {role} here"))?, service_issuer(role))
        } else {
            (self.people.as_ref().ok_or("no key of the people's issuer here")?, self.people_issuer.clone())
        };
        if ttl_secs > self.max_ttl_secs {
            return Err(format!("a token lives at most {} s", self.max_ttl_secs));
        }
        let claims = Claims {
            sub: subject.into(),
            role: role.as_str().into(),
            iss: issuer,
            aud: self.audience.clone(),
            exp: now + ttl_secs,
            iat: now,
            nbf: None,
        };
        sign(signer, &claims)
    }

    /// A token for this process's own call as `subject` with `role` (a service's), living
    /// [`SERVICE_TOKEN_TTL_SECS`]: the last one minted while more than [`MINT_AGAIN_BELOW_SECS`] of it are left, so
    /// the callee verifies it once rather than on every call.
    pub fn service_token(&self, subject: &str, role: Role) -> Result<Arc<str>, String> {
        let now = now_secs();
        let key = (role, Box::from(subject));
        if let Ok(m) = self.minted.lock()
            && let Some((t, exp)) = m.get(&key)
            && exp.saturating_sub(now) > MINT_AGAIN_BELOW_SECS
        {
            return Ok(t.clone());
        }
        let token: Arc<str> = Arc::from(self.issue(subject, role, SERVICE_TOKEN_TTL_SECS)?);
        if let Ok(mut m) = self.minted.lock() {
            m.insert(key, (token.clone(), now + SERVICE_TOKEN_TTL_SECS));
        }
        Ok(token)
    }

    /// Signs any claims with the key this process holds for `role`'s side (for tests of refused tokens).
    pub fn sign_as(&self, role: Role, claims: &Claims) -> Result<String, String> {
        let signer = if role.is_service() { self.services.get(&role) } else { self.people.as_ref() };
        sign(signer.ok_or("no such signing key here")?, claims)
    }

    /// Checks a bearer token: its key (`kid`) among the trusted, the algorithm that key's type pins, the signature,
    /// issuer (the key's), audience, `exp`/`nbf`/`iat` within [`LEEWAY_SECS`], a lifetime of at most the maximum,
    /// and that the key may speak for the token's role: UNAUTHENTICATED for a token that proves nothing,
    /// PERMISSION_DENIED for a proven caller claiming what its key may not (another service, a person's role).
    ///
    /// A token verified once is remembered (by the hash of its text, up to [`VERIFIED_CAPACITY`] tokens): later calls
    /// with it only check its expiry and that its key is still trusted — an Ed25519 check costs more than many a read.
    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let now = now_secs();
        let known = self.verified.read().ok().and_then(|v| v.get(&digest).map(|e| e.still(now, &self.trust())));
        if let Some(known) = known {
            return known;
        }
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        let (caller, exp, kid) = self.verify_fully(token)?;
        if let Ok(mut v) = self.verified.write()
            && self.generation.load(std::sync::atomic::Ordering::SeqCst) == generation
        {
            if v.len() >= VERIFIED_CAPACITY {
                v.retain(|_, e| e.exp.saturating_add(LEEWAY_SECS) >= now);
                if v.len() >= VERIFIED_CAPACITY / 4 * 3 {
                    v.clear();
                }
            }
            v.insert(digest, Verified { caller: caller.clone(), exp, kid });
        }
        Ok(caller)
    }

    /// Every check of [`Self::verify`], signature included; the caller, the token's expiry and its key id.
    fn verify_fully(&self, token: &str) -> Result<(Caller, u64, Box<str>), ApiError> {
        let invalid = || unauthenticated("TOKEN_INVALID", "invalid token");
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        let trust = self.trust();
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| trust.get(kid))
            .ok_or_else(|| unauthenticated("KEY_UNKNOWN", "the token's signing key is not trusted here"))?;
        if header.alg != key.alg {
            return Err(invalid());
        }
        let mut validation = Validation::new(key.alg);
        validation.set_issuer(&[&key.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    unauthenticated("TOKEN_EXPIRED", "the token has expired")
                }
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => {
                    unauthenticated("TOKEN_NOT_YET_VALID", "the token is not valid yet")
                }
                _ => invalid(),
            })?
            .claims;
        if claims.iat > now_secs() + LEEWAY_SECS {
            return Err(unauthenticated("TOKEN_NOT_YET_VALID", "the token is issued in the future"));
        }
        if claims.exp.saturating_sub(claims.iat) > self.max_ttl_secs {
            return Err(unauthenticated("TOKEN_TOO_LONG_LIVED", "the token lives longer than allowed"));
        }
        let role = claims
            .role
            .parse::<Role>()
            .map_err(|_| ApiError::new(ErrorCode::PermissionDenied, "ROLE_UNKNOWN", "the token's role is unknown"))?;
        let speaks = match key.speaker {
            Speaker::Service(service) => role == service && claims.sub == service.as_str(),
            Speaker::People => !role.is_service(),
        };
        if !speaks {
            return Err(ApiError::new(
                ErrorCode::PermissionDenied,
                "ROLE_NOT_FOR_KEY",
                "the token's key may not speak for its role",
            ));
        }
        if role == Role::Customer && claims.sub.is_empty() {
            return Err(invalid());
        }
        let kid = header.kid.unwrap_or_default().into_boxed_str();
        Ok((Caller { subject: claims.sub, role }, claims.exp, kid))
    }
}

fn sign(signer: &Signer, claims: &Claims) -> Result<String, String> {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(signer.kid.clone());
    jsonwebtoken::encode(&header, claims, &signer.key).map_err(|e| format!("signing a token: {e}"))
}

fn read_file(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// Seconds since the epoch now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// How often the trusted key sets are read again (`RAPPORT_AUTH_RELOAD_MS`, default 30 s).
pub fn reload_interval_from_env() -> Result<std::time::Duration, crate::config::ConfigError> {
    let d = crate::config::millis("RAPPORT_AUTH_RELOAD_MS", std::time::Duration::from_secs(30))?;
    crate::config::at_least("RAPPORT_AUTH_RELOAD_MS", d, std::time::Duration::from_secs(1))
}

/// Token settings, as [`from_env`] reads them.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `RAPPORT_AUTH_DIR`: a key folder (`rapport keys generate`), for whatever the variables below leave unset.
    pub dir: Option<PathBuf>,
    /// `RAPPORT_AUTH_SERVICE_JWKS`: the services' public keys.
    pub services_jwks: Option<PathBuf>,
    /// `RAPPORT_AUTH_PEOPLE_JWKS`: the people's issuer's public keys (an OIDC provider's JWKS, saved).
    pub people_jwks: Option<PathBuf>,
    /// `RAPPORT_AUTH_PEOPLE_ISSUER` (default `rapport-dev`).
    pub people_issuer: Option<String>,
    /// `RAPPORT_AUTH_AUDIENCE` (default `rapport`).
    pub audience: Option<String>,
    /// `RAPPORT_AUTH_KEY`: this service's private key (Ed25519, PKCS#8 PEM), with `RAPPORT_AUTH_KID`.
    pub key: Option<PathBuf>,
    /// `RAPPORT_AUTH_KID`.
    pub kid: Option<String>,
    /// `RAPPORT_AUTH_MAX_TTL_SECS` (default 12 h).
    pub max_ttl_secs: Option<u64>,
}

impl Settings {
    /// From the environment.
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let max_ttl_secs = var("RAPPORT_AUTH_MAX_TTL_SECS")
            .map(|v| v.parse::<u64>().map_err(|_| format!("RAPPORT_AUTH_MAX_TTL_SECS: not a number of seconds: {v:?}")))
            .transpose()?;
        Ok(Self {
            dir: var("RAPPORT_AUTH_DIR").map(PathBuf::from),
            services_jwks: var("RAPPORT_AUTH_SERVICE_JWKS").map(PathBuf::from),
            people_jwks: var("RAPPORT_AUTH_PEOPLE_JWKS").map(PathBuf::from),
            people_issuer: var("RAPPORT_AUTH_PEOPLE_ISSUER"),
            audience: var("RAPPORT_AUTH_AUDIENCE"),
            key: var("RAPPORT_AUTH_KEY").map(PathBuf::from),
            kid: var("RAPPORT_AUTH_KID"),
            max_ttl_secs,
        })
    }

    fn configured(&self) -> bool {
        self.dir.is_some() || self.services_jwks.is_some()
    }
}

/// Token settings from the environment (see [`Settings`]) for `service` (`None`: every service of one process,
/// as `rapport up` runs them). Without any, a development set is generated, and only when every listen address is
/// loopback; the returned flag says so (print a token then).
pub fn from_env(service: Option<Role>, loopback_only: bool) -> Result<(Authenticator, bool), String> {
    from_settings(Settings::from_env()?, service, loopback_only)
}

/// [`from_env`] with the settings given.
pub fn from_settings(
    settings: Settings,
    service: Option<Role>,
    loopback_only: bool,
) -> Result<(Authenticator, bool), String> {
    if settings.max_ttl_secs.is_some_and(|s| s < SERVICE_TOKEN_TTL_SECS) {
        return Err(format!(
            "RAPPORT_AUTH_MAX_TTL_SECS must be at least {SERVICE_TOKEN_TTL_SECS} (the services' own tokens live that long)"
        ));
    }
    if settings.people_jwks.is_some() && settings.people_issuer.is_none() {
        return Err(
            "RAPPORT_AUTH_PEOPLE_ISSUER is required with RAPPORT_AUTH_PEOPLE_JWKS (the provider's `iss`)".into()
        );
    }
    if !settings.configured() {
        if !loopback_only {
            return Err(
                "RAPPORT_AUTH_SERVICE_JWKS (or RAPPORT_AUTH_DIR) is required when listening beyond loopback".into()
            );
        }
        let (auth, _) = Authenticator::development_with_keys();
        let auth = match settings.max_ttl_secs {
            Some(s) => auth.with_max_ttl(s),
            None => auth,
        };
        return Ok((auth, true));
    }
    let in_dir = |name: &str| settings.dir.as_ref().map(|d| d.join(name));
    let services_jwks = settings
        .services_jwks
        .clone()
        .or_else(|| in_dir(keys::files::SERVICES_JWKS))
        .ok_or("RAPPORT_AUTH_SERVICE_JWKS is required")?;
    let people_jwks = settings.people_jwks.clone().or_else(|| in_dir(keys::files::PEOPLE_JWKS));
    let people_issuer = settings.people_issuer.clone().unwrap_or_else(|| DEVELOPMENT_ISSUER.into());
    let audience = settings.audience.clone().unwrap_or_else(|| DEFAULT_AUDIENCE.into());
    let texts = (read_file(&services_jwks)?, people_jwks.as_deref().map(read_file).transpose()?);
    let trust = KeySet::parse(&texts.0, texts.1.as_deref(), &people_issuer)?;
    let mut services = HashMap::new();
    let mut people = None;
    let own = |name: &str| -> Result<Option<Signer>, String> {
        match (&settings.key, &settings.kid) {
            (Some(key), Some(kid)) => Signer::from_pem(kid, &read_file(key)?).map(Some),
            // The kid beside the key, from the same Secret: the two cannot drift apart.
            (Some(key), None) => {
                let kid = read_file(&key.with_file_name("kid"))
                    .map_err(|e| format!("RAPPORT_AUTH_KID unset and no kid file beside the key: {e}"))?;
                Signer::from_pem(kid.trim(), &read_file(key)?).map(Some)
            }
            (None, Some(_)) => Err("RAPPORT_AUTH_KID needs RAPPORT_AUTH_KEY".into()),
            (None, None) => match &settings.dir {
                Some(dir) => keys::read_signer(dir, name).map(Some),
                None => Ok(None),
            },
        }
    };
    match service {
        Some(role) => {
            let signer =
                own(role.as_str())?.ok_or_else(|| format!("RAPPORT_AUTH_KEY is required: {role}'s own key"))?;
            if trust.get(&signer.kid).is_none_or(|k| k.speaker != Speaker::Service(role)) {
                return Err(format!("{role}'s key {} is not in the services' key set as {role}'s", signer.kid));
            }
            services.insert(role, signer);
        }
        None => {
            let dir =
                settings.dir.as_ref().ok_or("RAPPORT_AUTH_DIR is required to run every service in one process")?;
            for role in Role::SERVICES {
                services.insert(role, keys::read_signer(dir, role.as_str())?);
            }
            people = keys::read_signer(dir, "people").ok();
        }
    }
    let mut auth = Authenticator::new(trust, services, people, &people_issuer, &audience);
    auth.sources = Some(Sources { services: services_jwks, people: people_jwks });
    auth.loaded = std::sync::Mutex::new(Some(texts));
    if let Some(s) = settings.max_ttl_secs {
        auth.max_ttl_secs = s;
    }
    // Each private key must be the one its kid names in the set: a mismatch would only show as refused calls.
    for (role, signer) in &auth.services {
        let probe = auth.issue(role.as_str(), *role, 60)?;
        if auth.verify(&probe).is_err() {
            return Err(format!("{role}'s private key is not the key {} of the services' key set", signer.kid));
        }
    }
    Ok((auth, false))
}

/// Which roles may call which RPC (full path `/package.Service/Method`), and which roles see the personal fields of
/// each service's answers (display names, attributes, customers' words). What is not listed is denied.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    allowed: HashMap<String, HashSet<Role>>,
    personal: HashMap<String, HashSet<Role>>,
}

impl Policy {
    /// Parses a matrix for `service` (e.g. `rapport.loyalty.v1.LoyaltyService`). Each line: `Method: role role ...`,
    /// or `@personal: role role ...` (the roles that see personal fields; none when the line is missing); `#` starts
    /// a comment.
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
            if method.trim() == "@personal" {
                if self.personal.insert(service.to_string(), roles).is_some() {
                    return Err(format!("line {}: @personal listed twice", n + 1));
                }
                continue;
            }
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

    /// Whether `role` sees the personal fields in the answers of the service `path` belongs to. Fail closed: a
    /// service without an `@personal` line shows them to nobody.
    pub fn sees_personal(&self, path: &str, role: Role) -> bool {
        let service = path.trim_start_matches('/').split('/').next().unwrap_or_default();
        self.personal.get(service).is_some_and(|r| r.contains(&role))
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

    fn claims(role: &str, sub: &str, iss: &str) -> Claims {
        let now = now_secs();
        Claims {
            sub: sub.into(),
            role: role.into(),
            iss: iss.into(),
            aud: DEFAULT_AUDIENCE.into(),
            exp: now + 60,
            iat: now,
            nbf: None,
        }
    }

    fn reason(a: &Authenticator, token: &str) -> (ErrorCode, &'static str) {
        let e = a.verify(token).unwrap_err();
        (e.code, e.reason)
    }

    #[test]
    fn a_remembered_token_still_expires_and_still_needs_its_key() {
        let (a, keys) = Authenticator::development_with_keys();
        let token = a.issue("ops-1", Role::Sre, 60).unwrap();
        let caller = a.verify(&token).unwrap();
        assert_eq!(a.verify(&token).unwrap(), caller, "verified again from memory");
        let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
        let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()).into();
        let v = a.verified.read().unwrap().get(&digest).cloned().unwrap();
        assert_eq!(v.still(v.exp + LEEWAY_SECS, &a.trust()).unwrap(), caller, "within the leeway");
        let e = v.still(v.exp + LEEWAY_SECS + 1, &a.trust()).unwrap_err();
        assert_eq!((e.code, e.reason), (ErrorCode::Unauthenticated, "TOKEN_EXPIRED"));
        // The people's key no longer trusted: the remembered token is refused like any other under it.
        a.set_trust(KeySet::parse(&keys.services_jwks(), None, DEVELOPMENT_ISSUER).unwrap());
        assert_eq!(reason(&a, &token), (ErrorCode::Unauthenticated, "KEY_UNKNOWN"));
        assert!(a.trust().get(&kid).is_none());
    }

    #[test]
    fn service_tokens_are_reused_until_most_of_their_life_is_spent() {
        let a = Authenticator::development();
        let t1 = a.service_token("loyalty", Role::Loyalty).unwrap();
        assert_eq!(a.service_token("loyalty", Role::Loyalty).unwrap(), t1);
        assert_ne!(a.service_token("feedback", Role::Feedback).unwrap(), t1);
        assert_eq!(a.verify(&t1).unwrap().role, Role::Loyalty);
        // Aged past the threshold: a fresh one is minted, with its whole life ahead.
        a.minted.lock().unwrap().values_mut().for_each(|(_, exp)| *exp = now_secs() + MINT_AGAIN_BELOW_SECS);
        a.service_token("loyalty", Role::Loyalty).unwrap();
        let exp = a.minted.lock().unwrap().get(&(Role::Loyalty, Box::from("loyalty"))).unwrap().1;
        assert!(exp >= now_secs() + SERVICE_TOKEN_TTL_SECS - 1, "minted again");
    }

    #[test]
    fn issued_tokens_verify_for_people_and_services() {
        let a = Authenticator::development();
        let c = a.verify(&a.issue("ops-1", Role::Sre, 60).unwrap()).unwrap();
        assert_eq!(c, Caller { subject: "ops-1".into(), role: Role::Sre });
        let c = a.verify(&a.issue("loyalty", Role::Loyalty, 60).unwrap()).unwrap();
        assert_eq!(c.role, Role::Loyalty);
        assert!(a.issue("ops-1", Role::Sre, DEFAULT_MAX_TTL_SECS + 1).is_err(), "longer than allowed");
    }

    #[test]
    fn every_forgery_is_refused_as_documented() {
        use jsonwebtoken::EncodingKey;
        let (a, keys) = Authenticator::development_with_keys();
        let now = now_secs();
        let people = |c: Claims| a.sign_as(Role::Sre, &c).unwrap();
        let ok = claims("sre", "ops-1", DEVELOPMENT_ISSUER);
        // times
        let expired = Claims { exp: now - 60, iat: now - 120, ..ok.clone() };
        assert_eq!(reason(&a, &people(expired)), (ErrorCode::Unauthenticated, "TOKEN_EXPIRED"));
        let not_yet = Claims { nbf: Some(now + 600), exp: now + 900, ..ok.clone() };
        assert_eq!(reason(&a, &people(not_yet)), (ErrorCode::Unauthenticated, "TOKEN_NOT_YET_VALID"));
        let future = Claims { iat: now + 600, exp: now + 900, ..ok.clone() };
        assert_eq!(reason(&a, &people(future)), (ErrorCode::Unauthenticated, "TOKEN_NOT_YET_VALID"));
        let long = Claims { exp: now + DEFAULT_MAX_TTL_SECS + 60, ..ok.clone() };
        assert_eq!(reason(&a, &people(long)), (ErrorCode::Unauthenticated, "TOKEN_TOO_LONG_LIVED"));
        // audience and issuer
        let aud = Claims { aud: "elsewhere".into(), ..ok.clone() };
        assert_eq!(reason(&a, &people(aud)), (ErrorCode::Unauthenticated, "TOKEN_INVALID"));
        let iss = Claims { iss: "mallory".into(), ..ok.clone() };
        assert_eq!(reason(&a, &people(iss)), (ErrorCode::Unauthenticated, "TOKEN_INVALID"));
        // alg none, with the people's kid
        let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s);
        let body = b64(&serde_json::to_string(&ok).unwrap());
        let none = format!("{}.{body}.", b64(&format!(r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#, keys.people.kid)));
        assert_eq!(reason(&a, &none), (ErrorCode::Unauthenticated, "TOKEN_INVALID"));
        // HS256 "signed" with the public key (the classic key-confusion forgery)
        let public = keys.people.public_jwk()["x"].as_str().unwrap().to_string();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(keys.people.kid.clone());
        let hs = jsonwebtoken::encode(&header, &ok, &EncodingKey::from_secret(public.as_bytes())).unwrap();
        assert_eq!(reason(&a, &hs), (ErrorCode::Unauthenticated, "TOKEN_INVALID"));
        // an unknown kid, and a key nobody trusts under a trusted kid
        let stranger = Signer::generate("people.stranger");
        assert_eq!(reason(&a, &sign(&stranger, &ok).unwrap()), (ErrorCode::Unauthenticated, "KEY_UNKNOWN"));
        let impostor = Signer::generate(&keys.people.kid);
        assert_eq!(reason(&a, &sign(&impostor, &ok).unwrap()), (ErrorCode::Unauthenticated, "TOKEN_INVALID"));
        // a service's key claiming an operator, or another service; the people's key claiming a service
        let loyalty_as_sre = claims("sre", "loyalty", &service_issuer(Role::Loyalty));
        let t = a.sign_as(Role::Loyalty, &loyalty_as_sre).unwrap();
        assert_eq!(reason(&a, &t), (ErrorCode::PermissionDenied, "ROLE_NOT_FOR_KEY"));
        let loyalty_as_feedback = claims("feedback", "feedback", &service_issuer(Role::Loyalty));
        let t = a.sign_as(Role::Loyalty, &loyalty_as_feedback).unwrap();
        assert_eq!(reason(&a, &t), (ErrorCode::PermissionDenied, "ROLE_NOT_FOR_KEY"));
        let t = a.sign_as(Role::Loyalty, &claims("loyalty", "loyalty", &service_issuer(Role::Feedback))).unwrap();
        assert_eq!(reason(&a, &t), (ErrorCode::Unauthenticated, "TOKEN_INVALID"), "its issuer is its own");
        let t = people(claims("loyalty", "loyalty", DEVELOPMENT_ISSUER));
        assert_eq!(reason(&a, &t), (ErrorCode::PermissionDenied, "ROLE_NOT_FOR_KEY"));
        let t = people(claims("wizard", "x", DEVELOPMENT_ISSUER));
        assert_eq!(reason(&a, &t), (ErrorCode::PermissionDenied, "ROLE_UNKNOWN"));
        assert!(a.verify(&people(ok)).is_ok());
    }

    #[test]
    fn a_service_holds_only_its_own_key() {
        let dir = std::env::temp_dir().join(format!("rapport-keys-{}", uuid::Uuid::new_v4()));
        DevelopmentKeys::generate().write(&dir).unwrap();
        let settings = Settings { dir: Some(dir.clone()), ..Settings::default() };
        let (loyalty, dev) = from_settings(settings.clone(), Some(Role::Loyalty), false).unwrap();
        assert!(!dev);
        assert!(loyalty.verify(&loyalty.issue("loyalty", Role::Loyalty, 60).unwrap()).is_ok());
        assert!(loyalty.issue("feedback", Role::Feedback, 60).is_err(), "no other service's key");
        assert!(loyalty.issue("ops", Role::Sre, 60).is_err(), "no people's key");
        let (all, _) = from_settings(settings, None, false).unwrap();
        assert!(loyalty.verify(&all.issue("ops", Role::Sre, 60).unwrap()).is_ok());
        assert!(loyalty.verify(&all.issue("feedback", Role::Feedback, 60).unwrap()).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rotation_keeps_two_keys_then_retires_the_old() {
        let dir = std::env::temp_dir().join(format!("rapport-keys-{}", uuid::Uuid::new_v4()));
        DevelopmentKeys::generate().write(&dir).unwrap();
        let settings = Settings { dir: Some(dir.clone()), ..Settings::default() };
        let (receiver, _) = from_settings(settings.clone(), Some(Role::Feedback), false).unwrap();
        let (old, _) = from_settings(settings.clone(), Some(Role::Loyalty), false).unwrap();
        let old_kid = keys::read(&dir, &keys::files::kid("loyalty")).unwrap();
        let old_token = old.issue("loyalty", Role::Loyalty, 60).unwrap();
        // rotate: the new key signs, both are trusted once the receiver reloads
        let new_kid = keys::rotate(&dir, "loyalty").unwrap();
        assert_ne!(new_kid, old_kid);
        let (new, _) = from_settings(settings.clone(), Some(Role::Loyalty), false).unwrap();
        let new_token = new.issue("loyalty", Role::Loyalty, 60).unwrap();
        assert_eq!(receiver.verify(&new_token).unwrap_err().reason, "KEY_UNKNOWN", "not reloaded yet");
        assert!(receiver.reload().unwrap());
        assert!(receiver.verify(&old_token).is_ok());
        assert!(receiver.verify(&new_token).is_ok());
        // retire the old key: its tokens are refused after the next reload
        assert!(keys::retire(&dir, &new_kid).is_err(), "the signing key cannot be retired");
        keys::retire(&dir, &old_kid).unwrap();
        assert!(receiver.reload().unwrap());
        assert_eq!(receiver.verify(&old_token).unwrap_err().reason, "KEY_UNKNOWN");
        assert!(receiver.verify(&new_token).is_ok());
        // a broken file keeps the keys trusted so far
        std::fs::write(dir.join(keys::files::SERVICES_JWKS), "{").unwrap();
        assert!(receiver.reload().is_err());
        assert!(receiver.verify(&new_token).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_key_replaced_under_its_id_forgets_what_it_proved() {
        let dir = std::env::temp_dir().join(format!("rapport-keys-{}", uuid::Uuid::new_v4()));
        DevelopmentKeys::generate().write(&dir).unwrap();
        let settings = Settings { dir: Some(dir.clone()), ..Settings::default() };
        let (receiver, _) = from_settings(settings.clone(), Some(Role::Feedback), false).unwrap();
        let (all, _) = from_settings(settings, None, false).unwrap();
        let token = all.issue("ops", Role::Sre, 60).unwrap();
        assert!(receiver.verify(&token).is_ok());
        assert!(!receiver.reload().unwrap(), "nothing changed: nothing forgotten");
        assert!(receiver.verify(&token).is_ok());
        // another people's key under the same key id (a provider's JWKS edited by hand)
        let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
        let other = DevelopmentKeys::generate().people_jwks();
        let other_kid =
            serde_json::from_str::<jsonwebtoken::jwk::JwkSet>(&other).unwrap().keys[0].common.key_id.clone().unwrap();
        std::fs::write(dir.join(keys::files::PEOPLE_JWKS), other.replace(&other_kid, &kid)).unwrap();
        assert!(!receiver.reload().unwrap(), "the same key ids");
        assert_eq!(reason(&receiver, &token), (ErrorCode::Unauthenticated, "TOKEN_INVALID"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn development_keys_only_on_loopback() {
        let (dev, generated) = from_settings(Settings::default(), Some(Role::Loyalty), true).unwrap();
        assert!(generated);
        assert!(dev.verify(&dev.issue("me", Role::Sre, 60).unwrap()).is_ok());
        assert!(from_settings(Settings::default(), Some(Role::Loyalty), false).is_err());
    }

    #[test]
    fn key_sets_refuse_shared_keys_and_unbound_kids() {
        let oct = r#"{"keys":[{"kty":"oct","kid":"loyalty.1","k":"c2VjcmV0"}]}"#;
        assert!(KeySet::parse(oct, None, DEVELOPMENT_ISSUER).unwrap_err().contains("shared"));
        let s = Signer::generate("nobody.1");
        assert!(KeySet::parse(&keys::jwks(&[&s]), None, DEVELOPMENT_ISSUER).unwrap_err().contains("<service>"));
        let s = Signer::generate("sre.1");
        assert!(KeySet::parse(&keys::jwks(&[&s]), None, DEVELOPMENT_ISSUER).is_err(), "a person is no service");
        let s = Signer::generate("loyalty.1");
        assert!(KeySet::parse(&keys::jwks(&[&s]), Some(&keys::jwks(&[&s])), DEVELOPMENT_ISSUER).is_err(), "kid twice");
        let pem = s.to_pem();
        assert_eq!(Signer::from_pem("loyalty.1", &pem).unwrap().public_jwk(), s.public_jwk());
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

    #[test]
    fn personal_fields_only_for_the_listed_roles_of_each_service() {
        let mut p = Policy::parse("pkg.S", "Get: reader agent\n@personal: agent customer\n").unwrap();
        p.extend("pkg.T", "Get: reader agent\n").unwrap();
        assert!(p.sees_personal("/pkg.S/Get", Role::Agent));
        assert!(p.sees_personal("/pkg.S/Get", Role::Customer));
        assert!(!p.sees_personal("/pkg.S/Get", Role::Reader));
        assert!(!p.sees_personal("/pkg.T/Get", Role::Agent), "no @personal line: nobody");
        assert!(!p.paths().any(|path| path.contains('@')), "not an rpc");
        assert!(Policy::parse("pkg.S", "@personal: sre\n@personal: agent").is_err());
        assert!(Policy::parse("pkg.S", "@personal: wizard").is_err());
    }
}
