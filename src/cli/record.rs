//! `pipeline-ledger record <interaction>`: one subcommand per event type, with a flag per field.
//! The flags build a typed event, which then goes through the same schema validation and domain
//! rules as an imported line.

use anyhow::bail;
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand, ValueEnum};
use pipeline_ledger::contract::line::parse_replacement;
use pipeline_ledger::domain::*;
use pipeline_ledger::ledger::{FilledIn, RecordOptions};
use pipeline_ledger::store::ExpectedRevision;
use uuid::Uuid;

/// Fields every recorded event has.
#[derive(Debug, Args)]
pub struct Common {
    /// The customer.
    #[arg(long)]
    pub customer: CustomerId,
    /// The rep who performed the interaction.
    #[arg(long)]
    pub rep: RepId,
    /// When it happened: RFC 3339 (2026-11-20T14:00:00Z) or a date (2026-11-20). Default: now.
    #[arg(long, value_parser = parse_time)]
    pub occurred_at: Option<DateTime<Utc>>,
    /// Who records it. Default: the rep.
    #[arg(long)]
    pub recorded_by: Option<ActorId>,
    /// The event id (UUID). Give one to make a retry safe: repeating the command with the same
    /// id and the same flags prints where the first one landed ("already recorded") and writes
    /// nothing; the same id with other flags is refused. Default: a new UUID v7.
    #[arg(long)]
    pub event_id: Option<Uuid>,
    /// The revision the customer's stream must be at (the revision `record` or `history` last
    /// showed), or `none` for a customer with no events. If another writer moved it, the event is
    /// refused at once and nothing is written. Default: decided on the latest history, and a
    /// race with another writer is decided again.
    #[arg(long, value_parser = parse_expected_revision)]
    pub expected_revision: Option<ExpectedRevision>,
    /// A UUID shared by the events of one business process (for example, everything one import
    /// job or one workflow run wrote), to find them together later.
    #[arg(long, value_name = "UUID")]
    pub correlation_id: Option<Uuid>,
    /// The UUID of the event that caused this one (for example, the lost event a reopening
    /// answers).
    #[arg(long, value_name = "UUID")]
    pub causation_id: Option<Uuid>,
}

/// The planned-visit record (purpose, plan, expected result, actual outcome).
#[derive(Debug, Args)]
pub struct VisitArgs {
    /// Why the visit was made (拜访目的), e.g. "find their needs". Free text; no personal data.
    #[arg(long, value_name = "TEXT")]
    pub purpose: String,
    /// The action plan for the visit (行动计划). Free text.
    #[arg(long, value_name = "TEXT")]
    pub plan: String,
    /// The result expected before the visit (预期结果). Free text.
    #[arg(long, value_name = "TEXT")]
    pub expected: String,
    /// What actually happened (实际结果). Free text.
    #[arg(long, value_name = "TEXT")]
    pub outcome: String,
}

impl VisitArgs {
    fn record(self) -> VisitRecord {
        VisitRecord {
            purpose: self.purpose,
            action_plan: self.plan,
            expected_result: self.expected,
            actual_outcome: self.outcome,
        }
    }
}

