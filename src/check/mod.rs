//! Semantic analysis: AST → the validated `Plan`, or every diagnostic of the file at once.
//!
//! Owns what a spec *means* and every rule a spec must obey (one file per rule family).
//! It does not parse text (`syntax`) and does no I/O: the profile and the sample response
//! are handed in already read.

pub mod codes;
mod db;
pub mod diagnostic;
mod directives;
mod map;
mod params;
mod sample;
mod source;
mod target;
mod units;
mod vendor;

use std::collections::BTreeSet;
use std::path::Path;

use crate::config::LoadedProfile;
use crate::plan::{self, AlertRule, OnError, Plan, RemedyPlan, TransformStep};
use crate::syntax::{self, Span};

pub use db::compare_live;
pub use diagnostic::{line_col, render, CheckDiagnostic, CheckFailure};
pub use sample::records as sample_records;
pub(crate) use source::default_size_param;
pub(crate) use units::parse_cron;
/// The closest of some names to a misspelt one (edit distance ≤ 2, or a case-insensitive
/// match), for `did you mean` hints; `import` uses it for scheme keys.
pub(crate) use vendor::closest;

/// What `check` may consult besides the text.
#[derive(Debug, Default, Clone, Copy)]
pub struct CheckContext<'a> {
    /// The profile, when one was found: connections are checked against it.
    pub profile: Option<&'a LoadedProfile>,
    /// A sample vendor response: mapped fields and conversions are tried on it.
    pub sample: Option<&'a serde_json::Value>,
}

/// A spec that passed `check`: its validated plan, and the warnings that did not stop it.
#[derive(Debug, Clone)]
pub struct Checked {
    pub plan: Plan,
    pub warnings: Vec<CheckDiagnostic>,
}

/// Checks one spec and builds its plan. `file` names it in diagnostics; its file stem is the
/// plan's name (the key of its state rows, see [`plan::spec_name`]).
///
/// Errors: a [`CheckFailure`] holding every diagnostic of the file (errors and warnings).
pub fn check(file: &str, text: &str, ctx: CheckContext<'_>) -> Result<Checked, CheckFailure> {
    let failure = |diagnostics| CheckFailure {
        file: file.to_owned(),
        src: syntax::named(file, text),
        diagnostics,
    };
    let spec = match syntax::parse(text) {
        Ok(spec) => spec,
        Err(error) => {
            let start = error.span.offset();
            let span = Span::new(start, start + error.span.len());
            let diagnostic = CheckDiagnostic::error(error.code, span, error.message)
                .label(error.label)
                .help(error.help);
            return Err(failure(vec![diagnostic]));
        }
    };
    let mut checker = Checker::new(ctx, text);
    let name = plan::spec_name(Path::new(file));
    let checked = checker.check_spec(&spec, text, name);
    let diagnostics = checker.finish();
    match checked {
        Some(plan) if !diagnostics.iter().any(CheckDiagnostic::is_error) => Ok(Checked {
            plan,
            warnings: diagnostics,
        }),
        _ => Err(failure(diagnostics)),
    }
}

/// Walks one spec, collecting diagnostics and building plan pieces.
pub(crate) struct Checker<'a> {
    ctx: CheckContext<'a>,
    text: &'a str,
    diagnostics: Vec<CheckDiagnostic>,
}

