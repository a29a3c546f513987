//! The gRPC boundary of segmentation: validation (with field paths into rule trees), wire ↔ domain conversion,
//! error mapping. Only this file knows the segmentation protobuf types.
use std::collections::{BTreeMap, HashSet};

use rapport_kit::{
    clock::{millis, timestamp},
    error::Violations,
    frame::Key,
    page::{self, PageBounds},
};
use rapport_proto::segmentation::v1::{self as pb, condition::Node, segmentation_service_server::SegmentationService};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::{
    app::Background,
    domain::{
        clustering::Algorithm,
        features::{CHANNELS, DEFAULT_MODEL_FEATURES, Event, FEATURE_NAMES, Kind},
        rules::{Op, Rule},
    },
    error::SegmentationError,
    store::{CampaignView, SegmentDef, Store, TrainParams},
};

/// `ErrorInfo` domain of segmentation's errors.
pub const DOMAIN: &str = <SegmentationError as rapport_kit::error::ServiceError>::DOMAIN;
const PAGE: PageBounds = PageBounds { default: 100, max: 1_000 };
const MAX_BATCH: usize = 1_000;
/// Deepest rule tree a segment may have (levels of all/any/not above a leaf).
pub const MAX_RULE_DEPTH: usize = 16;
/// Most conditions (nodes) in one segment's rule tree.
pub const MAX_RULE_NODES: usize = 200;
/// Most values one leaf lists (cluster ids, tiers, NPS classes).
const MAX_LEAF_VALUES: usize = 50;
const TIERS: [&str; 4] = ["bronze", "silver", "gold", "vip"];
const NPS_CLASSES: [&str; 3] = ["promoter", "passive", "detractor"];

/// The SegmentationService implementation.
#[derive(Clone)]
pub struct SegmentationApi {
    store: Store,
    background: Background,
    max_skew_ms: i64,
}

impl SegmentationApi {
    /// Serves `store`; long work goes to `background`; events dated more than `max_skew` ahead are refused.
    pub fn new(store: Store, background: Background, max_skew: std::time::Duration) -> Self {
        Self { store, background, max_skew_ms: i64::try_from(max_skew.as_millis()).unwrap_or(i64::MAX) }
    }

    fn events_from(&self, events: &[pb::BehaviourEvent]) -> Result<Vec<Event>, Status> {
        events_from(events, self.store.now().saturating_add(self.max_skew_ms))
    }
}

/// What an attribute's name may be.
const ATTRIBUTE_NAME: &str = "names must be 1 to 64 letters, digits or _.-";

/// Whether `name` may name an attribute (see [`ATTRIBUTE_NAME`]).
fn attribute_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn status(e: SegmentationError) -> Status {
    rapport_kit::error::status(e)
}

fn invalid(v: Violations) -> Result<(), Status> {
    rapport_kit::error::invalid::<SegmentationError>(v)
}

fn kind_from(k: i32) -> Option<Kind> {
    Some(match pb::EventKind::try_from(k).ok()? {
        pb::EventKind::Purchase => Kind::Purchase,
        pb::EventKind::Visit => Kind::Visit,
        pb::EventKind::SupportContact => Kind::SupportContact,
        pb::EventKind::SurveyResponse => Kind::SurveyResponse,
        pb::EventKind::Complaint => Kind::Complaint,
        pb::EventKind::Referral => Kind::Referral,
        pb::EventKind::TierChange => Kind::TierChange,
        pb::EventKind::Unspecified => return None,
    })
}

