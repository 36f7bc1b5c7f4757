//! Shared helpers of the projection tests: valid generated histories, event builders, and a
//! store filled with events.
#![allow(dead_code)]

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use pipeline_ledger::domain::*;
use pipeline_ledger::ledger::codec::{decode, stream_name};
use pipeline_ledger::store::sqlite::SqliteStore;
use pipeline_ledger::store::{EventStore, ExpectedRevision, NewRecord, StreamAppend};
use std::collections::BTreeMap;
use uuid::Uuid;

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 9, 0, 0).unwrap()
}

pub fn day(n: i64) -> DateTime<Utc> {
    t0() + Duration::days(n)
}

pub fn rep(s: &str) -> RepId {
    RepId::new(s).unwrap()
}

pub fn deal(s: &str) -> DealId {
    DealId::new(s).unwrap()
}

pub fn eur(minor: i64) -> Money {
    Money {
        amount_minor: minor,
        currency: Currency::new("EUR").unwrap(),
    }
}

fn visit() -> VisitRecord {
    VisitRecord {
        purpose: "p".into(),
        action_plan: "a".into(),
        expected_result: "e".into(),
        actual_outcome: "o".into(),
    }
}

pub fn lead(d: &str, r: &str, source: LeadSource) -> EventPayload {
    EventPayload::LeadSourced(LeadSourced {
        deal_id: deal(d),
        rep_id: rep(r),
        source,
        company: format!("Company of {d}"),
        contact: Contact {
            name: "Contact".into(),
            phone: None,
            email: None,
            role: None,
        },
        qualification: None,
        notes: None,
    })
}

pub fn step(stage: Stage, d: &str, r: &str) -> EventPayload {
    match stage {
        Stage::Lead => lead(d, r, LeadSource::Web),
        Stage::FirstVisit => EventPayload::FirstVisitMade(FirstVisitMade {
            deal_id: deal(d),
            rep_id: rep(r),
            visit: visit(),
            needs: vec![],
            intent_level: 3,
        }),
        Stage::Demo => EventPayload::DemoGiven(DemoGiven {
            deal_id: deal(d),
            rep_id: rep(r),
            visit: visit(),
            lead_presenter: rep(r),
            second_presenter: None,
            products_shown: vec![],
            attendees: vec![],
        }),
        Stage::Negotiation => EventPayload::NegotiationHeld(NegotiationHeld {
            deal_id: deal(d),
            rep_id: rep(r),
            visit: visit(),
            objections: vec![],
            concession: None,
        }),
        Stage::Won => contract(d, r, 100_000),
    }
}

pub fn contract(d: &str, r: &str, minor: i64) -> EventPayload {
    EventPayload::ContractSigned(ContractSigned {
        deal_id: deal(d),
        rep_id: rep(r),
        value: eur(minor),
        term_months: 12,
        contract_ref: None,
    })
}

pub fn lost(d: &str, r: &str, stage: Stage, reason: LostReason) -> EventPayload {
    EventPayload::DealLost(DealLost {
        deal_id: deal(d),
        rep_id: rep(r),
        reason,
        stage,
        details: None,
    })
}

pub fn reopened(d: &str, r: &str) -> EventPayload {
    EventPayload::DealReopened(DealReopened {
        deal_id: deal(d),
        rep_id: rep(r),
        reason: "back".into(),
    })
}

pub fn follow_up(d: &str, r: &str, next_due: Option<NaiveDate>) -> EventPayload {
    EventPayload::FollowUpLogged(FollowUpLogged {
        deal_id: deal(d),
        rep_id: rep(r),
        kind: FollowUpKind::CareCall,
        outcome: "ok".into(),
        next_due_on: next_due,
        order_value: None,
    })
}

pub fn reassign(by: &str, from: &str, to: &str) -> EventPayload {
    EventPayload::CustomerReassigned(CustomerReassigned {
        rep_id: rep(by),
        from_rep_id: rep(from),
        to_rep_id: rep(to),
        reason: "staff change".into(),
    })
}

pub fn correct(by: &str, id: Uuid, correction: Correction) -> EventPayload {
    EventPayload::EventCorrected(EventCorrected {
        rep_id: rep(by),
        corrected_event_id: id,
        correction,
        reason: "fix".into(),
    })
}

/// Builds a log of events by hand: positions and revisions are assigned in order.
#[derive(Default)]
pub struct LogBuilder {
    pub events: Vec<LedgerEvent>,
    revisions: BTreeMap<CustomerId, u64>,
    counter: u128,
}

impl LogBuilder {
    /// Appends an event occurring at `occurred` and recorded at `recorded`; returns its id.
    pub fn push_at(
        &mut self,
        customer: &str,
        occurred: DateTime<Utc>,
        recorded: DateTime<Utc>,
        payload: EventPayload,
    ) -> Uuid {
        self.counter += 1;
        let id = Uuid::from_u128(self.counter);
        let customer_id = CustomerId::new(customer).unwrap();
        let rev = self.revisions.entry(customer_id.clone()).or_insert(0);
        let revision = *rev;
        *rev += 1;
        self.events.push(LedgerEvent {
            event_id: id,
            customer_id,
            revision,
            position: self.events.len() as u64 + 1,
            stored_version: payload.event_type().current_version(),
            occurred_at: occurred,
            recorded_at: recorded,
            recorded_by: ActorId::new("tester").unwrap(),
            correlation_id: None,
            causation_id: None,
            payload,
        });
        id
    }