impl<'a> Checker<'a> {
    fn new(ctx: CheckContext<'a>, text: &'a str) -> Checker<'a> {
        Checker {
            ctx,
            text,
            diagnostics: Vec::new(),
        }
    }

    /// The 1-based line of a span, for "the first is on line N" hints.
    pub(crate) fn line(&self, span: Span) -> usize {
        diagnostic::line_col(self.text, span.start).0
    }

    fn report(&mut self, diagnostic: CheckDiagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn finish(mut self) -> Vec<CheckDiagnostic> {
        self.diagnostics.sort_by_key(|d| (d.span.start, d.span.end));
        self.diagnostics
    }

    fn check_spec(&mut self, spec: &syntax::Spec, text: &str, name: String) -> Option<Plan> {
        let title = self.check_sync(spec);
        let whole = Span::new(0, text.len().min(1));
        let source_ast = self.expect_single(&spec.sources, "source", whole, codes::MISSING_SOURCE);
        let target_ast = self.expect_single(&spec.targets, "target", whole, codes::MISSING_TARGET);
        let map_ast = self.expect_single(&spec.maps, "map", whole, codes::MISSING_MAP);

        // Directives may stand at the top level or inside the source block.
        let mut all_directives: Vec<(&syntax::ast::Directive, Span)> =
            spec.directives.iter().map(|d| (&d.node, d.span)).collect();
        if let Some(source) = source_ast {
            for stmt in &source.statements {
                if let syntax::ast::SourceStmt::Directive(d) = &stmt.node {
                    all_directives.push((d, stmt.span));
                }
            }
        }
        all_directives.sort_by_key(|(_, span)| span.start);
        let directives = self.check_directives(&all_directives);

        let source = source_ast.and_then(|s| self.check_source(s, &directives));
        // The sample as a run would see it: unwrapped, or reported as the vendor's error.
        let sample = match (&source, source_ast, self.ctx.sample) {
            (Some(checked), Some(ast), Some(sample)) => {
                self.decode_sample(sample, checked, block_head(ast.span, "source"))
            }
            _ => None,
        };
        let fields = FieldScope::new(&directives.transforms, source.as_ref(), sample.as_ref());
        let columns = map_ast.map(|m| self.check_map(m, &fields));
        // Why a record can be read twice, which `mode insert` cannot take.
        let rereads = if source.as_ref().is_some_and(|s| s.plan.window.is_some()) {
            "windows overlap and share their bounds, and the remedy run re-reads"
        } else {
            "a source without a window is read whole on every run"
        };
        let target = target_ast.and_then(|t| self.check_target(t, columns.as_deref(), rereads));
        if let (Some(source), Some(target)) = (&source, &target) {
            if source.plan.total.is_some() && source.plan.id.is_none() && target.key.is_empty() {
                self.report(
                    CheckDiagnostic::warning(
                        codes::TOTAL_WITHOUT_IDENTITY,
                        source.total_span,
                        "the vendor's total is checked, but without an `id` or a target `key` \
                         a record read twice cannot be told from two records",
                    )
                    .label("cannot see drift")
                    .help(
                        "name the record id (`id <field>`) or give the target a `key`: a \
                         record that moves to a later page while paging is read twice and \
                         another never, and the raw count still matches the total",
                    ),
                );
            }
        }
        if let (Some(source), Some(columns)) = (&source, &columns) {
            if let Some(sample) = &sample {
                let key = target.as_ref().zip(target_ast).and_then(|(plan, ast)| {
                    let span = ast
                        .node
                        .statements
                        .iter()
                        .find_map(|stmt| match &stmt.node {
                            syntax::ast::TargetStmt::Key(names) => {
                                let (first, last) = (names.first()?, names.last()?);
                                Some(Span::new(first.span.start, last.span.end))
                            }
                            _ => None,
                        })?;
                    Some((plan.key.as_slice(), span))
                });
                self.check_sample(
                    sample,
                    source,
                    &directives.transforms,
                    columns,
                    map_ast,
                    key,
                );
            }
        }
        Some(Plan {
            title: title?,
            name,
            source: source?.plan,
            transforms: directives.transforms.into_iter().map(|(t, _)| t).collect(),
            columns: columns?.into_iter().map(|(c, _)| c).collect(),
            target: target?,
            schedule: directives.schedule,
            remedy: directives.remedy,
            on_error: directives.on_error,
            on_duplicate_key: directives.on_duplicate_key,
            alerts: directives.alerts,
        })
    }

    fn check_sync(&mut self, spec: &syntax::Spec) -> Option<String> {
        let first = self.expect_single(&spec.syncs, "sync", Span::new(0, 0), codes::MISSING_SYNC);
        let title = first?.node.clone();
        if title.trim().is_empty() {
            self.report(
                CheckDiagnostic::error(codes::MISSING_SYNC, first?.span, "the sync name is empty")
                    .label("empty name")
                    .help("name the scheme, e.g. sync \"聚水潭-售后单 -> BI 售后表\""),
            );
        }
        Some(title)
    }

    /// Exactly one block of a kind: reports a missing one, and every extra one.
    fn expect_single<'s, T>(
        &mut self,
        items: &'s [syntax::Spanned<T>],
        what: &str,
        whole: Span,
        missing_code: &'static str,
    ) -> Option<&'s syntax::Spanned<T>> {
        for extra in items.iter().skip(1) {
            self.report(
                CheckDiagnostic::error(
                    codes::DUPLICATE_BLOCK,
                    block_head(extra.span, what),
                    format!("a spec has one `{what}`, this is another"),
                )
                .label(format!("second `{what}`"))
                .help("split the scheme into two spec files, one per integration"),
            );
        }
        if items.is_empty() {
            self.report(
                CheckDiagnostic::error(missing_code, whole, format!("the spec has no `{what}`"))
                    .label(format!("`{what}` missing in this file"))
                    .help(missing_help(what)),
            );
        }
        items.first()
    }
}

/// The span of a block's keyword, so labels do not cover a whole block.
fn block_head(span: Span, keyword: &str) -> Span {
    Span::new(span.start, span.start + keyword.len())
}

