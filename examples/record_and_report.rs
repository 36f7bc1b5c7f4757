//! Using pipeline-ledger as a library, as another team's service would: open the embedded store,
//! record a customer's first interactions through the domain rules, see a refused one, bring the
//! read models up to date and print the funnel.
//!
//! Run with `cargo run --example record_and_report -- /tmp/example-ledger.db`.

use chrono::{Duration, Utc};
use pipeline_ledger::domain::*;
use pipeline_ledger::ledger::{Ledger, RecordError};
use pipeline_ledger::projections::Policy;
use pipeline_ledger::query::{FunnelRequest, Queries};
use pipeline_ledger::read_models::ReadModels;
use pipeline_ledger::read_models::memory::MemoryReadModels;
use pipeline_ledger::runner;
use pipeline_ledger::store::EventStore;
use pipeline_ledger::store::sqlite::SqliteStore;
use std::sync::Arc;

fn ids(customer: &str) -> (CustomerId, DealId, RepId, ActorId) {
    (
        CustomerId::new(customer).expect("valid id"),
        DealId::new(format!("{customer}-d1")).expect("valid id"),
        RepId::new("rep-07").expect("valid id"),
        ActorId::new("crm-sync").expect("valid id"),
    )
}

fn event(
    customer: &CustomerId,
    actor: &ActorId,
    days_ago: i64,
    payload: EventPayload,
) -> ProposedEvent {
    ProposedEvent {
        event_id: uuid::Uuid::now_v7(),
        customer_id: customer.clone(),
        occurred_at: Utc::now() - Duration::days(days_ago),
        recorded_at: None,
        recorded_by: actor.clone(),
        correlation_id: None,
        causation_id: None,
        payload,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "example-ledger.db".into());
    let store = Arc::new(SqliteStore::open(&path)?);
    let ledger = Ledger::new(store.clone() as Arc<dyn EventStore>);

    let customer_name = format!("harbor-{}", Utc::now().timestamp());
    let (customer, deal, rep, actor) = ids(&customer_name);
    let lead = EventPayload::LeadSourced(LeadSourced {
        deal_id: deal.clone(),
        rep_id: rep.clone(),
        source: LeadSource::TradeShow,
        company: "Harbor Logistics".into(),
        contact: Contact {
            name: "Chen Jing".into(),
            phone: None,
            email: Some("chen.jing@harbor.example".into()),
            role: Some(BuyingRole::DecisionMaker),
        },
        qualification: None,
        notes: None,
    });
    let recorded = ledger.record(event(&customer, &actor, 10, lead)).await?;
    println!(
        "lead recorded at revision {}, position {}",
        recorded.revision, recorded.position
    );

    let visit = EventPayload::FirstVisitMade(FirstVisitMade {
        deal_id: deal.clone(),
        rep_id: rep.clone(),
        visit: VisitRecord {
            purpose: "understand their routing problems".into(),
            action_plan: "present the product line".into(),
            expected_result: "a demo date".into(),
            actual_outcome: "demo booked for next week".into(),
        },
        needs: vec!["cut delivery times".into()],
        intent_level: 4,
    });
    ledger.record(event(&customer, &actor, 7, visit)).await?;

    // The rules refuse a contract on a deal that was lost, until it is reopened.
    let lost = EventPayload::DealLost(DealLost {
        deal_id: deal.clone(),
        rep_id: rep.clone(),
        reason: LostReason::Price,
        stage: Stage::FirstVisit,
        details: None,
    });
    ledger.record(event(&customer, &actor, 3, lost)).await?;
    let contract = EventPayload::ContractSigned(ContractSigned {
        deal_id: deal,
        rep_id: rep,
        value: Money {
            amount_minor: 1_250_000,
            currency: Currency::new("EUR")?,
        },
        term_months: 12,
        contract_ref: None,
    });
    match ledger.record(event(&customer, &actor, 1, contract)).await {
        Err(RecordError::Refused(why)) => println!("refused, as it should be: {why}"),
        other => println!("unexpected: {other:?}"),
    }

    // Projections: bring the read models up to date, then print the funnel.
    let policy = Policy::load(None)?;
    // The read models live in memory here; `SqliteReadModels` keeps them in a file.
    let read_models: Arc<dyn ReadModels> = Arc::new(MemoryReadModels::new());
    runner::project(&*store, &read_models, &policy, false, &mut |_| {}, async {}).await?;
    // Reports are typed values; their JSON is their serde form.
    let queries = Queries::new(store.clone(), read_models, policy);
    let funnel = queries.funnel(FunnelRequest::default()).await?;
    println!("{}", serde_json::to_string_pretty(&funnel)?);
    Ok(())
}
