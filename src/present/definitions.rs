//! The definition of every figure the reports show, in one place: the command line prints them
//! as legend lines, the dashboard shows them beside each figure, and the server answers
//! `/v1/definitions` with them. The texts are the words of `projections/README.md`, shortened;
//! where two figures look alike but differ, each text says how it differs from the other, so
//! that whichever one a reader looks up explains the pair.
//!
//! Keys are `<report>.<figure>`; the dashboard names them in `app.js` (`def('…')` or
//! `def: '…'`), and a test below fails on a key it names that is not here.

/// One figure's definition, shown as a legend line (CLI), a hover/click text (dashboard) and in
/// /v1/definitions.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Definition {
    pub key: &'static str,
    pub label: &'static str,
    pub text: &'static str,
}

/// A definition, in the list below.
const fn d(key: &'static str, label: &'static str, text: &'static str) -> Definition {
    Definition { key, label, text }
}

/// Every figure's definition, grouped by report in the order the reports show them.
pub const DEFINITIONS: &[Definition] = &[
    // What every report says about itself.
    d(
        "meta.position",
        "Log position",
        "The log position the report was computed at: the report at this position \
         (--at-position) reproduces it.",
    ),
    d(
        "meta.lag",
        "Lag",
        "head − position: events recorded in the log but not in this report.",
    ),
    d(
        "meta.evaluated_at",
        "Report clock",
        "The clock that time in the current stage, stalled deals, dormancy and overdue \
         follow-ups are measured against: --now if given, else the earlier of 'as of' and \
         'known at', else the latest occurred_at in the log.",
    ),
    d(
        "meta.source",
        "Source",
        "Where the numbers come from: read_models (the rm_ tables, live or a report the runner \
         keeps computed) or replay (the log replayed in memory, for a past point).",
    ),
    d(
        "meta.as_of",
        "As it was on",
        "The pipeline as it happened: only the events that occurred by the end of that day, \
         UTC (occurred_at ≤ T). Unlike 'as we knew it on', an event logged later but dated \
         before T counts. An event the rules would refuse at its place in the filtered \
         history is not applied.",
    ),
    d(
        "meta.known_at",
        "As we knew it on",
        "The pipeline as the ledger knew it: only the events recorded by the end of that day, \
         UTC (recorded_at ≤ T), whatever time they say they occurred. Unlike 'as it was on', an \
         event logged after T is left out even if it occurred before.",
    ),
    // Funnel, cohort view.
    d(
        "funnel.group",
        "Group",
        "By source: the lead's source. By rep: the rep who owned the customer when the lead was \
         sourced. By cohort: the month or quarter the lead was sourced in.",
    ),
    d(
        "funnel.rep_credit",
        "Rep credit",
        "Grouped by rep, a deal belongs to the rep who owned the customer when the lead was \
         sourced (owner_at_lead). The rep report credits a contract to the owner when it was \
         signed, so after a reassignment the two can name different reps for the same deal, by \
         design.",
    ),
    d(
        "funnel.deals",
        "Deals",
        "Cohort view: the deals whose lead was sourced inside the window (all deals without a \
         window), followed to their outcome at the report's position.",
    ),
    d(
        "funnel.won",
        "Won",
        "Deals of the cohort won now (current status); won + lost + open = deals.",
    ),
    d(
        "funnel.lost",
        "Lost deals",
        "Deals of the cohort lost now (current status): a deal lost and then reopened is not \
         counted. Unlike the '→ lost' transitions, which count every loss event, reopened ones \
         included.",
    ),
    d(
        "funnel.open",
        "Open",
        "Deals of the cohort still open now, reopened ones included.",
    ),
    d(
        "funnel.win_rate_cohort",
        "Win rate (cohort)",
        "won / (won + lost) over the cohort's deals, by their status now. Unlike the period win \
         rate, which counts the outcomes that happened inside the window whatever the deals' \
         cohort.",
    ),
    d(
        "funnel.open_share",
        "Open share",
        "open / deals: the share of the cohort not decided yet.",
    ),
    d(
        "funnel.immature",
        "Maturity",
        "immature when more of the cohort's deals are still open than the policy's \
         cohort_immature_open_percent (default 50): its win rate and conversion will still \
         change, so a low figure there is no collapse yet.",
    ),
    d(
        "funnel.stage",
        "Stage",
        "The stages in pipeline order (policy stage_order). A move to a later stage is an \
         advance, to an earlier one a move back.",
    ),
    d(
        "funnel.entered",
        "Entered",
        "Deals with at least one stay in the stage; a deal that skips the stage does not enter \
         it. entered = advanced + lost here + moved back + still in.",
    ),
    d(
        "funnel.advanced",
        "Advanced",
        "Entered deals whose latest stay in the stage ended by moving to a later stage, skips \
         included. Unlike 'moved forward' (left forward at least once), it leaves out a deal \
         that moved forward and later came back into the stage.",
    ),
    d(
        "funnel.lost_here",
        "Lost here",
        "Entered deals whose latest stay in the stage ended in a loss: lost in this stage and \
         not reopened since.",
    ),
    d(
        "funnel.moved_back",
        "Moved back",
        "Entered deals whose latest stay in the stage ended with a move to an earlier stage.",
    ),
    d(
        "funnel.still_in",
        "Still in",
        "Entered deals whose latest stay in the stage has not ended: open in it now (for won, \
         every won deal: a won deal stays in won).",
    ),
    d(
        "funnel.skipped",
        "Skipped",
        "Deals that never entered the stage but reached a later one (a jump such as lead → \
         demo). Not entered, advanced or converted here, but counted in the cumulative \
         conversion: they got at least that far.",
    ),
    d(
        "funnel.entries",
        "Entries",
        "Stays in the stage. Unlike entered, a deal that came back (moved back into it, or \
         reopened) counts once per stay.",
    ),
    d(
        "funnel.re_entries",
        "Re-entries",
        "Stays in the stage whose entry was a move back or a reopening.",
    ),
    d(
        "funnel.next_step",
        "Next step",
        "Next-step conversion: deals that entered the stage and later moved from it directly \
         into the next stage ÷ entered (a deal that moved back into it and then on counts \
         once). A lead that jumps straight to a contract did not take the next step. – for won, \
         which has none.",
    ),
    d(
        "funnel.moved_forward",
        "Moved forward",
        "Deals that left the stage forward at least once, to any later stage, skips included ÷ \
         entered; never below next step. Unlike advanced, it also counts a deal that came back \
         later. – for won.",
    ),
    d(
        "funnel.cumulative",
        "Cumulative",
        "Deals whose furthest stage is this one or later ÷ all deals of the cohort; skips \
         count. Never increases along the stages.",
    ),
    d(
        "funnel.days_to_next",
        "Days to next",
        "Per deal that moved forward: days from its first entry into the stage to its first \
         forward exit.",
    ),
    d(
        "funnel.latest_stay_days",
        "Latest stay",
        "Per deal: length in days of its latest stay in the stage, to the report clock while \
         still in it. Unlike total in stage, earlier stays are left out. Not for won.",
    ),
    d(
        "funnel.cumulative_days",
        "Total in stage",
        "Per deal: total days over all its stays in the stage. Not for won.",
    ),
    d(
        "funnel.time_in_stage_count",
        "Deals measured",
        "How many deals the median and the 90th percentile are taken over.",
    ),
    d(
        "funnel.time_in_stage_median",
        "Median",
        "The middle of the deals' days; of an even count, the mean of the two middle values.",
    ),
    d(
        "funnel.time_in_stage_p90",
        "90th percentile",
        "By nearest rank: the value at rank ⌈0.9 n⌉ of the n deals' days, sorted.",
    ),
    d(
        "funnel.lost_by_stage",
        "Lost deals by stage",
        "Deals of the cohort lost now, by the stage they were lost at. Unlike the matrix's \
         'stage → lost' cells, which count loss events, those later reopened included.",
    ),
    d(
        "funnel.lost_reasons",
        "Lost deals by reason",
        "Deals of the cohort lost now, by the reason of their standing loss.",
    ),
    d(
        "funnel.transitions",
        "Transitions",
        "Moves of the cohort's deals, one per move: start → lead counts opened deals, \
         stage → lost every loss event (reopened ones too, unlike lost deals), lost → stage \
         every reopening, a jump such as lead → demo a skip, demo → first_visit a move back.",
    ),
    // Funnel, period view.
    d(
        "funnel.new_deals",
        "New deals",
        "Period view: deals sourced inside the window.",
    ),
    d(
        "funnel.period_entries",
        "Stage entries",
        "Period view: stays begun in each stage inside the window, whatever the deals' cohort.",
    ),
    d(
        "funnel.period_won",
        "Won (period)",
        "Period view: contracts signed inside the window, whatever the deals' cohort.",
    ),
    d(
        "funnel.period_lost",
        "Losses (period)",
        "Period view: loss events inside the window, including losses reopened later. Unlike \
         lost for good, which leaves those out.",
    ),
    d(
        "funnel.lost_final",
        "Lost for good",
        "Period view: deals lost inside the window whose final outcome at the report's position \
         is a loss. Unlike losses (period), a loss later reopened is not counted.",
    ),
    d(
        "funnel.reopened",
        "Reopened",
        "Period view: reopenings inside the window.",
    ),
    d(
        "funnel.win_rate_period",
        "Win rate (period)",
        "won / (won + lost for good) inside the window: final outcomes, as CRMs count them. A \
         deal lost, reopened and won in the window is 1 won of 1, not 1 of 2. Unlike the \
         cohort win rate, which follows the window's deals to their status now.",
    ),
    d(
        "funnel.period_lost_reasons",
        "Losses by reason (period)",
        "Period view: loss events inside the window by reason, reopened ones included.",
    ),
    d(
        "funnel.period_transitions",
        "Moves in the window",
        "Period view: the moves made inside the window, whatever the deals' cohort.",
    ),
    // Rep activity.
    d(
        "reps.period",
        "Period",
        "By occurred_at, UTC: day 2024-03-05, ISO week 2024-W10, month 2024-03, quarter 2024-Q1, \
         year 2024.",
    ),
    d(
        "reps.interactions",
        "Interactions per type",
        "Effective events of that type the rep performed (the event's rep_id); corrections \
         excluded.",
    ),
    d(
        "reps.interactions_total",
        "Interactions",
        "Effective events the rep performed, of every type (losses, reopenings and \
         reassignments included); corrections excluded.",
    ),
    d(
        "reps.customers_touched",
        "Customers touched",
        "Distinct customers of the events the rep performed, reassignments excluded.",
    ),
    d(
        "reps.new_leads",
        "New leads",
        "LeadSourced events the rep performed.",
    ),
    d(
        "reps.deals_won",
        "Won",
        "ContractSigned events, credited to the customer's owner at that moment, whoever \
         performed them. Unlike interactions, which credit the performer.",
    ),
    d(
        "reps.won_value",
        "Won value",
        "The total value of those contracts, per currency (currencies are never added \
         together), credited to the owner at that moment.",
    ),
    d(
        "reps.deals_lost",
        "Lost",
        "DealLost events, credited to the owner at that moment: every loss event, one later \
         reopened included.",
    ),
    d(
        "reps.win_rate",
        "Win rate",
        "deals won / (deals won + deals lost) in the period, credited to the owner. It counts \
         loss events, reopened ones too; unlike the funnel's period win rate, which counts only \
         deals lost for good.",
    ),
    d(
        "reps.days_to_close",
        "Days to close",
        "Median / 90th percentile of days from the deal's lead to its contract, over the \
         contracts credited to the owner in the period (measured in whole seconds).",
    ),
    d(
        "reps.overdue_followups",
        "Overdue follow-ups",
        "Follow-up due dates in the period met late, or not met and past at the report clock; \
         credited to the owner on the due date.",
    ),
    d(
        "reps.reassigned_in",
        "Reassigned in",
        "CustomerReassigned events to the rep. Credit moves from then on only: past activity \
         and results keep the rep they were credited to.",
    ),
    d(
        "reps.reassigned_out",
        "Reassigned out",
        "CustomerReassigned events away from the rep.",
    ),
    // Pipeline.
    d(
        "pipeline.customers_by_state",
        "Customers by state",
        "Customers per lifecycle state at the report clock, dormancy applied; the first match \
         wins: dormant, re-engaged, retained, won, the current deal's stage, lost.",
    ),
    d(
        "pipeline.deals_by_status",
        "Deals by status",
        "Every deal by its status now: open, won or lost (a reopened deal is open).",
    ),
    d(
        "pipeline.open_deals_by_stage",
        "Open deals by stage",
        "Open deals per stage they are in now, in pipeline order.",
    ),
    d(
        "pipeline.open_deals_by_owner",
        "Open deals by owner",
        "Open deals per rep owning the customer now.",
    ),
    d(
        "pipeline.stalled",
        "Stalled deals",
        "Open deals stalled for lack of activity, of progress, or both, listed once each under \
         the rep owning the customer now, the longest-stalled first.",
    ),
    d(
        "pipeline.stalled_no_activity",
        "No activity",
        "An open deal with no interaction for longer than its stage's no_activity_days (policy), \
         counted from the deal's latest event. Unlike no progress, any interaction resets it.",
    ),
    d(
        "pipeline.stalled_no_progress",
        "No progress",
        "An open deal that has not changed stage for longer than its stage's no_progress_days \
         (policy), counted from the start of its latest stay, however much activity it had.",
    ),
    d(
        "pipeline.stalled_days",
        "Days",
        "Days from the deal's latest event (no activity) or from its entry into the stage (no \
         progress) to the report clock.",
    ),
    d(
        "pipeline.threshold_days",
        "Limit",
        "The policy's threshold for the deal's stage, in days; a deal is listed once its days \
         exceed it.",
    ),
    d(
        "pipeline.overdue_followups",
        "Overdue follow-ups",
        "Due dates set by a follow-up's next_due_on that the customer's next follow-up has not \
         met, past at the report clock; listed under the owner on the due date (unlike stalled \
         deals: the owner now).",
    ),
    d(
        "pipeline.days_overdue",
        "Days overdue",
        "Whole days from the due date to the report clock's day.",
    ),
    // Customer (lifecycle).
    d(
        "customer.state_now",
        "State",
        "The lifecycle state at the report clock, dormancy applied; the first match wins: \
         dormant, re-engaged, retained, won, the current deal's stage, lost.",
    ),
    d(
        "customer.state",
        "Stored state",
        "The state the read models keep, without dormancy (which depends on the clock and is \
         applied when a report is asked for): it differs from the state when the customer is \
         dormant now.",
    ),
    d(
        "customer.state_dormant",
        "Dormant",
        "Has a won deal and the report clock is past dormant_after (= last interaction + \
         dormant_after_days); applied at query time.",
    ),
    d(
        "customer.state_re_engaged",
        "Re-engaged",
        "Has a won deal, and since its latest contract an interaction came after a gap longer \
         than dormant_after_days.",
    ),
    d(
        "customer.state_retained",
        "Retained",
        "Has a won deal and a follow-up since its latest contract.",
    ),
    d("customer.state_won", "Won", "Has a won deal."),
    d(
        "customer.state_open",
        "Lead / visited / demoed / negotiating",
        "Has an open deal: the stage of the current deal.",
    ),
    d("customer.state_lost", "Lost", "Every deal is lost."),
    d(
        "customer.owner_rep",
        "Owner",
        "The rep owning the customer now; a reassignment changes who gets credit from then on \
         only.",
    ),
    d(
        "customer.current_deal",
        "Current deal",
        "The latest-opened open deal, else the latest-won deal, else the latest-opened deal (by \
         occurred_at; stream order breaks ties).",
    ),
    d(
        "customer.current_stage",
        "Current stage",
        "The stage of the current deal.",
    ),
    d(
        "customer.days_in_current_stage",
        "Days in stage",
        "Days from the start of the current deal's latest stay to the report clock.",
    ),
    d(
        "customer.first_seen_at",
        "First seen",
        "The time of the customer's earliest lead.",
    ),
    d(
        "customer.last_interaction_at",
        "Last interaction",
        "The latest deal event: the six steps, losses and reopenings; a reassignment is not an \
         interaction.",
    ),
    d(
        "customer.next_followup_due",
        "Next follow-up due",
        "A due date set by a follow-up's next_due_on and not met yet; the customer's next \
         follow-up meets it.",
    ),
    d(
        "customer.dormant_after",
        "Dormant after",
        "For a won customer: when it becomes dormant if nothing happens (last interaction + \
         dormant_after_days).",
    ),
    d(
        "customer.open_deals",
        "Open deals",
        "The customer's deals open now.",
    ),
    d(
        "customer.won_deals",
        "Won deals",
        "The customer's deals won.",
    ),
    d(
        "customer.lost_deals",
        "Lost deals",
        "The customer's deals lost now (a reopened deal is open again).",
    ),
    d(
        "customer.reengagements",
        "Re-engagements",
        "Returns after a dormant gap: a gap longer than dormant_after_days between two \
         consecutive interactions in time order, since the latest contract.",
    ),
    d(
        "customer.event_count",
        "Events",
        "The customer's effective events: retracted ones left out, corrections not counted.",
    ),
    d(
        "customer.last_position",
        "Last position",
        "Position of the customer's latest event in the log, corrections included.",
    ),
    d(
        "customer.contracts_minor",
        "Contract value",
        "Total value of the customer's signed contracts, per currency.",
    ),
    d(
        "customer.contract_count",
        "Contracts",
        "Contracts signed, per currency.",
    ),
    d(
        "customer.repeat_orders_minor",
        "Repeat orders",
        "Total order_value of the customer's follow-ups, per currency.",
    ),
    d(
        "customer.deal_status",
        "Status",
        "open, won or lost now; a reopened deal is open.",
    ),
    d(
        "customer.won_value",
        "Contract",
        "The deal's contract value, credited to the owner when it was signed (won_owner).",
    ),
    d(
        "customer.reopen_count",
        "Reopenings",
        "How many times the deal was reopened after a loss.",
    ),
    d(
        "customer.stay",
        "Stay",
        "Each time a deal comes into a stage starts a stay. It begins opened (the lead), \
         advanced, moved back or reopened, and ends advanced, moved back, lost, or not yet.",
    ),
    d(
        "customer.stay_days",
        "Days",
        "Length of the stay in days; to the report clock while the deal is still in it.",
    ),
    d(
        "customer.followup_due",
        "Follow-up due",
        "A due date set by a follow-up (next_due_on), the owner on that date, and when the \
         customer's next follow-up met it (empty if none yet).",
    ),
    // A customer's event history.
    d(
        "history.occurred_at",
        "Occurred",
        "When it happened in the world, as given by whoever recorded it; 'as it was on' and \
         every duration read it. Unlike recorded, it can be earlier than events logged before it.",
    ),
    d(
        "history.recorded_at",
        "Recorded",
        "When the ledger recorded it (or the time kept from migrated history); 'as we knew it \
         on' reads it.",
    ),
    d(
        "history.position",
        "Position",
        "The event's place in the whole log.",
    ),
    d(
        "history.revision",
        "Revision",
        "The event's place in the customer's stream, from 0.",
    ),
    d(
        "history.correction",
        "Correction",
        "Nothing is ever updated or deleted: a correction is a new event that names the event it \
         amends (counted with the replacement data, keeping its original times) or retracts \
         (ignored as if never recorded). The latest correction of an event wins.",
    ),
    // The quarterly rep scorecard.
    d(
        "scorecard.score",
        "Score",
        "The weighted mean of the rep's attainments in the quarter (weights from the policy's \
         scorecard), in percent of target, rounded down to 0.01: 100.00 is every target met. \
         Quality is left out of the mean for a rep who closed no deal.",
    ),
    d(
        "scorecard.movement",
        "Movement",
        "The rep's rank in the quarter before minus the rank now: ▲ up, ▼ down, = the same, \
         new when the rep was not ranked then.",
    ),
    d(
        "scorecard.activity",
        "Activity",
        "Interactions the rep performed in the quarter (every event but reassignments, credited \
         to the performer, as in reps) against the quarter's target.",
    ),
    d(
        "scorecard.results",
        "Results",
        "Deals won while the rep owned the customer (credited to the owner at the contract, as \
         in reps) against the quarter's target.",
    ),
    d(
        "scorecard.quality",
        "Quality",
        "The win rate of the deals the rep closed in the quarter, won / (won + lost) as in \
         reps, against the target win rate; none without a closed deal.",
    ),
    d(
        "scorecard.attainment",
        "Attainment",
        "actual / target, capped at the policy's attainment_cap_percent so that no single \
         component (sales volume alone) can carry the score; rounded down to 0.01%.",
    ),
    // Retention.
    d(
        "retention.won_customers",
        "Won customers",
        "Customers with at least one contract in the report.",
    ),
    d(
        "retention.repeat_customers",
        "With a repeat order",
        "Won customers with a repeat order (a follow-up with an order value) after their first \
         contract, of all won customers.",
    ),
    d(
        "retention.dormant",
        "Dormant now",
        "Won customers with no interaction for longer than the policy's dormant_after_days at \
         the report clock, of all won customers (the pipeline's dormant count).",
    ),
    d(
        "retention.reengaged",
        "Came back",
        "Won customers who interacted again after a dormant spell, of those ever dormant \
         (dormant now, or come back since).",
    ),
    d(
        "retention.days_to_first_repeat_order",
        "Days to the first repeat order",
        "Median and p90 of the days from a customer's first contract to its first repeat order \
         after it, over the customers who placed one.",
    ),
    d(
        "retention.first_contracts",
        "First contracts",
        "Contracts that were their customer's first: new customers won in the period. The other \
         contracts are existing customers buying again.",
    ),
    d(
        "retention.repeat_orders",
        "Repeat orders",
        "Follow-ups with an order value in the period, and the distinct customers who placed \
         them.",
    ),
    d(
        "retention.existing_share",
        "Existing-customer share",
        "Revenue of existing customers (their later contracts and repeat orders) / all revenue \
         in the period, per currency; a customer is new until its first contract.",
    ),
    d(
        "retention.kept_customers",
        "Kept customers",
        "Distinct customers with existing-customer revenue in the period: a repeat order, or a \
         contract after their first.",
    ),
    d(
        "retention.cost_per_customer",
        "Cost to win and to keep",
        "From the policy's costs (sales ops' figures, not events): the period's spend to win \
         new customers / its first contracts, beside its spend to keep customers / its kept \
         customers, and their ratio (keeping is said to cost about a fifth of winning).",
    ),
    // Qualification.
    d(
        "qualification.win_rate",
        "Win rate",
        "Won / (won + lost) of the group's deals, by their status now (a lost deal reopened and \
         won counts as won); not shown below the minimum sample of decided deals, whose counts \
         are shown instead.",
    ),
    d(
        "qualification.conversion",
        "Conversion",
        "Won / all the group's deals, open ones included: how many leads of this kind became \
         contracts so far.",
    ),
    d(
        "qualification.lift",
        "Lift",
        "The win rate of the deals whose worksheet met the criterion / the win rate of those \
         whose worksheet did not: above 1, meeting it goes with winning more.",
    ),
    d(
        "qualification.calibration",
        "Calibration",
        "Per band of worksheet scores, the win rate observed against the band's mean score / 7 \
         (the score read as a chance): the score predicts when the observed rates rise from band \
         to band.",
    ),
    d(
        "qualification.intent",
        "Intent at the first visit",
        "The buying intent (1 none to 5 ready to buy) judged at the deal's first visit; none \
         for a deal without one yet.",
    ),
    // Customer ranking.
    d(
        "ranking.classes_by",
        "Classes by",
        "How the policy's ranking classes customers: by the share of the period's revenue that \
         the customers ranked above bring (A+ below 50%, A below 80%, B below 95% by default), \
         or by revenue bands in the home currency.",
    ),
    d(
        "ranking.rates_version",
        "Exchange rates",
        "With fx in the policy, every amount is converted into the home currency at the rate in \
         force on its occurred_at date, and the rates' version is stated; without fx, money is \
         never summed across currencies and each currency has its own ranking.",
    ),
    d(
        "ranking.top_share",
        "Top 20%",
        "The share of the period's revenue that its best 20% of customers bring (their number \
         rounded up): the 80/20 rule holds when it is near 80%.",
    ),
    d(
        "ranking.class_share",
        "Class share",
        "A class's share of the period's revenue, with its customers; the four classes add up \
         to the period's customers and revenue.",
    ),
    d(
        "ranking.unconverted",
        "Unconverted",
        "Amounts in a currency the policy's rates do not cover on their date: left out of the \
         ranking and counted here, so that no revenue is converted at a guessed rate.",
    ),
    d(
        "ranking.class",
        "Class",
        "The customer's class in the listed period. Revenue is its contracts and repeat orders \
         (follow-ups with an order value) that occurred in the period; customers with none are \
         not ranked.",
    ),
    d(
        "ranking.class_before",
        "Class before",
        "The customer's class in the period before the listed one; none when it had no revenue \
         there.",
    ),
    d(
        "ranking.open_deals",
        "Open deals",
        "The customer's open deals now: the potential beside the revenue (an expected deal value \
         is not recorded yet).",
    ),
    d(
        "ranking.movement",
        "Class movement",
        "How many customers went from each class in the period before to each class in the \
         listed one; none is a customer without revenue in that period.",
    ),
];

