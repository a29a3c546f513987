//! Discovery over real gRPC: deterministic themes and ids (twice on two databases, and again on the same one), one
//! run at a time with two replicas, accepting and merging discovered themes (their events for feedback), and the
//! figures of a theme on hand-checked numbers.
use std::collections::BTreeMap;

use rapport_kit::{auth::Role, clock::timestamp};
use rapport_proto::{events::v1::event::Payload, improvement::v1 as pb};
use rapport_stats::cluster::adjusted_rand_index;
use sea_orm::{EntityTrait, QueryOrder};
use tonic::Code;

use crate::support::*;

on_both!(
    discovery_is_deterministic_and_keeps_its_ids,
    two_replicas_discovering_at_once_agree,
    accepted_and_merged_themes_reach_feedback,
    too_few_texts_are_refused,
    theme_figures_by_hand,
);

/// The discovered theme of every signal, in delivery order.
async fn placements(app: &TestApp) -> Vec<Option<String>> {
    rapport_improvement::entities::signals::Entity::find()
        .order_by_asc(rapport_improvement::entities::signals::Column::Seq)
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.discovered)
        .collect()
}

fn ids(themes: &[pb::Theme]) -> Vec<(String, i32)> {
    themes.iter().map(|t| (t.theme_id.clone(), t.size)).collect()
}

async fn discovery_is_deterministic_and_keeps_its_ids(db: Db) {
    let a = spawn_app(db).await;
    let b = spawn_app(db).await;
    a.deliver(corpus_signals("s")).await.unwrap();
    b.deliver(corpus_signals("s")).await.unwrap();
    let first = a.discover("d-1").await.unwrap();
    let run = first.run.clone().unwrap();
    assert_eq!((run.run_id, run.texts, run.k as usize), (1, 640, first.themes.len()));
    assert_eq!(run.created.len(), first.themes.len());
    // The planted themes, recovered.
    let truth: Vec<String> = corpus().into_iter().map(|(t, _)| t).collect();
    let names: Vec<&String> = {
        let mut n: Vec<&String> = truth.iter().collect();
        n.sort();
        n.dedup();
        n
    };
    let found = placements(&a).await;
    let found_ids: Vec<&Option<String>> = {
        let mut f: Vec<&Option<String>> = found.iter().collect();
        f.sort();
        f.dedup();
        f
    };
    let t: Vec<usize> = truth.iter().map(|x| names.iter().position(|n| *n == x).unwrap()).collect();
    let f: Vec<usize> = found.iter().map(|x| found_ids.iter().position(|n| *n == x).unwrap()).collect();
    let ari = adjusted_rand_index(&t, &f);
    println!("discovery over gRPC: {} themes, adjusted Rand index {ari:.3}", first.themes.len());
    assert!(ari >= 0.8, "{ari}");
    for theme in &first.themes {
        assert!(theme.theme_id.starts_with("d-"), "{}", theme.theme_id);
        assert_eq!(theme.kind(), pb::ThemeKind::Discovered);
        assert!(!theme.top_terms.is_empty());
        assert!(theme.representative_texts.is_empty(), "the reply kept for retries holds no customer's words");
    }
    let listed = a.client.clone().list_themes(pb::ListThemesRequest::default()).await.unwrap().into_inner().themes;
    assert!(listed.iter().all(|t| !t.representative_texts.is_empty()), "ListThemes shows them");
    // Another database, the same texts: the same themes and ids.
    let other = b.discover("d-1").await.unwrap();
    assert_eq!(ids(&other.themes), ids(&first.themes));
    assert_eq!(placements(&b).await, found);
    // Again on the first: every theme kept, nothing created or retired, every text where it was.
    let again = a.discover("d-2").await.unwrap();
    let run = again.run.unwrap();
    assert!(run.created.is_empty() && run.retired.is_empty(), "{run:?}");
    assert_eq!(run.kept.len(), first.themes.len());
    assert_eq!(ids(&again.themes), ids(&first.themes));
    assert_eq!(placements(&a).await, found);
    // A retry of the first request is its first answer.
    let retried = a.discover("d-1").await.unwrap();
    assert_eq!(retried.run.unwrap().run_id, 1);
    a.stop().await;
    b.stop().await;
}

