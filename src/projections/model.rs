//! The rows of the read models, as stored in the `rm_` tables and as held in memory. The same
//! types serve the SQLite tables and in-memory replays, so that both can be compared row by row.
//! `projections/README.md` documents each column.

use crate::domain::{LeadSource, LostReason, Stage};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// The lifecycle state of a customer, as derived from events (dormancy, which depends on the
/// clock, is applied at query time from [`CustomerRow::dormant_after`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleState {
    Lead,
    Visited,
    Demoed,
    Negotiating,
    Won,
    Retained,
    Lost,
    Dormant,
    ReEngaged,
}

impl LifecycleState {
    /// Every state, in report order.
    pub const ALL: [LifecycleState; 9] = [
        LifecycleState::Lead,
        LifecycleState::Visited,
        LifecycleState::Demoed,
        LifecycleState::Negotiating,
        LifecycleState::Won,
        LifecycleState::Retained,
        LifecycleState::ReEngaged,
        LifecycleState::Dormant,
        LifecycleState::Lost,
    ];

    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            LifecycleState::Lead => "lead",
            LifecycleState::Visited => "visited",
            LifecycleState::Demoed => "demoed",
            LifecycleState::Negotiating => "negotiating",
            LifecycleState::Won => "won",
            LifecycleState::Retained => "retained",
            LifecycleState::Lost => "lost",
            LifecycleState::Dormant => "dormant",
            LifecycleState::ReEngaged => "re_engaged",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The open-deal state for a stage.
    pub fn for_open_stage(stage: Stage) -> Self {
        match stage {
            Stage::Lead => LifecycleState::Lead,
            Stage::FirstVisit => LifecycleState::Visited,
            Stage::Demo => LifecycleState::Demoed,
            Stage::Negotiation => LifecycleState::Negotiating,
            Stage::Won => LifecycleState::Won,
        }
    }
}

/// Where a deal stands: the domain's deal status (its stored names are `rm_deals.status`).
pub use crate::domain::deal::DealStatus;

/// How a deal came into a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// The lead was sourced: the deal's first stay.
    Opened,
    /// From an earlier stage in the pipeline order (possibly skipping stages).
    Advanced,
    /// From a later stage in the pipeline order.
    MovedBack,
    /// The lost deal was reopened at the stage where it was lost.
    Reopened,
}

/// How a deal left a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitKind {
    /// To a later stage (possibly skipping stages; won included).
    Advanced,
    /// To an earlier stage.
    MovedBack,
    /// The deal was lost in this stage.
    Lost,
}

macro_rules! text_enum {
    ($t:ty { $($v:ident => $s:literal),* }) => {
        impl $t {
            /// The stored name.
            pub fn as_str(&self) -> &'static str {
                match self { $(<$t>::$v => $s),* }
            }
            /// Parses a stored name.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(<$t>::$v),)* _ => None }
            }
        }
    };
}

text_enum!(EntryKind { Opened => "opened", Advanced => "advanced", MovedBack => "moved_back", Reopened => "reopened" });
text_enum!(ExitKind { Advanced => "advanced", MovedBack => "moved_back", Lost => "lost" });

/// `rm_customers`: one row per known customer (lifecycle projection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerRow {
    pub customer_id: String,
    pub company: String,
    /// Event-derived state; `dormant` is applied at query time.
    pub state: LifecycleState,
    pub owner_rep: String,
    pub current_deal_id: Option<String>,
    pub current_stage: Option<Stage>,
    pub current_stage_since: Option<DateTime<Utc>>,
    pub first_seen_at: DateTime<Utc>,
    pub last_interaction_at: DateTime<Utc>,
    pub next_followup_due: Option<NaiveDate>,
    /// For a won customer: when it becomes dormant if nothing else happens.
    pub dormant_after: Option<DateTime<Utc>>,
    pub open_deals: u32,
    pub won_deals: u32,
    pub lost_deals: u32,
    /// How many times the customer came back after a dormant spell.
    pub reengagements: u32,
    /// Effective events (after corrections) of the customer.
    pub event_count: u32,
    /// Position of the customer's latest event (corrections included).
    pub last_position: u64,
}

/// `rm_customer_values`: contract value per customer and currency (lifecycle projection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerValueRow {
    pub customer_id: String,
    pub currency: String,
    pub contracts_minor: i64,
    pub contract_count: u32,
    pub repeat_orders_minor: i64,
}

/// `rm_deals`: one row per deal (conversion projection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealRow {
    pub customer_id: String,
    pub deal_id: String,
    pub source: LeadSource,
    pub opened_at: DateTime<Utc>,
    /// The rep who owned the customer when the lead was sourced.
    pub owner_at_open: String,
    pub status: DealStatus,
    pub stage: Stage,
    pub stage_since: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    pub won_at: Option<DateTime<Utc>>,
    pub won_value_minor: Option<i64>,
    pub won_currency: Option<String>,
    /// The rep who owned the customer when the contract was signed.
    pub won_owner: Option<String>,
    pub lost_at: Option<DateTime<Utc>>,
    pub lost_reason: Option<LostReason>,
    pub reopen_count: u32,
    /// The lead's worksheet score (0–7), when it had a worksheet.
    pub qualification_score: Option<u32>,
    /// The worksheet's criteria met, as bits (bit i: `Qualification::CRITERIA[i]`).
    pub qualification_criteria: Option<u32>,
    /// The buying intent (1–5) judged at the deal's first visit.
    pub first_visit_intent: Option<u32>,
}

