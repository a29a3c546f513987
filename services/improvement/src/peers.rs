//! What improvement asks segmentation, within a deadline and never so that its being down loses anything: a
//! segment's members when a pilot starts (the pilot does not start without them), and a customer's 365-day spend
//! for the revenue at risk (the valuation worker waits and tries again).
use std::time::Duration;

use rapport_kit::client::OutgoingChannel;
use rapport_proto::segmentation::v1::{
    GetCustomerFeaturesRequest, ListSegmentMembersRequest, segmentation_service_client::SegmentationServiceClient,
};
use tonic::{Code, Status};

use crate::error::ImprovementError;

/// Most customers a pilot takes from a segment.
pub const MAX_PILOT: usize = 200_000;

/// The client of segmentation (none: not configured).
#[derive(Clone)]
pub struct Segmentation {
    client: Option<SegmentationServiceClient<OutgoingChannel>>,
    deadline: Duration,
}

fn unavailable(s: &Status) -> ImprovementError {
    let why = match s.code() {
        Code::DeadlineExceeded => "deadline exceeded".to_string(),
        Code::Unavailable => "unavailable".to_string(),
        c => format!("error: {}", c.description().to_lowercase()),
    };
    ImprovementError::SegmentationUnavailable(why)
}

impl Segmentation {
    /// Over `client`; each call awaited at most `deadline`.
    pub fn new(client: Option<SegmentationServiceClient<OutgoingChannel>>, deadline: Duration) -> Self {
        Self { client, deadline }
    }

    fn client(&self) -> Result<SegmentationServiceClient<OutgoingChannel>, ImprovementError> {
        self.client.clone().ok_or_else(|| ImprovementError::SegmentationUnavailable("not configured".into()))
    }

    /// Every member of `segment_id` (at most [`MAX_PILOT`]), page by page.
    pub async fn members(&self, segment_id: &str) -> Result<Vec<String>, ImprovementError> {
        let mut c = self.client()?;
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let req = ListSegmentMembersRequest { segment_id: segment_id.into(), page_size: 1_000, page_token: token };
            let page = match tokio::time::timeout(self.deadline, c.list_segment_members(req)).await {
                Ok(Ok(r)) => r.into_inner(),
                Ok(Err(s)) if matches!(s.code(), Code::NotFound | Code::InvalidArgument) => {
                    return Err(ImprovementError::SegmentNotFound(segment_id.into()));
                }
                Ok(Err(s)) => return Err(unavailable(&s)),
                Err(_) => return Err(ImprovementError::SegmentationUnavailable("deadline exceeded".into())),
            };
            out.extend(page.customer_ids);
            if page.next_page_token.is_empty() || out.len() >= MAX_PILOT {
                out.truncate(MAX_PILOT);
                return Ok(out);
            }
            token = page.next_page_token;
        }
    }

    /// The customer's 365-day spend (None: segmentation does not know it).
    pub async fn spend(&self, customer_id: &str) -> Result<Option<f64>, ImprovementError> {
        let mut c = self.client()?;
        let req = GetCustomerFeaturesRequest { customer_id: customer_id.into() };
        match tokio::time::timeout(self.deadline, c.get_customer_features(req)).await {
            Ok(Ok(r)) => Ok(r.into_inner().features.map(|f| f.monetary_365d)),
            Ok(Err(s)) if s.code() == Code::NotFound || s.code() == Code::FailedPrecondition => Ok(None),
            Ok(Err(s)) => Err(unavailable(&s)),
            Err(_) => Err(ImprovementError::SegmentationUnavailable("deadline exceeded".into())),
        }
    }

    /// Whether it is configured.
    pub fn configured(&self) -> bool {
        self.client.is_some()
    }
}
