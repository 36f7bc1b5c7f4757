//! The deal state machine: the one place that says what each event does to a deal.
//!
//! A deal is opened by a sourced lead, moves between stages through the stage interactions (in
//! any direction: forward, skipping stages, or back), is won by a signed contract, can be lost
//! at the stage it is in and reopened there, and once won is maintained by follow-ups.
//!
//! The rules ([`super::rules`]) decide with [`transition`]: an event the machine refuses is not
//! recorded. The projections' walk (`projections::timeline`) folds with the same function, so
//! that what the rules accept and what the read models show cannot drift apart (the test
//! `tests/deal_state_machine.rs` checks that they agree on every prefix of generated histories).
//!
//! Whether a stage move is an advance or a move back depends on the pipeline policy's stage
//! order, which is the projections' business: the machine only reports where the deal came from
//! and where it went.

use super::events::{EventPayload, Stage};
use serde::{Deserialize, Serialize};

/// Where a deal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealStatus {
    Open,
    Won,
    Lost,
}

impl DealStatus {
    /// Every status.
    pub const ALL: [DealStatus; 3] = [DealStatus::Open, DealStatus::Won, DealStatus::Lost];

    /// The stored name (the read models' `rm_deals.status`).
    pub fn as_str(&self) -> &'static str {
        match self {
            DealStatus::Open => "open",
            DealStatus::Won => "won",
            DealStatus::Lost => "lost",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// One deal's place in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DealState {
    /// The stage the latest stage interaction put the deal in (for a lost deal, the stage it was
    /// lost in; for a won deal, [`Stage::Won`]).
    pub stage: Stage,
    pub status: DealStatus,
}

impl DealState {
    /// A deal just opened by its lead.
    pub const OPENED: DealState = DealState {
        stage: Stage::Lead,
        status: DealStatus::Open,
    };
}

/// What an event asks of its deal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DealEvent {
    /// `LeadSourced`: a new deal.
    Open,
    /// `FirstVisitMade`, `DemoGiven`, `NegotiationHeld`, `ContractSigned`: the deal enters the
    /// stage (`ContractSigned` enters [`Stage::Won`], which wins it).
    Enter(Stage),
    /// `FollowUpLogged`: maintenance of a won deal.
    FollowUp,
    /// `DealLost`, naming the stage the deal is lost at.
    Lose { stage: Stage },
    /// `DealReopened`.
    Reopen,
}

impl DealEvent {
    /// What a payload asks of its deal; `None` for customer-level events (reassignments,
    /// corrections).
    pub fn of(payload: &EventPayload) -> Option<DealEvent> {
        Some(match payload {
            EventPayload::LeadSourced(_) => DealEvent::Open,
            EventPayload::FirstVisitMade(_)
            | EventPayload::DemoGiven(_)
            | EventPayload::NegotiationHeld(_)
            | EventPayload::ContractSigned(_) => {
                DealEvent::Enter(payload.stage_entered().expect("stage events enter a stage"))
            }
            EventPayload::FollowUpLogged(_) => DealEvent::FollowUp,
            EventPayload::DealLost(e) => DealEvent::Lose { stage: e.stage },
            EventPayload::DealReopened(_) => DealEvent::Reopen,
            EventPayload::CustomerReassigned(_)
            | EventPayload::EventCorrected(_)
            | EventPayload::PersonalDataErased(_) => return None,
        })
    }
}

/// What an accepted event did to its deal, for those who keep more than the state (the
/// projections' stage stays).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DealTransition {
    /// The deal was opened at [`Stage::Lead`].
    Opened,
    /// A stage interaction on an open deal: `from` and `to` are equal when the deal stays in its
    /// stage; `to` = [`Stage::Won`] wins the deal.
    Entered { from: Stage, to: Stage },
    /// A follow-up of a won deal; nothing changes.
    FollowedUp,
    /// The open deal was lost at the stage it is in.
    Lost { at: Stage },
    /// The lost deal was reopened at the stage it was lost in.
    Reopened { at: Stage },
}

/// Why a deal refuses an event. The rules turn these into [`super::RuleViolation`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DealRefusal {
    /// A lead for a deal that already exists.
    Exists,
    /// An event on a deal no lead opened.
    Unknown,
    /// A stage interaction or a loss on a lost deal.
    IsLost,
    /// A stage interaction or a loss on a won deal.
    IsWon,
    /// A follow-up of a deal that is not won.
    NotWon { stage: Stage },
    /// A loss naming another stage than the deal's.
    LostStageMismatch { claimed: Stage, actual: Stage },
    /// A reopening of a deal that is not lost.
    NotLost,
}

/// An accepted event: the deal's new state and the transition that led there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DealStep {
    pub state: DealState,
    pub transition: DealTransition,
}

