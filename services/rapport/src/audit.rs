//! `rapport audit`: who changed what, and when — one service's trail, or every service's merged newest first.
use rapport_proto::audit::v1::{AuditRecord, ListAuditRecordsRequest, audit_service_client::AuditServiceClient};

use crate::{
    cli::{AuditArgs, Conn},
    conn::{SERVICES, channel, explain, service_addr},
    output,
};

/// Runs `rapport audit …`.
pub async fn run(conn: &Conn, args: AuditArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.limit > 0, "--limit: must be at least 1");
    let services: Vec<&str> = match &args.service {
        Some(s) => {
            service_addr(conn, s)?;
            vec![s.as_str()]
        }
        None => SERVICES.to_vec(),
    };
    let (start_time, end_time) = match args.days {
        Some(d) if d < 1 => anyhow::bail!("--days: must be at least 1"),
        Some(d) => {
            let (s, e) = output::last_days(d)?;
            (Some(s), Some(e))
        }
        None => (None, None),
    };
    let req = ListAuditRecordsRequest {
        actor_role: args.role.clone().unwrap_or_default(),
        actor_subject: args.actor.clone().unwrap_or_default(),
        method: args.method.clone().unwrap_or_default(),
        customer_id: args.customer.clone().unwrap_or_default(),
        start_time,
        end_time,
        page_size: i32::try_from(args.limit.min(1000)).unwrap_or(1000),
        page_token: String::new(),
    };
    let mut records: Vec<AuditRecord> = Vec::new();
    let mut unreachable = Vec::new();
    for service in &services {
        let mut client = AuditServiceClient::new(channel(conn, service_addr(conn, service)?)?);
        // The newest `limit` of each service are enough for the newest `limit` of all.
        let mut req = req.clone();
        let mut got = 0;
        loop {
            match client.list_audit_records(req.clone()).await {
                Ok(page) => {
                    let page = page.into_inner();
                    got += page.records.len();
                    records.extend(page.records);
                    if page.next_page_token.is_empty() || got >= args.limit {
                        break;
                    }
                    req.page_token = page.next_page_token;
                }
                // One service asked: its error is the answer. Across the suite: the others still answer.
                Err(e) if args.service.is_some() => return Err(explain(e)),
                Err(e) if e.code() == tonic::Code::Unavailable || e.code() == tonic::Code::Unknown => {
                    unreachable.push(*service);
                    break;
                }
                Err(e) => return Err(explain(e)),
            }
        }
    }
    records.sort_by(|a, b| {
        let t = |r: &AuditRecord| r.time.as_ref().map(|t| (t.seconds, t.nanos)).unwrap_or_default();
        t(b).cmp(&t(a)).then(b.sequence.cmp(&a.sequence))
    });
    records.truncate(args.limit);
    if records.is_empty() {
        println!("no audit records match");
    } else {
        let mut t = output::table(&["time (UTC)", "service", "action", "role", "actor", "target", "customers"]);
        for r in &records {
            t.add_row(vec![
                output::when(r.time.as_ref()),
                r.service.clone(),
                r.method.clone(),
                r.actor_role.clone(),
                r.actor_subject.clone(),
                r.target.clone(),
                r.customers.to_string(),
            ]);
        }
        println!("{t}");
        println!("{} records, newest first", records.len());
    }
    if !unreachable.is_empty() {
        println!("not reachable (their trails are not shown): {}", unreachable.join(", "));
    }
    Ok(())
}
