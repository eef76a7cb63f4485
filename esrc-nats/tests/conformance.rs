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
