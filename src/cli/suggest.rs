//! What the command line says about a customer id it cannot find: whether the customer is in
//! the log but not yet in the read models (run `project`), and which known ids are close to a
//! mistyped one. Only the command line says this: the server never tells a caller which ids
//! exist.

use pipeline_ledger::read_models::ReadModels;
use pipeline_ledger::store::{Direction, EventStore};
use std::sync::Arc;

/// Suggestions offered at most.
const SUGGESTIONS_MAX: usize = 3;

/// The ids among `known` most likely meant by `asked`: those at the smallest edit distance from
/// it, if that is at most 2 (or a quarter of the id's length, for long ids), in order.
pub fn near_matches<'a>(asked: &str, known: impl Iterator<Item = &'a str>) -> Vec<String> {
    let limit = (asked.chars().count() / 4).max(2);
    let mut close: Vec<(usize, &str)> = known
        .filter(|k| *k != asked)
        .map(|k| (strsim::levenshtein(asked, k), k))
        .filter(|(d, _)| *d <= limit)
        .collect();
    close.sort();
    close.dedup();
    let best = close.first().map(|(d, _)| *d);
    close
        .into_iter()
        .take_while(|(d, _)| Some(*d) == best)
        .take(SUGGESTIONS_MAX)
        .map(|(_, k)| k.to_string())
        .collect()
}

/// The sentence that follows "customer ID is not found": where it is, or what was meant.
pub async fn unknown_customer_hint(
    store: &dyn EventStore,
    read_models: Option<&Arc<dyn ReadModels>>,
    id: &str,
    time_travel: bool,
) -> String {
    let stream = format!("{}{id}", pipeline_ledger::ledger::codec::STREAM_PREFIX);
    let in_log = match store
        .read_stream(&stream, Direction::Forwards, None, 1)
        .await
    {
        Ok(events) => events.first().map(|e| e.occurred_at),
        Err(_) => None,
    };
    if let Some(first) = in_log {
        return if time_travel {
            format!(
                "customer {id} is in the log, but had no events by then (its first occurred at {})",
                first.to_rfc3339()
            )
        } else {
            format!(
                "customer {id} is in the log but not in the read models yet: run `pipeline-ledger \
                 project` to bring them up to date"
            )
        };
    }
    let known: Vec<String> = match read_models.map(|rm| rm.load_live()) {
        Some(Ok(Some(model))) => model.customers.into_iter().map(|c| c.customer_id).collect(),
        _ => Vec::new(),
    };
    match near_matches(id, known.iter().map(String::as_str)).as_slice() {
        [] => format!("no customer {id} was ever recorded"),
        [one] => format!("no customer {id} was ever recorded; did you mean {one}?"),
        many => format!(
            "no customer {id} was ever recorded; did you mean one of {}?",
            many.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::near_matches;

    #[test]
    fn a_typo_finds_the_ids_it_was_meant_to_be_and_nothing_far() {
        let known = [
            "cust-00015",
            "cust-00016",
            "cust-00150",
            "acme-gmbh",
            "cust-1",
        ];
        // One edit from cust-00015 and from cust-00150; two from cust-00016, so not offered.
        assert_eq!(
            near_matches("cust-0015", known.into_iter()),
            vec!["cust-00015", "cust-00150"]
        );
        assert_eq!(
            near_matches("acme-gbmh", known.into_iter()),
            vec!["acme-gmbh"]
        );
        assert!(near_matches("zzzz-9999", known.into_iter()).is_empty());
        // The id itself is no suggestion.
        assert!(!near_matches("cust-1", known.into_iter()).contains(&"cust-1".to_string()));
    }
}
