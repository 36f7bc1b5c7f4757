//! The one table renderer of the binary: every command's tables for people go through
//! [`Table::write_text`], and its CSV through [`Table::write_csv`].
//!
//! For a person the columns are aligned (numbers to the right) by their width on screen (East
//! Asian wide characters count two). When a width is known (a terminal, or `--width`), nothing
//! is printed wider than it: a table too wide folds into stacked sections, each repeating the
//! key columns, and a cell too long for the room left wraps onto more lines. Piped output has no
//! width: plain columns, one line per row, as a job would split them. Control characters in free
//! text are escaped for a terminal ([`for_terminal`]); JSON and CSV carry the data unchanged.

use super::definitions::definition;
use super::for_terminal;
use std::io::{self, Write};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Columns between two cells.
const GAP: usize = 2;
/// The narrowest a column may be made by wrapping: below this, a folded table would be unreadable,
/// and the line is allowed to be wider than the terminal instead.
const COLUMN_WIDTH_MIN: usize = 8;
/// Columns a terminal is assumed to have when it does not say.
pub const TERMINAL_WIDTH_DEFAULT: usize = 100;

/// The width of the terminal standard output goes to: `COLUMNS` when set, else what the
/// terminal says, else [`TERMINAL_WIDTH_DEFAULT`]; `None` when standard output is not a
/// terminal (a pipe or a file gets plain, unfolded columns).
pub fn terminal_width() -> Option<usize> {
    use std::io::IsTerminal;
    if !io::stdout().is_terminal() {
        return None;
    }
    let from_env = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0);
    Some(from_env.unwrap_or_else(|| {
        console::Term::stdout()
            .size_checked()
            .map_or(TERMINAL_WIDTH_DEFAULT, |(_, cols)| usize::from(cols))
    }))
}

/// How tables are laid out for a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layout {
    /// The columns the output may use; `None` when it goes to a pipe or a file (no limit).
    pub width: Option<usize>,
    /// Print, under each table, the definition of every figure it shows.
    pub explain: bool,
}

impl Layout {
    /// Plain columns, or folded to the terminal when standard output is one.
    pub fn for_stdout() -> Layout {
        Layout {
            width: terminal_width(),
            explain: false,
        }
    }
}

/// A titled table of strings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Table {
    pub title: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// How many leading columns name a row (repeated in every section when the table folds).
    pub key_columns: usize,
    /// The definitions (keys of [`super::definitions::DEFINITIONS`]) of the figures shown,
    /// printed under the table with `--explain`.
    pub legend: Vec<&'static str>,
    /// Numbers are aligned to the right (a list of fields and their values keeps every value
    /// to the left).
    pub numbers_right: bool,
}

