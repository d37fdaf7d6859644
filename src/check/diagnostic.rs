//! `CheckDiagnostic` (one finding at a span) and `CheckFailure` (every finding of a file).

use miette::{Diagnostic, LabeledSpan, NamedSource, Severity};
use serde::Serialize;

use crate::syntax::Span;

/// One finding: what is wrong, where, and what to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckDiagnostic {
    pub code: &'static str,
    #[serde(serialize_with = "severity_name")]
    pub severity: Severity,
    pub message: String,
    pub label: String,
    pub span: Span,
    pub help: Option<String>,
}

fn severity_name<S: serde::Serializer>(severity: &Severity, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Advice => "advice",
    })
}

impl CheckDiagnostic {
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> CheckDiagnostic {
        CheckDiagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            label: String::new(),
            span,
            help: None,
        }
    }

    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> CheckDiagnostic {
        CheckDiagnostic {
            severity: Severity::Warning,
            ..CheckDiagnostic::error(code, span, message)
        }
    }

    #[must_use]
    pub fn label(mut self, label: impl Into<String>) -> CheckDiagnostic {
        self.label = label.into();
        self
    }

    #[must_use]
    pub fn help(mut self, help: impl Into<String>) -> CheckDiagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl std::fmt::Display for CheckDiagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CheckDiagnostic {}

impl Diagnostic for CheckDiagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn severity(&self) -> Option<Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let label = (!self.label.is_empty()).then(|| self.label.clone());
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            label, self.span,
        ))))
    }
}

/// Every diagnostic of one file, with its text, so miette can render them all at once.
#[derive(Debug, thiserror::Error)]
#[error("{file} has {} error(s) and {} warning(s)", self.errors(), self.warnings())]
pub struct CheckFailure {
    pub file: String,
    pub src: NamedSource<String>,
    pub diagnostics: Vec<CheckDiagnostic>,
}

impl CheckFailure {
    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    pub fn warnings(&self) -> usize {
        self.diagnostics.len() - self.errors()
    }

    pub fn has_errors(&self) -> bool {
        self.errors() > 0
    }
}

impl Diagnostic for CheckFailure {
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.src)
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(
            self.diagnostics.iter().map(|d| d as &dyn Diagnostic),
        ))
    }
}

/// Renders diagnostics as a person reads them: unicode, no colour, fixed width.
pub fn render(file: &str, text: &str, diagnostics: &[CheckDiagnostic]) -> String {
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .with_width(100)
            .with_links(false);
    let src = NamedSource::new(file, text.to_owned());
    let mut out = String::new();
    for diagnostic in diagnostics {
        let with_source = WithSource {
            diagnostic,
            src: &src,
        };
        // Rendering into a String cannot fail.
        let _ = handler.render_report(&mut out, &with_source);
    }
    out
}

/// A diagnostic paired with its source text, for rendering one at a time.
#[derive(Debug)]
struct WithSource<'a> {
    diagnostic: &'a CheckDiagnostic,
    src: &'a NamedSource<String>,
}

impl std::fmt::Display for WithSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.diagnostic.fmt(f)
    }
}

impl std::error::Error for WithSource<'_> {}

impl Diagnostic for WithSource<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.diagnostic.code()
    }
    fn severity(&self) -> Option<Severity> {
        self.diagnostic.severity()
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.diagnostic.help()
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.diagnostic.labels()
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(self.src)
    }
}

/// Line and column (1-based, in characters) of a byte offset, for JSON output.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}
