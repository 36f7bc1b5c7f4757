//! The `pipeline-ledger` binary: the command line ([`cli`]), the presentation of reports
//! ([`present`]: tables, CSV, JSON) the benchmark ([`bench`]) and the HTTP server with its dashboard ([`server`]). Everything else lives in the library;
//! these modules parse arguments, call it, and print.

mod bench;
mod cli;
mod present;
mod server;

/// mimalloc instead of the system allocator: an import allocates the strings of each event on
/// the validating threads and frees them on the deciding and writing threads, and glibc's
/// allocator made those cross-thread frees (and malloc/free in general) a quarter of the profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