async fn two_replicas_discovering_at_once_agree(db: Db) {
    let app = spawn_app(db).await;
    app.deliver(corpus_signals("s")).await.unwrap();
    let replica = app.replica().await;
    let mut other = app.client_of(&replica, Role::Marketing, "pat");
    let req = |id: &str| pb::DiscoverThemesRequest {
        request_id: id.into(),
        start_time: Some(timestamp(T0 - DAY)),
        end_time: Some(timestamp(T0 + 30 * DAY)),
        ..Default::default()
    };
    let mut mine = app.client.clone();
    let (x, y) = tokio::join!(mine.discover_themes(req("x")), other.discover_themes(req("y")));
    let (x, y) = (x.unwrap().into_inner(), y.unwrap().into_inner());
    let mut runs = [x.run.clone().unwrap(), y.run.clone().unwrap()];
    runs.sort_by_key(|r| r.run_id);
    assert_eq!((runs[0].run_id, runs[1].run_id), (1, 2));
    // The second run found the first's themes again: nothing new, one row per theme.
    assert!(runs[1].created.is_empty() && runs[1].retired.is_empty(), "{:?}", runs[1]);
    assert_eq!(ids(&x.themes), ids(&y.themes));
    let listed =
        app.client.clone().list_themes(pb::ListThemesRequest { include_settled: true }).await.unwrap().into_inner();
    assert_eq!(listed.themes.len(), x.themes.len());
    replica.stop().await;
    app.stop().await;
}

