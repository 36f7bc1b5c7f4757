//! The `pipeline-ledger` binary: everything lives in the library; this only hands over.

/// mimalloc instead of the system allocator: an import allocates the strings of each event on
/// the validating threads and frees them on the deciding and writing threads, and glibc's
/// allocator made those cross-thread frees (and malloc/free in general) a quarter of the profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    pipeline_ledger::cli::main()
}
