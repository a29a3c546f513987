//! Business metrics over OTLP (no-ops unless telemetry exports metrics), read by the dashboards and alerts under
//! `k8s/monitoring`: over the last 24 hours, the NPS with its answers and target, the median first-response time, the
//! SLA attainment and the cases opened, the latest barometer reading — computed by one replica at a time, under the `feedback.gauges` lease — and
//! every SLA breach the sweeper records, counted by clock and tier.
use opentelemetry::{
    KeyValue,
    metrics::{Counter, Gauge},
};

use rapport_telemetry::suite::SERVICE_ATTRIBUTE;

use crate::{
    error::FeedbackError,
    store::{CareGrouping, Grouping, Store, Swept},
};

/// The window the gauges cover.
pub const WINDOW_MS: i64 = 24 * 3_600_000;

/// The instruments.
#[derive(Clone)]
pub struct Metrics {
    nps: Gauge<f64>,
    nps_target: Gauge<f64>,
    answers: Gauge<i64>,
    first_response: Gauge<f64>,
    attainment: Gauge<f64>,
    cases: Gauge<i64>,
    breaches: Counter<u64>,
    barometer: Gauge<f64>,
    axes: Gauge<f64>,
}

impl Metrics {
    /// The instruments of the global meter provider (set up by telemetry before services are built).
    pub fn new() -> Self {
        let meter = opentelemetry::global::meter("rapport");
        Self {
            nps: meter.f64_gauge("rapport.feedback.nps").with_description("NPS of the last 24 hours").build(),
            nps_target: meter.f64_gauge("rapport.feedback.nps.target").with_description("the NPS target").build(),
            answers: meter
                .i64_gauge("rapport.feedback.nps.answers")
                .with_description("survey answers of the last 24 hours")
                .build(),
            first_response: meter
                .f64_gauge("rapport.feedback.first_response.median")
                .with_unit("s")
                .with_description("median first-response time of the cases opened in the last 24 hours")
                .build(),
            attainment: meter
                .f64_gauge("rapport.feedback.sla.attainment")
                .with_description("share (0-1) of the cases opened in the last 24 hours with no breached clock")
                .build(),
            cases: meter
                .i64_gauge("rapport.feedback.cases")
                .with_description("cases opened in the last 24 hours")
                .build(),
            breaches: meter
                .u64_counter("rapport.feedback.sla.breaches")
                .with_description("SLA breaches recorded, by clock and tier")
                .build(),
            barometer: meter
                .f64_gauge("rapport.feedback.barometer.index")
                .with_description("the latest satisfaction barometer reading's index (0-100)")
                .build(),
            axes: meter
                .f64_gauge("rapport.feedback.barometer.axis")
                .with_description("the latest barometer reading per axis and point of view (customers, staff), 0-100")
                .build(),
        }
    }

    /// Reads the figures of the last 24 hours and records them. The NPS and the first-response median are left
    /// unrecorded while there is nothing to compute them from (no answer, no answered case), rather than shown as 0.
    pub async fn report(&self, store: &Store, nps_target: f64) -> Result<(), FeedbackError> {
        let now = store.now();
        let us = [KeyValue::new(SERVICE_ATTRIBUTE, "feedback")];
        let nps = store.nps(now - WINDOW_MS, now, Grouping::None).await?.overall;
        let (care, _) = store.care_report(now - WINDOW_MS, now, CareGrouping::None).await?;
        self.nps_target.record(nps_target, &us);
        self.answers.record(nps.responses(), &us);
        if nps.responses() > 0 {
            self.nps.record(nps.score(), &us);
        }
        self.cases.record(care.cases, &us);
        if let Some(ms) = care.first_response_p50 {
            self.first_response.record(ms as f64 / 1000.0, &us);
        }
        if care.cases > 0 {
            self.attainment.record(care.sla_attainment, &us);
        }
        if let Some(reading) = store.readings(1).await?.into_iter().next() {
            // No period attribute: a gauge keeps exporting every attribute set it has seen, so a period's series
            // would outlive the reading; one series per axis and view always holds the latest reading.
            if reading.index >= 0.0 {
                self.barometer.record(reading.index, &us);
            }
            for axis in &reading.axes {
                let name = axis.axis().as_str_name().trim_start_matches("BAROMETER_AXIS_").to_lowercase();
                for (view, value) in [("customers", axis.customers), ("staff", axis.staff)] {
                    if value >= 0.0 {
                        let attributes = [
                            us[0].clone(),
                            KeyValue::new("rapport.barometer.axis", name.clone()),
                            KeyValue::new("rapport.barometer.view", view),
                        ];
                        self.axes.record(value, &attributes);
                    }
                }
            }
        }
        tracing::debug!(answers = nps.responses(), cases = care.cases, "business gauges recorded");
        Ok(())
    }

    /// Counts the breaches a sweep recorded.
    pub fn count(&self, swept: &Swept) {
        for ((clock, tier), n) in &swept.breaches {
            let attributes = [
                KeyValue::new(SERVICE_ATTRIBUTE, "feedback"),
                KeyValue::new("rapport.sla.clock", *clock),
                KeyValue::new("rapport.tier", tier.clone()),
            ];
            self.breaches.add(*n, &attributes);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