/// The definition of a figure, by key.
pub fn definition(key: &str) -> Option<&'static Definition> {
    DEFINITIONS.iter().find(|d| d.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The dashboard's script, as the server embeds it.
    const APP_JS: &str = include_str!("../server/dashboard/app.js");

    /// The keys `app.js` names: every `def('key')` call and `def: 'key'` field.
    fn keys_named_by_dashboard() -> BTreeSet<&'static str> {
        let mut keys = BTreeSet::new();
        for marker in ["def('", "def: '"] {
            for (i, _) in APP_JS.match_indices(marker) {
                let rest = &APP_JS[i + marker.len()..];
                let key = &rest[..rest.find('\'').expect("a closed string")];
                keys.insert(key);
            }
        }
        keys
    }

    #[test]
    fn keys_are_unique_and_well_formed() {
        let mut seen = BTreeSet::new();
        for d in DEFINITIONS {
            assert!(seen.insert(d.key), "{} is defined twice", d.key);
            let (report, figure) = d.key.split_once('.').expect("a key is report.figure");
            assert!(
                [
                    "meta",
                    "funnel",
                    "reps",
                    "scorecard",
                    "retention",
                    "ranking",
                    "qualification",
                    "pipeline",
                    "customer",
                    "history"
                ]
                .contains(&report),
                "{}: unknown report",
                d.key
            );
            assert!(
                figure
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                d.key
            );
        }
    }

    #[test]
    fn every_label_and_text_is_a_sentence_or_a_name() {
        for d in DEFINITIONS {
            assert!(!d.label.trim().is_empty(), "{}: empty label", d.key);
            assert!(!d.text.trim().is_empty(), "{}: empty text", d.key);
            assert!(d.text.ends_with('.'), "{}: the text ends a sentence", d.key);
            // The escaped line breaks of the list leave no double spaces behind.
            assert!(!d.text.contains("  "), "{}: double space", d.key);
        }
    }

    #[test]
    fn every_key_the_dashboard_names_is_defined() {
        let named = keys_named_by_dashboard();
        // The scanner finds the dashboard's keys at all (so an edit of its markers fails here).
        assert!(
            named.len() > 40,
            "only {} keys found in app.js",
            named.len()
        );
        let missing: Vec<_> = named.iter().filter(|k| definition(k).is_none()).collect();
        assert!(
            missing.is_empty(),
            "app.js names undefined keys: {missing:?}"
        );
    }

    #[test]
    fn lookups_find_definitions_and_the_json_lists_them_all() {
        assert_eq!(definition("funnel.next_step").unwrap().label, "Next step");
        assert!(definition("funnel.nope").is_none());
        // `/v1/definitions` is the list serialized as it is: [{"key","label","text"}, …].
        let json = serde_json::to_value(DEFINITIONS).unwrap();
        let list = json.as_array().unwrap();
        assert_eq!(list.len(), DEFINITIONS.len());
        assert_eq!(list[0]["key"], DEFINITIONS[0].key);
        assert!(list[0]["text"].is_string());
    }
}
