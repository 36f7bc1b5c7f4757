//! Presentation: reports and histories as people read them (aligned tables) and as jobs read
//! them (CSV, JSON). The library returns typed reports; every front end of the binary (the
//! command line, the benchmark, the server to come) prints them through here.

pub mod history;
pub mod reports;