fn missing_help(what: &str) -> &'static str {
    match what {
        "sync" => "start the file with sync \"<scheme name>\"",
        "source" => "add source <connector> \"<api method>\" { connection <profile entry> ... }",
        "target" => {
            "add target mysql \"<table>\" { connection <profile entry> mode replace key id }"
        }
        _ => "add map { <column> = <field> ... }",
    }
}

/// Results of the directive family, consumed by the others.
#[derive(Debug, Default)]
pub(crate) struct Directives {
    pub transforms: Vec<(TransformStep, Span)>,
    pub paginate: Option<directives::PaginateAst>,
    pub rates: Vec<crate::plan::RateLimit>,
    /// `@rate ... by send` (true) or `by answer` (false); none: the vendor's default.
    pub rate_by_send: Option<bool>,
    pub retry: Option<crate::plan::RetryPlan>,
    pub timeout: Option<std::time::Duration>,
    pub schedule: Option<String>,
    pub remedy: Option<RemedyPlan>,
    pub on_error: OnError,
    pub on_duplicate_key: crate::plan::OnDuplicateKey,
    pub alerts: Vec<AlertRule>,
}

/// Which record fields exist after the transforms, as far as `check` can know.
#[derive(Debug, Default)]
pub(crate) struct FieldScope {
    /// Prefixes produced by `@flatten` (`items` → `items_*`).
    pub flattened: BTreeSet<String>,
    /// Arrays known to hold nested rows (vendor knowledge, sample).
    pub known_arrays: BTreeSet<String>,
    /// Fields renamed away, with the name they now have.
    pub renamed: Vec<(String, String)>,
}

impl FieldScope {
    fn new(
        transforms: &[(TransformStep, Span)],
        source: Option<&source::CheckedSource>,
        sample: Option<&serde_json::Value>,
    ) -> FieldScope {
        let mut scope = FieldScope::default();
        for (step, _) in transforms {
            match step {
                TransformStep::Flatten { prefix, .. } => {
                    scope.flattened.insert(prefix.clone());
                }
                TransformStep::Rename { from, to, .. } => {
                    scope.renamed.push((from.join("."), to.clone()));
                }
                TransformStep::Split { .. } | TransformStep::Filter { .. } => {}
            }
        }
        if let Some(source) = source {
            let arrays = vendor::known_arrays(source.plan.kind, &source.plan.endpoint);
            scope
                .known_arrays
                .extend(arrays.iter().map(|s| (*s).to_owned()));
            if let Some(sample) = sample {
                for record in sample::records(sample, &source.plan.records) {
                    if let Some(obj) = record.as_object() {
                        for (key, value) in obj {
                            if value.is_array() {
                                scope.known_arrays.insert(key.clone());
                            }
                        }
                    }
                }
            }
        }
        scope
    }
}

#[cfg(test)]
mod rate_spacing {
    const SPEC: &str = include_str!("../../specs/jst-refunds.qsync");

    fn with_rate(line: &str) -> String {
        SPEC.replace("@rate 5/s 100/min", line)
    }

    #[test]
    fn a_qimen_source_is_spaced_by_answer_unless_the_spec_says_by_send() {
        let checked = |line: &str| {
            super::check("r.qsync", &with_rate(line), super::CheckContext::default())
                .unwrap_or_else(|e| panic!("{line}: {:?}", e.diagnostics))
        };
        assert!(!checked("@rate 5/s 100/min").plan.source.rate_by_send);
        assert!(!checked("@rate 5/s by answer").plan.source.rate_by_send);
        let by_send = checked("@rate 5/s 100/min by send");
        assert!(by_send.plan.source.rate_by_send);
        assert_eq!(by_send.plan.source.rates.len(), 2);
    }

    #[test]
    fn each_vendor_has_its_default_spacing_and_the_spec_overrides_it() {
        let spec = |name: &str| {
            std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("specs")
                    .join(name),
            )
            .expect("example spec")
        };
        let by_send = |text: &str| {
            super::check("s.qsync", text, super::CheckContext::default())
                .unwrap_or_else(|e| panic!("{text}: {:?}", e.diagnostics))
                .plan
                .source
                .rate_by_send
        };
        // Vendors that refuse one call over the limit: at the limit.
        let jst = spec("jst-orders.qsync");
        assert!(by_send(&jst));
        assert!(by_send(&spec("jikeyun-warehouses.qsync")));
        assert!(by_send(&spec("yida-receipts.qsync")));
        assert!(by_send(&spec("http-orders.qsync")));
        // Vendors that ban the app key: never over it.
        assert!(!by_send(&spec("wdt-refunds.qsync")));
        assert!(!by_send(SPEC));
        // The spec's word wins.
        assert!(!by_send(
            &jst.replace("@rate 5/s 100/min", "@rate 5/s 100/min by answer")
        ));
    }

    #[test]
    fn an_unknown_spacing_is_a_parse_error_at_the_word() {
        let text = with_rate("@rate 5/s by sending");
        let Err(failure) = super::check("r.qsync", &text, super::CheckContext::default()) else {
            panic!("`by sending` is refused");
        };
        let first = &failure.diagnostics[0];
        let at = text.find("by sending").expect("in the text") + 3;
        assert_eq!(first.span.start, at, "{first:?}");
        assert!(first.message.contains("`send` or `answer`"), "{first:?}");
    }
}