/// Validates and converts one behaviour event dated no later than `latest` (ms); `field` is its path in the request.
pub fn event_from(e: &pb::BehaviourEvent, field: &str, latest: i64, v: &mut Violations) -> Option<Event> {
    let before = v.len();
    v.id(&format!("{field}.event_id"), &e.event_id);
    v.id(&format!("{field}.customer_id"), &e.customer_id);
    let kind = kind_from(e.kind);
    if kind.is_none() {
        v.add(format!("{field}.kind"), "must be a known event kind");
    }
    let at = e.occurred_at.as_ref().map(millis);
    match at {
        None => v.add(format!("{field}.occurred_at"), "is required"),
        // A future date would count in no window today and leave the windows drifting once it is reached.
        Some(at) if at > latest => v.add(format!("{field}.occurred_at"), "must not be in the future"),
        Some(_) => {}
    }
    let channel = match rapport_proto::common::v1::Channel::try_from(e.channel) {
        Ok(rapport_proto::common::v1::Channel::Unspecified) => None,
        Ok(c) => Some(c as usize - 1),
        Err(_) => {
            v.add(format!("{field}.channel"), "is not a known channel");
            None
        }
    };
    let mut amount = 0;
    if kind == Some(Kind::Purchase) {
        match &e.amount {
            Some(m) if m.units >= 0 && m.nanos >= 0 && m.units < 1_000_000_000 && m.currency_code.len() == 3 => {
                amount = rapport_kit::money::micros(m);
            }
            _ => v.add(format!("{field}.amount"), "a purchase needs a non-negative amount with a currency"),
        }
    }
    let score = (kind == Some(Kind::SurveyResponse)).then_some(e.score);
    if score.is_some_and(|s| !(0..=10).contains(&s)) {
        v.add(format!("{field}.score"), "must be 0 to 10");
    }
    let tier = (kind == Some(Kind::TierChange)).then(|| e.tier.clone());
    if tier.as_ref().is_some_and(|t| !TIERS.contains(&t.as_str())) {
        v.add(format!("{field}.tier"), "must be bronze, silver, gold or vip");
    }
    if v.len() > before {
        return None;
    }
    Some(Event {
        event_id: e.event_id.clone(),
        customer_id: e.customer_id.clone(),
        kind: kind?,
        at_ms: at?,
        channel,
        amount_micros: amount,
        score,
        tier,
    })
}

fn events_from(events: &[pb::BehaviourEvent], latest: i64) -> Result<Vec<Event>, Status> {
    let mut v = Violations::new();
    v.check(!events.is_empty() && events.len() <= MAX_BATCH, "events", "must hold 1 to 1000 events");
    let out: Vec<Event> =
        events.iter().enumerate().filter_map(|(i, e)| event_from(e, &format!("events[{i}]"), latest, &mut v)).collect();
    invalid(v)?;
    Ok(out)
}

/// The depth and the number of nodes of a wire condition tree, counted without recursion (a hostile tree is as
/// deep as the decoder allows), stopping once past the caps.
pub fn tree_shape(c: &pb::Condition) -> (usize, usize) {
    let (mut depth, mut nodes) = (0, 0);
    let mut stack = vec![(c, 1usize)];
    while let Some((c, d)) = stack.pop() {
        nodes += 1;
        depth = depth.max(d);
        if nodes > MAX_RULE_NODES || depth > MAX_RULE_DEPTH {
            break;
        }
        match c.node.as_ref() {
            Some(Node::All(cs) | Node::Any(cs)) => stack.extend(cs.conditions.iter().map(|c| (c, d + 1))),
            Some(Node::Not(c)) => stack.push((c, d + 1)),
            _ => {}
        }
    }
    (depth, nodes)
}

