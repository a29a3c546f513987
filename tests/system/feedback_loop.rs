//! Feedback → segmentation: answers delivered through feedback's outbox fill NPS segments; a redelivered answer
//! counts once; feedback's port lists what it serves.

use rapport_kit::{auth::Role, clock::ManualClock, db::testing::fresh_database};
use rapport_proto::{
    common::v1::Channel,
    events::v1::{DeliverEventsRequest, event_sink_service_client::EventSinkServiceClient},
    feedback::v1::{self as fpb, feedback_service_client::FeedbackServiceClient},
    segmentation::v1::{self as spb, condition::Node, segmentation_service_client::SegmentationServiceClient},
};

use crate::support::{Db, T0, answer_survey, any_port, channel, eventually, feedback, segmentation};

rapport_kit::on_both!(answers_fill_nps_segments_once);

async fn answers_fill_nps_segments_once(db: Db) {
    let clock = ManualClock::new(T0);
    let (seg_db, fb_db) = (fresh_database(db).await.unwrap(), fresh_database(db).await.unwrap());
    let s = segmentation(any_port(), seg_db.url(), any_port(), &clock).await;
    let f = feedback(any_port(), fb_db.url(), &[("segmentation", format!("http://{}", s.addr))], &clock, |_| {}).await;
    let mut sc = SegmentationServiceClient::new(channel(s.addr, Role::Marketing));
    let detractors = spb::Condition { node: Some(Node::NpsClass(spb::ValuesIn { values: vec!["detractor".into()] })) };
    sc.create_segment(spb::CreateSegmentRequest {
        request_id: "seg".into(),
        segment: Some(spb::Segment {
            segment_id: "unhappy".into(),
            display_name: "unhappy".into(),
            condition: Some(detractors),
            size: 0,
            create_time: None,
        }),
    })
    .await
    .unwrap();

    for (customer, score) in [("c-1", 3), ("c-2", 10), ("c-3", 6)] {
        answer_survey(f.addr, customer, score, "").await;
    }
    let mut fc = FeedbackServiceClient::new(channel(f.addr, Role::Agent));
    let members = || {
        let mut sc = sc.clone();
        async move {
            let r = sc
                .list_segment_members(spb::ListSegmentMembersRequest {
                    segment_id: "unhappy".into(),
                    page_size: 100,
                    page_token: String::new(),
                })
                .await
                .unwrap()
                .into_inner();
            let mut ids = r.customer_ids;
            ids.sort();
            ids
        }
    };
    eventually(30, "detractors in the segment", || async { members().await == ["c-1", "c-3"] }).await;
    let features = |id: &str| {
        let mut sc = sc.clone();
        let id = id.to_string();
        async move {
            sc.get_customer_features(spb::GetCustomerFeaturesRequest { customer_id: id }).await.unwrap().into_inner()
        }
    };
    assert_eq!(features("c-2").await.features.unwrap().nps_class, "promoter");

    // The answer of c-1 delivered three more times (a relay retrying after lost acknowledgements): applied once.
    let answered = {
        use prost::Message;
        use rapport_outbox::entities::outbox_event;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        let rows = outbox_event::Entity::find()
            .filter(outbox_event::Column::Destination.eq("segmentation"))
            .order_by_asc(outbox_event::Column::Id)
            .all(&f.db)
            .await
            .unwrap();
        let events: Vec<rapport_proto::events::v1::Event> =
            rows.iter().map(|r| rapport_proto::events::v1::Event::decode(r.payload.as_slice()).unwrap()).collect();
        events.into_iter().find(|e| e.customer_id == "c-1").unwrap()
    };
    let mut sink = EventSinkServiceClient::new(channel(s.addr, Role::Feedback));
    for _ in 0..3 {
        let r =
            sink.deliver_events(DeliverEventsRequest { events: vec![answered.clone()] }).await.unwrap().into_inner();
        assert_eq!((r.applied, r.duplicates), (0, 1));
    }
    assert_eq!(members().await, ["c-1", "c-3"]);

    // Detractors with a complaint in the last 30 days: cases reach segmentation as complaints.
    let complaining = spb::Condition {
        node: Some(Node::All(spb::Conditions {
            conditions: vec![
                spb::Condition { node: Some(Node::NpsClass(spb::ValuesIn { values: vec!["detractor".into()] })) },
                spb::Condition {
                    node: Some(Node::EventCount(spb::EventCount {
                        kind: spb::EventKind::Complaint.into(),
                        times: 1,
                        days: 30,
                    })),
                },
            ],
        })),
    };
    sc.create_segment(spb::CreateSegmentRequest {
        request_id: "seg-2".into(),
        segment: Some(spb::Segment {
            segment_id: "unhappy-complaining".into(),
            display_name: "detractors with a complaint in 30 days".into(),
            condition: Some(complaining),
            size: 0,
            create_time: None,
        }),
    })
    .await
    .unwrap();
    for customer in ["c-1", "c-2"] {
        fc.open_case(fpb::OpenCaseRequest {
            request_id: format!("case-{customer}"),
            kind: fpb::CaseKind::Complaint.into(),
            customer_id: customer.into(),
            channel: Channel::Email.into(),
            severity: fpb::Severity::High.into(),
            order_id: String::new(),
            text: "my parcel never arrived".into(),
            theme: String::new(),
        })
        .await
        .unwrap();
    }
    let complaining_members = || {
        let mut sc = sc.clone();
        async move {
            let r = sc
                .list_segment_members(spb::ListSegmentMembersRequest {
                    segment_id: "unhappy-complaining".into(),
                    page_size: 100,
                    page_token: String::new(),
                })
                .await
                .unwrap()
                .into_inner();
            r.customer_ids
        }
    };
    eventually(30, "the complaining detractor in the segment", || async { complaining_members().await == ["c-1"] })
        .await;
    f.stop().await;
    s.stop().await;
}
