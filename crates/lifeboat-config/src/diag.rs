//! Diagnostics: every error in a file, each with file, line, column, key and a fix.

use std::ops::Range;

use serde::Serialize;

/// One error found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file it is in.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// The dotted key it is about (`plan.hourly.schedule`); empty for a syntax error.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Diagnostic {
    /// `LINE:COLUMN KEY: MESSAGE`, the form the corpus files expect.
    pub fn short(&self) -> String {
        if self.key.is_empty() {
            format!("{}:{} {}", self.line, self.column, self.message)
        } else {
            format!(
                "{}:{} {}: {}",
                self.line, self.column, self.key, self.message
            )
        }
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n    fix: {fix}")?;
        }
        Ok(())
    }
}

/// Every error found in a file (never empty when returned as an error).
#[derive(Debug, Clone, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Collects diagnostics for one source text.
pub(crate) struct Sink<'s> {
    file: String,
    src: &'s str,
    line_starts: Vec<usize>,
    pub(crate) diags: Vec<Diagnostic>,
}

impl<'s> Sink<'s> {
    pub(crate) fn new(file: &str, src: &'s str) -> Sink<'s> {
        let mut line_starts = vec![0];
        line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Sink {
            file: file.to_string(),
            src,
            line_starts,
            diags: Vec::new(),
        }
    }

    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let col = self
            .src
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(offset - start);
        (line + 1, col + 1)
    }

    /// Records an error at `span` about `key`.
    pub(crate) fn error(
        &mut self,
        span: &Range<usize>,
        key: &str,
        message: impl Into<String>,
        fix: Option<String>,
    ) {
        let (line, column) = self.position(span.start);
        self.diags.push(Diagnostic {
            file: self.file.clone(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
            fix,
        });
    }

    /// The diagnostics in file order.
    pub(crate) fn finish(mut self) -> Vec<Diagnostic> {
        self.diags
            .sort_by(|a, b| (a.line, a.column, &a.key).cmp(&(b.line, b.column, &b.key)));
        self.diags.dedup();
        self.diags
    }
}
