//! The gRPC boundary: validates requests, turns them into store commands, and maps errors to `google.rpc.Status`.
use rapport_kit::{
    auth::Caller,
    clock::millis,
    error::{ApiError, Violations},
    frame::Key,
    guard::{ensure_own, ensure_owner_of},
    page::{self, PageBounds},
    pseudonym::Pseudonyms,
};
use rapport_proto::referrals::v1::{self as pb, referrals_service_server::ReferralsService};
use tonic::{Request, Response, Status};

use crate::{
    domain::{self, Limits, Milestone, Qualifying, Reward, Rules, State, screening::Fingerprints},
    error::ReferralsError,
    store::{BlockListCmd, CodeCmd, EnrolCmd, ReferralFilter, SignupCmd, Store},
    wire,
};

/// `ErrorInfo` domain of referrals' errors.
pub const DOMAIN: &str = <ReferralsError as rapport_kit::error::ServiceError>::DOMAIN;
/// Page sizes of ListReferrals.
const REFERRALS_PAGE: PageBounds = PageBounds { default: 50, max: 500 };
/// The longest reporting window.
const MAX_WINDOW_DAYS: i64 = 400;
/// Most entries of the block list.
const MAX_BLOCKED: usize = 10_000;

fn status(e: ReferralsError) -> Status {
    rapport_kit::error::status(e)
}

fn invalid(v: Violations) -> Result<(), Status> {
    rapport_kit::error::invalid::<ReferralsError>(v)
}

/// Checks a count-like limit within `range`.
fn within(v: &mut Violations, field: &str, value: i64, range: std::ops::RangeInclusive<i64>) {
    if !range.contains(&value) {
        v.add(field, format!("must be from {} to {}", range.start(), range.end()));
    }
}

fn reward_of(v: &mut Violations, field: &str, r: Option<&pb::Reward>) -> Reward {
    let r = r.cloned().unwrap_or_default();
    within(v, &format!("{field}.points"), r.points, 0..=1_000_000);
    within(v, &format!("{field}.share_bps"), i64::from(r.share_bps), 0..=10_000);
    Reward { points: r.points, share_bps: r.share_bps }
}

