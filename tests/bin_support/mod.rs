//! What the integration tests that drive the real `pipeline-ledger` binary share: a finished
//! command's exit status and output as text, and the check that it succeeded, which prints both
//! streams when it did not.

#![allow(dead_code)] // each test binary uses its own part

/// A finished command.
pub struct Output {
    /// The exit status (-1 when a signal ended the process).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The output of a finished process, as text.
    pub fn of(out: std::process::Output) -> Self {
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Its standard output; fails the test, showing both streams, unless it exited with 0.
    #[track_caller]
    pub fn ok(self, args: &[&str]) -> String {
        assert_eq!(
            self.code, 0,
            "{args:?} failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self.stdout
    }

    /// Itself; fails the test unless it exited with a non-zero status.
    #[track_caller]
    pub fn failed(self, args: &[&str]) -> Self {
        assert_ne!(self.code, 0, "{args:?} succeeded\nstdout:\n{}", self.stdout);
        self
    }
}
