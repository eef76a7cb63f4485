//! The whole shared suite against a three-node cluster, every stream and bucket with
//! three replicas (`ESRC_NATS_CLUSTER_URL`).

mod common;

esrc_conformance::conformance_tests!(
    #[esrc_conformance::requires(nats_cluster)]
    factory = async { common::cluster().await.map(common::Stores::new) }
);
