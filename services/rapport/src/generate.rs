//! `rapport gen`: a seeded synthetic data set from the planted personas, streamed into the running suite
//! (customers enrolled in loyalty, their history into segmentation) or written as JSON lines.
use std::io::Write;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rapport_proto::{
    loyalty::v1::{EnrolMemberRequest, loyalty_service_client::LoyaltyServiceClient},
    segmentation::v1::{IngestEventsRequest, segmentation_service_client::SegmentationServiceClient},
};

use crate::{
    cli::{Conn, GenArgs},
    conn::{channel, channel_with_timeout, explain},
};

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Runs `rapport gen`.
pub async fn run(conn: &Conn, args: GenArgs) -> anyhow::Result<()> {
    let now = now_ms();
    let bar = ProgressBar::new(args.customers).with_style(
        ProgressStyle::with_template("{spinner} {msg:<12} [{bar:40}] {pos}/{len} customers {per_sec} {eta}")?
            .progress_chars("=> "),
    );
    if let Some(path) = &args.out {
        bar.set_message("writing");
        let mut out = std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("creating {path}"))?);
        for c in rapport_synth::customers(args.seed, args.customers, now) {
            serde_json::to_writer(&mut out, &c)?;
            out.write_all(b"\n")?;
            bar.inc(1);
        }
        out.flush()?;
        bar.finish_with_message("written");
        println!("{} customers written to {path}", args.customers);
        return Ok(());
    }
    let mut loyalty = LoyaltyServiceClient::new(channel(conn, &conn.loyalty_addr)?);
    let mut seg = SegmentationServiceClient::new(channel_with_timeout(
        conn,
        &conn.segmentation_addr,
        std::time::Duration::from_secs(3600),
    )?);
    // Consent first: a customer first seen through its events has consented to nothing. The synthetic customers
    // consent to profiling and offers.
    bar.set_message("consent");
    let mut consent = SegmentationServiceClient::new(channel(conn, &conn.segmentation_addr)?);
    for c in rapport_synth::customers(args.seed, args.customers, now) {
        consent.upsert_customer(rapport_synth::consent(&c)).await.map_err(explain)?;
        bar.inc(1);
    }
    bar.set_position(0);
    bar.set_message("streaming");
    let (tx, rx) = tokio::sync::mpsc::channel::<IngestEventsRequest>(8);
    let stream = tokio::spawn(async move { seg.ingest_events(tokio_stream::wrappers::ReceiverStream::new(rx)).await });
    let mut batch = Vec::new();
    for c in rapport_synth::customers(args.seed, args.customers, now) {
        if !args.no_enrol {
            let r = loyalty
                .enrol_member(EnrolMemberRequest {
                    request_id: format!("gen-{}", c.customer_id),
                    customer_id: c.customer_id.clone(),
                    display_name: String::new(),
                })
                .await;
            // Enrolled by an earlier run: fine.
            if let Err(s) = r
                && s.code() != tonic::Code::AlreadyExists
            {
                return Err(explain(s));
            }
        }
        let events = rapport_synth::behaviour_events(&c);
        if batch.len() + events.len() > 1000 {
            tx.send(IngestEventsRequest { events: std::mem::take(&mut batch) }).await.context("the stream closed")?;
        }
        batch.extend(events);
        bar.inc(1);
    }
    if !batch.is_empty() {
        tx.send(IngestEventsRequest { events: batch }).await.context("the stream closed")?;
    }
    drop(tx);
    let r = stream.await?.map_err(explain)?.into_inner();
    bar.finish_with_message("done");
    println!("{} customers: {} events applied, {} already there", args.customers, r.applied, r.duplicates);
    Ok(())
}
