//! Errors of fetching: each names the spec, the window and the page it happened on, and
//! for vendor errors the vendor's code and message and the request URL, secrets masked.

use super::http::Site;

/// A failure to fetch a window's records.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    /// `connection jst` whose profile entry lacks `app_secret`; `message` names the
    /// connection itself (`connection `jst` has no `app_secret` ...`).
    #[error("spec `{spec}`: {message}")]
    Connector {
        spec: String,
        connection: String,
        message: String,
    },
    /// `param start = "{{ window.start | datetime('%Q') }}"`.
    #[error("{at}: cannot build the request: {message}")]
    Request { at: Box<Site>, message: String },
    /// A wrong `app_secret`: the vendor answers "bad signature".
    #[error(
        "{at}: the vendor refused the request with code \
         {code}: {message} (request {url}); not retried"
    )]
    Vendor {
        at: Box<Site>,
        code: String,
        message: String,
        url: String,
    },
    /// A token refused again right after it was refreshed.
    #[error(
        "{at}: the vendor refused a freshly obtained token \
         with code {code}: {message} (request {url})"
    )]
    TokenRefused {
        at: Box<Site>,
        code: String,
        message: String,
        url: String,
    },
    /// The token endpoint answered with an error (wrong `app_secret` on Yida).
    #[error("spec `{spec}`: cannot obtain a token from connection `{connection}`: {message}")]
    Token {
        spec: String,
        connection: String,
        message: String,
    },
    /// 500s on every attempt of `@retry 3`.
    #[error(
        "{at}: gave up after {attempts} attempts; last \
         error: {last} (request {url})"
    )]
    GaveUp {
        at: Box<Site>,
        attempts: u32,
        last: String,
        url: String,
    },
    /// `Retry-After: 3600` under `@retry 6 backoff 500ms max 60s`.
    #[error(
        "{at}: the vendor asks to wait {wait} (Retry-After) before the next attempt, longer \
         than the spec allows (`@retry ... max {max}`); last error: {last} (request {url}). \
         Raise `max` to let qsync wait that long, or run later"
    )]
    WaitTooLong {
        at: Box<Site>,
        wait: String,
        max: String,
        last: String,
        url: String,
    },
    /// `records data.datas` where `datas` is an object.
    #[error(
        "{at}: `records {path}` is {found}, not a list of \
         records"
    )]
    Records {
        at: Box<Site>,
        path: String,
        found: String,
    },
    /// A vendor that ignores the page parameter and keeps answering page 1.
    #[error(
        "{at}: the page is identical to the previous one; \
         the vendor ignores the paging parameter (endless paging)"
    )]
    EndlessPaging { at: Box<Site> },
    /// `@paginate keyset start_ts from ts size 3` and four records with `ts` 3: a full page
    /// all of one value may hide more of it, which keyset paging cannot reach.
    #[error(
        "{at}: all {size} records of a full page have `{field}` {value}: more records may \
         share that value than fit a page, and keyset paging cannot reach them (a vendor \
         answering `> {value}` skips them, one answering `>= {value}` repeats the page); \
         raise the page `size` above the largest number of records sharing one `{field}`"
    )]
    KeysetTie {
        at: Box<Site>,
        field: String,
        value: String,
        size: u32,
    },
    /// `@paginate keyset start_ts from ts` on records that have no `ts`.
    #[error(
        "{at}: no record of a full page has `{field}`, the keyset field: the next page \
         cannot be asked for"
    )]
    KeysetField { at: Box<Site>, field: String },
    /// A vendor that answers `start_ts=5` with records whose `ts` is 1.
    #[error(
        "{at}: the answer has `{field}` {value}, before the cursor {cursor} it was asked \
         for: the vendor ignores the keyset parameter or pages in another order"
    )]
    KeysetIgnored {
        at: Box<Site>,
        field: String,
        value: String,
        cursor: String,
    },
    /// `until has_next data.has_next` that stays true past the reported page count.
    #[error(
        "{at}: paging went past the {reported} pages the \
         vendor reported; the end rule never ends"
    )]
    PageCountGrew { at: Box<Site>, reported: u64 },
    /// More than the bound of pages in one window.
    #[error(
        "spec `{spec}`, window {window}: more than {max} pages; narrow the window (`window max`) \
         or check the end rule"
    )]
    TooManyPages {
        spec: String,
        window: String,
        max: u64,
    },
    /// The consumer of the pages stopped (the writer failed); its error is the one to show.
    #[error("spec `{spec}`, window {window}: fetching stopped because writing stopped")]
    Stopped { spec: String, window: String },
}

#[cfg(test)]
mod tests {
    use super::SourceError;
    use crate::connectors::ConnectorError;

    /// The connector's message names the connection; the run's error does not name it again
    /// (it said "connection jky: connection jky has no app_secret").
    #[test]
    fn a_connector_error_names_its_connection_once() {
        let cause = ConnectorError::MissingSetting {
            connection: "jky".to_owned(),
            vendor: "jikeyun",
            key: "app_secret".to_owned(),
        };
        let error = SourceError::Connector {
            spec: "warehouses".to_owned(),
            connection: "jky".to_owned(),
            message: cause.to_string(),
        };
        assert_eq!(
            error.to_string(),
            "spec `warehouses`: connection `jky` has no `app_secret` (needed by the jikeyun \
             connector)"
        );
    }
}