/// `rm_stage_stays`: one row per stay of a deal in a stage (conversion projection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageStayRow {
    pub customer_id: String,
    pub deal_id: String,
    /// 0 for the first stay of the deal, then 1, 2, …
    pub seq: u32,
    pub stage: Stage,
    pub entered_at: DateTime<Utc>,
    pub entry: EntryKind,
    /// The stage the deal came from (`None` when opened or reopened).
    pub from_stage: Option<Stage>,
    pub exited_at: Option<DateTime<Utc>>,
    pub exit: Option<ExitKind>,
    /// The stage the deal went to (`None` while in it or when lost).
    pub to_stage: Option<Stage>,
    /// Why the deal was lost, when this stay ended in a loss.
    pub lost_reason: Option<LostReason>,
}

/// `rm_activity`: one row per effective event (rep activity projection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityRow {
    pub customer_id: String,
    pub event_id: String,
    pub position: u64,
    pub occurred_at: DateTime<Utc>,
    pub event_type: String,
    pub deal_id: Option<String>,
    /// The rep who performed the interaction (activity is credited to this rep).
    pub performer_rep: String,
    /// The rep who owned the customer at that moment (results are credited to this rep).
    pub owner_rep: String,
    /// Contract value for ContractSigned, order value for a repeat-order FollowUpLogged.
    pub value_minor: Option<i64>,
    pub currency: Option<String>,
    /// For a ContractSigned: seconds from the lead to the contract.
    pub close_seconds: Option<i64>,
    /// For a CustomerReassigned: from and to.
    pub from_rep: Option<String>,
    pub to_rep: Option<String>,
    /// Whether the event, on its deal, changed the deal's stage or status (false for an event on
    /// a deal the history does not know, which only filtered replays can produce).
    pub applied: bool,
}

/// `rm_followups`: one row per follow-up due date set (rep activity projection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUpRow {
    pub customer_id: String,
    /// The follow-up that set the due date.
    pub event_id: String,
    pub deal_id: String,
    pub due_on: NaiveDate,
    /// The rep who owned the customer on the due date.
    pub owner_rep: String,
    /// When the next follow-up with the customer happened, if it has.
    pub fulfilled_at: Option<DateTime<Utc>>,
}

/// Every row one customer contributes to the read models.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomerRows {
    pub customer: Option<CustomerRow>,
    pub values: Vec<CustomerValueRow>,
    pub deals: Vec<DealRow>,
    pub stays: Vec<StageStayRow>,
    pub activities: Vec<ActivityRow>,
    pub followups: Vec<FollowUpRow>,
}

/// The whole read model: every table's rows, sorted by primary key, and the log position and log
/// time it reflects.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReadModel {
    /// Position of the last event applied (`None`: nothing applied).
    pub position: Option<u64>,
    /// The latest `occurred_at` among the events applied: the default clock of reports.
    pub log_time: Option<DateTime<Utc>>,
    pub customers: Vec<CustomerRow>,
    pub values: Vec<CustomerValueRow>,
    pub deals: Vec<DealRow>,
    pub stays: Vec<StageStayRow>,
    pub activities: Vec<ActivityRow>,
    pub followups: Vec<FollowUpRow>,
}

impl ReadModel {
    /// Sorts every table by its primary key, so that two models built in different orders
    /// compare equal.
    pub fn normalize(&mut self) {
        self.customers
            .sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
        self.values
            .sort_by(|a, b| (&a.customer_id, &a.currency).cmp(&(&b.customer_id, &b.currency)));
        self.deals
            .sort_by(|a, b| (&a.customer_id, &a.deal_id).cmp(&(&b.customer_id, &b.deal_id)));
        self.stays.sort_by(|a, b| {
            (&a.customer_id, &a.deal_id, a.seq).cmp(&(&b.customer_id, &b.deal_id, b.seq))
        });
        self.activities
            .sort_by(|a, b| (&a.customer_id, &a.event_id).cmp(&(&b.customer_id, &b.event_id)));
        self.followups
            .sort_by(|a, b| (&a.customer_id, &a.event_id).cmp(&(&b.customer_id, &b.event_id)));
    }

    /// Splits the rows by customer (the inverse of [`extend`](Self::extend)).
    pub fn split_by_customer(self) -> std::collections::BTreeMap<String, CustomerRows> {
        let mut out: std::collections::BTreeMap<String, CustomerRows> = Default::default();
        for c in self.customers {
            let id = c.customer_id.clone();
            out.entry(id).or_default().customer = Some(c);
        }
        for v in self.values {
            let id = v.customer_id.clone();
            out.entry(id).or_default().values.push(v);
        }
        for d in self.deals {
            let id = d.customer_id.clone();
            out.entry(id).or_default().deals.push(d);
        }
        for s in self.stays {
            let id = s.customer_id.clone();
            out.entry(id).or_default().stays.push(s);
        }
        for a in self.activities {
            let id = a.customer_id.clone();
            out.entry(id).or_default().activities.push(a);
        }
        for f in self.followups {
            let id = f.customer_id.clone();
            out.entry(id).or_default().followups.push(f);
        }
        out
    }

    /// Adds one customer's rows.
    pub fn extend(&mut self, rows: CustomerRows) {
        self.customers.extend(rows.customer);
        self.values.extend(rows.values);
        self.deals.extend(rows.deals);
        self.stays.extend(rows.stays);
        self.activities.extend(rows.activities);
        self.followups.extend(rows.followups);
    }
}
