//! The NATS store against the whole shared suite, one stream and prefix per test.

mod common;

esrc_conformance::conformance_tests!(
    #[esrc_conformance::requires(nats)]
    factory = async { common::nats().await.map(common::Stores::new) }
);

/// The whole suite again, through `AnyStore` (`Arc<dyn DynStore>`).
mod dynamic {
    esrc_conformance::conformance_tests!(
        #[esrc_conformance::requires(nats)]
        factory = async {
            super::common::nats()
                .await
                .map(super::common::Stores::new)
                .map(esrc_conformance::Dynamic)
        }
    );
}

/// A projector's lag metrics move on this store (`esrc_core::metrics`).
#[esrc_conformance::requires(nats)]
#[tokio::test]
async fn projector_lag_is_recorded() {
    use esrc_conformance::StoreFactory;
    let Some(factory) = common::nats().await.map(common::Stores::new) else {
        return;
    };
    esrc_conformance::metrics::projector_lag_is_recorded(&factory).await;
    factory.cleanup().await;
}
