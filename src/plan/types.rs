//! The compiled plan: plain data, already validated, nothing downstream re-parses text.
//!
//! Owns the intermediate representation shared by `exec`, `source`, `connectors`,
//! `transform` and `sink`: the spec, its source and target. The map block is in
//! `plan/expr.rs`, paging in `plan/paging.rs`, paths in `plan/path.rs`. It does not own how
//! a plan is built (`check::check`) nor how the whole plan is printed (`dryrun`, which
//! prints the `Display` of the pieces).

use std::time::Duration;

use serde::Serialize;

use super::{duration, ColumnPlan, ColumnType, FieldPath, PaginationPlan};

/// One compiled `.qsync` spec.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The `sync "<name>"` title.
    pub title: String,
    /// The spec's file stem; the key of its state rows.
    pub name: String,
    pub source: SourcePlan,
    pub transforms: Vec<TransformStep>,
    pub columns: Vec<ColumnPlan>,
    pub target: TargetPlan,
    pub schedule: Option<String>,
    pub remedy: Option<RemedyPlan>,
    pub on_error: OnError,
    /// What rows of one window sharing a target key do; left out of the serialized plan
    /// (and so of the spec hash) when it is the default.
    #[serde(skip_serializing_if = "OnDuplicateKey::is_last")]
    pub on_duplicate_key: OnDuplicateKey,
    pub alerts: Vec<AlertRule>,
}

/// Which vendor protocol a source speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorKind {
    Jushuitan,
    Qimen,
    Jikeyun,
    Wdt,
    DingtalkYida,
    Http,
}

impl ConnectorKind {
    pub const ALL: [ConnectorKind; 6] = [
        ConnectorKind::Jushuitan,
        ConnectorKind::Qimen,
        ConnectorKind::Jikeyun,
        ConnectorKind::Wdt,
        ConnectorKind::DingtalkYida,
        ConnectorKind::Http,
    ];

    pub fn keyword(self) -> &'static str {
        match self {
            ConnectorKind::Jushuitan => "jushuitan",
            ConnectorKind::Qimen => "qimen",
            ConnectorKind::Jikeyun => "jikeyun",
            ConnectorKind::Wdt => "wdt",
            ConnectorKind::DingtalkYida => "dingtalk_yida",
            ConnectorKind::Http => "http",
        }
    }

    pub fn from_keyword(word: &str) -> Option<ConnectorKind> {
        ConnectorKind::ALL
            .into_iter()
            .find(|kind| kind.keyword() == word)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HttpMethod {
    Get,
    Post,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
        }
    }
}

/// Where a request value goes. Connectors decide what "body" means for their vendor
/// (Jushuitan's `biz` JSON string, Jikeyun's `bizcontent`, WDT's JSON-array body, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamPlace {
    Body,
    Query,
    Header,
}

