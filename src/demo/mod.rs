//! The demo generator: a realistic, seeded sales pipeline, used by the `demo` command, the tests
//! and the benchmarks. The same configuration always produces the same events (ids included).
//!
//! What it contains, on purpose: every interaction kind; deals that skip a stage, move back (a
//! second demo after a negotiation), are lost and sometimes reopened; won customers followed up
//! for months, some of whom go dormant and some of whom come back with a new need (a second deal);
//! reassignments between reps; interactions logged days late; amendments and retractions; several
//! lead sources and currencies. Every event it produces passes the domain rules.

use crate::domain::*;
use chrono::{DateTime, Duration, NaiveTime, Utc};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

/// What to generate.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Number of customers.
    pub customers: usize,
    /// Seed of the generator.
    pub seed: u64,
    /// Number of reps.
    pub reps: usize,
    /// The end of the simulated period: nothing occurs or is recorded after it.
    pub until: DateTime<Utc>,
    /// Length of the simulated period in days.
    pub span_days: i64,
}

impl DemoConfig {
    /// The demo's defaults: `customers` customers, a dozen reps, eighteen months up to `until`.
    pub fn new(customers: usize, seed: u64, until: DateTime<Utc>) -> Self {
        Self {
            customers,
            seed,
            reps: 12,
            until,
            span_days: 540,
        }
    }
}

const COMPANY_WORDS: [&str; 16] = [
    "Harbor", "Summit", "Jade", "Pioneer", "Lotus", "Granite", "Orient", "Maple", "Silver",
    "Phoenix", "Cedar", "Golden", "River", "Atlas", "Crown", "Nova",
];
const COMPANY_KINDS: [&str; 8] = [
    "Logistics",
    "Foods",
    "Machinery",
    "Textiles",
    "Electronics",
    "Pharma",
    "Retail",
    "Energy",
];
const NEEDS: [&str; 8] = [
    "cut delivery times",
    "replace legacy ERP",
    "reduce energy costs",
    "expand to new region",
    "automate invoicing",
    "improve quality control",
    "train field staff",
    "consolidate suppliers",
];
const PRODUCTS: [&str; 5] = ["Core", "Analytics", "Mobile", "Integrations", "Support+"];
const OBJECTIONS: [&str; 6] = [
    "price too high",
    "prefers the incumbent",
    "needs board approval",
    "bad timing",
    "unclear ROI",
    "integration risk",
];
const CURRENCIES: [(&str, i64); 5] = [
    ("EUR", 100),
    ("USD", 100),
    ("CNY", 100),
    ("GBP", 100),
    ("JPY", 1),
];

/// Generates the pipeline, in the order the ledger recorded it (by `recorded_at`), with
/// `recorded_at` set on every event.
pub fn generate(config: &DemoConfig) -> Vec<ProposedEvent> {
    generate_reporting(config, &mut |_| {})
}

/// Customers generated between two calls of [`generate_reporting`]'s callback.
pub const GENERATE_REPORT_CUSTOMERS: usize = 1_000;

/// [`generate`], calling `generated` with the number of customers generated so far every
/// [`GENERATE_REPORT_CUSTOMERS`] customers and at the end, for progress bars. The events are
/// the same: customers are generated in index order either way.
pub fn generate_reporting(
    config: &DemoConfig,
    generated: &mut dyn FnMut(usize),
) -> Vec<ProposedEvent> {
    let mut all = Vec::new();
    let mut start = 0;
    while start < config.customers {
        let end = start
            .saturating_add(GENERATE_REPORT_CUSTOMERS)
            .min(config.customers);
        all.extend(generate_customers(config, start..end));
        generated(end);
        start = end;
    }
    // The log order is the order of recording; ties keep each customer's own order.
    all.sort_by_key(|e| e.recorded_at);
    all
}

