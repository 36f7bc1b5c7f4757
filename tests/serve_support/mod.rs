//! A real `pipeline-ledger serve` process for tests: started from a prepared command, its URL read
//! from the line it prints once bound, killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running `serve`.
pub struct ServeProcess {
    pub child: Child,
    /// `http://127.0.0.1:PORT` (or `https://…`).
    pub url: String,
}

impl ServeProcess {
    /// Starts `command` (the binary with its `serve` arguments) and waits until it listens.
    pub fn spawn(mut command: Command) -> ServeProcess {
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("serve prints its address");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("serve printed {line:?}"))
            .to_string();
        ServeProcess { child, url }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
