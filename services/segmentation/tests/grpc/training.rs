//! Training through the API on generated customers: the planted personas come back as clusters with readable
//! labels, customers are explained, and a refit keeps the cluster ids.
use std::collections::HashMap;

use rapport_proto::segmentation::v1 as pb;
use rapport_segmentation::domain::clustering::adjusted_rand_index;

use crate::support::{Client, Db, T0, eventually, on_both, spawn_app};

on_both!(personas_come_back_as_clusters);

async fn train(c: &Client, rid: &str, seed: u64) -> i64 {
    let mut c2 = c.clone();
    let job = c2
        .train_model(pb::TrainModelRequest {
            request_id: rid.into(),
            features: vec![],
            k: 0,
            k_min: 2,
            k_max: 6,
            sample_size: 0,
            seed,
            algorithm: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .job_id;
    eventually(120, "training", || {
        let mut c = c.clone();
        let job = job.clone();
        async move {
            let j = c.get_training_job(pb::GetTrainingJobRequest { job_id: job }).await.unwrap().into_inner();
            assert_ne!(j.state, i32::from(pb::JobState::Failed), "{}", j.error);
            j.state == i32::from(pb::JobState::Succeeded)
        }
    })
    .await;
    c2.get_training_job(pb::GetTrainingJobRequest { job_id: job }).await.unwrap().into_inner().model_version
}

async fn clusters_of(c: &Client, customers: &[rapport_synth::Customer]) -> Vec<i32> {
    let mut out = Vec::new();
    for cu in customers {
        let r = c
            .clone()
            .list_customer_segments(pb::ListCustomerSegmentsRequest { customer_id: cu.customer_id.clone() })
            .await
            .unwrap()
            .into_inner();
        // An assigned customer's cluster carries the active model's label, an unassigned one none.
        assert_eq!(r.cluster_label.is_empty(), r.cluster_id < 0, "{r:?}");
        out.push(r.cluster_id);
    }
    out
}

async fn personas_come_back_as_clusters(db: Db) {
    let app = spawn_app(db).await;
    let customers: Vec<_> = rapport_synth::customers(21, 600, T0).collect();
    app.consent(&customers).await;
    let stream: Vec<pb::IngestEventsRequest> = customers
        .chunks(10)
        .map(|cs| pb::IngestEventsRequest { events: cs.iter().flat_map(rapport_synth::behaviour_events).collect() })
        .collect();
    app.client.clone().ingest_events(tokio_stream::iter(stream)).await.unwrap();

    let v1 = train(&app.client, "train-1", 1).await;
    let model =
        app.client.clone().get_model(pb::GetModelRequest { version: 0 }).await.unwrap().into_inner().model.unwrap();
    assert_eq!((model.version, model.k), (v1, 4));
    assert!(model.silhouette > 0.3 && model.inertia > 0.0);
    let ids = clusters_of(&app.client, &customers).await;
    let truth: Vec<usize> = customers.iter().map(|c| c.persona).collect();
    let labels: Vec<usize> = ids.iter().map(|i| usize::try_from(*i).unwrap()).collect();
    let ari = adjusted_rand_index(&labels, &truth);
    assert!(ari >= 0.9, "adjusted rand index {ari}");
    let by_id: HashMap<i32, &pb::ClusterProfile> = model.clusters.iter().map(|c| (c.cluster_id, c)).collect();
    let vip = customers.iter().position(|c| c.persona == 0).unwrap();
    let profile = by_id[&ids[vip]];
    for t in ["high value", "frequent", "mobile-first", "promoters"] {
        assert!(profile.label.contains(t), "{}", profile.label);
    }
    assert!(profile.centroid["monetary_365d"] > 1000.0 && profile.z_scores["monetary_365d"] > 1.0);

    // a customer's cluster, explained
    let e = app
        .client
        .clone()
        .explain_membership(pb::ExplainMembershipRequest {
            customer_id: customers[vip].customer_id.clone(),
            segment_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(e.member);
    assert_eq!((e.cluster_id, e.cluster_label.as_str()), (ids[vip], profile.label.as_str()));
    assert_eq!(e.features.len(), 8);
    assert!(e.distance >= 0.0);

    // a refit (another seed) keeps every persona's cluster id
    let v2 = train(&app.client, "train-2", 2).await;
    assert!(v2 > v1);
    let ids2 = clusters_of(&app.client, &customers).await;
    let same = ids.iter().zip(&ids2).filter(|(a, b)| a == b).count();
    assert!(same as f64 >= 0.97 * ids.len() as f64, "{same} of {} kept their cluster id", ids.len());
    // new customers are assigned online
    let newcomer = rapport_synth::customer(99, 0, T0);
    app.consent(std::slice::from_ref(&newcomer)).await;
    app.ingest(rapport_synth::behaviour_events(&newcomer)).await.unwrap();
    let c = clusters_of(&app.client, std::slice::from_ref(&newcomer)).await;
    assert!(c[0] >= 0);
    // without consent to profiling a customer has no cluster
    app.client
        .clone()
        .upsert_customer(pb::UpsertCustomerRequest {
            request_id: "no-profiling".into(),
            customer_id: newcomer.customer_id.clone(),
            attributes: Default::default(),
            consent_marketing: true,
            consent_profiling: false,
        })
        .await
        .unwrap();
    assert_eq!(clusters_of(&app.client, std::slice::from_ref(&newcomer)).await, vec![-1]);
    app.stop().await;
}