/// Generates the events of the customers whose indices are in `customers`, customer by
/// customer (each customer's events in stream order). Each customer has its own random stream,
/// derived from the seed and its index, so that any range can be generated alone: the
/// benchmarks generate millions of events a range at a time.
pub fn generate_customers(
    config: &DemoConfig,
    customers: std::ops::Range<usize>,
) -> Vec<ProposedEvent> {
    assert!(config.reps >= 2, "reassignments need two reps");
    assert!(config.span_days >= 60, "the demo needs a few months");
    let mut all = Vec::new();
    for index in customers {
        let mut rng = ChaCha8Rng::seed_from_u64(
            config
                .seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(index as u64),
        );
        let mut customer = CustomerGen::new(config, index, &mut rng);
        customer.run(&mut rng);
        all.extend(customer.finish(&mut rng));
    }
    all
}

struct CustomerGen<'c> {
    config: &'c DemoConfig,
    customer: CustomerId,
    owner: RepId,
    currency: Currency,
    minor_scale: i64,
    company: String,
    /// (occurred_at, payload, event id)
    events: Vec<(DateTime<Utc>, EventPayload, Uuid)>,
    reassigned: bool,
}

fn rep(n: usize) -> RepId {
    RepId::new(format!("rep-{:02}", n + 1)).expect("valid rep id")
}