/// Programme rules from the wire; a missing start is `now`.
fn rules_of(v: &mut Violations, r: Option<&pb::ProgrammeRules>, now: i64) -> Rules {
    let Some(r) = r else {
        v.add("rules", "is required");
        return domain::default_programme();
    };
    v.check(!r.name.trim().is_empty(), "rules.name", "is required");
    v.text("rules.name", &r.name, 200);
    let qualifying = match pb::QualifyingEvent::try_from(r.qualifying_event) {
        Ok(pb::QualifyingEvent::SignUp) => Qualifying::SignUp,
        Ok(pb::QualifyingEvent::FirstPurchase) => Qualifying::FirstPurchase,
        Ok(pb::QualifyingEvent::EveryPurchase) => Qualifying::EveryPurchase,
        Ok(pb::QualifyingEvent::MinOrderValue) => Qualifying::MinOrderValue,
        _ => {
            v.add("rules.qualifying_event", "must be sign-up, first purchase, every purchase or minimum order value");
            Qualifying::FirstPurchase
        }
    };
    let (min_order_micros, min_order_currency) = if qualifying == Qualifying::MinOrderValue {
        let micros = rapport_kit::money::positive(v, "rules.min_order", r.min_order.as_ref(), None);
        (micros, r.min_order.as_ref().map(|m| m.currency_code.clone()).unwrap_or_default())
    } else {
        (0, String::new())
    };
    let referrer = reward_of(v, "rules.referrer_reward", r.referrer_reward.as_ref());
    let referee = reward_of(v, "rules.referee_reward", r.referee_reward.as_ref());
    within(v, "rules.attribution_window_days", i64::from(r.attribution_window_days), 1..=365);
    within(v, "rules.approval_delay_days", i64::from(r.approval_delay_days), 0..=365);
    within(v, "rules.returns_window_days", i64::from(r.returns_window_days), 0..=365);
    v.check(r.milestones.len() <= 20, "rules.milestones", "must hold at most 20 milestones");
    let mut milestones = Vec::new();
    for (i, m) in r.milestones.iter().enumerate() {
        within(v, &format!("rules.milestones[{i}].count"), i64::from(m.count), 1..=10_000);
        within(v, &format!("rules.milestones[{i}].bonus_points"), m.bonus_points, 1..=1_000_000);
        if milestones.iter().any(|x: &Milestone| x.count == m.count) {
            v.add(format!("rules.milestones[{i}].count"), "must differ from the other milestones'");
        }
        milestones.push(Milestone { count: m.count, bonus_points: m.bonus_points });
    }
    let defaults = Limits::default();
    let l = r.limits.unwrap_or_default();
    let mut limit = |field: &str, value: i32, default: i32| {
        within(v, &format!("rules.limits.{field}"), i64::from(value), 0..=100_000);
        if value == 0 { default } else { value }
    };
    let limits = Limits {
        max_signups_per_hour: limit("max_signups_per_hour", l.max_signups_per_hour, defaults.max_signups_per_hour),
        max_signups_per_day: limit("max_signups_per_day", l.max_signups_per_day, defaults.max_signups_per_day),
        velocity_signal_per_hour: limit(
            "velocity_signal_per_hour",
            l.velocity_signal_per_hour,
            defaults.velocity_signal_per_hour,
        ),
        max_referrals_per_month: limit(
            "max_referrals_per_month",
            l.max_referrals_per_month,
            defaults.max_referrals_per_month,
        ),
    };
    let flag_threshold = if r.flag_threshold == 0.0 { 0.5 } else { r.flag_threshold };
    v.check(flag_threshold > 0.0 && flag_threshold <= 1.0, "rules.flag_threshold", "must be above 0 and at most 1");
    let active_from = r.active_from.as_ref().map_or(now, millis);
    let active_until = r.active_until.as_ref().map(millis);
    if let Some(end) = active_until {
        v.check(end > active_from, "rules.active_until", "must be after active_from");
    }
    Rules {
        name: r.name.trim().to_string(),
        qualifying,
        min_order_micros,
        min_order_currency,
        referrer,
        referee,
        attribution_window_days: r.attribution_window_days,
        approval_delay_days: r.approval_delay_days,
        returns_window_days: r.returns_window_days,
        milestones,
        limits,
        flag_threshold,
        active_from,
        active_until,
    }
}

/// Checks an agent's decision on a referral: its request id, the referral, a reason of at most 500 characters.
fn decision(request_id: &str, referral_id: &str, reason: &str) -> Result<(), Status> {
    let mut v = Violations::new();
    v.request_id(request_id);
    v.id("referral_id", referral_id);
    v.check(!reason.trim().is_empty(), "reason", "is required");
    v.text("reason", reason, 500);
    invalid(v)
}

/// The API's view of the caller's name, for what agents do.
fn agent_of<T>(req: &Request<T>) -> String {
    req.extensions().get::<Caller>().map(|c| c.subject.clone()).unwrap_or_else(|| "unknown".into())
}

/// The ReferralsService implementation.
#[derive(Clone)]
pub struct ReferralsApi {
    store: Store,
    pseudonyms: Pseudonyms,
}

impl ReferralsApi {
    /// Serves `store`; e-mails are kept as hashes keyed by `pseudonyms`' key.
    pub fn new(store: Store, pseudonyms: Pseudonyms) -> Self {
        Self { store, pseudonyms }
    }

    /// The keyed hash an e-mail is known by once normalised.
    fn email_hash(&self, normalised: &str) -> String {
        self.pseudonyms.of(&format!("email:{normalised}")).replacen("anon-", "em-", 1)
    }