async fn accepted_and_merged_themes_reach_feedback(db: Db) {
    let app = spawn_app(db).await;
    let mut events = corpus_signals("s");
    // Feedback's own theme "delivery", as classified signals name it.
    events.push(signal("known-1", "k-1", "delivery", "parcel late", T0));
    app.deliver(events).await.unwrap();
    app.discover("d-1").await.unwrap();
    let mut c = app.client.clone();
    let found: Vec<pb::Theme> = c
        .list_themes(pb::ListThemesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .themes
        .into_iter()
        .filter(|t| t.kind() == pb::ThemeKind::Discovered)
        .collect();
    let mut found = found;
    found.sort_by_key(|t| std::cmp::Reverse(t.size));
    let (first, second) = (&found[0], &found[1]);
    let accepted = c
        .accept_theme(pb::AcceptThemeRequest {
            request_id: "acc-1".into(),
            theme_id: first.theme_id.clone(),
            taxonomy_id: "new_theme".into(),
            keywords: vec![],
            examples: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .theme
        .unwrap();
    assert_eq!((accepted.status(), accepted.accepted_as.as_str()), (pb::ThemeStatus::Accepted, "new_theme"));
    let sent = app.events("feedback").await;
    let Some(Payload::ThemeAccepted(t)) = &sent[0].payload else { panic!("{sent:?}") };
    assert_eq!((sent[0].customer_id.as_str(), t.theme_id.as_str(), t.merge), ("theme:new_theme", "new_theme", false));
    let words: Vec<String> = first.top_terms.iter().map(|w| w.term.clone()).collect();
    assert_eq!(t.keywords, words);
    assert!(!t.examples.is_empty());
    // The examples keep only words many customers wrote: none is a whole representative text.
    for e in &t.examples {
        assert!(!first.representative_texts.contains(e), "{e}");
    }
    // Its signals count under the taxonomy id now.
    let signals = c
        .list_signals(pb::ListSignalsRequest {
            theme_id: "new_theme".into(),
            page_size: 500,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .signals;
    assert_eq!(signals.len() as i32, first.size);
    assert!(signals.iter().all(|s| s.effective_theme_id == "new_theme" && s.discovered_theme_id == first.theme_id));
    // Settled once.
    let again = c
        .accept_theme(pb::AcceptThemeRequest {
            request_id: "acc-2".into(),
            theme_id: first.theme_id.clone(),
            taxonomy_id: "other".into(),
            keywords: vec![],
            examples: vec![],
        })
        .await
        .unwrap_err();
    assert_status(&again, Code::FailedPrecondition, "THEME_SETTLED", None);
    let taken = c
        .accept_theme(pb::AcceptThemeRequest {
            request_id: "acc-3".into(),
            theme_id: second.theme_id.clone(),
            taxonomy_id: "delivery".into(),
            keywords: vec!["a".into()],
            examples: vec![],
        })
        .await
        .unwrap_err();
    assert_status(&taken, Code::AlreadyExists, "THEME_EXISTS", None);
    let e = c
        .accept_theme(pb::AcceptThemeRequest {
            request_id: "acc-4".into(),
            theme_id: second.theme_id.clone(),
            taxonomy_id: "d-mine".into(),
            keywords: vec![],
            examples: vec![],
        })
        .await
        .unwrap_err();
    assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some("taxonomy_id"));
    // The signals of a settled theme are listed under the theme it became.
    let via_old = c
        .list_signals(pb::ListSignalsRequest {
            theme_id: first.theme_id.clone(),
            page_size: 500,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .signals;
    assert_eq!(via_old.len() as i32, first.size);
    // Merged into feedback's delivery: feedback gets its words to add; its signals count under delivery.
    let merged = c
        .merge_theme(pb::MergeThemeRequest {
            request_id: "m-1".into(),
            theme_id: second.theme_id.clone(),
            into_theme_id: "delivery".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .theme
        .unwrap();
    assert_eq!((merged.status(), merged.merged_into.as_str()), (pb::ThemeStatus::Merged, "delivery"));
    let sent = app.events("feedback").await;
    let Some(Payload::ThemeAccepted(m)) = &sent[1].payload else { panic!("{sent:?}") };
    assert!(m.merge && m.theme_id == "delivery" && m.discovered_theme_id == second.theme_id);
    let figures = c
        .get_theme_analytics(pb::GetThemeAnalyticsRequest {
            theme_ids: vec!["delivery".into()],
            end_time: Some(timestamp(T0 + 7 * DAY)),
            weeks: 2,
        })
        .await
        .unwrap()
        .into_inner()
        .themes;
    assert_eq!(figures[0].volume, i64::from(second.size) + 1);
    // A later discovery finds both again: their ids and settlements stay.
    let later = app.discover("d-2").await.unwrap();
    assert!(later.run.unwrap().created.is_empty());
    let listed = c.list_themes(pb::ListThemesRequest { include_settled: true }).await.unwrap().into_inner().themes;
    let by_id: BTreeMap<&str, &pb::Theme> = listed.iter().map(|t| (t.theme_id.as_str(), t)).collect();
    assert_eq!(by_id[first.theme_id.as_str()].status(), pb::ThemeStatus::Accepted);
    assert_eq!(by_id[second.theme_id.as_str()].status(), pb::ThemeStatus::Merged);
    assert_eq!(by_id["new_theme"].kind(), pb::ThemeKind::Taxonomy);
    // Active themes only, by default.
    let active = c.list_themes(pb::ListThemesRequest::default()).await.unwrap().into_inner().themes;
    assert!(active.iter().all(|t| t.status() == pb::ThemeStatus::Active));
    app.stop().await;
}

async fn too_few_texts_are_refused(db: Db) {
    let app = spawn_app(db).await;
    app.deliver(vec![signal("s-1", "a", "unclassified", "colis perdu", T0)]).await.unwrap();
    let e = app.discover("d-1").await.unwrap_err();
    assert_status(&e, Code::FailedPrecondition, "TOO_FEW_TEXTS", None);
    let e = app
        .client
        .clone()
        .discover_themes(pb::DiscoverThemesRequest {
            request_id: "d-2".into(),
            k_min: 9,
            k_max: 3,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_status(&e, Code::InvalidArgument, "INVALID_ARGUMENT", Some("k_max"));
    app.stop().await;
}

async fn theme_figures_by_hand(db: Db) {
    let app = spawn_app(db).await;
    let end = T0 + 35 * DAY;
    // Five weeks of "delivery": 10, 12, 8, 10, then 20 (a spike: the threshold is 10 + 3 × √10 = 19.49).
    let mut events = Vec::new();
    for (week, n) in [10, 12, 8, 10, 20].into_iter().enumerate() {
        for i in 0..n {
            let at = T0 + week as i64 * 7 * DAY + i * 3_600_000;
            let tier = if week == 4 && i < 5 { "vip" } else { "gold" };
            events.push(signal_with(
                &format!("w{week}-{i}"),
                &format!("c{week}-{i}"),
                "delivery",
                "late",
                at,
                "high",
                tier,
            ));
        }
    }
    // NPS: two raisers answer 2 and 4; two others 10 and 9.
    events.push(answer("a1", "c4-0", 2, end - DAY));
    events.push(answer("a2", "c4-1", 4, end - DAY));
    events.push(answer("a3", "x-1", 10, end - DAY));
    events.push(answer("a4", "x-2", 9, end - DAY));
    app.clock.advance_days(35);
    app.deliver(events).await.unwrap();
    let r = app
        .client
        .clone()
        .get_theme_analytics(pb::GetThemeAnalyticsRequest {
            theme_ids: vec![],
            end_time: Some(timestamp(end)),
            weeks: 5,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.themes.len(), 1);
    let f = &r.themes[0];
    assert_eq!(
        (f.theme_id.as_str(), f.weekly_volume.clone(), f.volume, f.customers),
        ("delivery", vec![10, 12, 8, 10, 20], 60, 60)
    );
    assert!(f.spike && (f.spike_threshold - 19.486_833).abs() < 1e-5, "{f:?}");
    assert_eq!(f.week_over_week, 100.0);
    assert_eq!(f.mean_severity, 2.0);
    assert!((f.vip_share - 5.0 / 60.0).abs() < 1e-12);
    let (raisers, others) = (f.nps_raisers.unwrap(), f.nps_others.unwrap());
    assert_eq!((raisers.score, others.score, raisers.responses), (-100.0, 100.0, 2));
    assert_eq!(f.nps_gap.unwrap().value, -200.0);
    // No spend known yet (no segmentation): nothing at risk counted.
    assert_eq!((f.customers_valued, f.revenue_at_risk), (0, 0.0));
    app.stop().await;
}
