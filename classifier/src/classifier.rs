//! The [`Classifier`]: runs every enabled rule over each record and on each tick, with time
//! passed in by the caller, and returns the incident lifecycle transitions. It owns the
//! ordering of a call (timers due by `now`, then the record, then timers again, then debounced
//! updates) and the restore of open incidents after a restart.

use herald_core::{Incident, IncidentChange, IncidentState, Record, Timestamp, Transition};

use crate::ClassifierConfig;
use crate::book::Book;
use crate::duration::signed;
use crate::rules::{self, BUILT_IN, Rule};

/// Turns records into incidents. Pure: no I/O and no wall clock; every call takes `now`.
///
/// Only lifecycle transitions are returned: `opened`, `updated` (a material change, at most
/// once per `update_interval`), `resolved`. Repeats only raise the count of the open incident.
#[derive(Debug)]
pub struct Classifier {
    rules: Vec<Box<dyn Rule>>,
    book: Book,
    /// Restored incidents no enabled rule owns (rule disabled or unknown, or a duplicate of an
    /// incident with the same fingerprint); resolved at the next call.
    orphans: Vec<Incident>,
    /// The latest `now` seen; time never moves backwards.
    clock: Option<Timestamp>,
}

impl Classifier {
    /// A classifier running the rules enabled in `cfg`, with no open incidents.
    pub fn new(cfg: ClassifierConfig) -> Self {
        Self {
            rules: rules::build(&cfg),
            book: Book::new(signed(cfg.update_interval)),
            orphans: Vec::new(),
            clock: None,
        }
    }

    /// A classifier like [`new`](Self::new) whose timers sweep every open incident and all of
    /// each rule's state on every call instead of reading only what is due: the plain
    /// algorithm, slow (rules x open incidents per record), kept as the reference the indexed
    /// timers are tested against. It produces exactly the same transitions.
    #[doc(hidden)]
    pub fn reference(cfg: ClassifierConfig) -> Self {
        Self {
            book: Book::reference(signed(cfg.update_interval)),
            ..Self::new(cfg)
        }
    }

    /// Takes over the incidents that were open before a restart (from the store), so nothing
    /// re-alerts and nothing is forgotten: records supporting them update them instead of
    /// opening new ones, and their timers (quiet periods) continue from their `last_seen`.
    /// Nothing is announced now. Incidents that are not open are ignored; open incidents of a
    /// disabled or unknown rule, and all but the latest occurrence of one fingerprint, are
    /// resolved by the next [`apply`](Self::apply) or [`tick`](Self::tick).
    pub fn restore(&mut self, open: impl IntoIterator<Item = Incident>) {
        for incident in open {
            if incident.state != IncidentState::Open {
                continue;
            }
            let Some(rule) = self.rules.iter_mut().find(|r| r.name() == incident.rule) else {
                let reason = if BUILT_IN.contains(&incident.rule.as_str()) {
                    "rule disabled"
                } else {
                    "unknown rule"
                };
                tracing::warn!(
                    rule = %incident.rule,
                    fingerprint = %incident.fingerprint,
                    reason,
                    "restored incident has no rule to follow it; it will be resolved"
                );
                self.orphans.push(incident);
                continue;
            };
            if let Some(other) = self.book.get(&incident.fingerprint)
                && other.first_seen > incident.first_seen
            {
                tracing::warn!(fingerprint = %incident.fingerprint, id = %incident.id, "older duplicate of an open incident; it will be resolved");
                self.orphans.push(incident);
                continue;
            }
            rule.restore(&incident);
            tracing::debug!(rule = %incident.rule, fingerprint = %incident.fingerprint, id = %incident.id, "incident restored");
            if let Some(older) = self.book.insert_restored(incident) {
                tracing::warn!(fingerprint = %older.fingerprint, id = %older.id, "older duplicate of an open incident; it will be resolved");
                self.orphans.push(older);
            }
        }
    }

    /// Classifies one record (its `id` already assigned by the store, so incidents can cite it)
    /// at `now`. The record's time is its `observed_at` (never later than `now`): windows and
    /// grace periods use record times, so records of one window may arrive in any order.
    pub fn apply(&mut self, record: &Record, now: Timestamp) -> Vec<IncidentChange> {
        let now = self.advance(now);
        let at = record.observed_at.min(now);
        self.timers(now);
        let deleted = self.book.pods.observe(record);
        for rule in &mut self.rules {
            rule.on_record(record, at, now, &mut self.book);
        }
        if deleted {
            self.book.pods.forget(&record.object.key());
        }
        // A record may start a timer that is already due (a replayed record, a zero grace).
        self.timers(now);
        self.book.flush_updates(now);
        self.book.take_changes()
    }

    /// Fires the timers due at `now`: grace periods that expired (opened), quiet periods that
    /// elapsed (resolved), and debounced material changes (updated). Call it regularly (every
    /// second or few); transitions are as late as the tick that sees them.
    pub fn tick(&mut self, now: Timestamp) -> Vec<IncidentChange> {
        let now = self.advance(now);
        self.timers(now);
        self.book.flush_updates(now);
        self.book.take_changes()
    }

    /// The open incidents, ordered by fingerprint.
    pub fn open_incidents(&self) -> Vec<&Incident> {
        let mut open: Vec<&Incident> = self.book.incidents().chain(self.orphans.iter()).collect();
        open.sort_by(|a, b| (&a.fingerprint, &a.id).cmp(&(&b.fingerprint, &b.id)));
        open
    }

    /// How many incidents are open (cheaper than [`open_incidents`](Self::open_incidents)).
    pub fn open_count(&self) -> usize {
        self.book.open_count() + self.orphans.len()
    }

    /// Moves the classifier's clock to `now`, never backwards.
    fn advance(&mut self, now: Timestamp) -> Timestamp {
        let now = match self.clock {
            Some(prev) if now < prev => {
                tracing::debug!(now = %now, previous = %prev, "time went backwards; keeping the later instant");
                prev
            }
            _ => now,
        };
        self.clock = Some(now);
        now
    }

    fn timers(&mut self, now: Timestamp) {
        for mut incident in self.orphans.drain(..) {
            incident.state = IncidentState::Resolved;
            incident.resolved_at = Some(now.max(incident.first_seen));
            tracing::info!(rule = %incident.rule, fingerprint = %incident.fingerprint, id = %incident.id, "orphaned incident resolved");
            self.book.push_change(IncidentChange {
                transition: Transition::Resolved,
                at: now,
                incident,
            });
        }
        for rule in &mut self.rules {
            rule.on_time(now, &mut self.book);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifier_can_move_between_threads() {
        fn assert_send<T: Send + 'static>() {}
        assert_send::<Classifier>();
    }

    #[test]
    fn time_never_goes_backwards() {
        let mut c = Classifier::new(ClassifierConfig::default());
        let t1 = Timestamp::from_second(1_000).expect("ts");
        assert!(c.tick(t1).is_empty());
        assert_eq!(c.advance(Timestamp::from_second(10).expect("ts")), t1);
    }
}