    /// Appends an event recorded when it occurred.
    pub fn push(&mut self, customer: &str, occurred: DateTime<Utc>, payload: EventPayload) -> Uuid {
        self.push_at(customer, occurred, occurred, payload)
    }
}

/// A small deterministic generator (xorshift), so that a proptest seed fixes a history.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
            | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const REPS: [&str; 4] = ["r1", "r2", "r3", "r4"];

/// Generates a history valid under the domain rules: every event passes
/// `CustomerHistory::decide` before it is kept. Includes skipped stages, moves back, losses,
/// reopenings, follow-ups, reassignments, retractions, amendments and late logging.
pub fn generate(seed: u64, customers: usize, steps: usize) -> Vec<LedgerEvent> {
    generate_late(seed, customers, steps, Lateness::default())
}

/// How often, and how late, generated events are logged after they occurred.
#[derive(Debug, Clone, Copy)]
pub struct Lateness {
    /// Share of events logged late, in percent.
    pub percent: u64,
    /// The most days an event can be logged after it occurred.
    pub max_days: u64,
}

impl Default for Lateness {
    fn default() -> Self {
        Lateness {
            percent: 20,
            max_days: 10,
        }
    }
}

/// [`generate`], with late logging as given: backdated leads, losses and reassignments among
/// them.
pub fn generate_late(
    seed: u64,
    customers: usize,
    steps: usize,
    lateness: Lateness,
) -> Vec<LedgerEvent> {
    let mut rng = Rng::new(seed);
    // Ids differ between seeds, so that two generated histories can share a store.
    let mut log = LogBuilder {
        counter: u128::from(seed) << 64,
        ..LogBuilder::default()
    };
    let mut histories: BTreeMap<String, CustomerHistory> = BTreeMap::new();
    let mut deals: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut ids: BTreeMap<String, Vec<(Uuid, EventPayload)>> = BTreeMap::new();
    let mut now = t0();
    for _ in 0..steps {
        now += Duration::hours(1 + rng.below(24 * 6) as i64);
        let c = format!("c{}", rng.below(customers.max(1) as u64));
        let cid = CustomerId::new(&c).unwrap();
        let history = histories
            .entry(c.clone())
            .or_insert_with(|| CustomerHistory::new(cid.clone()));
        let r = REPS[rng.below(REPS.len() as u64) as usize];
        let my_deals = deals.entry(c.clone()).or_default();
        let payload = if !history.is_known() || rng.chance(8) {
            let d = format!("{c}-d{}", my_deals.len());
            let source = LeadSource::ALL[rng.below(LeadSource::ALL.len() as u64) as usize];
            lead(&d, r, source)
        } else {
            let d = my_deals[rng.below(my_deals.len() as u64) as usize].clone();
            let state = history.deal(&deal(&d));
            use pipeline_ledger::domain::rules::DealStatus as S;
            match state.map(|s| (s.status, s.stage)) {
                Some((S::Open, stage)) => {
                    let roll = rng.below(100);
                    if roll < 12 {
                        let reason = [
                            LostReason::Price,
                            LostReason::Competitor,
                            LostReason::Timing,
                        ][rng.below(3) as usize];
                        lost(&d, r, stage, reason)
                    } else if roll < 20 {
                        let owner = history.owner().unwrap().to_string();
                        let to = REPS
                            .iter()
                            .find(|x| **x != owner && rng.chance(50))
                            .copied();
                        let to = to.unwrap_or(if owner == "r1" { "r2" } else { "r1" });
                        reassign(r, &owner, to)
                    } else if roll < 28 && !ids[&c].is_empty() {
                        let list = &ids[&c];
                        let (id, original) = &list[rng.below(list.len() as u64) as usize];
                        let correction = if rng.chance(50) {
                            Correction::Retract
                        } else {
                            let replacement = match original {
                                EventPayload::ContractSigned(cs) => {
                                    let mut cs = cs.clone();
                                    cs.value = eur(cs.value.amount_minor + 1_000);
                                    EventPayload::ContractSigned(cs)
                                }
                                other => other.clone(),
                            };
                            Correction::Amend {
                                replacement: Box::new(replacement),
                            }
                        };
                        correct(r, *id, correction)
                    } else {
                        // Mostly forward one step, sometimes a skip or a move back.
                        let next = match rng.below(10) {
                            0 => Stage::ALL[1 + rng.below(4) as usize],
                            1 => Stage::ALL[1 + rng.below(3) as usize],
                            _ => Stage::ALL[(stage as usize + 1).min(4)],
                        };
                        let next = if next == Stage::Lead {
                            Stage::FirstVisit
                        } else {
                            next
                        };
                        if next == Stage::Won {
                            contract(&d, r, 10_000 * (1 + rng.below(50) as i64))
                        } else {
                            step(next, &d, r)
                        }
                    }
                }
                Some((S::Lost, _)) => reopened(&d, r),
                Some((S::Won, _)) => {
                    let due = (now + Duration::days(rng.below(60) as i64)).date_naive();
                    follow_up(&d, r, rng.chance(70).then_some(due))
                }
                None => continue,
            }
        };
        // Reps log some interactions late: occurred up to `max_days` before being recorded.
        let occurred = if rng.chance(lateness.percent) {
            now - Duration::days(rng.below(lateness.max_days) as i64)
                - Duration::minutes(rng.below(24 * 60) as i64)
        } else {
            now
        };
        let proposed = ProposedEvent {
            event_id: Uuid::nil(),
            customer_id: cid.clone(),
            occurred_at: occurred,
            recorded_at: Some(now),
            recorded_by: ActorId::new("gen").unwrap(),
            correlation_id: None,
            causation_id: None,
            payload: payload.clone(),
        };
        if history.decide(&proposed, now).is_err() {
            continue;
        }
        let id = log.push_at(&c, occurred, now, payload.clone());
        history.record(id, payload.clone());
        if let EventPayload::LeadSourced(l) = &payload {
            my_deals.push(l.deal_id.to_string());
        }
        if !matches!(payload, EventPayload::EventCorrected(_)) {
            ids.entry(c.clone()).or_default().push((id, payload));
        } else {
            ids.entry(c.clone()).or_default();
        }
    }
    log.events
}

