//! The one clock every part of the server reads the time from: the store
//! (received times, exports, verifications, retention), maintenance, the
//! recorder and the sign-in windows. It travels with the [`Db`] handle (and
//! so with the app state), so a test can run the whole server at an instant
//! of its choosing: the system clock in service, a fixed or shifted one in
//! tests.
//!
//! [`Db`]: super::store::Db

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

/// Microseconds since the Unix epoch, UTC.
pub type Micros = i64;

/// A clock shared by clones: setting or moving one moves them all.
#[derive(Clone, Debug, Default)]
pub struct Clock(Arc<State>);

#[derive(Debug, Default)]
struct State {
    /// Fixed: `value` is the time. Otherwise `value` is an offset added to
    /// the system clock (0 in service).
    fixed: AtomicBool,
    value: AtomicI64,
}

fn system_micros() -> Micros {
    chrono::Utc::now().timestamp_micros()
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock stopped at `at`: it moves only when told ([`Clock::advance`],
    /// [`Clock::set`]).
    pub fn fixed(at: Micros) -> Self {
        let clock = Self::default();
        clock.set(at);
        clock
    }

    /// A clock that reads `at` now and runs on at the system clock's pace.
    pub fn starting_at(at: Micros) -> Self {
        let clock = Self::default();
        clock.0.value.store(at - system_micros(), Ordering::SeqCst);
        clock
    }

    /// The time now.
    pub fn now(&self) -> Micros {
        let value = self.0.value.load(Ordering::SeqCst);
        if self.0.fixed.load(Ordering::SeqCst) {
            value
        } else {
            system_micros().saturating_add(value)
        }
    }

    /// Stops the clock at `at`.
    pub fn set(&self, at: Micros) {
        self.0.value.store(at, Ordering::SeqCst);
        self.0.fixed.store(true, Ordering::SeqCst);
    }

    /// Moves the clock by `micros` (backwards when negative).
    pub fn advance(&self, micros: Micros) {
        self.0.value.fetch_add(micros, Ordering::SeqCst);
    }
}

/// An instant written as RFC 3339 (`2024-02-29T12:00:00Z`, fractions and
/// offsets allowed), in microseconds.
pub fn parse_instant(text: &str) -> Result<Micros, String> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp_micros())
        .map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_moves_only_when_told_and_clones_share_it() {
        let at = parse_instant("2024-12-31T23:59:59.999999Z").unwrap();
        let clock = Clock::fixed(at);
        let other = clock.clone();
        assert_eq!(clock.now(), at);
        other.advance(1);
        assert_eq!(
            clock.now(),
            parse_instant("2025-01-01T00:00:00Z").unwrap(),
            "a clone moves the same clock"
        );
        clock.set(at - 5);
        assert_eq!(other.now(), at - 5);
    }

    #[test]
    fn a_started_clock_runs_from_its_instant() {
        let at = parse_instant("2028-02-29T12:00:00+01:00").unwrap();
        let clock = Clock::starting_at(at);
        let read = clock.now();
        assert!(read >= at && read < at + 60_000_000, "{read} vs {at}");
        assert!(Clock::system().now() > at - 10 * 365 * 86_400_000_000);
    }

    #[test]
    fn instants_are_read_as_rfc_3339() {
        assert_eq!(parse_instant("1970-01-01T00:00:01Z"), Ok(1_000_000));
        assert!(parse_instant("yesterday").unwrap_err().contains("RFC 3339"));
    }
}
