//! The diagnostic codes of `qsync import`. Stable: never reuse or rename a released code.
//! Errors mean the spec is incomplete (a `# TODO` line stands where the scheme's setting
//! would go); warnings mean it is complete but something was changed or moved.

/// The file is not JSON.
pub const NOT_JSON: &str = "qsync::import::not_json";
/// The JSON is not a scheme: no `source` and `target` halves, or a half is not an object.
pub const NOT_A_SCHEME: &str = "qsync::import::not_a_scheme";
/// A key the importer does not know; its meaning is not carried over.
pub const UNKNOWN_KEY: &str = "qsync::import::unknown_key";
/// A key the scheme needs (`api`, a request field's `field`) is absent.
pub const MISSING_KEY: &str = "qsync::import::missing_key";
/// A value of the wrong JSON type (`beatFlat: 3`).
pub const WRONG_TYPE: &str = "qsync::import::wrong_type";
/// The API name does not tell the vendor; `--connector` does.
pub const UNKNOWN_VENDOR: &str = "qsync::import::unknown_vendor";
/// A `{{ ... }}` template qsync cannot compile, or a `{PLACEHOLDER}` it does not know.
pub const BAD_TEMPLATE: &str = "qsync::import::bad_template";
/// A request field `parser` other than `StringToArray`.
pub const UNKNOWN_PARSER: &str = "qsync::import::unknown_parser";
/// A `crontab` that is not a cron expression.
pub const BAD_CRON: &str = "qsync::import::bad_cron";
/// Paging the importer cannot express: a page size without a page parameter.
pub const PAGINATION: &str = "qsync::import::pagination";
/// An `omissionRemedy` qsync cannot express: no schedule, or a take-over that is not the
/// window start moved `DAYS_AGO_<n>` back.
pub const REMEDY: &str = "qsync::import::remedy";
/// A `formatResponse` format qsync has no type for.
pub const UNKNOWN_FORMAT: &str = "qsync::import::unknown_format";
/// A field `type` qsync has no column type for; the column is left untyped.
pub const UNKNOWN_TYPE: &str = "qsync::import::unknown_type";
/// The target API does not write to MySQL (`空操作` keeps the records in the platform).
pub const TARGET_API: &str = "qsync::import::target_api";
/// `main_sql` is not an `INSERT`/`REPLACE INTO … VALUES`.
pub const MAIN_SQL_NOT_INSERT: &str = "qsync::import::main_sql_not_insert";
/// `main_sql`'s columns and values do not line up with the request fields.
pub const SQL_COLUMNS: &str = "qsync::import::sql_columns";
/// A target field without a value: the platform writes nothing there, qsync writes NULL.
pub const NO_VALUE: &str = "qsync::import::no_value";
/// `replace`/`upsert`/`ignore` and no column the rows are matched on.
pub const NO_KEY: &str = "qsync::import::no_key";
/// A repeated request field or column.
pub const DUPLICATE_FIELD: &str = "qsync::import::duplicate_field";
/// A value the target cannot use (`{{ CURRENT_TIME }}` in a column).
pub const UNSUPPORTED_VALUE: &str = "qsync::import::unsupported_value";
/// The records are flattened (`beatFlat`) and the key holds only the parent record's id,
/// and the element has no id the importer knows: elements would overwrite each other.
pub const KEY_NOT_UNIQUE: &str = "qsync::import::key_not_unique";
/// `--connector` names a connector whose endpoint for the scheme's API is not known
/// (`--connector jushuitan` on a Qimen method without a known open-API path).
pub const UNKNOWN_ENDPOINT: &str = "qsync::import::unknown_endpoint";
/// The spec does not pass `qsync check` as written (a key that did not translate left the
/// map reading fields the spec no longer provides, e.g. a misspelt `beatFlat`).
pub const SPEC_DOES_NOT_CHECK: &str = "qsync::import::spec_does_not_check";
/// The file is not UTF-8 and not GB18030 either (or a folder entry cannot be read).
pub const UNREADABLE: &str = "qsync::import::unreadable";

/// Warning: the page size was lowered to the vendor's maximum.
pub const PAGE_SIZE_CLAMPED: &str = "qsync::import::page_size_clamped";
/// Warning: a credential in a request field moved to an environment variable.
pub const SECRET_MOVED: &str = "qsync::import::secret_moved";
/// Warning: `{{extend.x}}` (the platform's per-record metadata) reads `extend.x`, else `x`.
pub const PLATFORM_EXTEND: &str = "qsync::import::platform_extend";
/// Warning: `ON DUPLICATE KEY UPDATE` with its own list; `mode upsert` updates every column.
pub const UPSERT_LIST: &str = "qsync::import::upsert_list";
/// Warning: a DingTalk Yida `...TimeGMT` bound given in the source time zone is converted.
pub const GMT_BOUNDS: &str = "qsync::import::gmt_bounds";
/// Warning: a request field that `main_sql` writes to no column.
pub const UNUSED_FIELD: &str = "qsync::import::unused_field";
/// Warning: `INSERT` with `idCheck` becomes `mode ignore`: a record already written is
/// never updated, as on the platform.
pub const IGNORES_UPDATES: &str = "qsync::import::ignores_updates";
/// Warning: the records are flattened and the key held only the parent's id: the
/// element's id column joins the key.
pub const KEY_WIDENED: &str = "qsync::import::key_widened";
/// Warning: the target's `id` is not a column with a value; the key comes from the
/// source's `id` or `number` instead.
pub const KEY_FALLBACK: &str = "qsync::import::key_fallback";
/// Warning: a key that differs from a known key only in case, `_` or `-` (`beatflat`) is
/// read as that key.
pub const KEY_CASE: &str = "qsync::import::key_case";
/// Warning: the file was not UTF-8 and was read as GB18030 (GBK), or as UTF-16 by its BOM.
pub const ENCODING: &str = "qsync::import::encoding";

/// Every code, for the test that each has a golden scheme.
pub const ALL: &[&str] = &[
    NOT_JSON,
    NOT_A_SCHEME,
    UNKNOWN_KEY,
    MISSING_KEY,
    WRONG_TYPE,
    UNKNOWN_VENDOR,
    BAD_TEMPLATE,
    UNKNOWN_PARSER,
    BAD_CRON,
    PAGINATION,
    REMEDY,
    UNKNOWN_FORMAT,
    UNKNOWN_TYPE,
    TARGET_API,
    MAIN_SQL_NOT_INSERT,
    SQL_COLUMNS,
    NO_VALUE,
    NO_KEY,
    DUPLICATE_FIELD,
    UNSUPPORTED_VALUE,
    KEY_NOT_UNIQUE,
    UNKNOWN_ENDPOINT,
    UNREADABLE,
    SPEC_DOES_NOT_CHECK,
    PAGE_SIZE_CLAMPED,
    SECRET_MOVED,
    PLATFORM_EXTEND,
    UPSERT_LIST,
    GMT_BOUNDS,
    UNUSED_FIELD,
    IGNORES_UPDATES,
    KEY_WIDENED,
    KEY_FALLBACK,
    KEY_CASE,
    ENCODING,
];