    /// Fingerprints from the wire (the e-mail normalised and hashed) and the first sight, violations under `field`.
    fn signals_of(&self, v: &mut Violations, field: &str, s: Option<&pb::Signals>) -> (Fingerprints, Option<i64>) {
        let Some(s) = s else { return (Fingerprints::default(), None) };
        let email = if s.email.is_empty() {
            None
        } else {
            match domain::normalise_email(&s.email) {
                Some(e) if s.email.len() <= 320 => Some(self.email_hash(&e)),
                _ => {
                    v.add(format!("{field}.email"), "must be an e-mail address");
                    None
                }
            }
        };
        let mut hash = |name: &str, h: &str| {
            if h.is_empty() {
                return None;
            }
            v.check(domain::valid_hash(h), &format!("{field}.{name}"), "must be 16-128 hexadecimal digits");
            Some(h.to_ascii_lowercase())
        };
        let payment = hash("payment_hash", &s.payment_hash);
        let device = hash("device_hash", &s.device_hash);
        (Fingerprints { email, payment, device }, s.first_seen_at.as_ref().map(millis))
    }

    /// An erased customer (or a pseudonym) has nothing to show.
    async fn not_erased(&self, customer_id: &str) -> Result<(), Status> {
        if self.store.erased(customer_id).await.map_err(status)? {
            return Err(status(ReferralsError::CustomerErased));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl ReferralsService for ReferralsApi {
    async fn create_programme(
        &self,
        req: Request<pb::CreateProgrammeRequest>,
    ) -> Result<Response<pb::CreateProgrammeResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.slug("programme_id", &r.programme_id);
        let rules = rules_of(&mut v, r.rules.as_ref(), self.store.now());
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.create_programme(&key, r.programme_id.clone(), rules).await.map(Response::new).map_err(status)
    }

    async fn update_programme(
        &self,
        req: Request<pb::UpdateProgrammeRequest>,
    ) -> Result<Response<pb::UpdateProgrammeResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.slug("programme_id", &r.programme_id);
        let rules = rules_of(&mut v, r.rules.as_ref(), self.store.now());
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.update_programme(&key, r.programme_id.clone(), rules).await.map(Response::new).map_err(status)
    }

    async fn get_programme(
        &self,
        req: Request<pb::GetProgrammeRequest>,
    ) -> Result<Response<pb::GetProgrammeResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.slug("programme_id", &r.programme_id);
        v.check(r.version >= 0, "version", "must be 0 (the latest) or a version");
        invalid(v)?;
        let programme = self.store.programme(&r.programme_id, r.version).await.map_err(status)?;
        Ok(Response::new(pb::GetProgrammeResponse { programme: Some(programme) }))
    }

    async fn list_programmes(
        &self,
        _req: Request<pb::ListProgrammesRequest>,
    ) -> Result<Response<pb::ListProgrammesResponse>, Status> {
        let programmes = self.store.programmes().await.map_err(status)?;
        Ok(Response::new(pb::ListProgrammesResponse { programmes }))
    }

