//! The read-decide-append loop across streams: [`Decision`] states folded from a query,
//! and [`DecideExt::decide`], the cross-stream counterpart of `try_write`.

use std::future::Future;
use std::pin::pin;

use futures::{Stream, StreamExt};

use crate::Write;
use crate::backoff::Backoff;
use crate::metrics::Retried;
use crate::{Appended, CommandError, Condition, Decide, Envelope, Error, Position, Query, Retry};

/// What a decision needs to know, folded from the events of its [`Decision::query`]:
/// a small projection made for one rule (a course's capacity, a student's course count,
/// whether a username is taken).
///
/// Several are combined as a tuple — `(CourseCapacity, StudentLimit)` is a decision
/// whose query is the union of both, each folding only the events its own query
/// matches — the way disintegrate's state queries and Axon's decision models compose.
pub trait Decision: Send + Sync {
    /// The events this state is folded from.
    fn query(&self) -> Query;

    /// Folds in one event its query matched, in position order. An error (usually a
    /// payload that does not decode) ends the decision.
    fn apply(&mut self, event: &Envelope) -> Result<(), Error>;
}

macro_rules! tuple_decision {
    ($($name:ident $index:tt),+) => {
        impl<$($name: Decision),+> Decision for ($($name,)+) {
            fn query(&self) -> Query {
                let mut query = Query::new();
                $(query = query.union(self.$index.query());)+
                query
            }

            fn apply(&mut self, event: &Envelope) -> Result<(), Error> {
                $(if self.$index.query().matches(event) {
                    self.$index.apply(event)?;
                })+
                Ok(())
            }
        }
    };
}

tuple_decision!(A 0, B 1);
tuple_decision!(A 0, B 1, C 2);
tuple_decision!(A 0, B 1, C 2, D 3);

/// Decisions across streams, for every [`Decide`] store.
pub trait DecideExt: Decide {
    /// The events matching `query` after `after`, and the position up to which that
    /// answer is complete (the store's horizon when the read began): the position a
    /// decision made from these events is made at.
    fn read_query<'a>(
        &'a self,
        query: &Query,
        after: Position,
    ) -> impl Future<
        Output = Result<
            (
                Position,
                impl Stream<Item = Result<Envelope, Error>> + Send + use<'a, Self>,
            ),
            Error,
        >,
    > + Send {
        let query = query.clone();
        async move {
            let until = self.horizon().await?;
            Ok((until, self.query(&query, after, until)))
        }
    }

    /// Folds `state` from the store: every event its query matches, up to the horizon.
    /// Returns the state and the position it is at.
    fn fold<D: Decision>(
        &self,
        mut state: D,
    ) -> impl Future<Output = Result<(D, Position), Error>> + Send {
        async move {
            let query = state.query();
            let (until, events) = self.read_query(&query, Position::ZERO).await?;
            let mut events = pin!(events);
            while let Some(event) = events.next().await {
                state.apply(&event?)?;
            }
            Ok((state, until))
        }
    }

    /// The read-decide-append loop: folds a fresh state (`initial()`) from the store,
    /// lets `decide` turn it into writes (none: nothing to do), and appends them on the
    /// condition that no event of the state's query was stored since it was read. On a
    /// failed condition or a stream conflict it reads and decides again, up to
    /// `retry.attempts` tries in all; a transient store failure sends the same events
    /// again (their ids make that safe), after `retry`'s pauses.
    ///
    /// `decide`'s own error is [`CommandError::Rejected`]; nothing is stored then.
    fn decide<D, E, I, F>(
        &self,
        initial: I,
        decide: F,
        retry: &Retry,
    ) -> impl Future<Output = Result<Vec<Appended>, CommandError<E>>> + Send
    where
        D: Decision,
        I: Fn() -> D + Send + Sync,
        F: Fn(&D) -> Result<Vec<Write>, E> + Send + Sync,
    {
        async move {
            let mut attempt = 1;
            let mut pauses = Backoff::new(retry.first_pause, retry.max_pause);
            'decision: loop {
                let (state, until) = self.fold(initial()).await?;
                let writes = decide(&state).map_err(CommandError::Rejected)?;
                if writes.is_empty() {
                    return Ok(Vec::new());
                }
                let condition = Condition::new(state.query()).after(until);
                loop {
                    match self
                        .append_if(writes.clone(), Some(condition.clone()))
                        .await
                    {
                        Ok(appended) => return Ok(appended),
                        Err(error) if error.is_conflict() && attempt < retry.attempts => {
                            tracing::debug!(error = %crate::Chain(&error), attempt, "decision is stale, deciding again");
                            attempt += 1;
                            crate::metrics::retried("decide", Retried::Conflict);
                            continue 'decision;
                        }
                        Err(error) if error.is_retryable() && attempt < retry.attempts => {
                            let pause = pauses.pause();
                            tracing::debug!(error = %crate::Chain(&error), attempt, ?pause, "store unavailable, sending the same events again");
                            attempt += 1;
                            crate::metrics::retried("decide", Retried::Unavailable);
                            tokio::time::sleep(pause).await;
                        }
                        Err(error) => return Err(error.into()),
                    }
                }
            }
        }
    }
}

impl<S: Decide + ?Sized> DecideExt for S {}