/// Converts a wire condition into a rule, recording every problem with its path.
pub fn rule_from(c: Option<&pb::Condition>, path: &str, segments: &HashSet<String>, v: &mut Violations) -> Rule {
    let Some(node) = c.and_then(|c| c.node.as_ref()) else {
        v.add(path, "must be a condition (all, any, not or a leaf)");
        return Rule::All(vec![]);
    };
    let list = |cs: &pb::Conditions, name: &str, v: &mut Violations| -> Vec<Rule> {
        if cs.conditions.is_empty() {
            v.add(format!("{path}.{name}.conditions"), "must hold at least one condition");
        }
        cs.conditions
            .iter()
            .enumerate()
            .map(|(i, c)| rule_from(Some(c), &format!("{path}.{name}.conditions[{i}]"), segments, v))
            .collect()
    };
    match node {
        Node::All(cs) => Rule::All(list(cs, "all", v)),
        Node::Any(cs) => Rule::Any(list(cs, "any", v)),
        Node::Not(c) => Rule::Not(Box::new(rule_from(Some(c), &format!("{path}.not"), segments, v))),
        Node::Feature(f) => {
            if !FEATURE_NAMES.contains(&f.name.as_str()) {
                v.add(format!("{path}.feature.name"), format!("unknown feature {:?}", f.name));
            }
            let op = match pb::Comparison::try_from(f.op) {
                Ok(pb::Comparison::Lt) => Op::Lt,
                Ok(pb::Comparison::Le) => Op::Le,
                Ok(pb::Comparison::Gt) => Op::Gt,
                Ok(pb::Comparison::Ge) => Op::Ge,
                Ok(pb::Comparison::Eq) => Op::Eq,
                _ => {
                    v.add(format!("{path}.feature.op"), "must be a comparison");
                    Op::Eq
                }
            };
            if !f.value.is_finite() {
                v.add(format!("{path}.feature.value"), "must be a finite number");
            }
            Rule::Feature { name: f.name.clone(), op, value: f.value }
        }
        Node::Attribute(a) => {
            if !attribute_name(&a.name) {
                v.add(format!("{path}.attribute.name"), ATTRIBUTE_NAME);
            }
            Rule::Attribute { name: a.name.clone(), value: a.value.clone() }
        }
        Node::Cluster(c) => {
            if c.cluster_ids.len() > MAX_LEAF_VALUES {
                v.add(format!("{path}.cluster.cluster_ids"), "must name at most 50 cluster ids");
            } else if c.cluster_ids.is_empty() || c.cluster_ids.iter().any(|i| *i < 0) {
                v.add(format!("{path}.cluster.cluster_ids"), "must name at least one cluster id (>= 0)");
            }
            Rule::Cluster(c.cluster_ids.clone())
        }
        Node::Tier(t) => {
            if t.values.is_empty()
                || t.values.len() > MAX_LEAF_VALUES
                || t.values.iter().any(|x| !TIERS.contains(&x.as_str()))
            {
                v.add(format!("{path}.tier.values"), "must name 1 to 50 tiers among bronze, silver, gold, vip");
            }
            Rule::Tier(t.values.clone())
        }
        Node::NpsClass(t) => {
            if t.values.is_empty()
                || t.values.len() > MAX_LEAF_VALUES
                || t.values.iter().any(|x| !NPS_CLASSES.contains(&x.as_str()))
            {
                v.add(
                    format!("{path}.nps_class.values"),
                    "must name 1 to 50 classes among promoter, passive, detractor",
                );
            }
            Rule::NpsClass(t.values.clone())
        }
        Node::EventCount(e) => {
            let kind = kind_from(e.kind);
            if kind.is_none() {
                v.add(format!("{path}.event_count.kind"), "must be a known event kind");
            }
            if e.times < 1 {
                v.add(format!("{path}.event_count.times"), "must be at least 1");
            }
            if !(1..=365).contains(&e.days) {
                v.add(format!("{path}.event_count.days"), "must be 1 to 365");
            }
            Rule::EventCount { kind: kind.unwrap_or(Kind::Visit), times: i64::from(e.times), days: i64::from(e.days) }
        }
        Node::EventAbsent(e) => {
            let kind = kind_from(e.kind);
            if kind.is_none() {
                v.add(format!("{path}.event_absent.kind"), "must be a known event kind");
            }
            if !(1..=365).contains(&e.days) {
                v.add(format!("{path}.event_absent.days"), "must be 1 to 365");
            }
            Rule::EventAbsent { kind: kind.unwrap_or(Kind::Visit), days: i64::from(e.days) }
        }
        Node::InSegment(s) => {
            if !segments.contains(s) {
                v.add(format!("{path}.in_segment"), format!("unknown segment {s:?}"));
            }
            Rule::InSegment(s.clone())
        }
        Node::RandomBucket(b) => {
            if !(0..100).contains(&b.from) || !(1..=100).contains(&b.to) || b.from >= b.to {
                v.add(format!("{path}.random_bucket"), "must satisfy 0 <= from < to <= 100");
            }
            Rule::Bucket {
                from: u8::try_from(b.from.clamp(0, 100)).unwrap_or(0),
                to: u8::try_from(b.to.clamp(0, 100)).unwrap_or(0),
            }
        }
    }
}