    async fn enrol_ambassador(
        &self,
        req: Request<pb::EnrolAmbassadorRequest>,
    ) -> Result<Response<pb::EnrolAmbassadorResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("customer_id", &r.customer_id);
        v.slug("programme_id", &r.programme_id);
        let source = match pb::AmbassadorSource::try_from(r.source) {
            Ok(pb::AmbassadorSource::Unspecified | pb::AmbassadorSource::Manual) => "manual",
            Ok(pb::AmbassadorSource::Promoter) => "promoter",
            Ok(pb::AmbassadorSource::Code) => "code",
            Err(_) => {
                v.add("source", "must be a known source");
                "manual"
            }
        };
        if !r.review_site.is_empty() {
            v.id("review_site", &r.review_site);
        }
        let (fingerprints, _) = self.signals_of(&mut v, "signals", r.signals.as_ref());
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        let cmd = EnrolCmd {
            customer_id: r.customer_id.clone(),
            programme_id: r.programme_id.clone(),
            source,
            review_site: r.review_site.clone(),
            fingerprints,
        };
        self.store.enrol(&key, cmd).await.map(Response::new).map_err(status)
    }

    async fn record_review_outcome(
        &self,
        req: Request<pb::RecordReviewOutcomeRequest>,
    ) -> Result<Response<pb::RecordReviewOutcomeResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("customer_id", &r.customer_id);
        v.slug("programme_id", &r.programme_id);
        let outcome = match pb::ReviewOutcome::try_from(r.outcome) {
            Ok(pb::ReviewOutcome::Posted) => "posted",
            Ok(pb::ReviewOutcome::Declined) => "declined",
            Ok(pb::ReviewOutcome::NoAnswer) => "no_answer",
            _ => {
                v.add("outcome", "must be posted, declined or no answer");
                "no_answer"
            }
        };
        within(&mut v, "rating", i64::from(r.rating), 0..=5);
        if outcome != "posted" {
            v.check(r.rating == 0, "rating", "is given only with a posted review");
        }
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store
            .record_review(&key, r.customer_id.clone(), r.programme_id.clone(), outcome, r.rating)
            .await
            .map(Response::new)
            .map_err(status)
    }

    async fn issue_code(&self, req: Request<pb::IssueCodeRequest>) -> Result<Response<pb::IssueCodeResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("customer_id", &r.customer_id);
        v.slug("programme_id", &r.programme_id);
        if !r.vanity.is_empty() {
            v.check(
                domain::valid_vanity(&r.vanity),
                "vanity",
                "must be 4-20 letters, digits or '-', not starting or ending with '-'",
            );
        }
        let valid_from = r.valid_from.as_ref().map(millis);
        let valid_until = r.valid_until.as_ref().map(millis);
        if let (Some(end), start) = (valid_until, valid_from.unwrap_or_else(|| self.store.now())) {
            v.check(end > start, "valid_until", "must be after valid_from");
        }
        within(&mut v, "usage_limit", i64::from(r.usage_limit), 0..=1_000_000);
        let (fingerprints, _) = self.signals_of(&mut v, "signals", r.signals.as_ref());
        invalid(v)?;
        ensure_own(Some(&r.customer_id)).map_err(|e| status(e.into()))?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        let cmd = CodeCmd {
            enrol: EnrolCmd {
                customer_id: r.customer_id.clone(),
                programme_id: r.programme_id.clone(),
                source: "code",
                review_site: String::new(),
                fingerprints,
            },
            vanity: (!r.vanity.is_empty()).then(|| r.vanity.clone()),
            valid_from,
            valid_until,
            usage_limit: r.usage_limit,
        };
        self.store.issue_code(&key, cmd).await.map(Response::new).map_err(status)
    }

    async fn get_code(&self, req: Request<pb::GetCodeRequest>) -> Result<Response<pb::GetCodeResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.check(!r.code.trim().is_empty() && r.code.len() <= 40, "code", "must be 1-40 characters");
        invalid(v)?;
        let found = self.store.code(&r.code).await;
        ensure_owner_of(&found, |c| &c.customer_id).map_err(|e| status(e.into()))?;
        let code = found.map_err(status)?;
        Ok(Response::new(pb::GetCodeResponse { code: Some(code) }))
    }

    async fn record_invitations(
        &self,
        req: Request<pb::RecordInvitationsRequest>,
    ) -> Result<Response<pb::RecordInvitationsResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("customer_id", &r.customer_id);
        v.slug("programme_id", &r.programme_id);
        within(&mut v, "count", i64::from(r.count), 1..=1_000);
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store
            .record_invitations(&key, r.customer_id.clone(), r.programme_id.clone(), r.count)
            .await
            .map(Response::new)
            .map_err(status)
    }

    async fn attribute_signup(
        &self,
        req: Request<pb::AttributeSignupRequest>,
    ) -> Result<Response<pb::AttributeSignupResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.check(!r.code.trim().is_empty() && r.code.len() <= 40, "code", "must be 1-40 characters");
        v.id("referee_id", &r.referee_id);
        let (fingerprints, first_seen_at) = self.signals_of(&mut v, "signals", r.signals.as_ref());
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        let cmd = SignupCmd { code: r.code.clone(), referee_id: r.referee_id.clone(), fingerprints, first_seen_at };
        self.store.attribute(&key, cmd).await.map(Response::new).map_err(status)
    }

    async fn get_referral(
        &self,
        req: Request<pb::GetReferralRequest>,
    ) -> Result<Response<pb::GetReferralResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.id("referral_id", &r.referral_id);
        invalid(v)?;
        let referral = self.store.referral(&r.referral_id).await.map_err(status)?;
        Ok(Response::new(pb::GetReferralResponse { referral: Some(referral) }))
    }

    async fn list_referrals(
        &self,
        req: Request<pb::ListReferralsRequest>,
    ) -> Result<Response<pb::ListReferralsResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        let state = match pb::ReferralState::try_from(r.state) {
            Ok(pb::ReferralState::Unspecified) => None,
            Ok(s) => State::ALL.into_iter().find(|x| wire::state_pb(*x) == s),
            Err(_) => {
                v.add("state", "must be a known state");
                None
            }
        };
        if !r.programme_id.is_empty() {
            v.slug("programme_id", &r.programme_id);
        }
        if !r.referrer_id.is_empty() {
            v.id("referrer_id", &r.referrer_id);
        }
        let size = REFERRALS_PAGE.size(r.page_size, &mut v);
        invalid(v)?;
        if !r.referrer_id.is_empty() {
            self.not_erased(&r.referrer_id).await?;
        }
        // The token is bound to the filter it came from.
        let query = format!("{}|{}|{}", r.state, r.programme_id, r.referrer_id);
        let cursor = page::decode(&query, &r.page_token).map_err(|e: ApiError| status(e.into()))?;
        let filter = ReferralFilter {
            state,
            programme_id: (!r.programme_id.is_empty()).then(|| r.programme_id.clone()),
            referrer_id: (!r.referrer_id.is_empty()).then(|| r.referrer_id.clone()),
        };
        let (referrals, next) = self.store.referrals(&filter, cursor, size).await.map_err(status)?;
        Ok(Response::new(pb::ListReferralsResponse {
            referrals,
            next_page_token: next.map(|c| page::encode(&query, c)).unwrap_or_default(),
        }))
    }

    async fn approve_referral(
        &self,
        req: Request<pb::ApproveReferralRequest>,
    ) -> Result<Response<pb::ApproveReferralResponse>, Status> {
        let agent = agent_of(&req);
        let r = req.into_inner();
        decision(&r.request_id, &r.referral_id, &r.reason)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store
            .approve(&key, r.referral_id.clone(), agent, r.reason.trim().to_string())
            .await
            .map(Response::new)
            .map_err(status)
    }

    async fn void_referral(
        &self,
        req: Request<pb::VoidReferralRequest>,
    ) -> Result<Response<pb::VoidReferralResponse>, Status> {
        let agent = agent_of(&req);
        let r = req.into_inner();
        decision(&r.request_id, &r.referral_id, &r.reason)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store
            .void(&key, r.referral_id.clone(), agent, r.reason.trim().to_string())
            .await
            .map(Response::new)
            .map_err(status)
    }

    async fn retry_rewards(
        &self,
        req: Request<pb::RetryRewardsRequest>,
    ) -> Result<Response<pb::RetryRewardsResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("referral_id", &r.referral_id);
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.retry_rewards(&key, r.referral_id.clone()).await.map(Response::new).map_err(status)
    }

    async fn set_block_list(
        &self,
        req: Request<pb::SetBlockListRequest>,
    ) -> Result<Response<pb::SetBlockListResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        let list = r.block_list.clone().unwrap_or_default();
        let mut entries = Vec::new();
        for (kind, field, values) in [
            ("email", "block_list.email_hashes", &list.email_hashes),
            ("payment", "block_list.payment_hashes", &list.payment_hashes),
            ("device", "block_list.device_hashes", &list.device_hashes),
        ] {
            for (i, h) in values.iter().enumerate() {
                let ok = if kind == "email" { h.starts_with("em-") && h.len() == 35 } else { domain::valid_hash(h) };
                v.check(ok, &format!("{field}[{i}]"), "must be a hash as sign-ups give it");
                entries.push((kind, h.to_ascii_lowercase()));
            }
        }
        for (i, c) in list.customer_ids.iter().enumerate() {
            v.id(&format!("block_list.customer_ids[{i}]"), c);
            entries.push(("customer", c.clone()));
        }
        for (i, e) in r.emails.iter().enumerate() {
            match domain::normalise_email(e) {
                Some(n) => entries.push(("email", self.email_hash(&n))),
                None => v.add(format!("emails[{i}]"), "must be an e-mail address"),
            }
        }
        v.check(entries.len() <= MAX_BLOCKED, "block_list", "must hold at most 10000 entries");
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.set_block_list(&key, BlockListCmd { entries }).await.map(Response::new).map_err(status)
    }

    async fn get_block_list(
        &self,
        _req: Request<pb::GetBlockListRequest>,
    ) -> Result<Response<pb::GetBlockListResponse>, Status> {
        let block_list = self.store.block_list().await.map_err(status)?;
        Ok(Response::new(pb::GetBlockListResponse { block_list: Some(block_list) }))
    }

    async fn get_ambassador_stats(
        &self,
        req: Request<pb::GetAmbassadorStatsRequest>,
    ) -> Result<Response<pb::GetAmbassadorStatsResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.id("customer_id", &r.customer_id);
        v.slug("programme_id", &r.programme_id);
        invalid(v)?;
        ensure_own(Some(&r.customer_id)).map_err(|e| status(e.into()))?;
        self.not_erased(&r.customer_id).await?;
        let stats = self.store.ambassador_stats(&r.customer_id, &r.programme_id).await.map_err(status)?;
        Ok(Response::new(pb::GetAmbassadorStatsResponse { stats: Some(stats) }))
    }

    async fn get_leaderboard(
        &self,
        req: Request<pb::GetLeaderboardRequest>,
    ) -> Result<Response<pb::GetLeaderboardResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.slug("programme_id", &r.programme_id);
        let (start, end) = v.window(r.start_time.as_ref(), r.end_time.as_ref(), MAX_WINDOW_DAYS);
        within(&mut v, "limit", i64::from(r.limit), 0..=100);
        invalid(v)?;
        let limit = if r.limit == 0 { 10 } else { r.limit as usize };
        let entries = self.store.leaderboard(&r.programme_id, start, end, limit).await.map_err(status)?;
        Ok(Response::new(pb::GetLeaderboardResponse { entries }))
    }

    async fn get_programme_metrics(
        &self,
        req: Request<pb::GetProgrammeMetricsRequest>,
    ) -> Result<Response<pb::GetProgrammeMetricsResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.slug("programme_id", &r.programme_id);
        let (start, end) = v.window(r.start_time.as_ref(), r.end_time.as_ref(), MAX_WINDOW_DAYS);
        invalid(v)?;
        self.store.metrics(&r.programme_id, start, end).await.map(Response::new).map_err(status)
    }

    async fn forget_customer(
        &self,
        req: Request<pb::ForgetCustomerRequest>,
    ) -> Result<Response<pb::ForgetCustomerResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("customer_id", &r.customer_id);
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.forget(&key, &r.customer_id).await.map(Response::new).map_err(status)
    }
}
