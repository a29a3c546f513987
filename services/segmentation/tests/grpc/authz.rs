//! The role × RPC matrix covers every RPC of segmentation and of its event sink; roles are enforced.
use rapport_kit::auth::Role;

#[test]
fn matrix_covers_every_rpc_and_names_no_other() {
    let policy = rapport_segmentation::app::policy().unwrap();
    for service in [rapport_segmentation::app::SERVICE_NAME, rapport_segmentation::app::SINK_NAME] {
        let (missing, unknown) = policy.coverage(rapport_proto::FILE_DESCRIPTOR_SET, service).unwrap();
        assert!(missing.is_empty(), "{service}: RPCs missing from the matrix: {missing:?}");
        assert!(unknown.is_empty(), "{service}: the matrix names RPCs that do not exist: {unknown:?}");
    }
    // people never deliver outbox events; readers never change segments; marketing may not ingest
    let p = |m: &str| format!("/{}/{m}", rapport_segmentation::app::SERVICE_NAME);
    assert!(!policy.allows(&format!("/{}/DeliverEvents", rapport_segmentation::app::SINK_NAME), Role::Sre));
    assert!(policy.allows(&format!("/{}/DeliverEvents", rapport_segmentation::app::SINK_NAME), Role::Loyalty));
    assert!(!policy.allows(&p("CreateSegment"), Role::Reader));
    assert!(!policy.allows(&p("IngestEvents"), Role::Marketing));
    assert!(policy.allows(&p("TriggerCampaign"), Role::Marketing));
}
