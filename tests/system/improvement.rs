//! Feedback and improvement together: complaints opened and detractors' comments answered in feedback reach
//! improvement as theme signals through feedback's outbox, become themes (feedback's, and discovered ones) and ranked
//! improvements; an improvement shipped
//! reaches feedback, whose open cases of its themes carry the note; a discovered theme accepted joins feedback's
//! taxonomy; with improvement stopped while complaints keep coming, every signal arrives exactly once after it
//! restarts.
use std::collections::BTreeSet;

use rapport_kit::{auth::Role, clock::ManualClock, db::testing::fresh_database};
use rapport_proto::{
    common::v1::Channel,
    feedback::v1::{self as fpb, feedback_service_client::FeedbackServiceClient},
    improvement::v1::{self as ipb, improvement_service_client::ImprovementServiceClient},
};
use sea_orm::{EntityTrait, PaginatorTrait};

use crate::support::{Db, T0, answer_survey, any_port, channel, eventually, feedback, free_port, improvement};

/// The complaint corpus written for improvement's discovery test: (theme, text).
fn corpus() -> Vec<(String, String)> {
    rapport_improvement::domain::discovery::labelled(include_str!(
        "../../services/improvement/tests/data/discovery.tsv"
    ))
}

/// Opens a complaint of `customer` in feedback; the case id and its theme.
async fn complain(
    fc: &mut FeedbackServiceClient<rapport_kit::client::OutgoingChannel>,
    id: &str,
    customer: &str,
    text: &str,
) -> (String, String) {
    let case = fc
        .open_case(fpb::OpenCaseRequest {
            request_id: format!("open-{id}"),
            kind: fpb::CaseKind::Complaint.into(),
            customer_id: customer.into(),
            channel: Channel::Email.into(),
            severity: fpb::Severity::High.into(),
            order_id: String::new(),
            text: text.into(),
            theme: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    (case.case_id, case.theme.map(|t| t.theme).unwrap_or_default())
}

async fn signals(db: &sea_orm::DatabaseConnection) -> u64 {
    rapport_improvement::entities::signals::Entity::find().count(db).await.unwrap()
}

rapport_kit::on_both!(
    complaints_become_ranked_improvements_and_shipped_fixes_reach_feedback,
    every_signal_arrives_once_after_improvement_restarts
);

async fn complaints_become_ranked_improvements_and_shipped_fixes_reach_feedback(db: Db) {
    let clock = ManualClock::new(T0);
    let (fb_db, im_db) = (fresh_database(db).await.unwrap(), fresh_database(db).await.unwrap());
    let im_addr = free_port();
    let f = feedback(any_port(), fb_db.url(), &[("improvement", format!("http://{im_addr}"))], &clock, |_| {}).await;
    let i = improvement(im_addr, im_db.url(), Some(format!("http://{}", f.addr)), &clock).await;
    let mut fc = FeedbackServiceClient::new(channel(f.addr, Role::Agent));
    let mut ic = ImprovementServiceClient::new(channel(i.addr, Role::Marketing));
    // A quarter of the corpus, every theme: feedback classifies what its taxonomy knows, the rest is unclassified.
    let texts: Vec<(String, String)> = corpus().into_iter().step_by(4).collect();
    let mut cases = Vec::new();
    for (n, (_, text)) in texts.iter().enumerate() {
        cases.push(complain(&mut fc, &format!("c{n}"), &format!("cust-{n}"), text).await);
    }
    let unclassified = cases.iter().filter(|c| c.1 == "unclassified").count();
    // Detractors' comments on another quarter of the corpus: clustered by discovery whatever feedback made of them.
    let comments: Vec<(String, String)> = corpus().into_iter().skip(1).step_by(4).collect();
    for (n, (_, text)) in comments.iter().enumerate() {
        answer_survey(f.addr, &format!("detractor-{n}"), 3, text).await;
    }
    println!(
        "{} complaints ({unclassified} unclassified by feedback), {} detractors' comments",
        cases.len(),
        comments.len()
    );
    let expected = (cases.len() + comments.len()) as u64;
    eventually(60, "every theme signal in improvement", || async { signals(&i.db).await == expected }).await;
    // Feedback's themes are improvement's, measured.
    let figures = ic
        .get_theme_analytics(ipb::GetThemeAnalyticsRequest {
            theme_ids: vec![],
            end_time: Some(rapport_kit::clock::timestamp(T0 + 1)),
            weeks: 2,
        })
        .await
        .unwrap()
        .into_inner()
        .themes;
    let taxonomy: BTreeSet<&str> = cases.iter().map(|c| c.1.as_str()).filter(|t| *t != "unclassified").collect();
    assert!(!taxonomy.is_empty());
    // Every complaint counts under its theme (and so does each comment, under the theme feedback gave it, until
    // discovery places it).
    for t in &taxonomy {
        let f = figures.iter().find(|f| f.theme_id == *t).unwrap_or_else(|| panic!("no figures of {t}"));
        assert!(f.volume as usize >= cases.iter().filter(|c| c.1 == *t).count(), "{t}");
    }
    assert_eq!(figures.iter().map(|f| f.volume).sum::<i64>() as u64, expected);
    // The unclassified texts and the comments are discovered.
    let found = ic
        .discover_themes(ipb::DiscoverThemesRequest {
            request_id: "d-1".into(),
            start_time: Some(rapport_kit::clock::timestamp(T0 - 86_400_000)),
            end_time: Some(rapport_kit::clock::timestamp(T0 + 1)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.run.unwrap().texts as usize, unclassified + comments.len());
    assert!(found.themes.len() >= 2, "{:?}", found.themes);
    // Two improvements, ranked by reach: the busiest theme (now that discovery placed the comments) first.
    let figures = ic
        .get_theme_analytics(ipb::GetThemeAnalyticsRequest { theme_ids: vec![], end_time: None, weeks: 2 })
        .await
        .unwrap()
        .into_inner()
        .themes;
    let mine: Vec<&ipb::ThemeAnalytics> = figures.iter().filter(|f| taxonomy.contains(f.theme_id.as_str())).collect();
    let (busiest, quietest) = (mine[0], mine[mine.len() - 1]);
    assert!(busiest.customers > quietest.customers, "{busiest:?} {quietest:?}");
    let create = |title: &str, theme: &str| ipb::CreateImprovementRequest {
        request_id: format!("imp-{}", title.replace(' ', "-")),
        title: title.into(),
        description: String::new(),
        theme_ids: vec![theme.into()],
        confidence: 0.8,
        effort_weeks: 2.0,
    };
    let fix = ic
        .create_improvement(create("fix the busiest", &busiest.theme_id))
        .await
        .unwrap()
        .into_inner()
        .improvement
        .unwrap();
    ic.create_improvement(create("fix the quietest", &quietest.theme_id)).await.unwrap();
    let ranked = ic.list_improvements(ipb::ListImprovementsRequest::default()).await.unwrap().into_inner().improvements;
    assert_eq!(ranked[0].title, "fix the busiest");
    assert_eq!(ranked[0].score.unwrap().reach, busiest.customers);
    // Shipped: feedback notes it on the open cases of that theme.
    ic.change_improvement_status(ipb::ChangeImprovementStatusRequest {
        request_id: "ship".into(),
        improvement_id: fix.improvement_id.clone(),
        status: ipb::ImprovementStatus::Shipped.into(),
        note: "fixed at the source".into(),
        resurvey: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let noted: Vec<&String> = cases.iter().filter(|c| c.1 == busiest.theme_id).map(|c| &c.0).collect();
    assert!(!noted.is_empty());
    let has_note = |case_id: String| {
        let mut fc = fc.clone();
        async move {
            let case = fc.get_case(fpb::GetCaseRequest { case_id }).await.unwrap().into_inner().case.unwrap();
            case.messages.iter().any(|m| {
                m.author == "improvement"
                    && m.text.contains("fix the busiest")
                    && m.text.contains("fixed at the source")
            })
        }
    };
    eventually(60, "the note on the theme's cases", || async {
        for c in &noted {
            if !has_note((*c).clone()).await {
                return false;
            }
        }
        true
    })
    .await;
    // Their customers are asked again, once each (none was surveyed before).
    use rapport_feedback::entities::surveys;
    use sea_orm::{ColumnTrait, QueryFilter};
    let resurveyed =
        surveys::Entity::find().filter(surveys::Column::Touchpoint.eq("improvement-shipped")).all(&f.db).await.unwrap();
    let customers: BTreeSet<&str> = resurveyed.iter().map(|s| s.customer_id.as_str()).collect();
    assert_eq!((resurveyed.len(), customers.len()), (noted.len(), noted.len()));
    // Cases of another theme carry nothing.
    let other = cases.iter().find(|c| c.1 != busiest.theme_id).unwrap();
    assert!(!has_note(other.0.clone()).await);
    // A discovered theme accepted joins feedback's taxonomy.
    let discovered = &found.themes[0];
    ic.accept_theme(ipb::AcceptThemeRequest {
        request_id: "acc".into(),
        theme_id: discovered.theme_id.clone(),
        taxonomy_id: "discovered_one".into(),
        keywords: vec![],
        examples: vec![],
    })
    .await
    .unwrap();
    eventually(60, "the accepted theme in feedback's taxonomy", || async {
        let themes = fc.clone().list_themes(fpb::ListThemesRequest {}).await.unwrap().into_inner();
        themes.themes.iter().any(|t| t.theme_id == "discovered_one" && !t.keywords.is_empty() && !t.examples.is_empty())
            && themes.retrain_needed
    })
    .await;
    i.stop().await;
    f.stop().await;
}

async fn every_signal_arrives_once_after_improvement_restarts(db: Db) {
    let clock = ManualClock::new(T0);
    let (fb_db, im_db) = (fresh_database(db).await.unwrap(), fresh_database(db).await.unwrap());
    let im_addr = free_port();
    let f = feedback(any_port(), fb_db.url(), &[("improvement", format!("http://{im_addr}"))], &clock, |_| {}).await;
    let i = improvement(im_addr, im_db.url(), None, &clock).await;
    let mut fc = FeedbackServiceClient::new(channel(f.addr, Role::Agent));
    let texts: Vec<String> = corpus().into_iter().map(|(_, t)| t).take(60).collect();
    for (n, text) in texts.iter().take(20).enumerate() {
        complain(&mut fc, &format!("a{n}"), &format!("cust-{n}"), text).await;
    }
    eventually(60, "the first signals", || async { signals(&i.db).await == 20 }).await;
    i.stop().await;
    // Complaints keep coming while improvement is down; a retried request is the same complaint.
    for (n, text) in texts.iter().enumerate().skip(20) {
        complain(&mut fc, &format!("a{n}"), &format!("cust-{n}"), text).await;
        complain(&mut fc, &format!("a{n}"), &format!("cust-{n}"), text).await;
    }
    let i = improvement(im_addr, im_db.url(), None, &clock).await;
    // The relay backs off while improvement is down (by the service clock, here a manual one): past its longest wait.
    clock.advance_ms(120_000);
    eventually(60, "every signal after the restart", || async { signals(&i.db).await == 60 }).await;
    // Exactly once each: one signal per case, none twice.
    let rows = rapport_improvement::entities::signals::Entity::find().all(&i.db).await.unwrap();
    let references: BTreeSet<&str> = rows.iter().map(|r| r.reference.as_str()).collect();
    assert_eq!((rows.len(), references.len()), (60, 60));
    i.stop().await;
    f.stop().await;
}
