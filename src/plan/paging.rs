//! How a window is paged ([`PaginationPlan`]) and how its last page is recognised
//! ([`EndRule`]), with their printed form (`Display`, shown by `qsync plan`).
//!
//! A new paging style is a variant here (with its `Display` line), its rule in
//! `check/directives.rs` and its driver in `source/pager.rs` and `source/request.rs`; the
//! dry-run printer only prints this `Display`.

use std::fmt;

use serde::Serialize;

use super::FieldPath;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PaginationPlan {
    /// One request, no paging.
    None,
    /// Page numbers: `@paginate page_index size 50`.
    Page {
        param: FieldPath,
        size_param: FieldPath,
        size: u32,
        first: i64,
        until: EndRule,
    },
    /// Offset/limit: `@paginate offset offset size 100 size_param limit`.
    Offset {
        param: FieldPath,
        size_param: FieldPath,
        size: u32,
        until: EndRule,
    },
    /// Cursor/next token taken from the response: `@paginate cursor next from data.next_cursor`.
    Cursor {
        param: FieldPath,
        from: FieldPath,
        size_param: Option<FieldPath>,
        size: Option<u32>,
    },
    /// Keyset (Jushuitan `start_ts`): the next request carries the max of a record field.
    Keyset {
        param: FieldPath,
        field: FieldPath,
        size_param: FieldPath,
        size: u32,
    },
}

impl PaginationPlan {
    /// Records per page the requests ask for; `None` without paging, or for a cursor
    /// without a size.
    pub fn page_size(&self) -> Option<u32> {
        match self {
            PaginationPlan::None => None,
            PaginationPlan::Page { size, .. }
            | PaginationPlan::Offset { size, .. }
            | PaginationPlan::Keyset { size, .. } => Some(*size),
            PaginationPlan::Cursor { size, .. } => *size,
        }
    }

    /// The end rule of numbered paging (page or offset); the other styles end on an empty
    /// page or a missing cursor.
    pub fn end_rule(&self) -> Option<&EndRule> {
        match self {
            PaginationPlan::Page { until, .. } | PaginationPlan::Offset { until, .. } => {
                Some(until)
            }
            _ => None,
        }
    }
}

/// One line saying which values the paging parameters take and when paging stops:
/// `` `page_index` = 1, 2, ... with `page_size` = 50; stop at a page shorter than the page size ``.
impl fmt::Display for PaginationPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PaginationPlan::None => f.write_str("one request per window, no paging"),
            PaginationPlan::Page {
                param,
                size_param,
                size,
                first,
                until,
            } => write!(
                f,
                "`{}` = {first}, {}, ... with `{}` = {size}; stop {until}",
                param.label(),
                first + 1,
                size_param.label(),
            ),
            PaginationPlan::Offset {
                param,
                size_param,
                size,
                until,
            } => write!(
                f,
                "`{}` = 0, {size}, {}, ... with `{}` = {size}; stop {until}",
                param.label(),
                size * 2,
                size_param.label(),
            ),
            PaginationPlan::Cursor { param, from, .. } => write!(
                f,
                "`{}` = the previous page's `{}`; stop when it is missing or the page is empty",
                param.label(),
                from.label()
            ),
            PaginationPlan::Keyset {
                param,
                field,
                size_param,
                size,
            } => write!(
                f,
                "`{}` = the largest `{}` of the previous page, `{}` = {size}; stop on an empty page",
                param.label(),
                field.label(),
                size_param.label()
            ),
        }
    }
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
    HasNext(FieldPath),
    /// A page count in the response (`data.page_count`).
    PageCount(FieldPath),
    /// A total record count in the response (`data.total_count`).
    Total(FieldPath),
}

/// When paging stops, completing "stop ...": `when `data.has_next` is false`.
impl fmt::Display for EndRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndRule::ShortPage => f.write_str("at a page shorter than the page size"),
            EndRule::EmptyPage => f.write_str("at an empty page"),
            EndRule::HasNext(p) => write!(f, "when `{}` is false", p.label()),
            EndRule::PageCount(p) => write!(f, "after `{}` pages", p.label()),
            EndRule::Total(p) => write!(f, "once `{}` records are read", p.label()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_style_prints_its_values_and_its_end() {
        let page = PaginationPlan::Page {
            param: FieldPath::parse("pager.page_no"),
            size_param: FieldPath::parse("pager.page_size"),
            size: 50,
            first: 0,
            until: EndRule::Total(FieldPath::parse("data.total_count")),
        };
        assert_eq!(
            page.to_string(),
            "`pager.page_no` = 0, 1, ... with `pager.page_size` = 50; stop once \
             `data.total_count` records are read"
        );
        assert_eq!(page.page_size(), Some(50));
        let offset = PaginationPlan::Offset {
            param: FieldPath::parse("start"),
            size_param: FieldPath::parse("limit"),
            size: 100,
            until: EndRule::ShortPage,
        };
        assert_eq!(
            offset.to_string(),
            "`start` = 0, 100, 200, ... with `limit` = 100; stop at a page shorter than the \
             page size"
        );
        let keyset = PaginationPlan::Keyset {
            param: FieldPath::parse("start_ts"),
            field: FieldPath::parse("ts"),
            size_param: FieldPath::parse("page_size"),
            size: 50,
        };
        assert_eq!(
            keyset.to_string(),
            "`start_ts` = the largest `ts` of the previous page, `page_size` = 50; stop on an \
             empty page"
        );
        assert_eq!(keyset.end_rule(), None);
        assert_eq!(PaginationPlan::None.page_size(), None);
    }
}
