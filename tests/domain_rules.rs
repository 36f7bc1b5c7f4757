//! The domain rules, as given/when/then scenarios on one customer's history.
//!
//! `given` records a history (every given event must itself be accepted by the rules, so a
//! scenario can never rest on a history the ledger would have refused), `when` proposes one more
//! event, and `then_ok` / `then_error` state the decision. A few tests at the end go through the
//! `Ledger` on a real store to show that a refused command writes nothing.

use chrono::{DateTime, Duration, TimeZone, Utc};
use pipeline_ledger::domain::*;
use pipeline_ledger::ledger::{Ledger, RecordError};
use pipeline_ledger::limits::CLOCK_SKEW_TOLERANCE_SECONDS;
use pipeline_ledger::store::EventStore;
use pipeline_ledger::store::sqlite::SqliteStore;
use std::sync::Arc;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Scenario helper
// ---------------------------------------------------------------------------------------------

/// The ledger's clock in every scenario.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 2, 12, 0, 0).unwrap()
}

/// The id of the `i`-th given event (0-based), for corrections that name it.
fn ev(i: usize) -> Uuid {
    Uuid::from_u128(0x1000 + i as u128)
}

/// The id of the event proposed in `when`.
const WHEN_ID: Uuid = Uuid::from_u128(0xFFFF);

fn customer() -> CustomerId {
    CustomerId::new("cust-1").unwrap()
}

fn proposed(event_id: Uuid, occurred_at: DateTime<Utc>, payload: EventPayload) -> ProposedEvent {
    ProposedEvent {
        event_id,
        customer_id: customer(),
        occurred_at,
        recorded_at: None,
        recorded_by: ActorId::new("crm-sync").unwrap(),
        correlation_id: None,
        causation_id: None,
        payload,
    }
}

struct Given {
    history: CustomerHistory,
}

/// A customer whose history is `events`, each one accepted by the rules in turn.
fn given(events: &[EventPayload]) -> Given {
    let mut history = CustomerHistory::new(customer());
    let n = events.len() as i64;
    for (i, payload) in events.iter().enumerate() {
        let occurred_at = now() - Duration::hours(n - i as i64);
        let event = proposed(ev(i), occurred_at, payload.clone());
        if let Err(e) = history.decide(&event, now()) {
            panic!("given event {i} ({payload:?}) is refused: {e}");
        }
        history.record(ev(i), payload.clone());
    }
    assert_eq!(
        history.revision(),
        events.len().checked_sub(1).map(|r| r as u64)
    );
    Given { history }
}

impl Given {
    fn when(self, payload: EventPayload) -> When {
        When {
            history: self.history,
            event: proposed(WHEN_ID, now() - Duration::minutes(1), payload),
        }
    }
}

struct When {
    history: CustomerHistory,
    event: ProposedEvent,
}

impl When {
    /// Sets when the proposed interaction happened.
    fn occurred_at(mut self, t: DateTime<Utc>) -> Self {
        self.event.occurred_at = t;
        self
    }

    /// The event is accepted; returns the history with it recorded.
    fn then_ok(self) -> CustomerHistory {
        let When { mut history, event } = self;
        if let Err(e) = history.decide(&event, now()) {
            panic!("expected {:?} to be accepted, refused: {e}", event.payload);
        }
        history.record(event.event_id, event.payload);
        history
    }