/// The transition function: what `event` does to a deal in state `deal` (`None`: no such deal
/// yet), or why the deal refuses it.
pub fn transition(deal: Option<DealState>, event: DealEvent) -> Result<DealStep, DealRefusal> {
    let step = |state, transition| Ok(DealStep { state, transition });
    let Some(state) = deal else {
        return match event {
            DealEvent::Open => step(DealState::OPENED, DealTransition::Opened),
            _ => Err(DealRefusal::Unknown),
        };
    };
    match event {
        DealEvent::Open => Err(DealRefusal::Exists),
        DealEvent::Enter(to) => {
            open(state)?;
            let status = if to == Stage::Won {
                DealStatus::Won
            } else {
                DealStatus::Open
            };
            let from = state.stage;
            step(
                DealState { stage: to, status },
                DealTransition::Entered { from, to },
            )
        }
        DealEvent::FollowUp => match state.status {
            DealStatus::Won => step(state, DealTransition::FollowedUp),
            _ => Err(DealRefusal::NotWon { stage: state.stage }),
        },
        DealEvent::Lose { stage } => {
            open(state)?;
            if stage != state.stage {
                return Err(DealRefusal::LostStageMismatch {
                    claimed: stage,
                    actual: state.stage,
                });
            }
            let lost = DealState {
                status: DealStatus::Lost,
                ..state
            };
            step(lost, DealTransition::Lost { at: state.stage })
        }
        DealEvent::Reopen => match state.status {
            DealStatus::Lost => {
                let reopened = DealState {
                    status: DealStatus::Open,
                    ..state
                };
                step(reopened, DealTransition::Reopened { at: state.stage })
            }
            _ => Err(DealRefusal::NotLost),
        },
    }
}

/// Only an open deal moves between stages or is lost.
fn open(state: DealState) -> Result<(), DealRefusal> {
    match state.status {
        DealStatus::Open => Ok(()),
        DealStatus::Lost => Err(DealRefusal::IsLost),
        DealStatus::Won => Err(DealRefusal::IsWon),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(stage: Stage, status: DealStatus) -> Option<DealState> {
        Some(DealState { stage, status })
    }

    /// One row per (state, event): the expected step or refusal.
    fn check(deal: Option<DealState>, event: DealEvent, expected: Result<DealStep, DealRefusal>) {
        assert_eq!(transition(deal, event), expected, "{deal:?} on {event:?}");
    }

    fn to(
        stage: Stage,
        status: DealStatus,
        transition: DealTransition,
    ) -> Result<DealStep, DealRefusal> {
        Ok(DealStep {
            state: DealState { stage, status },
            transition,
        })
    }

    #[test]
    fn transitions() {
        use DealStatus::{Lost, Open, Won};
        use Stage::{Demo, FirstVisit, Lead, Negotiation};
        check(
            None,
            DealEvent::Open,
            to(Lead, Open, DealTransition::Opened),
        );
        check(None, DealEvent::Enter(Demo), Err(DealRefusal::Unknown));
        check(None, DealEvent::Reopen, Err(DealRefusal::Unknown));
        check(at(Lead, Open), DealEvent::Open, Err(DealRefusal::Exists));
        // Forward, skipping, back and staying all move an open deal.
        for (from, next) in [
            (Lead, FirstVisit),
            (Lead, Negotiation),
            (Demo, FirstVisit),
            (Demo, Demo),
        ] {
            let entered = DealTransition::Entered { from, to: next };
            check(
                at(from, Open),
                DealEvent::Enter(next),
                to(next, Open, entered),
            );
        }
        let won = DealTransition::Entered {
            from: Demo,
            to: Stage::Won,
        };
        check(
            at(Demo, Open),
            DealEvent::Enter(Stage::Won),
            to(Stage::Won, Won, won),
        );
        check(
            at(Demo, Lost),
            DealEvent::Enter(Negotiation),
            Err(DealRefusal::IsLost),
        );
        check(
            at(Stage::Won, Won),
            DealEvent::Enter(Negotiation),
            Err(DealRefusal::IsWon),
        );
        check(
            at(Stage::Won, Won),
            DealEvent::FollowUp,
            to(Stage::Won, Won, DealTransition::FollowedUp),
        );
        check(
            at(Demo, Open),
            DealEvent::FollowUp,
            Err(DealRefusal::NotWon { stage: Demo }),
        );
        check(
            at(Demo, Open),
            DealEvent::Lose { stage: Demo },
            to(Demo, Lost, DealTransition::Lost { at: Demo }),
        );
        check(
            at(Demo, Open),
            DealEvent::Lose { stage: Lead },
            Err(DealRefusal::LostStageMismatch {
                claimed: Lead,
                actual: Demo,
            }),
        );
        check(
            at(Demo, Lost),
            DealEvent::Lose { stage: Demo },
            Err(DealRefusal::IsLost),
        );
        check(
            at(Stage::Won, Won),
            DealEvent::Lose { stage: Stage::Won },
            Err(DealRefusal::IsWon),
        );
        check(
            at(Demo, Lost),
            DealEvent::Reopen,
            to(Demo, Open, DealTransition::Reopened { at: Demo }),
        );
        check(at(Demo, Open), DealEvent::Reopen, Err(DealRefusal::NotLost));
        check(
            at(Stage::Won, Won),
            DealEvent::Reopen,
            Err(DealRefusal::NotLost),
        );
    }

    #[test]
    fn status_names_round_trip() {
        for s in DealStatus::ALL {
            assert_eq!(DealStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(DealStatus::parse("closed"), None);
    }
}
