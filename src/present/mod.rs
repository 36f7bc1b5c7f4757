//! Presentation: reports and histories as people read them (aligned tables) and as jobs read
//! them (CSV, JSON), and the progress of long commands on standard error (`progress`). The
//! library returns typed reports; every front end of the binary (the command line, the
//! benchmark, the server) prints them through here.

pub mod definitions;
pub mod history;
pub mod progress;
pub mod reports;
pub mod summary;
pub mod table;

use std::borrow::Cow;
use std::fmt::Write as _;

/// Free text made safe for a terminal: control characters (C0, DEL, C1: among them ESC, which
/// starts the terminal's escape sequences, and newlines, which would break a table's rows) and
/// the Unicode bidirectional controls (which can reorder what is shown) are written as `\u{..}`
/// escapes. (A backslash is left as it is, so that text without control characters shows exactly
/// as before.) Only tables use it: JSON and CSV carry the data unchanged.
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::for_terminal;

    #[test]
    fn control_characters_and_escapes_are_shown_not_obeyed() {
        for (text, shown) in [
            ("Acme 寻找 😀", "Acme 寻找 😀"),
            ("Acme\x1b[2J\x1b[31mRED", "Acme\\u{1b}[2J\\u{1b}[31mRED"),
            ("a\nb\tc\rd\x07", "a\\u{a}b\\u{9}c\\u{d}d\\u{7}"),
            ("\u{9b}31m \u{7f}", "\\u{9b}31m \\u{7f}"),
            ("abc\u{202e}fed", "abc\\u{202e}fed"),
            ("C:\\dir", "C:\\dir"),
        ] {
            assert_eq!(for_terminal(text), shown, "{text:?}");
        }
    }
}