    /// The event is refused with a violation that satisfies `expected`; returns the violation.
    #[track_caller]
    fn then_error(self, expected: impl FnOnce(&RuleViolation) -> bool) -> RuleViolation {
        let before = self.history.revision();
        match self.history.decide(&self.event, now()) {
            Ok(()) => panic!(
                "expected {:?} to be refused, but it was accepted",
                self.event.payload
            ),
            Err(e) => {
                assert!(expected(&e), "refused with an unexpected violation: {e:?}");
                assert!(!e.to_string().is_empty());
                assert_eq!(
                    self.history.revision(),
                    before,
                    "a decision changes nothing"
                );
                e
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Payload builders: the smallest valid data of each type
// ---------------------------------------------------------------------------------------------

fn rep(id: &str) -> RepId {
    RepId::new(id).unwrap()
}

fn deal(id: &str) -> DealId {
    DealId::new(id).unwrap()
}

fn visit_record() -> VisitRecord {
    VisitRecord {
        purpose: "understand needs".into(),
        action_plan: "meet the buyer".into(),
        expected_result: "needs form".into(),
        actual_outcome: "needs form filled".into(),
    }
}

fn lead_by(d: &str, r: &str) -> EventPayload {
    EventPayload::LeadSourced(LeadSourced {
        deal_id: deal(d),
        rep_id: rep(r),
        source: LeadSource::Referral,
        company: "ACME Ltd".into(),
        contact: Contact {
            name: "Li Wei".into(),
            phone: None,
            email: None,
            role: Some(BuyingRole::DecisionMaker),
        },
        qualification: None,
        notes: None,
    })
}

fn lead(d: &str) -> EventPayload {
    lead_by(d, "rep-1")
}

fn first_visit(d: &str) -> EventPayload {
    EventPayload::FirstVisitMade(FirstVisitMade {
        deal_id: deal(d),
        rep_id: rep("rep-1"),
        visit: visit_record(),
        needs: vec!["faster invoicing".into()],
        intent_level: 3,
    })
}

fn demo(d: &str) -> EventPayload {
    EventPayload::DemoGiven(DemoGiven {
        deal_id: deal(d),
        rep_id: rep("rep-1"),
        visit: visit_record(),
        lead_presenter: rep("rep-1"),
        second_presenter: Some(rep("rep-2")),
        products_shown: vec!["ledger".into()],
        attendees: vec![BuyingRole::User],
    })
}

fn negotiation(d: &str) -> EventPayload {
    EventPayload::NegotiationHeld(NegotiationHeld {
        deal_id: deal(d),
        rep_id: rep("rep-1"),
        visit: visit_record(),
        objections: vec![Objection {
            objection: "too expensive".into(),
            handling: ObjectionHandling::LeaveRoom,
            resolved: true,
        }],
        concession: None,
    })
}

fn eur(amount_minor: i64) -> Money {
    Money {
        amount_minor,
        currency: Currency::new("EUR").unwrap(),
    }
}

fn contract_worth(d: &str, amount_minor: i64) -> EventPayload {
    EventPayload::ContractSigned(ContractSigned {
        deal_id: deal(d),
        rep_id: rep("rep-1"),
        value: eur(amount_minor),
        term_months: 12,
        contract_ref: None,
    })
}

fn contract(d: &str) -> EventPayload {
    contract_worth(d, 100_000)
}

fn follow_up(d: &str) -> EventPayload {
    EventPayload::FollowUpLogged(FollowUpLogged {
        deal_id: deal(d),
        rep_id: rep("rep-1"),
        kind: FollowUpKind::CareCall,
        outcome: "happy".into(),
        next_due_on: None,
        order_value: None,
    })
}

fn lost(d: &str, stage: Stage) -> EventPayload {
    EventPayload::DealLost(DealLost {
        deal_id: deal(d),
        rep_id: rep("rep-1"),
        reason: LostReason::Price,
        stage,
        details: None,
    })
}

fn reopened(d: &str) -> EventPayload {
    EventPayload::DealReopened(DealReopened {
        deal_id: deal(d),
        rep_id: rep("rep-1"),
        reason: "budget came back".into(),
    })
}

fn reassign(from: &str, to: &str) -> EventPayload {
    EventPayload::CustomerReassigned(CustomerReassigned {
        rep_id: rep("manager-1"),
        from_rep_id: rep(from),
        to_rep_id: rep(to),
        reason: "territory change".into(),
    })
}

fn retract(id: Uuid) -> EventPayload {
    EventPayload::EventCorrected(EventCorrected {
        rep_id: rep("rep-1"),
        corrected_event_id: id,
        correction: Correction::Retract,
        reason: "logged by mistake".into(),
    })
}

fn amend(id: Uuid, replacement: EventPayload) -> EventPayload {
    EventPayload::EventCorrected(EventCorrected {
        rep_id: rep("rep-1"),
        corrected_event_id: id,
        correction: Correction::Amend {
            replacement: Box::new(replacement),
        },
        reason: "typo".into(),
    })
}

// ---------------------------------------------------------------------------------------------
// Unknown customer
// ---------------------------------------------------------------------------------------------

#[test]
fn a_new_customer_starts_with_a_lead() {
    let history = given(&[]).when(lead("d1")).then_ok();
    assert!(history.is_known());
    assert_eq!(history.owner(), Some(&rep("rep-1")));
    assert_eq!(history.revision(), Some(0));
}

#[test]
fn no_interaction_for_an_unknown_customer() {
    for payload in [
        first_visit("d1"),
        demo("d1"),
        negotiation("d1"),
        contract("d1"),
        follow_up("d1"),
        lost("d1", Stage::Lead),
        reopened("d1"),
        reassign("rep-1", "rep-2"),
        retract(ev(0)),
    ] {
        let event_type = payload.event_type();
        let e = given(&[]).when(payload).then_error(|e| {
            matches!(e, RuleViolation::UnknownCustomer { event_type: t, .. } if *t == event_type)
        });
        let msg = e.to_string();
        assert!(msg.contains("cust-1") && msg.contains("unknown"), "{msg}");
    }
}

#[test]
fn an_interaction_on_an_unknown_deal_of_a_known_customer_is_refused() {
    given(&[lead("d1")]).when(first_visit("d2")).then_error(
        |e| matches!(e, RuleViolation::UnknownDeal { deal, .. } if deal.as_str() == "d2"),
    );
}

#[test]
fn a_deal_id_is_used_by_one_lead_only() {
    given(&[lead("d1")])
        .when(lead("d1"))
        .then_error(|e| matches!(e, RuleViolation::DealExists { .. }));
    // A second round of the pipeline is a new deal of the same customer.
    given(&[lead("d1"), contract("d1")])
        .when(lead("d2"))
        .then_ok();
}

// ---------------------------------------------------------------------------------------------
// Lost deals and contracts
// ---------------------------------------------------------------------------------------------

#[test]
fn no_contract_on_a_lost_deal() {
    let e = given(&[lead("d1"), first_visit("d1"), lost("d1", Stage::FirstVisit)])
        .when(contract("d1"))
        .then_error(|e| {
            matches!(e, RuleViolation::DealIsLost { deal, event_type: EventType::ContractSigned }
                if deal.as_str() == "d1")
        });
    assert!(e.to_string().contains("DealReopened"), "{e}");
}

#[test]
fn a_contract_is_accepted_once_the_lost_deal_is_reopened() {
    let history = given(&[
        lead("d1"),
        first_visit("d1"),
        lost("d1", Stage::FirstVisit),
        reopened("d1"),
    ])
    .when(contract("d1"))
    .then_ok();
    let state = history.deal(&deal("d1")).unwrap();
    assert_eq!(state.stage, Stage::Won);
}

#[test]
fn no_stage_interaction_on_a_lost_deal() {
    for payload in [first_visit("d1"), demo("d1"), negotiation("d1")] {
        given(&[lead("d1"), lost("d1", Stage::Lead)])
            .when(payload)
            .then_error(|e| matches!(e, RuleViolation::DealIsLost { .. }));
    }
}

#[test]
fn a_lost_deal_in_one_round_does_not_block_another_deal() {
    given(&[lead("d1"), lost("d1", Stage::Lead), lead("d2")])
        .when(contract("d2"))
        .then_ok();
}

#[test]
fn only_a_lost_deal_can_be_reopened() {
    given(&[lead("d1")])
        .when(reopened("d1"))
        .then_error(|e| matches!(e, RuleViolation::DealNotLost { .. }));
    given(&[lead("d1"), contract("d1")])
        .when(reopened("d1"))
        .then_error(|e| matches!(e, RuleViolation::DealNotLost { .. }));
}

#[test]
fn a_won_deal_takes_no_second_contract_and_cannot_be_lost() {
    given(&[lead("d1"), contract("d1")])
        .when(contract("d1"))
        .then_error(|e| matches!(e, RuleViolation::DealIsWon { .. }));
    given(&[lead("d1"), contract("d1")])
        .when(lost("d1", Stage::Won))
        .then_error(|e| matches!(e, RuleViolation::DealIsWon { .. }));
}

#[test]
fn deals_may_skip_steps() {
    given(&[lead("d1")]).when(contract("d1")).then_ok();
    given(&[lead("d1")]).when(negotiation("d1")).then_ok();
}

// ---------------------------------------------------------------------------------------------
// DealLost names the stage the deal is at
// ---------------------------------------------------------------------------------------------

#[test]
fn deal_lost_must_name_the_current_stage() {
    let history = [lead("d1"), first_visit("d1"), demo("d1")];
    let e = given(&history)
        .when(lost("d1", Stage::Negotiation))
        .then_error(|e| {
            matches!(
                e,
                RuleViolation::LostStageMismatch {
                    claimed: "negotiation",
                    actual: "demo",
                    ..
                }
            )
        });
    assert!(e.to_string().contains("demo"), "{e}");
    given(&history)
        .when(lost("d1", Stage::Lead))
        .then_error(|e| matches!(e, RuleViolation::LostStageMismatch { .. }));
    let after = given(&history).when(lost("d1", Stage::Demo)).then_ok();
    assert_eq!(after.deal(&deal("d1")).unwrap().stage, Stage::Demo);
}

#[test]
fn a_deal_that_moves_back_is_at_the_stage_of_its_latest_interaction() {
    // A second demo after a negotiation puts the deal back at the demo stage.
    let h = [lead("d1"), demo("d1"), negotiation("d1"), demo("d1")];
    let after = given(&h).when(lost("d1", Stage::Demo)).then_ok();
    assert_eq!(after.deal(&deal("d1")).unwrap().stage, Stage::Demo);
    given(&h)
        .when(lost("d1", Stage::Negotiation))
        .then_error(|e| matches!(e, RuleViolation::LostStageMismatch { actual: "demo", .. }));
}

#[test]
fn a_lost_deal_cannot_be_lost_again() {
    given(&[lead("d1"), lost("d1", Stage::Lead)])
        .when(lost("d1", Stage::Lead))
        .then_error(|e| matches!(e, RuleViolation::DealIsLost { .. }));
}

#[test]
fn a_reopened_deal_resumes_at_the_stage_where_it_was_lost() {
    let h = [
        lead("d1"),
        first_visit("d1"),
        negotiation("d1"),
        lost("d1", Stage::Negotiation),
        reopened("d1"),
    ];
    given(&h).when(lost("d1", Stage::Negotiation)).then_ok();
    given(&h).when(lost("d1", Stage::Lead)).then_error(|e| {
        matches!(
            e,
            RuleViolation::LostStageMismatch {
                actual: "negotiation",
                ..
            }
        )
    });
}

// ---------------------------------------------------------------------------------------------
// Reassignment
// ---------------------------------------------------------------------------------------------

#[test]
fn a_reassignment_moves_the_customer_to_another_rep() {
    let history = given(&[lead_by("d1", "rep-1")])
        .when(reassign("rep-1", "rep-2"))
        .then_ok();
    assert_eq!(history.owner(), Some(&rep("rep-2")));
    // The history stays: the deal is still there and can be continued by anyone.
    assert!(history.deal(&deal("d1")).is_some());
}

#[test]
fn a_reassignment_must_name_a_different_rep() {
    let e = given(&[lead_by("d1", "rep-1")])
        .when(reassign("rep-1", "rep-1"))
        .then_error(|e| matches!(e, RuleViolation::SameRep { rep, .. } if rep.as_str() == "rep-1"));
    assert!(e.to_string().contains("different rep"), "{e}");
}

#[test]
fn a_reassignment_must_name_the_current_owner() {
    given(&[lead_by("d1", "rep-1")])
        .when(reassign("rep-9", "rep-2"))
        .then_error(|e| {
            matches!(e, RuleViolation::NotTheOwner { owner, claimed, .. }
                if owner.as_str() == "rep-1" && claimed.as_str() == "rep-9")
        });
    // After a reassignment the old owner is no longer the owner.
    given(&[lead_by("d1", "rep-1"), reassign("rep-1", "rep-2")])
        .when(reassign("rep-1", "rep-3"))
        .then_error(
            |e| matches!(e, RuleViolation::NotTheOwner { owner, .. } if owner.as_str() == "rep-2"),
        );
    given(&[lead_by("d1", "rep-1"), reassign("rep-1", "rep-2")])
        .when(reassign("rep-2", "rep-1"))
        .then_ok();
}

#[test]
fn a_later_lead_by_another_rep_does_not_change_the_owner() {
    let h = [
        lead_by("d1", "rep-1"),
        contract("d1"),
        lead_by("d2", "rep-7"),
    ];
    given(&h).when(reassign("rep-1", "rep-7")).then_ok();
    given(&h)
        .when(reassign("rep-7", "rep-1"))
        .then_error(|e| matches!(e, RuleViolation::NotTheOwner { .. }));
}

// ---------------------------------------------------------------------------------------------
// occurred_at
// ---------------------------------------------------------------------------------------------

#[test]
fn occurred_at_in_the_future_beyond_the_tolerance_is_refused() {
    let tolerance = Duration::seconds(CLOCK_SKEW_TOLERANCE_SECONDS);
    let too_late = now() + tolerance + Duration::seconds(1);
    let e = given(&[])
        .when(lead("d1"))
        .occurred_at(too_late)
        .then_error(|e| {
            matches!(e, RuleViolation::OccurredInFuture { occurred_at, now: n }
                if *occurred_at == too_late && *n == now())
        });
    assert!(e.to_string().contains("future"), "{e}");
    // Far in the future too, and for any event type.
    given(&[lead("d1")])
        .when(first_visit("d1"))
        .occurred_at(now() + Duration::days(30))
        .then_error(|e| matches!(e, RuleViolation::OccurredInFuture { .. }));
}

#[test]
fn occurred_at_within_the_clock_skew_tolerance_is_accepted() {
    let tolerance = Duration::seconds(CLOCK_SKEW_TOLERANCE_SECONDS);
    given(&[])
        .when(lead("d1"))
        .occurred_at(now() + tolerance)
        .then_ok();
    given(&[])
        .when(lead("d1"))
        .occurred_at(now() + Duration::seconds(1))
        .then_ok();
    given(&[]).when(lead("d1")).occurred_at(now()).then_ok();
}

#[test]
fn occurred_at_in_the_past_is_accepted_because_reps_log_late() {
    given(&[lead("d1")])
        .when(first_visit("d1"))
        .occurred_at(now() - Duration::days(400))
        .then_ok();
}

#[test]
fn the_future_check_comes_before_the_other_rules() {
    // An event that breaks two rules reports the time first (it is checked without history).
    given(&[])
        .when(contract("d1"))
        .occurred_at(now() + Duration::days(1))
        .then_error(|e| matches!(e, RuleViolation::OccurredInFuture { .. }));
}

// ---------------------------------------------------------------------------------------------
// Follow-ups
// ---------------------------------------------------------------------------------------------

#[test]
fn follow_ups_only_on_won_deals() {
    given(&[lead("d1"), contract("d1")])
        .when(follow_up("d1"))
        .then_ok();
    given(&[lead("d1"), contract("d1"), follow_up("d1")])
        .when(follow_up("d1"))
        .then_ok();
    let e = given(&[lead("d1"), first_visit("d1")])
        .when(follow_up("d1"))
        .then_error(|e| {
            matches!(
                e,
                RuleViolation::FollowUpBeforeWin {
                    stage: "first_visit",
                    ..
                }
            )
        });
    assert!(e.to_string().contains("won"), "{e}");
    given(&[
        lead("d1"),
        negotiation("d1"),
        lost("d1", Stage::Negotiation),
    ])
    .when(follow_up("d1"))
    .then_error(|e| matches!(e, RuleViolation::FollowUpBeforeWin { .. }));
    given(&[lead("d1"), contract("d1")])
        .when(follow_up("d9"))
        .then_error(|e| matches!(e, RuleViolation::UnknownDeal { .. }));
}

// ---------------------------------------------------------------------------------------------
// Corrections
// ---------------------------------------------------------------------------------------------

#[test]
fn a_correction_must_name_an_event_of_this_customer() {
    let unknown = Uuid::from_u128(0xDEAD);
    given(&[lead("d1")])
        .when(retract(unknown))
        .then_error(|e| {
            matches!(e, RuleViolation::UnknownCorrectedEvent { event_id, .. } if *event_id == unknown)
        });
    given(&[lead("d1")])
        .when(amend(unknown, lead("d1")))
        .then_error(|e| matches!(e, RuleViolation::UnknownCorrectedEvent { .. }));
}

#[test]
fn a_correction_cannot_be_corrected() {
    let h = [lead("d1"), first_visit("d1"), retract(ev(1))];
    given(&h).when(retract(ev(2))).then_error(
        |e| matches!(e, RuleViolation::CorrectingACorrection { event_id } if *event_id == ev(2)),
    );
    given(&h)
        .when(amend(ev(2), retract(ev(1))))
        .then_error(|e| matches!(e, RuleViolation::CorrectingACorrection { .. }));
}

#[test]
fn an_amendment_keeps_the_event_type() {
    let e = given(&[lead("d1"), first_visit("d1")])
        .when(amend(ev(1), demo("d1")))
        .then_error(|e| {
            matches!(
                e,
                RuleViolation::ReplacementTypeMismatch {
                    original: EventType::FirstVisitMade,
                    replacement: EventType::DemoGiven,
                    ..
                }
            )
        });
    assert!(e.to_string().contains("keeps the type"), "{e}");
}

#[test]
fn retracting_the_reopening_a_later_contract_depends_on_is_refused() {
    let e = given(&[
        lead("d1"),
        lost("d1", Stage::Lead),
        reopened("d1"),
        contract("d1"),
    ])
    .when(retract(ev(2)))
    .then_error(|e| matches!(e, RuleViolation::CorrectionBreaksHistory { event_id, .. } if *event_id == ev(2)));
    // The reason names the rule the remaining history would break.
    assert!(e.to_string().contains("lost"), "{e}");
}

#[test]
fn retracting_the_lead_of_a_deal_with_later_interactions_is_refused() {
    given(&[lead("d1"), first_visit("d1")])
        .when(retract(ev(0)))
        .then_error(|e| matches!(e, RuleViolation::CorrectionBreaksHistory { .. }));
}

#[test]
fn amending_a_lost_stage_so_it_no_longer_matches_is_refused() {
    given(&[lead("d1"), first_visit("d1"), lost("d1", Stage::FirstVisit)])
        .when(amend(ev(2), lost("d1", Stage::Demo)))
        .then_error(|e| matches!(e, RuleViolation::CorrectionBreaksHistory { .. }));
}

#[test]
fn amending_a_reassignment_so_a_later_one_no_longer_names_the_owner_is_refused() {
    given(&[
        lead_by("d1", "rep-1"),
        reassign("rep-1", "rep-2"),
        reassign("rep-2", "rep-3"),
    ])
    .when(amend(ev(1), reassign("rep-1", "rep-4")))
    .then_error(|e| matches!(e, RuleViolation::CorrectionBreaksHistory { .. }));
}

#[test]
fn a_valid_retraction_is_accepted_and_the_event_no_longer_counts() {
    // The first visit did not happen: the deal is back at the lead stage.
    let history = given(&[lead("d1"), first_visit("d1")])
        .when(retract(ev(1)))
        .then_ok();
    assert_eq!(history.deal(&deal("d1")).unwrap().stage, Stage::Lead);
    // So losing it now must name the lead stage.
    let mut h = history;
    let lost_at_visit = proposed(Uuid::from_u128(0xA1), now(), lost("d1", Stage::FirstVisit));
    assert!(matches!(
        h.decide(&lost_at_visit, now()),
        Err(RuleViolation::LostStageMismatch { actual: "lead", .. })
    ));
    let lost_at_lead = proposed(Uuid::from_u128(0xA2), now(), lost("d1", Stage::Lead));
    h.decide(&lost_at_lead, now()).unwrap();
    h.record(lost_at_lead.event_id, lost_at_lead.payload);
}

#[test]
fn retracting_a_contract_makes_the_deal_open_again() {
    let history = given(&[lead("d1"), contract("d1")])
        .when(retract(ev(1)))
        .then_ok();
    let state = history.deal(&deal("d1")).unwrap();
    assert_eq!(state.stage, Stage::Lead);
    // Follow-ups need a won deal again.
    given(&[lead("d1"), contract("d1"), retract(ev(1))])
        .when(follow_up("d1"))
        .then_error(|e| matches!(e, RuleViolation::FollowUpBeforeWin { .. }));
}

#[test]
fn a_valid_amendment_is_accepted_and_its_replacement_counts() {
    given(&[lead("d1"), contract_worth("d1", 500)])
        .when(amend(ev(1), contract_worth("d1", 50_000)))
        .then_ok();
    // Amending a lost stage to the right one (with a consistent history) is fine.
    let history = given(&[
        lead("d1"),
        first_visit("d1"),
        demo("d1"),
        lost("d1", Stage::Demo),
    ])
    .when(amend(ev(3), lost("d1", Stage::Demo)))
    .then_ok();
    assert!(history.deal(&deal("d1")).is_some());
    // Amending the reassignment's target moves the owner.
    let history = given(&[lead_by("d1", "rep-1"), reassign("rep-1", "rep-2")])
        .when(amend(ev(1), reassign("rep-1", "rep-5")))
        .then_ok();
    assert_eq!(history.owner(), Some(&rep("rep-5")));
}

#[test]
fn a_later_correction_of_the_same_event_wins() {
    // Retracted, then amended: the amendment is the latest word.
    let history = given(&[lead("d1"), first_visit("d1"), retract(ev(1))])
        .when(amend(ev(1), first_visit("d1")))
        .then_ok();
    assert_eq!(history.deal(&deal("d1")).unwrap().stage, Stage::FirstVisit);
}

#[test]
fn effective_history_drops_retracted_events_and_corrections_and_applies_amendments() {
    let events = [
        (ev(0), lead("d1")),
        (ev(1), first_visit("d1")),
        (ev(2), contract_worth("d1", 1)),
        (ev(3), retract(ev(1))),
        (ev(4), amend(ev(2), contract_worth("d1", 2))),
    ];
    let effective = rules::effective_history(events.iter().map(|(id, p)| (*id, p)));
    let ids: Vec<Uuid> = effective.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, vec![ev(0), ev(2)]);
    assert_eq!(effective[1].1, &contract_worth("d1", 2));
}

#[test]
fn from_events_rebuilds_the_same_decisions_as_record() {
    let payloads = [
        lead_by("d1", "rep-1"),
        lost("d1", Stage::Lead),
        reopened("d1"),
        contract("d1"),
        reassign("rep-1", "rep-2"),
    ];
    let recorded = given(&payloads).history;
    let events: Vec<LedgerEvent> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| LedgerEvent {
            event_id: ev(i),
            customer_id: customer(),
            revision: i as u64,
            position: 100 + i as u64,
            stored_version: p.event_type().current_version(),
            occurred_at: now(),
            recorded_at: now(),
            recorded_by: ActorId::new("crm-sync").unwrap(),
            correlation_id: None,
            causation_id: None,
            payload: p.clone(),
        })
        .collect();
    let rebuilt = CustomerHistory::from_events(customer(), &events);
    assert_eq!(rebuilt.revision(), recorded.revision());
    assert_eq!(rebuilt.owner(), recorded.owner());
    assert_eq!(rebuilt.deal(&deal("d1")), recorded.deal(&deal("d1")));
    let next = proposed(WHEN_ID, now(), retract(ev(2)));
    assert!(matches!(
        rebuilt.decide(&next, now()),
        Err(RuleViolation::CorrectionBreaksHistory { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Through the ledger: a refused command writes nothing
// ---------------------------------------------------------------------------------------------

fn ledger_in(dir: &tempfile::TempDir) -> (Ledger, Arc<SqliteStore>) {
    let store = Arc::new(SqliteStore::open(dir.path().join("ledger.db")).unwrap());
    (Ledger::new(store.clone()), store)
}

fn live(payload: EventPayload) -> ProposedEvent {
    proposed(Uuid::now_v7(), Utc::now() - Duration::minutes(5), payload)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ledger_refuses_with_a_typed_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, store) = ledger_in(&dir);

    // Unknown customer: nothing at all is written.
    let err = ledger.record(live(first_visit("d1"))).await.unwrap_err();
    assert!(
        matches!(
            err,
            RecordError::Refused(RuleViolation::UnknownCustomer { .. })
        ),
        "{err:?}"
    );
    assert_eq!(store.head_position().await.unwrap(), None);

    let first = ledger.record(live(lead("d1"))).await.unwrap();
    assert_eq!((first.revision, first.position), (0, 1));
    ledger.record(live(lost("d1", Stage::Lead))).await.unwrap();

    for refused in [
        live(contract("d1")),
        live(reassign("rep-1", "rep-1")),
        live(lost("d1", Stage::Lead)),
        proposed(
            Uuid::now_v7(),
            Utc::now() + Duration::hours(1),
            reopened("d1"),
        ),
    ] {
        let err = ledger.record(refused).await.unwrap_err();
        assert!(matches!(err, RecordError::Refused(_)), "{err:?}");
        assert!(err.to_string().starts_with("refused: "), "{err}");
    }
    assert_eq!(store.head_position().await.unwrap(), Some(2));

    // Reopened, the contract goes through.
    ledger.record(live(reopened("d1"))).await.unwrap();
    let signed = ledger.record(live(contract("d1"))).await.unwrap();
    assert_eq!((signed.revision, signed.position), (3, 4));
    let history = ledger.history(&customer()).await.unwrap();
    let types: Vec<EventType> = history.iter().map(|e| e.event_type()).collect();
    assert_eq!(
        types,
        [
            EventType::LeadSourced,
            EventType::DealLost,
            EventType::DealReopened,
            EventType::ContractSigned
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ledger_decides_corrections_against_the_stored_history() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, store) = ledger_in(&dir);
    ledger.record(live(lead("d1"))).await.unwrap();
    ledger.record(live(lost("d1", Stage::Lead))).await.unwrap();
    let reopen = live(reopened("d1"));
    let reopen_id = reopen.event_id;
    ledger.record(reopen).await.unwrap();
    ledger.record(live(contract("d1"))).await.unwrap();

    let err = ledger.record(live(retract(reopen_id))).await.unwrap_err();
    assert!(
        matches!(
            err,
            RecordError::Refused(RuleViolation::CorrectionBreaksHistory { .. })
        ),
        "{err:?}"
    );
    let err = ledger
        .record(live(retract(Uuid::now_v7())))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RecordError::Refused(RuleViolation::UnknownCorrectedEvent { .. })
        ),
        "{err:?}"
    );
    assert_eq!(store.head_position().await.unwrap(), Some(4));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_given_recorded_at_in_the_future_does_not_let_occurred_at_into_the_future() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, store) = ledger_in(&dir);
    let future = Utc::now() + Duration::days(30);
    // Migrated history keeps its recorded_at, but "now" for the decision is never later than
    // the ledger's own clock.
    let mut event = proposed(Uuid::now_v7(), future, lead("d1"));
    // A recorded_at past the clock-skew tolerance is refused as new input (issue 10).
    event.recorded_at = Some(future);
    let err = ledger.record(event.clone()).await.unwrap_err();
    assert!(err.to_string().contains("field /recorded_at"), "{err:?}");
    // One within the tolerance is kept, but does not let occurred_at into the future.
    event.recorded_at = Some(Utc::now() + Duration::seconds(200));
    let err = ledger.record(event.clone()).await.unwrap_err();
    assert!(
        matches!(
            err,
            RecordError::Refused(RuleViolation::OccurredInFuture { .. })
        ),
        "{err:?}"
    );
    // The same through import.
    let line = serde_json::to_string(&pipeline_ledger::contract::line::line_for(&event)).unwrap();
    let result = ledger
        .import(&mut std::io::Cursor::new(line.into_bytes()), &|_| {})
        .await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(store.head_position().await.unwrap(), None);
    // A recorded_at in the past is kept and decides the time.
    let past =
        DateTime::from_timestamp_micros((Utc::now() - Duration::days(300)).timestamp_micros())
            .unwrap();
    let mut old = proposed(Uuid::now_v7(), past - Duration::days(1), lead("d1"));
    old.recorded_at = Some(past);
    ledger.record(old).await.unwrap();
    let history = ledger.history(&customer()).await.unwrap();
    assert_eq!(history[0].recorded_at, past);
}

/// Issue 11: a customer whose only lead was retracted can be corrected back.
#[test]
fn a_retracted_only_lead_can_be_amended_back() {
    let history = given(&[lead("d1"), retract(ev(0))])
        .when(amend(ev(0), lead("d1")))
        .then_ok();
    assert!(history.is_known());
    assert_eq!(
        history.deal(&DealId::new("d1").unwrap()).map(|d| d.status),
        Some(DealStatus::Open)
    );
}

/// Issue 11: after its only lead was retracted, the customer is unknown again, and the refusal
/// says why and how to correct it; a new lead is accepted.
#[test]
fn after_a_retracted_only_lead_the_refusal_says_the_lead_was_retracted() {
    let e = given(&[lead("d1"), retract(ev(0))])
        .when(first_visit("d1"))
        .then_error(|e| {
            matches!(
                e,
                RuleViolation::LeadRetracted {
                    event_type: EventType::FirstVisitMade,
                    ..
                }
            )
        });
    let msg = e.to_string();
    assert!(
        msg.contains("retracted") && msg.contains("amend") && msg.contains("cust-1"),
        "{msg}"
    );
    given(&[lead("d1"), retract(ev(0))])
        .when(lead("d2"))
        .then_ok();
    // Any correction is still decided against the history: it must name one of its events.
    given(&[lead("d1"), retract(ev(0))])
        .when(retract(ev(9)))
        .then_error(|e| matches!(e, RuleViolation::UnknownCorrectedEvent { .. }));
}
