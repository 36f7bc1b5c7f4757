//! The `pipeline-ledger` binary: everything lives in the library; this only hands over.

fn main() -> std::process::ExitCode {
    pipeline_ledger::cli::main()
}