#[cfg(test)]
mod fuzz {
    //! No input panics the parser or the checker: random text, and real specs with random
    //! bytes inserted, deleted or replaced.

    use proptest::prelude::*;

    const SPECS: &[&str] = &[
        include_str!("../../specs/jst-refunds.qsync"),
        include_str!("../../specs/wdt-refunds.qsync"),
        include_str!("../../specs/yida-receipts.qsync"),
        include_str!("../../specs/http-orders.qsync"),
        include_str!("../../tests/check/base.qsync"),
    ];

    /// Characters that matter to the grammar, plus some that do not.
    const ALPHABET: &[char] = &[
        '{', '}', '(', ')', '[', ']', '"', '<', '>', '@', '#', '=', ':', ',', '.', '-', '/', '\\',
        '\n', ' ', 'a', 'z', '_', '0', '9', '售', '{', '%', '|', '\u{0}', '\u{FEFF}',
    ];

    fn mutate(text: &str, edits: &[(usize, u8, usize)]) -> String {
        let mut chars: Vec<char> = text.chars().collect();
        for (pos, op, c) in edits {
            if chars.is_empty() {
                break;
            }
            let at = pos % chars.len();
            let c = ALPHABET[c % ALPHABET.len()];
            match op % 3 {
                0 => chars.insert(at, c),
                1 => {
                    chars.remove(at);
                }
                _ => chars[at] = c,
            }
        }
        chars.into_iter().collect()
    }

    /// The base spec with one value nested `depth` deep: calls, `case` subjects, arrays in a
    /// request parameter, objects in a `json(...)` parameter.
    fn nested(shape: usize, depth: usize) -> String {
        let base = SPECS[4];
        match shape {
            0 => base.replace(
                "source_id = 3",
                &format!(
                    "source_id = {}3{}",
                    "coalesce(".repeat(depth),
                    ")".repeat(depth)
                ),
            ),
            1 => base.replace(
                "source_id = 3",
                &format!(
                    "source_id = {}a{}",
                    "case ".repeat(depth),
                    " { _ => 1 }".repeat(depth)
                ),
            ),
            2 => base.replace(
                "    records data.datas",
                &format!(
                    "    param x = {}1{}\n    records data.datas",
                    "[".repeat(depth),
                    "]".repeat(depth)
                ),
            ),
            _ => base.replace(
                "    records data.datas",
                &format!(
                    "    param x = json({}1{})\n    records data.datas",
                    "{a: ".repeat(depth.saturating_sub(1)),
                    "}".repeat(depth.saturating_sub(1))
                ),
            ),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn random_text_never_panics(text in "\\PC{0,300}") {
            let _ = super::check("fuzz.qsync", &text, super::CheckContext::default());
        }

        #[test]
        fn mutated_specs_never_panic(
            which in 0..SPECS.len(),
            edits in proptest::collection::vec((0usize..100_000, 0u8..3, 0usize..64), 1..8),
        ) {
            let text = mutate(SPECS[which], &edits);
            let _ = super::check("fuzz.qsync", &text, super::CheckContext::default());
        }

        /// Nesting near and far past the limit, of every shape that recurses, checked on a
        /// thread with tokio's default worker stack (2 MiB): a diagnostic, never an overflow.
        #[test]
        fn nesting_depth_is_a_diagnostic_on_small_stacks(
            shape in 0usize..4,
            depth in prop_oneof![0usize..80, 80usize..3_000],
        ) {
            let text = nested(shape, depth);
            let found = std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn(move || {
                    match super::check("fuzz.qsync", &text, super::CheckContext::default()) {
                        Ok(_) => Vec::new(),
                        Err(failure) => failure.diagnostics.iter().map(|d| d.code).collect(),
                    }
                })
                .expect("thread")
                .join()
                .expect("no panic");
            // Each shape stands one level deep (in the map or source block) before it nests.
            let too_deep = depth + 1 > crate::syntax::MAX_NESTING;
            prop_assert_eq!(found.contains(&super::codes::TOO_DEEP), too_deep, "{:?}", found);
        }

        #[test]
        fn truncated_specs_never_panic(which in 0..SPECS.len(), cut in 0usize..100_000) {
            let text: String = SPECS[which].chars().take(cut % (SPECS[which].chars().count() + 1)).collect();
            let _ = super::check("fuzz.qsync", &text, super::CheckContext::default());
        }
    }
}
