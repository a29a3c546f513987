//! The customer's loyalty tier at intake, asked of loyalty within a deadline. Loyalty down or slow never holds a
//! case up: the answer is then `None`, and the case is routed with the tier loyalty's events last gave feedback, or
//! as `unknown`.
use std::time::Duration;

use rapport_kit::client::OutgoingChannel;
use rapport_proto::loyalty::v1::{GetMemberRequest, Tier, loyalty_service_client::LoyaltyServiceClient};

/// Asks loyalty for tiers.
#[derive(Clone)]
pub struct TierLookup {
    client: Option<LoyaltyServiceClient<OutgoingChannel>>,
    deadline: Duration,
}

impl TierLookup {
    /// Over `client` (none: never asks), each answer awaited at most `deadline`.
    pub fn new(client: Option<LoyaltyServiceClient<OutgoingChannel>>, deadline: Duration) -> Self {
        Self { client, deadline }
    }

    /// The customer's tier (`bronze` … `vip`, `none` when not a member), or `None` when loyalty did not answer in
    /// time.
    pub async fn tier(&self, customer_id: &str) -> Option<String> {
        let mut c = self.client.clone()?;
        let call = c.get_member(GetMemberRequest { customer_id: customer_id.into() });
        match tokio::time::timeout(self.deadline, call).await {
            Ok(Ok(r)) => {
                let tier = r.into_inner().member.map(|m| m.tier()).unwrap_or(Tier::Unspecified);
                Some(tier.as_str_name().trim_start_matches("TIER_").to_lowercase())
            }
            Ok(Err(s)) if s.code() == tonic::Code::NotFound => Some("none".into()),
            Ok(Err(s)) => {
                tracing::warn!(code = ?s.code(), "loyalty did not give the tier; routing without it");
                None
            }
            Err(_) => {
                tracing::warn!(
                    deadline_ms = self.deadline.as_millis() as u64,
                    "loyalty too slow for the tier; routing without it"
                );
                None
            }
        }
    }
}
