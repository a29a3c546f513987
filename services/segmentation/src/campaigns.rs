//! Campaign orchestration: grants each running campaign's pending targets through loyalty, a batch at a time, under
//! the `segmentation.campaigns` lease (one worker across replicas).
use opentelemetry::{KeyValue, metrics::Gauge};
use rapport_kit::{
    client::{self, OutgoingChannel, RetryBudget},
    lease::Worker,
};
use rapport_proto::loyalty::v1::{GrantOffersRequest, loyalty_service_client::LoyaltyServiceClient};
use rapport_telemetry::suite::SERVICE_ATTRIBUTE;
use sea_orm::DatabaseConnection;
use tracing::Instrument;

use crate::store::Store;

/// Runs the campaign worker until `stop` resolves.
pub async fn run(
    worker: Worker,
    db: DatabaseConnection,
    store: Store,
    loyalty: LoyaltyServiceClient<OutgoingChannel>,
    stop: impl std::future::Future<Output = ()> + Send,
) {
    let budget = RetryBudget::default();
    let progress = Progress::new();
    worker
        .run(db, stop, || async {
            if let Err(e) = grant_pending(&store, &loyalty, &budget, &progress).await {
                tracing::warn!(error = %e, "campaign round stopped, will retry");
            }
            false
        })
        .await;
}

async fn grant_pending(
    store: &Store,
    loyalty: &LoyaltyServiceClient<OutgoingChannel>,
    budget: &RetryBudget,
    progress: &Progress,
) -> Result<(), String> {
    for (campaign_id, offer_id, traceparent) in store.running_campaigns().await.map_err(|e| e.to_string())? {
        loop {
            progress.record(store, &campaign_id).await;
            let batch = store.pending_targets(&campaign_id, 500).await.map_err(|e| e.to_string())?;
            if batch.is_empty() {
                store.record_grants(&campaign_id, &[], &[]).await.map_err(|e| e.to_string())?;
                progress.record(store, &campaign_id).await;
                break;
            }
            let request_id = batch_request_id(&campaign_id, &offer_id, &batch);
            let req = GrantOffersRequest {
                request_id,
                offer_id: offer_id.clone(),
                campaign_id: campaign_id.clone(),
                customer_ids: batch.clone(),
            };
            let answer = client::with_retry(budget, 3, || {
                let mut c = loyalty.clone();
                let r = req.clone();
                async move { c.grant_offers(r).await }
            })
            .instrument(grant_span(&campaign_id, batch.len(), &traceparent))
            .await;
            match answer {
                Ok(resp) => {
                    let resp = resp.into_inner();
                    let failed: Vec<(String, String)> =
                        resp.skipped.into_iter().map(|s| (s.customer_id, s.reason)).collect();
                    let granted: Vec<String> =
                        batch.into_iter().filter(|c| !failed.iter().any(|(f, _)| f == c)).collect();
                    tracing::info!(campaign_id = %campaign_id, granted = granted.len(), failed = failed.len(), "campaign batch granted");
                    store.record_grants(&campaign_id, &granted, &failed).await.map_err(|e| e.to_string())?;
                }
                // Loyalty does not accept segmentation's identity: nothing a retry fixes and nothing the targets did;
                // the campaign waits, visibly, for an operator.
                Err(s) if matches!(s.code(), tonic::Code::PermissionDenied | tonic::Code::Unauthenticated) => {
                    let reason = format!("loyalty refused the grant ({:?}): {}", s.code(), s.message());
                    store.pause_campaign(&campaign_id, &reason).await.map_err(|e| e.to_string())?;
                    break;
                }
                // The offer does not exist or the request is invalid: every target fails with that reason.
                Err(s) if matches!(s.code(), tonic::Code::NotFound | tonic::Code::InvalidArgument) => {
                    let reason = error_reason(&s);
                    let failed: Vec<(String, String)> = batch.into_iter().map(|c| (c, reason.clone())).collect();
                    store.record_grants(&campaign_id, &[], &failed).await.map_err(|e| e.to_string())?;
                }
                Err(s) => return Err(format!("loyalty: {:?} {}", s.code(), s.message())),
            }
        }
    }
    Ok(())
}

