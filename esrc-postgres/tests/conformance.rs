//! The PostgreSQL store against the whole shared suite, one schema per test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use esrc_conformance::{BoxFuture, PendingAppend, StoreFactory};
use esrc_core::{Appended, Error, Expected, NewEvent};
use esrc_postgres::PgStore;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

struct Pg {
    /// Hands out the schemas, and drops them in `cleanup`.
    postgres: common::Postgres,
}

/// An append written in a transaction that is still open.
struct Open {
    transaction: Transaction<'static, Postgres>,
    appended: Appended,
}

impl PendingAppend for Open {
    fn commit(self: Box<Self>) -> BoxFuture<Result<Appended, Error>> {
        Box::pin(async move {
            let appended = self.appended;
            self.transaction
                .commit()
                .await
                .map_err(|e| Error::backend("postgres", true, e))?;
            Ok(appended)
        })
    }

    fn rollback(self: Box<Self>) -> BoxFuture<Result<(), Error>> {
        Box::pin(async move {
            self.transaction
                .rollback()
                .await
                .map_err(|e| Error::backend("postgres", true, e))
        })
    }
}

impl StoreFactory for Pg {
    type Store = PgStore;

    async fn store(&self) -> PgStore {
        self.postgres.store().await
    }

    async fn cleanup(&self) {
        self.postgres.drop_schemas().await;
    }

    async fn remove_namespace(&self, store: &PgStore) -> Result<(), Error> {
        let drop = format!("DROP SCHEMA \"{}\" CASCADE", store.schema());
        sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(store.pool())
            .await
            .map(|_| ())
            .map_err(|e| Error::backend("postgres", false, e))
    }

    async fn begin_append(
        &self,
        store: &PgStore,
        category: &str,
        id: Uuid,
        events: Vec<NewEvent>,
    ) -> Result<Box<dyn PendingAppend>, Error> {
        let mut transaction = store
            .pool()
            .begin()
            .await
            .map_err(|e| Error::backend("postgres", true, e))?;
        let appended = store
            .publish_in(&mut transaction, category, id, Expected::Any, events)
            .await?;
        Ok(Box::new(Open {
            transaction,
            appended,
        }))
    }
}

esrc_conformance::conformance_tests!(
    #[esrc_conformance::requires(postgres)]
    factory = async { common::postgres().await.map(|postgres| Pg { postgres }) }
);

/// The whole suite again, through `AnyStore` (`Arc<dyn DynStore>`).
mod dynamic {
    esrc_conformance::conformance_tests!(
        #[esrc_conformance::requires(postgres)]
        factory = async {
            super::common::postgres()
                .await
                .map(|postgres| esrc_conformance::Dynamic(super::Pg { postgres }))
        }
    );
}

/// A projector's lag metrics move on this store (`esrc_core::metrics`).
#[esrc_conformance::requires(postgres)]
#[tokio::test]
async fn projector_lag_is_recorded() {
    use esrc_conformance::StoreFactory;
    let Some(factory) = common::postgres().await.map(|postgres| Pg { postgres }) else {
        return;
    };
    esrc_conformance::metrics::projector_lag_is_recorded(&factory).await;
    factory.cleanup().await;
}

/// Appends and reads run in spans with OpenTelemetry's fields (`esrc_core::trace`).
#[esrc_conformance::requires(postgres)]
#[tokio::test]
async fn store_spans_follow_the_conventions() {
    use esrc_conformance::StoreFactory;
    let Some(factory) = common::postgres().await.map(|postgres| Pg { postgres }) else {
        return;
    };
    esrc_conformance::spans::store_spans_follow_the_conventions(
        &factory,
        esrc_core::backend::System::Database("postgresql"),
    )
    .await;
    factory.cleanup().await;
}
