//! The compiled plan: plain data, already validated, nothing downstream re-parses text.
//!
//! Owns the intermediate representation shared by `exec`, `source`, `connectors`,
//! `transform` and `sink`. It does not own how a plan is built (`plan::compile`) nor how it
//! is printed (`plan::display`).

use std::time::Duration;

use serde::Serialize;

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

    /// How `@rate` spaces calls when the spec does not say (see `source::rate`). By send
    /// (at the limit) where one call over it costs one refused call that is retried:
    /// Jushuitan's code 199, Jikeyun's upstream throttling, Yida's 403 QPS limit, a plain
    /// API's 429. By answer (never over it, one round trip slower per interval) where the
    /// vendor bans the app key for a while: Qimen's "This ban will last N more seconds",
    /// WDT's advice to wait 5-10 minutes.
    pub fn spaces_rate_by_send(self) -> bool {
        match self {
            ConnectorKind::Jushuitan
            | ConnectorKind::Jikeyun
            | ConnectorKind::DingtalkYida
            | ConnectorKind::Http => true,
            ConnectorKind::Qimen | ConnectorKind::Wdt => false,
        }
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
    pub path: Vec<String>,
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
    /// or the vendor's default ([`ConnectorKind::spaces_rate_by_send`]).
    pub rate_by_send: bool,
    pub retry: RetryPlan,
    /// Path to the records array in a decoded response, e.g. `data.datas`.
    pub records: Vec<String>,
    /// Record id field for de-duplication (`idCheck`).
    pub id: Option<Vec<String>>,
    /// Record modified-time field: the latest version wins on duplicate ids.
    pub modified: Option<Vec<String>>,
    /// Path to a vendor-reported total, checked for completeness.
    pub total: Option<Vec<String>>,
    pub timeout: Duration,
    /// Pages per window before paging is taken for runaway (`@paginate ... max_pages N`).
    pub max_pages: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WindowPlan {
    /// Longest span one request may cover (Jushuitan: 7 days).
    #[serde(with = "duration_secs")]
    pub max_span: Duration,
    /// Subtracted from "now" so records still being written are read next time.
    #[serde(with = "duration_secs")]
    pub lag: Duration,
    /// Overlap re-read before the stored high-water mark, against clock skew.
    #[serde(with = "duration_secs")]
    pub overlap: Duration,
    /// Where the very first run starts (`yyyy-MM-dd HH:mm:ss`, source time zone); without
    /// it the first run needs `--since`.
    pub initial: Option<chrono::NaiveDateTime>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PaginationPlan {
    /// One request, no paging.
    None,
    /// Page numbers: `@paginate page_index size 50`.
    Page {
        param: Vec<String>,
        size_param: Vec<String>,
        size: u32,
        first: i64,
        until: EndRule,
    },
    /// Offset/limit: `@paginate offset offset size 100 size_param limit`.
    Offset {
        param: Vec<String>,
        size_param: Vec<String>,
        size: u32,
        until: EndRule,
    },
    /// Cursor/next token taken from the response: `@paginate cursor next from data.next_cursor`.
    Cursor {
        param: Vec<String>,
        from: Vec<String>,
        size_param: Option<Vec<String>>,
        size: Option<u32>,
    },
    /// Keyset (Jushuitan `start_ts`): the next request carries the max of a record field.
    Keyset {
        param: Vec<String>,
        field: Vec<String>,
        size_param: Vec<String>,
        size: u32,
    },
}

/// How the last page is recognised.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", content = "path", rename_all = "snake_case")]
pub enum EndRule {
    /// A page with fewer records than the page size (or none).
    ShortPage,
    /// Only an empty page ends the paging.
    EmptyPage,
    /// A boolean in the response (`data.has_next`).
    HasNext(Vec<String>),
    /// A page count in the response (`data.page_count`).
    PageCount(Vec<String>),
    /// A total record count in the response (`data.total_count`).
    Total(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RateLimit {
    pub requests: u32,
    #[serde(with = "duration_secs")]
    pub per: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct RetryPlan {
    /// Total attempts per request, the first included.
    pub attempts: u32,
    #[serde(with = "duration_secs")]
    pub base: Duration,
    #[serde(with = "duration_secs")]
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
    Flatten { path: Vec<String>, prefix: String },
    /// `@rename old -> new : type`: rename a field, optionally converting it.
    Rename {
        from: Vec<String>,
        to: String,
        convert: Option<ColumnType>,
    },
    /// `@split field ","`: a delimited string becomes an array.
    Split {
        field: Vec<String>,
        separator: String,
    },
    /// `@filter field op value`: keep only records for which the test holds.
    Filter {
        field: Vec<String>,
        op: FilterOp,
        value: serde_json::Value,
    },
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

/// SQL column type of a mapped column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ColumnType {
    Int,
    Bigint,
    Decimal { precision: u8, scale: u8 },
    String { length: Option<u32> },
    Text,
    Datetime,
    Date,
    Bool,
    Json,
    Double,
}

impl ColumnType {
    /// The MySQL DDL type.
    pub fn sql(self) -> String {
        match self {
            ColumnType::Int => "INT".to_owned(),
            ColumnType::Bigint => "BIGINT".to_owned(),
            ColumnType::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
            ColumnType::String { length } => format!("VARCHAR({})", length.unwrap_or(255)),
            ColumnType::Text => "TEXT".to_owned(),
            ColumnType::Datetime => "DATETIME".to_owned(),
            ColumnType::Date => "DATE".to_owned(),
            ColumnType::Bool => "TINYINT(1)".to_owned(),
            ColumnType::Json => "JSON".to_owned(),
            ColumnType::Double => "DOUBLE".to_owned(),
        }
    }
}

impl std::fmt::Display for ColumnType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ColumnType::Int => f.write_str("int"),
            ColumnType::Bigint => f.write_str("bigint"),
            ColumnType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            ColumnType::String { length: Some(n) } => write!(f, "string({n})"),
            ColumnType::String { length: None } => f.write_str("string"),
            ColumnType::Text => f.write_str("text"),
            ColumnType::Datetime => f.write_str("datetime"),
            ColumnType::Date => f.write_str("date"),
            ColumnType::Bool => f.write_str("bool"),
            ColumnType::Json => f.write_str("json"),
            ColumnType::Double => f.write_str("double"),
        }
    }
}

/// One target column and how its value is computed from a (flattened) record.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnPlan {
    pub name: String,
    pub ty: ColumnType,
    pub expr: Expr,
}

impl ColumnPlan {
    /// Raw SQL columns are written into the statement text, not bound.
    pub fn is_bound(&self) -> bool {
        !matches!(self.expr, Expr::Sql(_))
    }
}

/// A value expression of the `map` block.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", content = "args", rename_all = "snake_case")]
pub enum Expr {
    /// A record field path (`extend.processInstanceId`).
    Field(Vec<String>),
    /// `"<as_id>-<items_asi_id>"`.
    Interpolate(Vec<Piece>),
    Const(serde_json::Value),
    /// `sql("NOW()")`: raw SQL written into the statement.
    Sql(String),
    Coalesce(Vec<Expr>),
    Concat(Vec<Expr>),
    /// `date_format(field, "%Y-%m-%d")` (chrono strftime).
    DateFormat(Box<Expr>, String),
    /// `now()`: the run's clock, in the profile's time zone.
    Now,
    /// `days_ago(n)`: midnight n days before the run's clock.
    DaysAgo(i64),
    /// `case status { "A" => "x", _ => "y" }`.
    Case {
        subject: Box<Expr>,
        arms: Vec<(serde_json::Value, Expr)>,
        default: Option<Box<Expr>>,
    },
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Piece {
    Text(String),
    Field(Vec<String>),
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
    #[serde(with = "duration_secs")]
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

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AlertRule {
    /// `@alert lag > 2h`
    Lag {
        #[serde(with = "duration_secs")]
        over: Duration,
    },
    /// `@alert rejects > 100`
    Rejects { over: u64 },
}

mod duration_secs {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}