/// The interaction to record.
#[derive(Debug, Subcommand)]
pub enum RecordCommand {
    /// Step 1: a lead was sourced (opens a deal; the first makes the customer known).
    #[command(after_long_help = super::examples::LEAD_SOURCED)]
    LeadSourced {
        #[command(flatten)]
        common: Common,
        /// The deal, as named when its lead was sourced (letters, digits, '.', '_', '-').
        #[arg(long, value_name = "DEAL")]
        deal: DealId,
        /// Where the lead came from.
        #[arg(long, value_enum)]
        source: SourceArg,
        /// The customer's company name.
        #[arg(long, value_name = "NAME")]
        company: String,
        /// The contact's full name (personal data).
        #[arg(long, value_name = "NAME")]
        contact_name: String,
        /// The contact's phone number (personal data).
        #[arg(long, value_name = "PHONE")]
        phone: Option<String>,
        /// The contact's e-mail address (personal data).
        #[arg(long, value_name = "EMAIL")]
        email: Option<String>,
        /// Free-text notes on the lead (personal data: they may name people).
        #[arg(long, value_name = "TEXT")]
        notes: Option<String>,
    },
    /// Step 2: the first visit.
    #[command(after_long_help = super::examples::FIRST_VISIT)]
    FirstVisit {
        #[command(flatten)]
        common: Common,
        /// The deal, as named when its lead was sourced (letters, digits, '.', '_', '-').
        #[arg(long, value_name = "DEAL")]
        deal: DealId,
        #[command(flatten)]
        visit: VisitArgs,
        /// A need found (repeatable).
        #[arg(long = "need")]
        needs: Vec<String>,
        /// Buying intent, 1 to 5.
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
        intent: u8,
    },
    /// Step 3: a product demo.
    #[command(after_long_help = super::examples::DEMO_HELD)]
    Demo {
        #[command(flatten)]
        common: Common,
        /// The deal, as named when its lead was sourced (letters, digits, '.', '_', '-').
        #[arg(long, value_name = "DEAL")]
        deal: DealId,
        #[command(flatten)]
        visit: VisitArgs,
        /// The second presenter (副谈); the rep leads.
        #[arg(long)]
        second_presenter: Option<RepId>,
        /// A product shown (repeatable).
        #[arg(long = "product")]
        products: Vec<String>,
    },
    /// Step 4: a negotiation round.
    #[command(after_long_help = super::examples::NEGOTIATION)]
    Negotiation {
        #[command(flatten)]
        common: Common,
        /// The deal, as named when its lead was sourced (letters, digits, '.', '_', '-').
        #[arg(long, value_name = "DEAL")]
        deal: DealId,
        #[command(flatten)]
        visit: VisitArgs,
        /// An objection as TEXT:HANDLING[:resolved] (repeatable), e.g. "price too high:leave_room:resolved".
        #[arg(long = "objection", value_parser = parse_objection)]
        objections: Vec<Objection>,
        /// A price concession, e.g. "500.00 EUR".
        #[arg(long, value_parser = parse_money)]
        concession: Option<Money>,
    },
    /// Step 5: the contract (the deal is won).
    #[command(after_long_help = super::examples::CONTRACT)]
    Contract {
        #[command(flatten)]
        common: Common,
        /// The deal, as named when its lead was sourced (letters, digits, '.', '_', '-').
        #[arg(long, value_name = "DEAL")]
        deal: DealId,
        /// The value in major units with its currency, e.g. "12500.00 EUR".
        #[arg(long, value_parser = parse_money)]
        value: Money,
        /// The contract's term in months.
        #[arg(long, value_name = "MONTHS")]
        term_months: u32,
        /// The contract's reference in the company's own records, e.g. "C-2026-0042".
        #[arg(long, value_name = "REF")]
        contract_ref: Option<String>,
    },
    /// Step 6: a follow-up with a won customer.
    #[command(after_long_help = super::examples::FOLLOW_UP)]
    FollowUp {
        #[command(flatten)]
        common: Common,
        /// The deal, as named when its lead was sourced (letters, digits, '.', '_', '-').
        #[arg(long, value_name = "DEAL")]
        deal: DealId,
        /// What kind of follow-up it was.
        #[arg(long, value_enum)]
        kind: FollowUpArg,
        /// What came of it. Free text.
        #[arg(long, value_name = "TEXT")]
        outcome: String,
        /// When the next follow-up is due (YYYY-MM-DD).
        #[arg(long)]
        next_due: Option<NaiveDate>,
        /// A repeat order's value, e.g. "3000.00 EUR".
        #[arg(long, value_parser = parse_money)]
        order_value: Option<Money>,
    },
    /// A deal was lost.
    #[command(after_long_help = super::examples::LOST)]
    Lost {
        #[command(flatten)]
        common: Common,
        /// The deal, as named when its lead was sourced (letters, digits, '.', '_', '-').
        #[arg(long, value_name = "DEAL")]
        deal: DealId,
        /// Why the deal was lost.
        #[arg(long, value_enum)]
        reason: LostReasonArg,
        /// The stage it was lost at (must be the deal's current stage).
        #[arg(long, value_enum)]
        stage: StageArg,
        /// More on why, in words. Free text.
        #[arg(long, value_name = "TEXT")]
        details: Option<String>,
    },
    /// A lost deal came back.
    #[command(after_long_help = super::examples::REOPENED)]
    Reopened {
        #[command(flatten)]
        common: Common,
        /// The deal, as named when its lead was sourced (letters, digits, '.', '_', '-').
        #[arg(long, value_name = "DEAL")]
        deal: DealId,
        /// Why it came back. Free text.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// The customer moves to another rep (the --rep is who made the change).
    #[command(after_long_help = super::examples::REASSIGN)]
    Reassign {
        #[command(flatten)]
        common: Common,
        /// The rep who owns the customer now (must be the current owner).
        #[arg(long, value_name = "REP")]
        from: RepId,
        /// The rep who takes the customer over.
        #[arg(long, value_name = "REP")]
        to: RepId,
        /// Why. Free text.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Amend or retract an earlier event of the customer.
    #[command(after_long_help = super::examples::CORRECT)]
    Correct {
        #[command(flatten)]
        common: Common,
        /// The id of the event to correct.
        #[arg(long)]
        event: Uuid,
        /// The event did not happen.
        #[arg(long, conflicts_with = "amend")]
        retract: bool,
        /// The corrected event as JSON: {"type": "...", "data": {...}} (same type as the original).
        #[arg(long)]
        amend: Option<String>,
        /// Why the correction is made. Free text; kept in the log with it.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

macro_rules! value_enum {
    ($arg:ident => $target:ty { $($variant:ident),* $(,)? }) => {
        #[derive(Debug, Clone, Copy, ValueEnum)]
        #[value(rename_all = "snake_case")]
        pub enum $arg { $($variant),* }
        impl From<$arg> for $target {
            fn from(a: $arg) -> $target {
                match a { $($arg::$variant => <$target>::$variant),* }
            }
        }
    };
}

value_enum!(SourceArg => LeadSource { Referral, TradeShow, Web, ColdCall, Partner, ExistingCustomer, Other });
value_enum!(FollowUpArg => FollowUpKind { CareCall, Visit, NewNeed, RepeatOrder, Complaint, NewProduct });
value_enum!(LostReasonArg => LostReason { Price, Competitor, NoBudget, NoDecision, Timing, ProductFit, Unresponsive, Other });
value_enum!(StageArg => Stage { Lead, FirstVisit, Demo, Negotiation, Won });

/// Parses an RFC 3339 time or a plain date (midnight UTC).
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        .map_err(|_| format!("{s:?} is not an RFC 3339 time or a YYYY-MM-DD date"))
}

/// Parses `--expected-revision`: a stream revision, or `none` for no stream yet.
fn parse_expected_revision(s: &str) -> Result<ExpectedRevision, String> {
    if s == "none" {
        return Ok(ExpectedRevision::NoStream);
    }
    s.parse::<u64>().map(ExpectedRevision::Exact).map_err(|_| {
        format!("{s:?} is not a revision: give a number (0 is the first event) or none")
    })
}

fn parse_money(s: &str) -> Result<Money, String> {
    let (amount, currency) = s
        .trim()
        .split_once(' ')
        .ok_or_else(|| format!("{s:?}: write an amount and a currency, e.g. \"12500.00 EUR\""))?;
    let currency = Currency::active(currency.trim()).map_err(|e| e.to_string())?;
    Money::from_decimal(amount.trim(), currency).map_err(|e| e.to_string())
}

fn parse_objection(s: &str) -> Result<Objection, String> {
    let mut parts = s.split(':');
    let objection = parts.next().unwrap_or_default().trim().to_string();
    let handling = parts
        .next()
        .ok_or_else(|| format!("{s:?}: write TEXT:HANDLING, e.g. \"price too high:leave_room\""))?;
    let handling: ObjectionHandling = serde_json::from_value(serde_json::json!(handling.trim()))
        .map_err(|_| {
            format!(
                "{handling:?} is not a handling method (give_face, change_time, change_place, \
                 find_acquaintance, go_higher_up, apply_pressure, leave_room, find_cause)"
            )
        })?;
    let resolved = match parts.next().map(str::trim) {
        None | Some("") => false,
        Some("resolved") => true,
        Some(other) => {
            return Err(format!(
                "{other:?}: the third part can only be \"resolved\""
            ));
        }
    };
    Ok(Objection {
        objection,
        handling,
        resolved,
    })
}

/// Builds the proposed event from the command's flags, with how to record it: the expected
/// revision the caller named and the fields the ledger filled in.
pub fn proposed_event(cmd: RecordCommand) -> anyhow::Result<(ProposedEvent, RecordOptions)> {
    let (common, payload) = match cmd {
        RecordCommand::LeadSourced {
            common,
            deal,
            source,
            company,
            contact_name,
            phone,
            email,
            notes,
        } => {
            let payload = EventPayload::LeadSourced(LeadSourced {
                deal_id: deal,
                rep_id: common.rep.clone(),
                source: source.into(),
                company,
                contact: Contact {
                    name: contact_name.into(),
                    phone: phone.map(Into::into),
                    email: email.map(Into::into),
                    role: None,
                },
                qualification: None,
                notes: notes.map(Into::into),
            });
            (common, payload)
        }
        RecordCommand::FirstVisit {
            common,
            deal,
            visit,
            needs,
            intent,
        } => {
            let payload = EventPayload::FirstVisitMade(FirstVisitMade {
                deal_id: deal,
                rep_id: common.rep.clone(),
                visit: visit.record(),
                needs,
                intent_level: intent,
            });
            (common, payload)
        }
        RecordCommand::Demo {
            common,
            deal,
            visit,
            second_presenter,
            products,
        } => {
            let payload = EventPayload::DemoGiven(DemoGiven {
                deal_id: deal,
                rep_id: common.rep.clone(),
                visit: visit.record(),
                lead_presenter: common.rep.clone(),
                second_presenter,
                products_shown: products,
                attendees: Vec::new(),
            });
            (common, payload)
        }
        RecordCommand::Negotiation {
            common,
            deal,
            visit,
            objections,
            concession,
        } => {
            let payload = EventPayload::NegotiationHeld(NegotiationHeld {
                deal_id: deal,
                rep_id: common.rep.clone(),
                visit: visit.record(),
                objections,
                concession,
            });
            (common, payload)
        }
        RecordCommand::Contract {
            common,
            deal,
            value,
            term_months,
            contract_ref,
        } => {
            let payload = EventPayload::ContractSigned(ContractSigned {
                deal_id: deal,
                rep_id: common.rep.clone(),
                value,
                term_months,
                contract_ref,
            });
            (common, payload)
        }
        RecordCommand::FollowUp {
            common,
            deal,
            kind,
            outcome,
            next_due,
            order_value,
        } => {
            let payload = EventPayload::FollowUpLogged(FollowUpLogged {
                deal_id: deal,
                rep_id: common.rep.clone(),
                kind: kind.into(),
                outcome,
                next_due_on: next_due,
                order_value,
            });
            (common, payload)
        }
        RecordCommand::Lost {
            common,
            deal,
            reason,
            stage,
            details,
        } => {
            let payload = EventPayload::DealLost(DealLost {
                deal_id: deal,
                rep_id: common.rep.clone(),
                reason: reason.into(),
                stage: stage.into(),
                details,
            });
            (common, payload)
        }
        RecordCommand::Reopened {
            common,
            deal,
            reason,
        } => {
            let payload = EventPayload::DealReopened(DealReopened {
                deal_id: deal,
                rep_id: common.rep.clone(),
                reason,
            });
            (common, payload)
        }
        RecordCommand::Reassign {
            common,
            from,
            to,
            reason,
        } => {
            let payload = EventPayload::CustomerReassigned(CustomerReassigned {
                rep_id: common.rep.clone(),
                from_rep_id: from,
                to_rep_id: to,
                reason,
            });
            (common, payload)
        }
        RecordCommand::Correct {
            common,
            event,
            retract,
            amend,
            reason,
        } => {
            let correction = match (retract, amend) {
                (true, _) => Correction::Retract,
                (false, Some(json)) => {
                    let replacement =
                        parse_replacement(&json).map_err(|e| anyhow::anyhow!("--amend: {e}"))?;
                    Correction::Amend {
                        replacement: Box::new(replacement),
                    }
                }
                (false, None) => bail!("say what the correction does: --retract or --amend JSON"),
            };
            let payload = EventPayload::EventCorrected(EventCorrected {
                rep_id: common.rep.clone(),
                corrected_event_id: event,
                correction,
                reason,
            });
            (common, payload)
        }
    };
    let options = RecordOptions {
        expected: common.expected_revision,
        filled_in: FilledIn {
            occurred_at: common.occurred_at.is_none(),
            recorded_by: common.recorded_by.is_none(),
        },
    };
    let recorded_by = match common.recorded_by {
        Some(actor) => actor,
        None => ActorId::new(common.rep.as_str()).expect("a rep id is a valid actor id"),
    };
    let proposed = ProposedEvent {
        event_id: common.event_id.unwrap_or_else(Uuid::now_v7),
        customer_id: common.customer,
        occurred_at: common.occurred_at.unwrap_or_else(Utc::now),
        recorded_at: None,
        recorded_by,
        correlation_id: common.correlation_id,
        causation_id: common.causation_id,
        payload,
    };
    Ok((proposed, options))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_flags_parse_exactly() {
        let m = parse_money("12500.50 EUR").unwrap();
        assert_eq!(m.amount_minor, 1_250_050);
        assert!(parse_money("12500.50").unwrap_err().contains("currency"));
        assert!(parse_money("1.5 eur").is_err());
    }

    #[test]
    fn objection_flags_parse_with_their_handling() {
        let o = parse_objection("price too high:leave_room:resolved").unwrap();
        assert_eq!(o.handling, ObjectionHandling::LeaveRoom);
        assert!(o.resolved);
        assert!(parse_objection("price").is_err());
        assert!(
            parse_objection("price:shout")
                .unwrap_err()
                .contains("shout")
        );
    }

    #[test]
    fn times_accept_rfc3339_and_dates() {
        assert_eq!(
            parse_time("2026-11-20").unwrap(),
            parse_time("2026-11-20T00:00:00Z").unwrap()
        );
        assert!(parse_time("20/11/2026").is_err());
    }
}
