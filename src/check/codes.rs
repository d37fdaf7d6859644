//! The diagnostic-code registry. Codes are stable: never reuse or rename a released code.

// The two syntax codes are spelled here too so this file stays the one list of codes;
// `syntax_codes_match` keeps them equal to `syntax`'s.
pub const SYNTAX: &str = "qsync::syntax::unexpected";
pub const TOO_DEEP: &str = "qsync::syntax::too_deep";
pub const MISSING_SYNC: &str = "qsync::check::missing_sync";
pub const DUPLICATE_BLOCK: &str = "qsync::check::duplicate_block";
pub const MISSING_SOURCE: &str = "qsync::check::missing_source";
pub const MISSING_TARGET: &str = "qsync::check::missing_target";
pub const MISSING_MAP: &str = "qsync::check::missing_map";
pub const UNKNOWN_CONNECTOR: &str = "qsync::check::unknown_connector";
pub const UNKNOWN_TARGET_KIND: &str = "qsync::check::unknown_target_kind";
pub const MISSING_CONNECTION: &str = "qsync::check::missing_connection";
pub const UNKNOWN_PROFILE: &str = "qsync::check::unknown_profile";
pub const PROFILE_KIND_MISMATCH: &str = "qsync::check::profile_kind_mismatch";
pub const PROFILE_UNKNOWN_KEY: &str = "qsync::check::profile_unknown_key";
pub const PROFILE_BAD_CONNECTION: &str = "qsync::check::profile_bad_connection";
pub const MISSING_ENV: &str = "qsync::check::missing_env";
pub const UNKNOWN_HTTP_METHOD: &str = "qsync::check::unknown_http_method";
pub const DUPLICATE_STATEMENT: &str = "qsync::check::duplicate_statement";
pub const DUPLICATE_PARAM: &str = "qsync::check::duplicate_param";
pub const UNKNOWN_VARIABLE: &str = "qsync::check::unknown_variable";
pub const BAD_TEMPLATE: &str = "qsync::check::bad_template";
pub const TEMPLATE_RENDER: &str = "qsync::check::template_render";
pub const UNKNOWN_FUNCTION: &str = "qsync::check::unknown_function";
pub const BAD_ARGUMENTS: &str = "qsync::check::bad_arguments";
pub const BAD_DURATION: &str = "qsync::check::bad_duration";
pub const BAD_RATE: &str = "qsync::check::bad_rate";
pub const BAD_WINDOW: &str = "qsync::check::bad_window";
pub const WINDOW_UNUSED: &str = "qsync::check::window_unused";
pub const WINDOW_OVER_LIMIT: &str = "qsync::check::window_over_limit";
pub const PAGINATE_COLLISION: &str = "qsync::check::paginate_collision";
pub const BAD_PAGINATION: &str = "qsync::check::bad_pagination";
pub const PAGE_SIZE_OVER_LIMIT: &str = "qsync::check::page_size_over_limit";
pub const UNKNOWN_DIRECTIVE: &str = "qsync::check::unknown_directive";
pub const DUPLICATE_DIRECTIVE: &str = "qsync::check::duplicate_directive";
pub const BAD_CRON: &str = "qsync::check::bad_cron";
pub const UNKNOWN_MODE: &str = "qsync::check::unknown_mode";
pub const UNKNOWN_TYPE: &str = "qsync::check::unknown_type";
pub const BAD_TYPE_ARGUMENTS: &str = "qsync::check::bad_type_arguments";
pub const DUPLICATE_COLUMN: &str = "qsync::check::duplicate_column";
pub const KEY_NOT_MAPPED: &str = "qsync::check::key_not_mapped";
pub const MODE_NEEDS_KEY: &str = "qsync::check::mode_needs_key";
pub const FLATTEN_NOT_DECLARED: &str = "qsync::check::flatten_not_declared";
pub const RENAMED_FIELD: &str = "qsync::check::renamed_field";
pub const CONSTANT_TYPE: &str = "qsync::check::constant_type";
pub const BAD_NUMBER: &str = "qsync::check::bad_number";
pub const BAD_ON_ERROR: &str = "qsync::check::bad_on_error";
pub const BAD_ON_DUPLICATE_KEY: &str = "qsync::check::bad_on_duplicate_key";
pub const BAD_ALERT: &str = "qsync::check::bad_alert";
pub const BAD_FILTER: &str = "qsync::check::bad_filter";
pub const BAD_IDENTIFIER: &str = "qsync::check::bad_identifier";
pub const BAD_INTERPOLATION: &str = "qsync::check::bad_interpolation";
pub const SQL_KEY_COLUMN: &str = "qsync::check::sql_key_column";
pub const BAD_SQL: &str = "qsync::check::bad_sql";
pub const SAMPLE_MISSING_FIELD: &str = "qsync::check::sample_missing_field";
pub const SAMPLE_CONVERSION: &str = "qsync::check::sample_conversion";
pub const SAMPLE_NO_RECORDS: &str = "qsync::check::sample_no_records";
pub const SAMPLE_VENDOR_ERROR: &str = "qsync::check::sample_vendor_error";
pub const SAMPLE_DUPLICATE_KEY: &str = "qsync::check::sample_duplicate_key";
pub const DB_MISSING_TABLE: &str = "qsync::check::db_missing_table";
pub const DB_MISSING_COLUMN: &str = "qsync::check::db_missing_column";
pub const DB_TYPE_NARROWING: &str = "qsync::check::db_type_narrowing";
pub const DB_NO_UNIQUE_KEY: &str = "qsync::check::db_no_unique_key";
pub const DB_REPLACE_PITFALL: &str = "qsync::check::db_replace_pitfall";
pub const DB_ONE_CONNECTION: &str = "qsync::check::db_one_connection";
pub const DB_KEY_COLLATION: &str = "qsync::check::db_key_collation";
pub const INSERT_REREADS: &str = "qsync::check::insert_rereads";
pub const KEYSET_NEEDS_ID: &str = "qsync::check::keyset_needs_id";
pub const TOTAL_WITHOUT_IDENTITY: &str = "qsync::check::total_without_identity";
pub const HTTP_NO_ERROR_PATH: &str = "qsync::check::http_no_error_path";

#[cfg(test)]
mod tests {
    #[test]
    fn syntax_codes_match() {
        assert_eq!(super::SYNTAX, crate::syntax::UNEXPECTED);
        assert_eq!(super::TOO_DEEP, crate::syntax::TOO_DEEP);
    }
}
