//! Random sequences of earn / redeem / reverse / time passing, with random retries of earlier requests, against
//! a simple model of the ledger: balances match, nothing goes negative, the entries add up to the balance.
use proptest::prelude::*;
use rapport_proto::loyalty::v1 as pb;
use tonic::Code;

use crate::support::{Db, TestApp, balance, spawn_app};

const DAY: i64 = 86_400_000;
const VALIDITY_DAYS: i64 = 365;

#[derive(Debug, Clone)]
enum Op {
    Earn(i64),
    Redeem(i64),
    /// Reverse (part of) the n-th earn so far.
    Reverse(usize, i64),
    /// Let days pass.
    Wait(i64),
    /// Send an earlier request again, unchanged.
    Retry(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1i64..500).prop_map(Op::Earn),
        3 => (1i64..400).prop_map(Op::Redeem),
        2 => (0usize..8, 0i64..300).prop_map(|(i, p)| Op::Reverse(i, p)),
        1 => (1i64..200).prop_map(Op::Wait),
        2 => (0usize..20).prop_map(Op::Retry),
    ]
}

/// The model: lots of points (entry index, remaining, expiry), and per earn what is left to reverse.
#[derive(Default)]
struct Model {
    now: i64,
    lots: Vec<(usize, i64, i64)>,
    earned: Vec<(String, i64, i64)>, // (entry id, points, reversed so far)
}

impl Model {
    fn expire(&mut self) {
        let now = self.now;
        for l in &mut self.lots {
            if l.2 <= now {
                l.1 = 0;
            }
        }
    }
    fn active(&self) -> i64 {
        self.lots.iter().filter(|l| l.2 > self.now).map(|l| l.1).sum()
    }
    fn take(&mut self, mut points: i64, first: Option<usize>) {
        let now = self.now;
        if let Some(l) = first.and_then(|i| self.lots.iter_mut().find(|l| l.0 == i && l.2 > now)) {
            let t = l.1.min(points);
            l.1 -= t;
            points -= t;
        }
        let mut order: Vec<usize> = (0..self.lots.len()).filter(|k| self.lots[*k].2 > now).collect();
        order.sort_by_key(|k| (self.lots[*k].2, *k));
        for k in order {
            let t = self.lots[k].1.min(points);
            self.lots[k].1 -= t;
            points -= t;
        }
        assert_eq!(points, 0, "model took more than it had");
    }
}

enum Sent {
    Earn(pb::EarnPointsRequest),
    Redeem(pb::RedeemPointsRequest),
    Reverse(pb::ReversePointsRequest),
}

async fn run(db: Db, ops: Vec<Op>) {
    let app: TestApp = spawn_app(db).await;
    app.enrol("prop").await;
    let mut c = app.client.clone();
    let mut m = Model { now: crate::support::T0, ..Model::default() };
    let mut sent: Vec<(Sent, Result<i64, Code>)> = Vec::new();
    // When each was sent: a request id is remembered for the retention (7 days), a later retry is a new request.
    let mut sent_at: Vec<i64> = Vec::new();
    for (n, op) in ops.into_iter().enumerate() {
        let rid = format!("req-{n}");
        m.expire();
        match op {
            Op::Earn(p) => {
                let r = pb::EarnPointsRequest {
                    request_id: rid,
                    customer_id: "prop".into(),
                    points: p,
                    reason: "p".into(),
                    reference: String::new(),
                };
                let out = c.earn_points(r.clone()).await.unwrap().into_inner();
                let id = out.entry.unwrap().entry_id;
                let idx = m.earned.len();
                m.earned.push((id, p, 0));
                m.lots.push((idx, p, m.now + VALIDITY_DAYS * DAY));
                sent.push((Sent::Earn(r), Ok(out.balance.unwrap().active)));
                sent_at.push(m.now);
            }
            Op::Redeem(p) => {
                let r = pb::RedeemPointsRequest {
                    request_id: rid,
                    customer_id: "prop".into(),
                    points: p,
                    reason: "p".into(),
                };
                let res = c.redeem_points(r.clone()).await;
                if m.active() >= p {
                    m.take(p, None);
                    let b = res.unwrap().into_inner().balance.unwrap().active;
                    sent.push((Sent::Redeem(r), Ok(b)));
                    sent_at.push(m.now);
                } else {
                    assert_eq!(res.unwrap_err().code(), Code::FailedPrecondition);
                }
            }
            Op::Reverse(i, p) => {
                if m.earned.is_empty() {
                    continue;
                }
                let i = i % m.earned.len();
                let (id, points, reversed) = m.earned[i].clone();
                let r = pb::ReversePointsRequest {
                    request_id: rid,
                    customer_id: "prop".into(),
                    entry_id: id,
                    points: p,
                    reason: String::new(),
                };
                let res = c.reverse_points(r.clone()).await;
                let left = points - reversed;
                let want = if p == 0 { left } else { p };
                if left == 0 || want > left || m.active() < want {
                    assert_eq!(res.unwrap_err().code(), Code::FailedPrecondition);
                } else {
                    m.take(want, Some(i));
                    m.earned[i].2 += want;
                    let b = res.unwrap().into_inner().balance.unwrap().active;
                    sent.push((Sent::Reverse(r), Ok(b)));
                    sent_at.push(m.now);
                }
            }
            Op::Wait(days) => {
                app.clock.advance_days(days);
                m.now += days * DAY;
            }
            Op::Retry(k) => {
                if sent.is_empty() {
                    continue;
                }
                let (req, first) = &sent[k % sent.len()];
                if m.now - sent_at[k % sent.len()] >= 7 * DAY {
                    continue;
                }
                // A retry has no second effect and returns the first answer.
                let again = match req {
                    Sent::Earn(r) => c.earn_points(r.clone()).await.map(|x| x.into_inner().balance.unwrap().active),
                    Sent::Redeem(r) => c.redeem_points(r.clone()).await.map(|x| x.into_inner().balance.unwrap().active),
                    Sent::Reverse(r) => {
                        c.reverse_points(r.clone()).await.map(|x| x.into_inner().balance.unwrap().active)
                    }
                };
                assert_eq!(again.map_err(|s| s.code()), *first);
            }
        }
        m.expire();
        app.assert_reads_agree("prop").await;
        let member = app.member("prop").await;
        let b = balance(&member);
        assert!(b.active >= 0 && b.pending >= 0);
        assert_eq!(b.active, m.active(), "active balance after op {n}");
    }
    // A read computes what time has done without writing it; the sweeper writes it. Once it has, the balance is
    // the same and the entries add up to it.
    let b = balance(&app.member("prop").await);
    app.settle().await;
    assert_eq!(balance(&app.member("prop").await), b, "settling what time has done changes no balance");
    let sum: i64 = app.all_entries("prop").await.iter().map(|e| e.points).sum();
    assert_eq!(sum, b.active + b.pending, "the entries add up to the balance");
    app.stop().await;
}

fn check(db: Db) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let cfg = ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(cfg, |(ops in proptest::collection::vec(op(), 1..40))| {
        rt.block_on(run(db, ops));
    });
}

#[test]
fn ledger_matches_model_sqlite() {
    check(Db::Sqlite);
}

#[test]
fn ledger_matches_model_postgres() {
    check(Db::Postgres);
}

/// Found by the property test: points that expire after the last write are taken off the balance by every read, and
/// appear in the ledger once the sweeper has written their expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_after_the_last_write_is_in_the_ledger_once_settled() {
    for db in [Db::Sqlite, Db::Postgres] {
        run(db, vec![Op::Earn(4), Op::Wait(166), Op::Earn(1), Op::Wait(199)]).await;
    }
}