fn rule_to(r: &Rule) -> pb::Condition {
    let node = match r {
        Rule::All(rs) => Node::All(pb::Conditions { conditions: rs.iter().map(rule_to).collect() }),
        Rule::Any(rs) => Node::Any(pb::Conditions { conditions: rs.iter().map(rule_to).collect() }),
        Rule::Not(r) => Node::Not(Box::new(rule_to(r))),
        Rule::Feature { name, op, value } => Node::Feature(pb::FeatureCompare {
            name: name.clone(),
            op: match op {
                Op::Lt => pb::Comparison::Lt,
                Op::Le => pb::Comparison::Le,
                Op::Gt => pb::Comparison::Gt,
                Op::Ge => pb::Comparison::Ge,
                Op::Eq => pb::Comparison::Eq,
            }
            .into(),
            value: *value,
        }),
        Rule::Attribute { name, value } => {
            Node::Attribute(pb::AttributeEquals { name: name.clone(), value: value.clone() })
        }
        Rule::Cluster(ids) => Node::Cluster(pb::ClusterIn { cluster_ids: ids.clone() }),
        Rule::Tier(t) => Node::Tier(pb::ValuesIn { values: t.clone() }),
        Rule::NpsClass(t) => Node::NpsClass(pb::ValuesIn { values: t.clone() }),
        Rule::EventCount { kind, times, days } => Node::EventCount(pb::EventCount {
            kind: kind_to(*kind).into(),
            times: i32::try_from(*times).unwrap_or(i32::MAX),
            days: i32::try_from(*days).unwrap_or(i32::MAX),
        }),
        Rule::EventAbsent { kind, days } => Node::EventAbsent(pb::EventAbsent {
            kind: kind_to(*kind).into(),
            days: i32::try_from(*days).unwrap_or(i32::MAX),
        }),
        Rule::InSegment(s) => Node::InSegment(s.clone()),
        Rule::Bucket { from, to } => {
            Node::RandomBucket(pb::RandomBucket { from: i32::from(*from), to: i32::from(*to) })
        }
    };
    pb::Condition { node: Some(node) }
}

fn kind_to(k: Kind) -> pb::EventKind {
    match k {
        Kind::Purchase => pb::EventKind::Purchase,
        Kind::Visit => pb::EventKind::Visit,
        Kind::SupportContact => pb::EventKind::SupportContact,
        Kind::SurveyResponse => pb::EventKind::SurveyResponse,
        Kind::Complaint => pb::EventKind::Complaint,
        Kind::Referral => pb::EventKind::Referral,
        Kind::TierChange => pb::EventKind::TierChange,
    }
}

fn segment_pb(d: SegmentDef, size: i64) -> pb::Segment {
    pb::Segment {
        segment_id: d.segment_id,
        display_name: d.display_name,
        condition: Some(rule_to(&d.rule)),
        size,
        create_time: Some(timestamp(d.created_at)),
    }
}

fn campaign_pb(c: CampaignView) -> pb::Campaign {
    pb::Campaign {
        campaign_id: c.campaign_id,
        segment_id: c.segment_id,
        offer_id: c.offer_id,
        holdout_percent: c.holdout_percent,
        state: match c.state.as_str() {
            "completed" => pb::CampaignState::Completed,
            "paused" => pb::CampaignState::Paused,
            _ => pb::CampaignState::Running,
        }
        .into(),
        state_reason: c.state_reason.unwrap_or_default(),
        failed_by_reason: c.failed_by_reason.into_iter().collect(),
        targeted: c.targeted,
        granted: c.granted,
        held_out: c.held_out,
        failed: c.failed,
        create_time: Some(timestamp(c.created_at)),
    }
}