impl Table {
    /// A table with these headers; the first column names the row.
    pub fn new(title: impl Into<String>, headers: &[&str]) -> Self {
        Table {
            title: title.into(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            key_columns: 1,
            legend: Vec::new(),
            numbers_right: true,
        }
    }

    /// The same table with every value aligned to the left (fields and their values).
    pub fn left_aligned(mut self) -> Self {
        self.numbers_right = false;
        self
    }

    /// The same table whose first `n` columns name a row.
    pub fn keyed_by(mut self, n: usize) -> Self {
        self.key_columns = n;
        self
    }

    /// The same table with these definitions in its legend.
    pub fn explained_by(mut self, keys: &[&'static str]) -> Self {
        debug_assert!(
            keys.iter().all(|k| definition(k).is_some()),
            "a legend names only defined figures: {keys:?}"
        );
        self.legend.extend_from_slice(keys);
        self
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert!(
            cells.len() <= self.headers.len(),
            "a row has no more cells than the table has columns"
        );
        self.rows.push(cells);
    }

    /// Writes the table for a person: aligned, escaped for a terminal, laid out by `layout`.
    pub fn write_text(&self, out: &mut dyn Write, layout: Layout) -> io::Result<()> {
        let escaped = |cells: &[String]| -> Vec<String> {
            cells.iter().map(|c| for_terminal(c).into_owned()).collect()
        };
        if !self.title.is_empty() {
            write_wrapped(out, &for_terminal(&self.title), layout.width, "")?;
        }
        let headers = escaped(&self.headers);
        let rows: Vec<Vec<String>> = self.rows.iter().map(|r| escaped(r)).collect();
        let n = headers.len();
        let mut widths: Vec<usize> = headers.iter().map(|h| h.width()).collect();
        for r in &rows {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(c.width());
            }
        }
        for (k, section) in sections(&widths, self.key_columns, layout.width)
            .iter()
            .enumerate()
        {
            if k > 0 {
                writeln!(out)?;
            }
            let pick = |cells: &[String]| -> Vec<String> {
                section
                    .columns
                    .iter()
                    .map(|&i| cells.get(i).cloned().unwrap_or_default())
                    .collect()
            };
            let numeric: Vec<bool> = section
                .columns
                .iter()
                // The key columns name a row (a rep, a period label): never numbers to align.
                .map(|&i| i >= self.key_columns.max(1) && self.numbers_right)
                .collect();
            write_row(out, &pick(&headers), &section.widths, &[])?;
            let rule: Vec<String> = section.widths.iter().map(|w| "-".repeat(*w)).collect();
            write_row(out, &rule, &section.widths, &[])?;
            for r in &rows {
                write_row(out, &pick(r), &section.widths, &numeric)?;
            }
        }
        if layout.explain && !self.legend.is_empty() {
            writeln!(out)?;
            for d in self.legend.iter().filter_map(|k| definition(k)) {
                write_wrapped(out, &format!("{}: {}", d.label, d.text), layout.width, "  ")?;
            }
        }
        writeln!(out)
    }

    /// Writes the table as CSV (RFC 4180 quoting), with `position` as the first column.
    pub fn write_csv(&self, position: Option<u64>, out: &mut dyn Write) -> io::Result<()> {
        let pos = position.map_or_else(String::new, |p| p.to_string());
        let mut header = vec!["position".to_string()];
        header.extend(self.headers.iter().cloned());
        writeln!(out, "{}", csv_line(&header))?;
        for r in &self.rows {
            let mut cells = vec![pos.clone()];
            cells.extend(r.iter().cloned());
            writeln!(out, "{}", csv_line(&cells))?;
        }
        Ok(())
    }
}

/// One stacked part of a folded table: the columns it shows and their widths.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Section {
    columns: Vec<usize>,
    widths: Vec<usize>,
}

/// Splits the columns of widths `widths` into sections that fit `width`: each repeats the first
/// `keys` columns and takes as many of the others, in order, as fit. A column wider than the
/// room a section has is narrowed (its cells wrap), down to [`COLUMN_WIDTH_MIN`].
fn sections(widths: &[usize], keys: usize, width: Option<usize>) -> Vec<Section> {
    let all = || Section {
        columns: (0..widths.len()).collect(),
        widths: widths.to_vec(),
    };
    let Some(room) = width else {
        return vec![all()];
    };
    let line = |ws: &[usize]| ws.iter().sum::<usize>() + GAP * ws.len().saturating_sub(1);
    if line(widths) <= room || widths.len() <= 1 {
        let mut one = all();
        narrow_last(&mut one.widths, room);
        return vec![one];
    }
    // Keys take at most half the room, so that every section has room for figures.
    let keys = keys.min(widths.len() - 1);
    let mut key_widths: Vec<usize> = widths[..keys].to_vec();
    while keys > 0 && line(&key_widths) > room / 2 {
        let widest = (0..keys).max_by_key(|&i| key_widths[i]).expect("keys");
        if key_widths[widest] <= COLUMN_WIDTH_MIN {
            break;
        }
        key_widths[widest] -= 1;
    }
    let mut out = Vec::new();
    let mut current = Section {
        columns: (0..keys).collect(),
        widths: key_widths.clone(),
    };
    for (i, &w) in widths.iter().enumerate().skip(keys) {
        let mut try_widths = current.widths.clone();
        try_widths.push(w);
        if current.columns.len() > keys && line(&try_widths) > room {
            out.push(current);
            current = Section {
                columns: (0..keys).collect(),
                widths: key_widths.clone(),
            };
        }
        current.columns.push(i);
        current.widths.push(w);
    }
    out.push(current);
    for s in &mut out {
        narrow_last(&mut s.widths, room);
    }
    out
}