/// Campaign progress over OTLP metrics (no-ops unless telemetry exports them), recorded by the worker before each
/// batch and when a campaign completes: `rapport.segmentation.campaign.targets` per campaign and status (pending,
/// granted, held_out, failed) and `rapport.segmentation.campaign.progress`, the share (0-1) of targets settled.
struct Progress {
    targets: Gauge<i64>,
    settled: Gauge<f64>,
}

impl Progress {
    fn new() -> Self {
        let meter = opentelemetry::global::meter("rapport");
        Self {
            targets: meter
                .i64_gauge("rapport.segmentation.campaign.targets")
                .with_description("a campaign's targets by status")
                .build(),
            settled: meter
                .f64_gauge("rapport.segmentation.campaign.progress")
                .with_description("share (0-1) of a campaign's targets granted, held out or failed")
                .build(),
        }
    }

    async fn record(&self, store: &Store, campaign_id: &str) {
        if !rapport_telemetry::exports_metrics() {
            return;
        }
        let view = match store.campaign(campaign_id).await {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(campaign_id, error = %e, "campaign progress not recorded");
                return;
            }
        };
        let of = |status: &'static str| {
            [
                KeyValue::new(SERVICE_ATTRIBUTE, "segmentation"),
                KeyValue::new("rapport.campaign.id", campaign_id.to_string()),
                KeyValue::new("rapport.campaign.status", status),
            ]
        };
        let pending = view.targeted - view.granted - view.held_out - view.failed;
        for (status, n) in
            [("pending", pending), ("granted", view.granted), ("held_out", view.held_out), ("failed", view.failed)]
        {
            self.targets.record(n, &of(status));
        }
        let share = if view.targeted == 0 { 1.0 } else { (view.targeted - pending) as f64 / view.targeted as f64 };
        let campaign = [
            KeyValue::new(SERVICE_ATTRIBUTE, "segmentation"),
            KeyValue::new("rapport.campaign.id", campaign_id.to_string()),
        ];
        self.settled.record(share, &campaign);
    }
}

/// The request id of a batch: a hash of what it grants, so a retry of the same batch is the same request, a batch
/// that changed (a target erased meanwhile) is a new one, and the id stays short whatever the campaign id.
fn batch_request_id(campaign_id: &str, offer_id: &str, batch: &[String]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [campaign_id, offer_id].into_iter().chain(batch.iter().map(String::as_str)) {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let hex: String = h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("grant-{hex}")
}

/// The stable reason of a refusal: its `ErrorInfo` reason, else its code.
fn error_reason(s: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    s.get_error_details().error_info().map_or_else(|| format!("{:?}", s.code()).to_uppercase(), |i| i.reason.clone())
}

/// A grant batch's span: a round of the worker's own trace, linked to the TriggerCampaign call that caused it (its
/// trace context kept with the campaign, as the outbox keeps an event's).
fn grant_span(campaign_id: &str, batch: usize, traceparent: &str) -> tracing::Span {
    let span = tracing::info_span!("campaign.grant", campaign_id = %campaign_id, batch);
    rapport_telemetry::add_link(&span, traceparent);
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_ids_follow_the_content() {
        let b = vec!["a".to_string(), "b".to_string()];
        let id = batch_request_id("spring", "thanks", &b);
        assert_eq!(id, batch_request_id("spring", "thanks", &b));
        assert_ne!(id, batch_request_id("spring", "thanks", &b[..1]));
        assert_ne!(id, batch_request_id("spring", "other", &b));
        assert_eq!(batch_request_id(&"x".repeat(500), "o", &b).len(), 38);
    }
}
