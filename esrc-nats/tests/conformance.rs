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

/// Appends and reads run in spans with OpenTelemetry's fields (`esrc_core::trace`).
#[esrc_conformance::requires(nats)]
#[tokio::test]
async fn store_spans_follow_the_conventions() {
    use esrc_conformance::StoreFactory;
    let Some(factory) = common::nats().await.map(common::Stores::new) else {
        return;
    };
    esrc_conformance::spans::store_spans_follow_the_conventions(
        &factory,
        esrc_core::backend::System::Messaging("nats"),
    )
    .await;
    factory.cleanup().await;
}