/// The event as its writer proposed it, recorded when it was (to decide it again by the rules).
pub fn proposed_of(e: &LedgerEvent) -> ProposedEvent {
    ProposedEvent {
        event_id: e.event_id,
        customer_id: e.customer_id.clone(),
        occurred_at: e.occurred_at,
        recorded_at: Some(e.recorded_at),
        recorded_by: e.recorded_by.clone(),
        correlation_id: None,
        causation_id: None,
        payload: e.payload.clone(),
    }
}

/// The store record of an event.
pub fn to_record(e: &LedgerEvent) -> NewRecord {
    NewRecord {
        event_id: e.event_id,
        event_type: e.payload.event_type().as_str().to_string(),
        schema_version: e.payload.event_type().current_version(),
        data: e.payload.data_json().to_string(),
        occurred_at: e.occurred_at,
        recorded_at: Some(e.recorded_at),
        recorded_by: e.recorded_by.to_string(),
        correlation_id: None,
        causation_id: None,
    }
}

/// Appends events to the store in one atomic unit, in order (positions follow the order).
pub async fn append(store: &SqliteStore, events: &[LedgerEvent]) {
    if events.is_empty() {
        return;
    }
    let appends = events
        .iter()
        .map(|e| StreamAppend {
            stream: stream_name(&e.customer_id),
            expected: ExpectedRevision::Any,
            events: vec![to_record(e)],
        })
        .collect();
    store.append_many(appends).await.unwrap();
}

/// Every event of the store, decoded.
pub async fn read_back(store: &SqliteStore) -> Vec<LedgerEvent> {
    store
        .read_all(None, usize::MAX >> 1)
        .await
        .unwrap()
        .iter()
        .map(|r| decode(r).unwrap())
        .collect()
}

/// Rebuilds `read_models` from `events` as the runner's rebuild writes them: the staging tables
/// started over, every customer derived once from its whole history and written
/// `chunk_customers` at a time (the checkpoint with the last chunk), the counters at the end,
/// the whole swapped in.
pub fn rebuild_read_models(
    read_models: &dyn pipeline_ledger::read_models::ReadModels,
    policy: &pipeline_ledger::projections::Policy,
    events: &[LedgerEvent],
    chunk_customers: usize,
) {
    use pipeline_ledger::projections::aggregates::Deltas;
    use pipeline_ledger::projections::fold::derive;
    use pipeline_ledger::read_models::Checkpoint;
    read_models.start_staging().unwrap();
    let mut by_customer: BTreeMap<CustomerId, Vec<LedgerEvent>> = BTreeMap::new();
    for e in events {
        by_customer
            .entry(e.customer_id.clone())
            .or_default()
            .push(e.clone());
    }
    let derived: Vec<_> = by_customer
        .iter()
        .map(|(c, evs)| (c.clone(), derive(policy, c, evs)))
        .collect();
    let mut pending = Deltas::default();
    let chunks: Vec<_> = derived.chunks(chunk_customers.max(1)).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let reached = if i + 1 == chunks.len() {
            Checkpoint {
                position: events.last().map(|e| e.position),
                event_id: events.last().map(|e| e.event_id),
                log_time: events.iter().map(|e| e.occurred_at).max(),
            }
        } else {
            Checkpoint::default()
        };
        assert!(
            read_models
                .write_new_customers(None, chunk, reached, &mut pending)
                .unwrap()
        );
    }
    read_models.write_counters(&pending).unwrap();
    read_models.swap_in_staging().unwrap();
}
