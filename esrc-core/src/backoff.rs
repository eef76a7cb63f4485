//! The one way esrc spaces out the tries of a failing call.

use std::time::Duration;

/// Pauses between the tries of a failing call: doubling from a first delay up to a
/// longest one, for a number of tries or for as long as it takes, and optionally
/// jittered. Projectors, subscriptions, reads, appends that lost a race and the
/// command helpers all wait with it.
///
/// ```
/// use std::time::Duration;
/// use esrc_core::backend::Backoff;
///
/// let ms = Duration::from_millis;
/// let mut pauses = Backoff::new(ms(25), ms(80)).attempts(4);
/// assert_eq!(pauses.attempt(), 1);
/// let delays: Vec<_> = std::iter::from_fn(|| pauses.next_delay()).collect();
/// assert_eq!(delays, [ms(25), ms(50), ms(80)], "three pauses between four tries");
/// assert_eq!(pauses.attempt(), 4);
/// pauses.reset();
/// assert_eq!(pauses.next_delay(), Some(ms(25)));
///
/// // Jittered: a random pause no longer than the plain one.
/// let mut spread = Backoff::new(ms(10), ms(100)).jitter();
/// assert!(spread.pause() <= ms(10));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
    attempt: u32,
    attempts: u32,
    jitter: bool,
}

impl Backoff {
    /// Pauses from `first`, doubling, never longer than `max`, for as long as the call
    /// fails.
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            next: first,
            attempt: 1,
            attempts: u32::MAX,
            jitter: false,
        }
    }

    /// Gives up after this many tries in all (so one pause fewer): [`next_delay`]
    /// then says `None`.
    ///
    /// [`next_delay`]: Backoff::next_delay
    #[must_use]
    pub const fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    /// Makes each pause a random length up to the plain one ("full jitter"), so that
    /// callers that failed together do not try again together.
    #[must_use]
    pub const fn jitter(mut self) -> Self {
        self.jitter = true;
        self
    }

    /// The number of the try that just failed (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// How long to wait before the next try, or `None` when the tries are used up.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.attempt >= self.attempts {
            return None;
        }
        self.attempt += 1;
        Some(self.step())
    }

    /// How long to wait before the next try, for a caller that never gives up: past the
    /// last try, the longest pause.
    pub fn pause(&mut self) -> Duration {
        self.next_delay().unwrap_or_else(|| self.jittered(self.max))
    }

    /// Starts again from the first pause and the first try, after a call succeeded.
    pub fn reset(&mut self) {
        self.next = self.first;
        self.attempt = 1;
    }

    fn step(&mut self) -> Duration {
        let delay = self.next.min(self.max);
        self.next = delay.saturating_mul(2).min(self.max);
        self.jittered(delay)
    }

    fn jittered(&self, delay: Duration) -> Duration {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        if !self.jitter || micros == 0 {
            return delay;
        }
        // A v4 uuid is 122 random bits: enough randomness without a dependency.
        let random = uuid::Uuid::new_v4().as_u64_pair().0;
        Duration::from_micros(random % (micros + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_longest_and_gives_up_after_the_tries() {
        let ms = Duration::from_millis;
        let mut forever = Backoff::new(ms(1), ms(5));
        let pauses: Vec<_> = (0..5).map(|_| forever.pause()).collect();
        assert_eq!(pauses, [ms(1), ms(2), ms(4), ms(5), ms(5)]);
        assert_eq!(forever.attempt(), 6);

        let mut once = Backoff::new(ms(1), ms(5)).attempts(1);
        assert_eq!(once.next_delay(), None, "one try in all: no pause");
        assert_eq!(
            once.pause(),
            ms(5),
            "a caller that never gives up waits the longest"
        );
    }

    #[test]
    fn jitter_stays_within_the_plain_pause_and_varies() {
        let ms = Duration::from_millis;
        let mut plain = Backoff::new(ms(4), ms(64));
        let mut spread = Backoff::new(ms(4), ms(64)).jitter();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..6 {
            let (plain, spread) = (plain.pause(), spread.pause());
            assert!(spread <= plain, "{spread:?} > {plain:?}");
            seen.insert(spread);
        }
        assert!(seen.len() > 1, "jittered pauses differ: {seen:?}");
    }
}