/// A request parameter value before rendering: templates are compiled in `check` and
/// rendered per request in `source`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ParamValue {
    /// A minijinja template producing a string.
    Template(String),
    Number(serde_json::Number),
    Bool(bool),
    Null,
    Object(Vec<(String, ParamValue)>),
    Array(Vec<ParamValue>),
    /// `json({...})`: the object is sent as a JSON *string* (Yida's `searchFieldJson`).
    JsonString(Box<ParamValue>),
    /// `split("<template>", ",")`: a comma string becomes an array of strings.
    Split {
        template: String,
        separator: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct ParamPlan {
    /// Dotted path of the parameter, e.g. `pager.page_no` or `start_time`.
    pub path: FieldPath,
    pub place: ParamPlace,
    pub value: ParamValue,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourcePlan {
    pub kind: ConnectorKind,
    /// API method name (`jushuitan.refund.list.query`) or path (`/v1.0/yida/processes/instances`).
    pub endpoint: String,
    pub http_method: HttpMethod,
    pub connection: String,
    pub params: Vec<ParamPlan>,
    pub window: Option<WindowPlan>,
    pub pagination: PaginationPlan,
    /// Every limit applies at once (Jushuitan: 5/s and 100/min).
    pub rates: Vec<RateLimit>,
    /// Log calls at their send, not their answer (see `source::rate`): `@rate ... by send`,
    /// or the vendor's default (`connectors::spaces_rate_by_send`).
    pub rate_by_send: bool,
    pub retry: RetryPlan,
    /// Path to the records array in a decoded response, e.g. `data.datas`.
    pub records: FieldPath,
    /// Record id field for de-duplication (`idCheck`).
    pub id: Option<FieldPath>,
    /// Record modified-time field: the latest version wins on duplicate ids.
    pub modified: Option<FieldPath>,
    /// Path to a vendor-reported total, checked for completeness.
    pub total: Option<FieldPath>,
    pub timeout: Duration,
    /// Pages per window before paging is taken for runaway (`@paginate ... max_pages N`,
    /// else [`MAX_PAGES`]).
    pub max_pages: u64,
}

/// Most pages one window may take when the spec does not say (`max_pages`).
pub const MAX_PAGES: u64 = 100_000;

#[derive(Debug, Clone, Serialize)]
pub struct WindowPlan {
    /// Longest span one request may cover (Jushuitan: 7 days).
    #[serde(with = "duration::secs")]
    pub max_span: Duration,
    /// Subtracted from "now" so records still being written are read next time.
    #[serde(with = "duration::secs")]
    pub lag: Duration,
    /// Overlap re-read before the stored high-water mark, against clock skew.
    #[serde(with = "duration::secs")]
    pub overlap: Duration,
    /// Where the very first run starts (`yyyy-MM-dd HH:mm:ss`, source time zone); without
    /// it the first run needs `--since`.
    pub initial: Option<chrono::NaiveDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RateLimit {
    pub requests: u32,
    #[serde(with = "duration::secs")]
    pub per: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct RetryPlan {
    /// Total attempts per request, the first included.
    pub attempts: u32,
    #[serde(with = "duration::secs")]
    pub base: Duration,
    #[serde(with = "duration::secs")]
    pub max: Duration,
}

impl Default for RetryPlan {
    fn default() -> Self {
        RetryPlan {
            attempts: 6,
            base: Duration::from_millis(500),
            max: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TransformStep {
    /// `@flatten items`: one row per element; element fields become `items_<field>`.
    Flatten { path: FieldPath, prefix: String },
    /// `@rename old -> new : type`: rename a field, optionally converting it.
    Rename {
        from: FieldPath,
        to: String,
        convert: Option<ColumnType>,
    },
    /// `@split field ","`: a delimited string becomes an array.
    Split { field: FieldPath, separator: String },
    /// `@filter field op value`: keep only records for which the test holds.
    Filter {
        field: FieldPath,
        op: FilterOp,
        value: serde_json::Value,
    },
}

/// The step as the dry run shows it: `@flatten items: one row per element, ...`.
impl std::fmt::Display for TransformStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransformStep::Flatten { path, prefix } => write!(
                f,
                "@flatten {}: one row per element, element fields as `{prefix}_<field>`",
                path.label()
            ),
            TransformStep::Rename { from, to, convert } => {
                write!(f, "@rename {} -> {to}", from.label())?;
                match convert {
                    Some(ty) => write!(f, " : {ty}"),
                    None => Ok(()),
                }
            }
            TransformStep::Split { field, separator } => {
                write!(f, "@split {} by {separator:?}", field.label())
            }
            TransformStep::Filter { field, op, value } => {
                write!(f, "@filter {} {op:?} {value}", field.label())
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    IsNull,
    IsNotNull,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    Insert,
    Replace,
    Upsert,
    Ignore,
}

impl WriteMode {
    pub fn keyword(self) -> &'static str {
        match self {
            WriteMode::Insert => "insert",
            WriteMode::Replace => "replace",
            WriteMode::Upsert => "upsert",
            WriteMode::Ignore => "ignore",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetPlan {
    pub connection: String,
    /// Table name, possibly `schema.table`; validated identifier parts.
    pub table: Vec<String>,
    pub mode: WriteMode,
    pub key: Vec<String>,
    pub batch: usize,
    /// Create the table from the map's types when it does not exist.
    pub create: bool,
    /// A minijinja template for the statement head (`REPLACE INTO t (...) VALUES`);
    /// qsync appends the bound row tuples.
    pub sql: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RemedyPlan {
    pub schedule: String,
    #[serde(with = "duration::secs")]
    pub lookback: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Bad records go to `_qsync_rejects`; the run continues.
    #[default]
    Reject,
    /// The first bad record fails the run.
    Fail,
}

/// `@on_duplicate_key`: what happens when rows of one window collapse onto one target key
/// (`key trade_no, goods_no` and a gift line with the goods number of a real line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDuplicateKey {
    /// The row written last stays (the write mode decides: `replace` and `upsert` keep the
    /// last, `ignore` the first); every collision is counted in the summary, the window
    /// ledger and the log, with the first few keys.
    #[default]
    Last,
    /// The first collision fails the window, naming the key; nothing of it is written.
    Fail,
}

impl OnDuplicateKey {
    /// Whether this is the default, `last`.
    pub fn is_last(&self) -> bool {
        *self == OnDuplicateKey::Last
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AlertRule {
    /// `@alert lag > 2h`
    Lag {
        #[serde(with = "duration::secs")]
        over: Duration,
    },
    /// `@alert rejects > 100`
    Rejects { over: u64 },
}