#[tonic::async_trait]
impl SegmentationService for SegmentationApi {
    async fn ingest_events(
        &self,
        req: Request<Streaming<pb::IngestEventsRequest>>,
    ) -> Result<Response<pb::IngestEventsResponse>, Status> {
        let mut stream = req.into_inner();
        let (mut applied, mut duplicates) = (0, 0);
        // Each message is applied in its own transaction as it arrives: what was acknowledged by the stream's
        // end is stored, and a client that resends after a failure is de-duplicated by event id.
        while let Some(msg) = stream.next().await {
            let msg = msg?;
            let events = self.events_from(&msg.events)?;
            let (a, d) = self.store.ingest(events).await.map_err(status)?;
            applied += a;
            duplicates += d;
        }
        Ok(Response::new(pb::IngestEventsResponse { applied, duplicates }))
    }

    async fn ingest_event_batch(
        &self,
        req: Request<pb::IngestEventBatchRequest>,
    ) -> Result<Response<pb::IngestEventBatchResponse>, Status> {
        let events = self.events_from(&req.into_inner().events)?;
        let (applied, duplicates) = self.store.ingest(events).await.map_err(status)?;
        Ok(Response::new(pb::IngestEventBatchResponse { applied, duplicates }))
    }

    async fn upsert_customer(
        &self,
        req: Request<pb::UpsertCustomerRequest>,
    ) -> Result<Response<pb::UpsertCustomerResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("customer_id", &r.customer_id);
        v.check(r.attributes.len() <= 50, "attributes", "must hold at most 50 attributes");
        for (k, val) in &r.attributes {
            // A bad name is not repeated in the answer: it may be personal data sent by mistake.
            if attribute_name(k) {
                v.text(&format!("attributes[{k}]"), val, 256);
            } else {
                v.add("attributes", ATTRIBUTE_NAME);
            }
        }
        invalid(v)?;
        let attributes: BTreeMap<String, String> = r.attributes.clone().into_iter().collect();
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store
            .upsert_customer(&key, &r.customer_id, attributes, r.consent_marketing, r.consent_profiling)
            .await
            .map(Response::new)
            .map_err(status)
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
        self.store.forget_customer(&key, &r.customer_id).await.map(Response::new).map_err(status)
    }

    async fn get_customer_features(
        &self,
        req: Request<pb::GetCustomerFeaturesRequest>,
    ) -> Result<Response<pb::GetCustomerFeaturesResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.id("customer_id", &r.customer_id);
        invalid(v)?;
        let st = self.store.customer(&r.customer_id).await.map_err(status)?;
        let now = self.store.now();
        let f = &st.features;
        let val = |n: &str| f.value(n, now).unwrap_or(0.0);
        Ok(Response::new(pb::GetCustomerFeaturesResponse {
            features: Some(pb::CustomerFeatures {
                customer_id: st.customer_id.clone(),
                recency_days: if f.last_purchase_at.is_some() { val("recency_days") } else { -1.0 },
                frequency_90d: val("frequency_90d"),
                monetary_90d: val("monetary_90d"),
                frequency_365d: val("frequency_365d"),
                monetary_365d: val("monetary_365d"),
                average_basket: val("average_basket"),
                tenure_days: val("tenure_days"),
                channel_mix: CHANNELS.iter().map(|c| (c.to_string(), val(&format!("channel_mix.{c}")))).collect(),
                last_nps: f.last_nps.unwrap_or(-1),
                nps_class: crate::domain::features::nps_class(f.last_nps).into(),
                complaints_90d: val("complaints_90d"),
                referrals: val("referrals"),
                tier: f.tier.clone().unwrap_or_default(),
                cluster_id: st.cluster.unwrap_or(-1),
                attributes: rapport_kit::guard::personal(st.attributes.into_iter().collect()),
            }),
        }))
    }

    async fn refresh_features(
        &self,
        _req: Request<pb::RefreshFeaturesRequest>,
    ) -> Result<Response<pb::RefreshFeaturesResponse>, Status> {
        let (aged, changes) = self.store.refresh().await.map_err(status)?;
        Ok(Response::new(pb::RefreshFeaturesResponse { customers_aged: aged, membership_changes: changes }))
    }

    async fn train_model(
        &self,
        req: Request<pb::TrainModelRequest>,
    ) -> Result<Response<pb::TrainModelResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        let features: Vec<String> = if r.features.is_empty() {
            DEFAULT_MODEL_FEATURES.iter().map(|s| s.to_string()).collect()
        } else {
            r.features.clone()
        };
        for (i, f) in features.iter().enumerate() {
            v.check(FEATURE_NAMES.contains(&f.as_str()), &format!("features[{i}]"), "is not a known feature");
        }
        v.check(
            features.iter().collect::<HashSet<_>>().len() == features.len(),
            "features",
            "must not repeat a feature",
        );
        v.check((0..=50).contains(&r.k) && r.k != 1, "k", "must be 0 (choose) or 2 to 50");
        let k_min = if r.k_min == 0 { 2 } else { r.k_min };
        let k_max = if r.k_max == 0 { 10 } else { r.k_max };
        v.check((2..=50).contains(&k_min), "k_min", "must be 2 to 50");
        v.check((2..=50).contains(&k_max) && k_max >= k_min, "k_max", "must be 2 to 50 and at least k_min");
        v.check((0..=1_000_000).contains(&r.sample_size), "sample_size", "must be 0 (100000) to 1000000");
        v.check(pb::Algorithm::try_from(r.algorithm).is_ok(), "algorithm", "must be a known algorithm");
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        let (job_id, fresh) = self.store.start_training(&key).await.map_err(status)?;
        if fresh {
            let params = TrainParams {
                features,
                k: (r.k > 0).then_some(r.k as usize),
                k_range: (k_min as usize, k_max as usize),
                sample: if r.sample_size == 0 { 100_000 } else { r.sample_size as usize },
                seed: r.seed,
                algorithm: if r.algorithm == i32::from(pb::Algorithm::Gmm) {
                    Algorithm::Gmm
                } else {
                    Algorithm::KMeans
                },
            };
            self.background.train(job_id.clone(), params);
        }
        Ok(Response::new(pb::TrainModelResponse { job_id }))
    }

    async fn get_training_job(
        &self,
        req: Request<pb::GetTrainingJobRequest>,
    ) -> Result<Response<pb::GetTrainingJobResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.id("job_id", &r.job_id);
        invalid(v)?;
        let j = self.store.job(&r.job_id).await.map_err(status)?;
        Ok(Response::new(pb::GetTrainingJobResponse {
            job_id: j.job_id,
            state: match j.state.as_str() {
                "succeeded" => pb::JobState::Succeeded,
                "failed" => pb::JobState::Failed,
                _ => pb::JobState::Running,
            }
            .into(),
            phase: j.phase,
            progress: j.progress,
            model_version: j.model_version.unwrap_or_default(),
            error: j.error.unwrap_or_default(),
        }))
    }

    async fn get_model(&self, req: Request<pb::GetModelRequest>) -> Result<Response<pb::GetModelResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.check(r.version >= 0, "version", "must not be negative");
        invalid(v)?;
        let (version, spec, created) = self.store.model_version(r.version).await.map_err(status)?;
        let clusters = spec
            .clusters
            .iter()
            .map(|c| pb::ClusterProfile {
                cluster_id: c.id,
                label: c.label.clone(),
                size: c.size,
                centroid: spec.features.iter().cloned().zip(c.original.iter().copied()).collect(),
                z_scores: spec.features.iter().cloned().zip(c.z.iter().copied()).collect(),
            })
            .collect();
        Ok(Response::new(pb::GetModelResponse {
            model: Some(pb::Model {
                version,
                features: spec.features.clone(),
                k: i32::try_from(spec.clusters.len()).unwrap_or(i32::MAX),
                inertia: spec.inertia,
                silhouette: spec.silhouette,
                clusters,
                create_time: Some(timestamp(created)),
                algorithm: match spec.algorithm {
                    Algorithm::KMeans => pb::Algorithm::Kmeans,
                    Algorithm::Gmm => pb::Algorithm::Gmm,
                }
                .into(),
            }),
        }))
    }

    async fn create_segment(
        &self,
        req: Request<pb::CreateSegmentRequest>,
    ) -> Result<Response<pb::CreateSegmentResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        let Some(s) = r.segment.as_ref() else {
            v.add("segment", "is required");
            invalid(v)?;
            return Err(Status::invalid_argument("segment is required"));
        };
        v.id("segment.segment_id", &s.segment_id);
        v.check(!s.display_name.trim().is_empty(), "segment.display_name", "is required");
        v.text("segment.display_name", &s.display_name, 200);
        let existing = self.store.segment_ids().await.map_err(status)?;
        let (depth, nodes) = s.condition.as_ref().map(tree_shape).unwrap_or_default();
        let rule = if depth > MAX_RULE_DEPTH || nodes > MAX_RULE_NODES {
            // Not walked any further: refused on its shape alone.
            v.add(
                "segment.condition",
                format!("must be at most {MAX_RULE_DEPTH} levels deep and hold at most {MAX_RULE_NODES} conditions"),
            );
            Rule::All(vec![])
        } else {
            rule_from(s.condition.as_ref(), "segment.condition", &existing, &mut v)
        };
        if rule.dependencies().contains(&s.segment_id) {
            v.add("segment.condition", "a segment cannot refer to itself");
        }
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.create_segment(&key, &s.segment_id, &s.display_name, rule).await.map_err(status)?;
        let (def, size) = self.store.segment(&s.segment_id).await.map_err(status)?;
        Ok(Response::new(pb::CreateSegmentResponse { segment: Some(segment_pb(def, size)) }))
    }

    async fn get_segment(
        &self,
        req: Request<pb::GetSegmentRequest>,
    ) -> Result<Response<pb::GetSegmentResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.id("segment_id", &r.segment_id);
        invalid(v)?;
        let (def, size) = self.store.segment(&r.segment_id).await.map_err(status)?;
        Ok(Response::new(pb::GetSegmentResponse { segment: Some(segment_pb(def, size)) }))
    }

    async fn list_segments(
        &self,
        _req: Request<pb::ListSegmentsRequest>,
    ) -> Result<Response<pb::ListSegmentsResponse>, Status> {
        let all = self.store.segments().await.map_err(status)?;
        Ok(Response::new(pb::ListSegmentsResponse {
            segments: all.into_iter().map(|(d, n)| segment_pb(d, n)).collect(),
        }))
    }

    async fn delete_segment(
        &self,
        req: Request<pb::DeleteSegmentRequest>,
    ) -> Result<Response<pb::DeleteSegmentResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        v.id("segment_id", &r.segment_id);
        invalid(v)?;
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        self.store.delete_segment(&key, &r.segment_id).await.map_err(status)?;
        Ok(Response::new(pb::DeleteSegmentResponse {}))
    }

    async fn list_segment_members(
        &self,
        req: Request<pb::ListSegmentMembersRequest>,
    ) -> Result<Response<pb::ListSegmentMembersResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.id("segment_id", &r.segment_id);
        let size = PAGE.size(r.page_size, &mut v);
        invalid(v)?;
        let cursor = page::decode(&r.segment_id, &r.page_token).map_err(|e| status(e.into()))?;
        let (ids, next) = self.store.members(&r.segment_id, cursor, size).await.map_err(status)?;
        Ok(Response::new(pb::ListSegmentMembersResponse {
            customer_ids: ids,
            next_page_token: next.map(|c| page::encode(&r.segment_id, c)).unwrap_or_default(),
        }))
    }

    async fn check_membership(
        &self,
        req: Request<pb::CheckMembershipRequest>,
    ) -> Result<Response<pb::CheckMembershipResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.id("segment_id", &r.segment_id);
        v.id("customer_id", &r.customer_id);
        invalid(v)?;
        let member = self.store.is_member(&r.segment_id, &r.customer_id).await.map_err(status)?;
        Ok(Response::new(pb::CheckMembershipResponse { member }))
    }

    async fn list_customer_segments(
        &self,
        req: Request<pb::ListCustomerSegmentsRequest>,
    ) -> Result<Response<pb::ListCustomerSegmentsResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.id("customer_id", &r.customer_id);
        invalid(v)?;
        let (segment_ids, cluster) = self.store.customer_segments(&r.customer_id).await.map_err(status)?;
        let cluster_label = self.store.cluster_label(cluster).await.map_err(status)?;
        Ok(Response::new(pb::ListCustomerSegmentsResponse {
            segment_ids,
            cluster_id: cluster.unwrap_or(-1),
            cluster_label,
        }))
    }

    async fn explain_membership(
        &self,
        req: Request<pb::ExplainMembershipRequest>,
    ) -> Result<Response<pb::ExplainMembershipResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.id("customer_id", &r.customer_id);
        if !r.segment_id.is_empty() {
            v.id("segment_id", &r.segment_id);
        }
        invalid(v)?;
        if r.segment_id.is_empty() {
            let (p, label, assigned) = self.store.explain_cluster(&r.customer_id).await.map_err(status)?;
            return Ok(Response::new(pb::ExplainMembershipResponse {
                member: assigned,
                conditions: vec![],
                cluster_id: p.cluster_id,
                cluster_label: label,
                distance: p.distance,
                features: p
                    .contributions
                    .into_iter()
                    .map(|(name, value, z, cz)| pb::FeatureContribution {
                        name,
                        value,
                        z_score: z,
                        centroid_z_score: cz,
                    })
                    .collect(),
            }));
        }
        let (member, steps) = self.store.explain_segment(&r.customer_id, &r.segment_id).await.map_err(status)?;
        Ok(Response::new(pb::ExplainMembershipResponse {
            member,
            conditions: steps
                .into_iter()
                .map(|s| pb::ConditionResult {
                    path: s.path,
                    description: s.description,
                    // The customer's value of an attribute is personal; the condition and whether it held are not.
                    actual: if s.personal { rapport_kit::guard::personal(s.actual) } else { s.actual },
                    held: s.held,
                })
                .collect(),
            cluster_id: -1,
            cluster_label: String::new(),
            distance: 0.0,
            features: vec![],
        }))
    }

    async fn trigger_campaign(
        &self,
        req: Request<pb::TriggerCampaignRequest>,
    ) -> Result<Response<pb::TriggerCampaignResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.request_id(&r.request_id);
        if !r.campaign_id.is_empty() {
            v.id("campaign_id", &r.campaign_id);
        }
        v.id("segment_id", &r.segment_id);
        v.id("offer_id", &r.offer_id);
        v.check((0..=50).contains(&r.holdout_percent), "holdout_percent", "must be 0 to 50");
        invalid(v)?;
        let campaign_id = if r.campaign_id.is_empty() { r.request_id.clone() } else { r.campaign_id.clone() };
        let key = Key::of(&r.request_id, &r, |m| m.request_id.clear());
        let c = self
            .store
            .trigger_campaign(&key, &campaign_id, &r.segment_id, &r.offer_id, r.holdout_percent)
            .await
            .map_err(status)?;
        self.background.wake_campaigns();
        Ok(Response::new(pb::TriggerCampaignResponse { campaign: Some(campaign_pb(c)) }))
    }

    async fn get_campaign(
        &self,
        req: Request<pb::GetCampaignRequest>,
    ) -> Result<Response<pb::GetCampaignResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::new();
        v.id("campaign_id", &r.campaign_id);
        invalid(v)?;
        let c = self.store.campaign(&r.campaign_id).await.map_err(status)?;
        Ok(Response::new(pb::GetCampaignResponse { campaign: Some(campaign_pb(c)) }))
    }
}
