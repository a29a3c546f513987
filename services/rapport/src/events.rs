//! `rapport events parked|retry`: a producer's parked events, and replaying them.
use rapport_proto::events::v1::{
    ListParkedEventsRequest, RetryParkedEventsRequest, outbox_service_client::OutboxServiceClient,
};

use crate::{
    cli::{Conn, EventsArgs, EventsCommand},
    conn::{channel, explain, service_addr},
    output,
};

/// Runs `rapport events …`.
pub async fn run(conn: &Conn, args: EventsArgs) -> anyhow::Result<()> {
    let mut client = OutboxServiceClient::new(channel(conn, service_addr(conn, &args.service)?)?);
    match args.command {
        EventsCommand::Parked { destination } => {
            let mut t =
                output::table(&["event", "source", "destination", "kind", "attempts", "parked at", "last error"]);
            let (mut token, mut n) = (String::new(), 0);
            loop {
                let page = client
                    .list_parked_events(ListParkedEventsRequest {
                        destination: destination.clone().unwrap_or_default(),
                        page_size: 500,
                        page_token: token,
                    })
                    .await
                    .map_err(explain)?
                    .into_inner();
                for e in page.events {
                    n += 1;
                    t.add_row(vec![
                        e.event_id,
                        if e.source.is_empty() { args.service.clone() } else { e.source },
                        e.destination,
                        e.kind,
                        e.attempts.to_string(),
                        output::when(e.parked_at.as_ref()),
                        e.last_error,
                    ]);
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            if n == 0 {
                println!("no parked events in {}'s outbox", args.service);
            } else {
                println!("{t}");
                println!("{n} parked; replay with: rapport events --service {} retry <destination>", args.service);
            }
        }
        EventsCommand::Retry { destination, events } => {
            let r = client
                .retry_parked_events(RetryParkedEventsRequest {
                    request_id: format!("cli-retry-{}", uuid::Uuid::new_v4()),
                    destination: destination.clone(),
                    event_ids: events,
                })
                .await
                .map_err(explain)?
                .into_inner();
            println!("{} parked events for {destination} put back in line", r.requeued);
        }
    }
    Ok(())
}
