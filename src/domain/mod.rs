//! The domain: the events a sales pipeline produces and the rules that decide whether an event may
//! be recorded. Pure: no store, no I/O, no command line.

pub mod deal;
pub mod events;
pub mod ids;
pub mod money;
pub mod personal;
pub mod rules;
pub mod upcast;

pub use deal::{DealEvent, DealRefusal, DealState, DealStatus, DealStep, DealTransition};
pub use events::*;
pub use ids::{ActorId, CustomerId, DealId, IdentError, RepId};
pub use money::{Currency, Money};
pub use personal::{PersonalText, Withheld};
pub use rules::{CustomerHistory, RuleViolation};