/// Narrows the widest column until the line fits `room` (not below [`COLUMN_WIDTH_MIN`]).
fn narrow_last(widths: &mut [usize], room: usize) {
    let line = |ws: &[usize]| ws.iter().sum::<usize>() + GAP * ws.len().saturating_sub(1);
    while line(widths) > room {
        let Some(widest) = (0..widths.len()).max_by_key(|&i| widths[i]) else {
            return;
        };
        if widths[widest] <= COLUMN_WIDTH_MIN {
            return;
        }
        widths[widest] -= 1;
    }
}

/// Writes one row: cells padded to `widths` (right-aligned where `numeric` says so and the cell
/// reads as a number), a cell longer than its column wrapped onto further lines.
fn write_row(
    out: &mut dyn Write,
    cells: &[String],
    widths: &[usize],
    numeric: &[bool],
) -> io::Result<()> {
    let wrapped: Vec<Vec<String>> = cells.iter().zip(widths).map(|(c, &w)| wrap(c, w)).collect();
    let height = wrapped.iter().map(Vec::len).max().unwrap_or(1).max(1);
    for line_no in 0..height {
        let mut s = String::new();
        for (i, w) in widths.iter().enumerate() {
            let c = wrapped
                .get(i)
                .and_then(|lines| lines.get(line_no))
                .map_or("", String::as_str);
            let pad = w.saturating_sub(c.width());
            let right = numeric.get(i).copied().unwrap_or(false)
                && cells[i]
                    .chars()
                    .next()
                    .is_some_and(|ch| ch.is_ascii_digit() || ch == '-');
            if i > 0 {
                s.push_str(&" ".repeat(GAP));
            }
            if right {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            }
        }
        writeln!(out, "{}", s.trim_end())?;
    }
    Ok(())
}

/// `text` broken into lines no wider than `width` on screen: at spaces where it can, inside a
/// word where a word alone is wider. Text that fits is one line as it is.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    if text.width() <= width || width == 0 {
        return vec![text.to_string()];
    }
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let sep = usize::from(!line.is_empty());
        if !line.is_empty() && line.width() + sep + word.width() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        for ch in word.chars() {
            if line.width() + ch.width().unwrap_or(0) > width && !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            line.push(ch);
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// Writes `text` wrapped to `width` (as it is without one), continuation lines indented by
/// `indent` more than the first.
pub fn write_wrapped(
    out: &mut dyn Write,
    text: &str,
    width: Option<usize>,
    indent: &str,
) -> io::Result<()> {
    let Some(width) = width else {
        return writeln!(out, "{indent}{text}");
    };
    let first = width.saturating_sub(indent.width());
    let lines = wrap(text, first.max(COLUMN_WIDTH_MIN));
    let rest_indent = format!("{indent}  ");
    let mut rest = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if i == 0 {
            writeln!(out, "{indent}{line}")?;
        } else {
            rest.push(line.as_str());
        }
    }
    if !rest.is_empty() {
        let joined = rest.join(" ");
        let room = width
            .saturating_sub(rest_indent.width())
            .max(COLUMN_WIDTH_MIN);
        for line in wrap(&joined, room) {
            writeln!(out, "{rest_indent}{line}")?;
        }
    }
    Ok(())
}