fn at_work_hours(t: DateTime<Utc>, rng: &mut ChaCha8Rng) -> DateTime<Utc> {
    let day = t.date_naive();
    let secs = rng.random_range(8 * 3600..18 * 3600);
    let time = NaiveTime::from_num_seconds_from_midnight_opt(secs, 0).expect("in range");
    day.and_time(time).and_utc()
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

impl<'c> CustomerGen<'c> {
    fn new(config: &'c DemoConfig, index: usize, rng: &mut ChaCha8Rng) -> Self {
        let (code, scale) = *pick(rng, &CURRENCIES);
        Self {
            config,
            customer: CustomerId::new(format!("cust-{:05}", index + 1)).expect("valid id"),
            owner: rep(rng.random_range(0..config.reps)),
            currency: Currency::new(code).expect("valid currency"),
            minor_scale: scale,
            company: format!(
                "{} {} {}",
                pick(rng, &COMPANY_WORDS),
                pick(rng, &COMPANY_KINDS),
                index + 1
            ),
            events: Vec::new(),
            reassigned: false,
        }
    }

    fn start(&self) -> DateTime<Utc> {
        self.config.until - Duration::days(self.config.span_days)
    }

    /// Adds an event at `t` if `t` is inside the period; returns whether it was added.
    fn emit(&mut self, t: DateTime<Utc>, payload: EventPayload, rng: &mut ChaCha8Rng) -> bool {
        if t >= self.config.until {
            return false;
        }
        let t = at_work_hours(t, rng).min(self.config.until - Duration::minutes(1));
        let t = match self.events.last() {
            Some((last, _, _)) if *last >= t => *last + Duration::minutes(30),
            _ => t,
        };
        if t >= self.config.until {
            return false;
        }
        let mut random = [0u8; 10];
        rng.fill(&mut random);
        let id = uuid::Builder::from_unix_timestamp_millis(t.timestamp_millis() as u64, &random)
            .into_uuid();
        self.events.push((t, payload, id));
        true
    }

    fn visit(&self, rng: &mut ChaCha8Rng, what: &str) -> VisitRecord {
        let need = pick(rng, &NEEDS);
        VisitRecord {
            purpose: format!("{what} for {}", self.company),
            action_plan: format!("walk through how we {need}"),
            expected_result: "agree on next meeting".into(),
            actual_outcome: if rng.random_bool(0.7) {
                "next meeting agreed".into()
            } else {
                "customer asked for more material".into()
            },
        }
    }

    fn money(&self, rng: &mut ChaCha8Rng, major_min: i64, major_max: i64) -> Money {
        // Round to hundreds of major units, as contracts are.
        let major = rng.random_range(major_min / 100..major_max / 100) * 100;
        let major = if self.minor_scale == 1 {
            major * 150
        } else {
            major
        };
        Money {
            amount_minor: major * self.minor_scale,
            currency: self.currency,
        }
    }

    fn gap(rng: &mut ChaCha8Rng, min_days: i64, max_days: i64) -> Duration {
        Duration::days(rng.random_range(min_days..=max_days))
            + Duration::minutes(rng.random_range(0..600))
    }

    fn run(&mut self, rng: &mut ChaCha8Rng) {
        let offset = rng.random_range(0..self.config.span_days - 20);
        let mut t = self.start() + Duration::days(offset);
        let reassign_at = rng.random_bool(0.1).then(|| t + Self::gap(rng, 10, 200));
        let mut deal_no = 0;
        loop {
            deal_no += 1;
            let source = if deal_no == 1 {
                *pick(
                    rng,
                    &[
                        LeadSource::Referral,
                        LeadSource::Referral,
                        LeadSource::TradeShow,
                        LeadSource::Web,
                        LeadSource::Web,
                        LeadSource::Web,
                        LeadSource::ColdCall,
                        LeadSource::Partner,
                        LeadSource::Other,
                    ],
                )
            } else {
                LeadSource::ExistingCustomer
            };
            let Some(next) = self.run_deal(rng, t, deal_no, source, reassign_at) else {
                return;
            };
            if deal_no >= 3 {
                return;
            }
            t = next;
        }
    }

    fn maybe_reassign(
        &mut self,
        rng: &mut ChaCha8Rng,
        now: DateTime<Utc>,
        reassign_at: Option<DateTime<Utc>>,
    ) {
        let Some(at) = reassign_at else { return };
        if self.reassigned || now < at {
            return;
        }
        let mut to = rep(rng.random_range(0..self.config.reps));
        while to == self.owner {
            to = rep(rng.random_range(0..self.config.reps));
        }
        let payload = EventPayload::CustomerReassigned(CustomerReassigned {
            rep_id: rep(0),
            from_rep_id: self.owner.clone(),
            to_rep_id: to.clone(),
            reason: if rng.random_bool(0.5) {
                "rep left the team".into()
            } else {
                "territory rebalanced".into()
            },
        });
        if self.emit(at.max(now), payload, rng) {
            self.owner = to;
            self.reassigned = true;
        }
    }

    /// One deal from lead to its outcome. Returns when a next deal starts, if one does.
    fn run_deal(
        &mut self,
        rng: &mut ChaCha8Rng,
        start: DateTime<Utc>,
        deal_no: usize,
        source: LeadSource,
        reassign_at: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        let deal = DealId::new(format!("{}-d{deal_no}", self.customer)).expect("valid deal id");
        let mut t = start;
        let lead = EventPayload::LeadSourced(LeadSourced {
            deal_id: deal.clone(),
            rep_id: self.owner.clone(),
            source,
            company: self.company.clone(),
            contact: Contact {
                name: format!("Contact {}", self.customer).into(),
                phone: Some(format!("+86 21 5555 {:04}", rng.random_range(0..10_000)).into()),
                email: Some(format!("buyer@{}.example", self.customer).into()),
                role: Some(BuyingRole::DecisionMaker),
            },
            qualification: Some(Qualification {
                customer_growing: rng.random_bool(0.6),
                has_business_plan: rng.random_bool(0.5),
                revenue_potential: rng.random_bool(0.6),
                has_opportunities: rng.random_bool(0.5),
                solution_fits: rng.random_bool(0.7),
                we_are_competitive: rng.random_bool(0.5),
                has_relationship: rng.random_bool(0.4),
            }),
            notes: None,
        });
        if !self.emit(t, lead, rng) {
            return None;
        }
        let mut stage = Stage::Lead;
        // Probability of losing the deal at each stage, and of it stalling there (no more news).
        let lose = |s: Stage| match s {
            Stage::Lead => 0.22,
            Stage::FirstVisit => 0.18,
            Stage::Demo => 0.18,
            Stage::Negotiation => 0.25,
            Stage::Won => 0.0,
        };
        let mut reopened = false;
        let mut backward_done = false;
        loop {
            t += Self::gap(rng, 2, 24);
            self.maybe_reassign(rng, t, reassign_at);
            if rng.random_bool(0.06) {
                return None; // stalled: the deal stays open with no further interaction
            }
            if rng.random_bool(lose(stage)) {
                let reason = *pick(
                    rng,
                    &[
                        LostReason::Price,
                        LostReason::Price,
                        LostReason::Competitor,
                        LostReason::NoBudget,
                        LostReason::NoDecision,
                        LostReason::Timing,
                        LostReason::ProductFit,
                        LostReason::Unresponsive,
                    ],
                );
                let lost = EventPayload::DealLost(DealLost {
                    deal_id: deal.clone(),
                    rep_id: self.owner.clone(),
                    reason,
                    stage,
                    details: None,
                });
                if !self.emit(t, lost, rng) {
                    return None;
                }
                if reopened || !rng.random_bool(0.25) {
                    return None;
                }
                t += Self::gap(rng, 20, 90);
                let back = EventPayload::DealReopened(DealReopened {
                    deal_id: deal.clone(),
                    rep_id: self.owner.clone(),
                    reason: "budget approved after all".into(),
                });
                if !self.emit(t, back, rng) {
                    return None;
                }
                reopened = true;
                continue;
            }
            let next = match stage {
                // Some deals skip the first visit and go straight to a demo.
                Stage::Lead if rng.random_bool(0.1) => Stage::Demo,
                Stage::Lead => Stage::FirstVisit,
                Stage::FirstVisit => Stage::Demo,
                // Some negotiations send the deal back to a second demo.
                Stage::Negotiation if !backward_done && rng.random_bool(0.1) => {
                    backward_done = true;
                    Stage::Demo
                }
                Stage::Demo => Stage::Negotiation,
                Stage::Negotiation => Stage::Won,
                Stage::Won => unreachable!("won deals leave the loop"),
            };
            let payload = self.stage_event(rng, &deal, next);
            if !self.emit(t, payload, rng) {
                return None;
            }
            stage = next;
            if stage == Stage::Won {
                return self.follow_ups(rng, &deal, t, reassign_at);
            }
        }
    }

    fn stage_event(&mut self, rng: &mut ChaCha8Rng, deal: &DealId, stage: Stage) -> EventPayload {
        let rep_id = self.owner.clone();
        match stage {
            Stage::FirstVisit => EventPayload::FirstVisitMade(FirstVisitMade {
                deal_id: deal.clone(),
                rep_id,
                visit: self.visit(rng, "first visit"),
                needs: vec![pick(rng, &NEEDS).to_string()],
                intent_level: rng.random_range(1..=5),
            }),
            Stage::Demo => {
                let second = rep(rng.random_range(0..self.config.reps));
                EventPayload::DemoGiven(DemoGiven {
                    deal_id: deal.clone(),
                    rep_id: rep_id.clone(),
                    visit: self.visit(rng, "product demo"),
                    lead_presenter: rep_id.clone(),
                    second_presenter: (second != rep_id).then_some(second),
                    products_shown: vec![pick(rng, &PRODUCTS).to_string()],
                    attendees: vec![BuyingRole::User, BuyingRole::DecisionMaker],
                })
            }
            Stage::Negotiation => EventPayload::NegotiationHeld(NegotiationHeld {
                deal_id: deal.clone(),
                rep_id,
                visit: self.visit(rng, "negotiation"),
                objections: (0..rng.random_range(1..=3))
                    .map(|_| Objection {
                        objection: pick(rng, &OBJECTIONS).to_string(),
                        handling: *pick(
                            rng,
                            &[
                                ObjectionHandling::GiveFace,
                                ObjectionHandling::ChangeTime,
                                ObjectionHandling::FindCause,
                                ObjectionHandling::GoHigherUp,
                                ObjectionHandling::LeaveRoom,
                            ],
                        ),
                        resolved: rng.random_bool(0.7),
                    })
                    .collect(),
                concession: rng.random_bool(0.3).then(|| self.money(rng, 500, 5_000)),
            }),
            Stage::Won => EventPayload::ContractSigned(ContractSigned {
                deal_id: deal.clone(),
                rep_id,
                value: self.money(rng, 5_000, 200_000),
                term_months: *pick(rng, &[6, 12, 12, 24, 36]),
                contract_ref: Some(format!("C-{}", deal)),
            }),
            Stage::Lead => unreachable!("a lead is sourced, not advanced to"),
        }
    }

    /// Follow-ups of a won deal; returns the start of a new deal when one comes out of them.
    fn follow_ups(
        &mut self,
        rng: &mut ChaCha8Rng,
        deal: &DealId,
        won_at: DateTime<Utc>,
        reassign_at: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        let mut t = won_at;
        // Some won customers are never followed up: they become dormant.
        let stops_after = if rng.random_bool(0.2) {
            0
        } else {
            rng.random_range(1..8)
        };
        for _ in 0..stops_after {
            let gap = Self::gap(rng, 20, 80);
            t += gap;
            self.maybe_reassign(rng, t, reassign_at);
            let kind = *pick(
                rng,
                &[
                    FollowUpKind::CareCall,
                    FollowUpKind::CareCall,
                    FollowUpKind::Visit,
                    FollowUpKind::NewNeed,
                    FollowUpKind::RepeatOrder,
                    FollowUpKind::Complaint,
                    FollowUpKind::NewProduct,
                ],
            );
            let payload = EventPayload::FollowUpLogged(FollowUpLogged {
                deal_id: deal.clone(),
                rep_id: self.owner.clone(),
                kind,
                outcome: "customer satisfied".into(),
                next_due_on: Some((t + Duration::days(45)).date_naive()),
                order_value: (kind == FollowUpKind::RepeatOrder)
                    .then(|| self.money(rng, 1_000, 30_000)),
            });
            if !self.emit(t, payload, rng) {
                return None;
            }
            if kind == FollowUpKind::NewNeed && rng.random_bool(0.5) {
                return Some(t + Self::gap(rng, 1, 10));
            }
        }
        None
    }

    /// Adds corrections, assigns recording times (some late) and makes the proposed events.
    fn finish(mut self, rng: &mut ChaCha8Rng) -> Vec<ProposedEvent> {
        let until = self.config.until;
        let mut corrections = Vec::new();
        for (t, payload, id) in &self.events {
            let correction = match payload {
                EventPayload::FirstVisitMade(v) if rng.random_bool(0.05) => {
                    let mut fixed = v.clone();
                    fixed.visit.actual_outcome = "corrected: customer wants a demo".into();
                    Some(Correction::Amend {
                        replacement: Box::new(EventPayload::FirstVisitMade(fixed)),
                    })
                }
                EventPayload::FollowUpLogged(_) if rng.random_bool(0.03) => {
                    Some(Correction::Retract)
                }
                _ => None,
            };
            if let Some(correction) = correction {
                corrections.push((*t + Duration::days(2), *id, correction));
            }
        }
        for (t, corrected, correction) in corrections {
            if t < until {
                let payload = EventPayload::EventCorrected(EventCorrected {
                    rep_id: self.owner.clone(),
                    corrected_event_id: corrected,
                    correction,
                    reason: "logged with a mistake".into(),
                });
                let mut random = [0u8; 10];
                rng.fill(&mut random);
                let id =
                    uuid::Builder::from_unix_timestamp_millis(t.timestamp_millis() as u64, &random)
                        .into_uuid();
                self.events.push((t, payload, id));
            }
        }
        // Occurred order is the stream order; corrections were appended last, so sort again.
        self.events.sort_by_key(|(t, _, _)| *t);
        let mut last_recorded: Option<DateTime<Utc>> = None;
        let mut out = Vec::with_capacity(self.events.len());
        for (occurred_at, payload, event_id) in self.events {
            // Most interactions are logged within hours; about one in six days late.
            let delay = if rng.random_bool(0.16) {
                Duration::days(rng.random_range(1..=14))
            } else {
                Duration::minutes(rng.random_range(5..480))
            };
            let mut recorded_at = (occurred_at + delay).min(until);
            if let Some(last) = last_recorded
                && recorded_at <= last
            {
                recorded_at = last + Duration::seconds(1);
            }
            last_recorded = Some(recorded_at);
            let recorded_by =
                ActorId::new(payload.rep_id().as_str()).expect("rep ids are actor ids");
            out.push(ProposedEvent {
                event_id,
                customer_id: self.customer.clone(),
                occurred_at,
                recorded_at: Some(recorded_at),
                recorded_by,
                correlation_id: None,
                causation_id: None,
                payload,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn until() -> DateTime<Utc> {
        "2026-06-30T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn same_seed_same_events_other_seed_other_events() {
        let a = generate(&DemoConfig::new(40, 7, until()));
        let b = generate(&DemoConfig::new(40, 7, until()));
        let c = generate(&DemoConfig::new(40, 8, until()));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn generating_in_slices_gives_the_events_of_one_range() {
        let config = DemoConfig::new(GENERATE_REPORT_CUSTOMERS + 50, 3, until());
        let mut whole = generate_customers(&config, 0..config.customers);
        whole.sort_by_key(|e| e.recorded_at);
        let mut reported = Vec::new();
        let sliced = generate_reporting(&config, &mut |n| reported.push(n));
        assert_eq!(sliced, whole);
        assert_eq!(reported, [GENERATE_REPORT_CUSTOMERS, config.customers]);
    }

    #[test]
    fn every_generated_event_passes_the_rules_in_log_order() {
        let events = generate(&DemoConfig::new(200, 1, until()));
        let mut histories: HashMap<CustomerId, CustomerHistory> = HashMap::new();
        for e in &events {
            let h = histories
                .entry(e.customer_id.clone())
                .or_insert_with(|| CustomerHistory::new(e.customer_id.clone()));
            h.decide(e, e.recorded_at.unwrap())
                .unwrap_or_else(|err| panic!("{err} for {e:?}"));
            h.record(e.event_id, e.payload.clone());
            assert!(e.recorded_at.unwrap() >= e.occurred_at);
            assert!(e.recorded_at.unwrap() <= until());
        }
        let ids: HashSet<_> = events.iter().map(|e| e.event_id).collect();
        assert_eq!(ids.len(), events.len(), "event ids are unique");
    }

    #[test]
    fn the_demo_has_every_kind_of_event_and_the_messy_parts() {
        let events = generate(&DemoConfig::new(300, 42, until()));
        let types: HashSet<_> = events.iter().map(|e| e.payload.event_type()).collect();
        // Every type a producer sends; `PersonalDataErased` is written by `forget` alone.
        for t in EventType::ALL {
            assert_eq!(
                types.contains(t),
                *t != EventType::PersonalDataErased,
                "{t}"
            );
        }
        let late = events
            .iter()
            .filter(|e| e.recorded_at.unwrap() - e.occurred_at > Duration::days(1))
            .count();
        assert!(late > events.len() / 20, "late-logged events: {late}");
        let currencies: HashSet<_> = events
            .iter()
            .filter_map(|e| match &e.payload {
                EventPayload::ContractSigned(c) => Some(c.value.currency),
                _ => None,
            })
            .collect();
        assert!(currencies.len() >= 3);
        let sources: HashSet<_> = events
            .iter()
            .filter_map(|e| match &e.payload {
                EventPayload::LeadSourced(l) => Some(l.source),
                _ => None,
            })
            .collect();
        assert!(sources.len() >= 5);
        let reps: HashSet<_> = events.iter().map(|e| e.payload.rep_id().clone()).collect();
        assert_eq!(reps.len(), 12);
    }
}
