//! How a store's stream checks what it was given before it reads: one rule for every
//! stream a store opens.

use std::future::Future;

use futures::future::Either;
use futures::{Stream, StreamExt};

use crate::Error;

/// The stream `open` makes from what the opening checked (validated names, subject
/// filters), or, when the opening failed, a stream that yields its error and ends.
///
/// ```
/// use esrc_core::backend::{opened, validate_name};
/// use esrc_core::Error;
/// use futures::{StreamExt, executor::block_on};
///
/// let read = |category: &str| {
///     opened(validate_name(category).map(|()| category.to_owned()), |category| {
///         futures::stream::iter([Ok::<_, Error>(category)])
///     })
/// };
/// let items: Vec<_> = block_on(read("Tab").collect());
/// assert_eq!(items.len(), 1);
/// let refused: Vec<_> = block_on(read("no.dots").collect());
/// assert!(matches!(refused.as_slice(), [Err(Error::InvalidName { .. })]));
/// ```
pub fn opened<T, I, S>(
    opening: Result<T, Error>,
    open: impl FnOnce(T) -> S,
) -> impl Stream<Item = Result<I, Error>>
where
    S: Stream<Item = Result<I, Error>>,
{
    match opening {
        Ok(checked) => Either::Left(open(checked)),
        Err(error) => Either::Right(futures::stream::once(std::future::ready(Err(error)))),
    }
}

/// [`opened`], with an opening that has to ask the store first (a lookup, a horizon):
/// it runs when the stream is first polled.
pub fn opened_after<T, I, S>(
    opening: impl Future<Output = Result<T, Error>>,
    open: impl FnOnce(T) -> S,
) -> impl Stream<Item = Result<I, Error>>
where
    S: Stream<Item = Result<I, Error>>,
{
    futures::stream::once(async move { opened(opening.await, open) }).flatten()
}