/// One CSV line (RFC 4180 quoting).
pub fn csv_line(cells: &[String]) -> String {
    cells
        .iter()
        .map(|c| {
            if c.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &Table, layout: Layout) -> String {
        let mut out = Vec::new();
        t.write_text(&mut out, layout).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn wide() -> Table {
        let mut t = Table::new(
            "Wide",
            &["rep", "period", "alpha", "beta", "gamma", "delta"],
        )
        .keyed_by(2);
        for i in 0..3 {
            t.row(vec![
                format!("rep-0{i}"),
                "2026-Q1".into(),
                "1".repeat(20),
                "22".into(),
                "a long free text that goes on and on".into(),
                format!("{i}"),
            ]);
        }
        t
    }

    #[test]
    fn piped_output_is_one_line_per_row_with_numbers_to_the_right() {
        let out = text(&wide(), Layout::default());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "Wide");
        assert!(lines[1].starts_with("rep     period   alpha"), "{out}");
        // Title, header, rule, three rows, the blank line.
        assert_eq!(lines.len(), 7, "{out}");
        assert!(lines[3].ends_with("  0"), "{out}");
    }

    #[test]
    fn a_table_wider_than_the_terminal_folds_into_sections_that_repeat_the_keys() {
        let t = wide();
        let out = text(
            &t,
            Layout {
                width: Some(50),
                explain: false,
            },
        );
        for line in out.lines() {
            assert!(line.width() <= 50, "{line:?} is wider than 50:\n{out}");
        }
        // Every row's keys appear once per section, and every cell's text is somewhere.
        let sections = out.matches("rep     period").count();
        assert!(sections >= 2, "{out}");
        assert_eq!(out.matches("rep-01").count(), sections, "{out}");
        for header in &t.headers {
            assert!(out.contains(header.as_str()), "{header} lost:\n{out}");
        }
        assert!(out.contains("delta"), "{out}");
    }

    #[test]
    fn a_cell_too_long_for_the_room_wraps_and_loses_nothing() {
        let mut t = Table::new("", &["id", "what"]);
        let long = "word ".repeat(30).trim_end().to_string();
        t.row(vec!["e-1".into(), long.clone()]);
        let out = text(
            &t,
            Layout {
                width: Some(40),
                explain: false,
            },
        );
        for line in out.lines() {
            assert!(line.width() <= 40, "{line:?}");
        }
        let words: usize = out.lines().skip(2).map(|l| l.matches("word").count()).sum();
        assert_eq!(words, 30, "{out}");
    }

    #[test]
    fn wide_characters_count_two_columns() {
        let mut t = Table::new("", &["company", "n"]);
        t.row(vec!["寻找".into(), "1".into()]);
        t.row(vec!["abcd".into(), "2".into()]);
        let out = text(&t, Layout::default());
        let rows: Vec<&str> = out.lines().skip(2).take(2).collect();
        assert_eq!(rows[0].width(), rows[1].width(), "{out}");
    }

    #[test]
    fn explain_prints_each_figure_s_definition_under_the_table() {
        let mut t = Table::new("", &["stage", "next step"]).explained_by(&["funnel.next_step"]);
        t.row(vec!["lead".into(), "50.0% (1/2)".into()]);
        let plain = text(&t, Layout::default());
        assert!(!plain.contains("Next step:"), "{plain}");
        let explained = text(
            &t,
            Layout {
                width: Some(60),
                explain: true,
            },
        );
        let d = definition("funnel.next_step").unwrap();
        assert!(explained.contains("  Next step: "), "{explained}");
        // The whole text is there, wrapped to the width.
        let joined: String = explained
            .lines()
            .skip_while(|l| !l.contains("Next step:"))
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(joined.contains(d.text), "{joined}");
        for line in explained.lines() {
            assert!(line.width() <= 60, "{line:?}");
        }
    }

    #[test]
    fn wrap_breaks_at_spaces_and_inside_words_only_when_it_must() {
        assert_eq!(wrap("a bb ccc", 4), vec!["a bb", "ccc"]);
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("fits", 10), vec!["fits"]);
    }

    #[test]
    fn csv_quotes_what_must_be_quoted() {
        assert_eq!(
            csv_line(&["a".into(), "b,c".into(), "say \"hi\"".into()]),
            "a,\"b,c\",\"say \"\"hi\"\"\""
        );
    }
}
