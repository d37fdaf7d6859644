//! Paging one window: which requests to send, in what order, when to stop, and the guards
//! against vendors that never stop.
//!
//! [`fetch_window`] sends the window's pages through an [`HttpSource`] and hands each page's
//! records, in page order, to a bounded channel: when the writer falls behind, fetching
//! waits (backpressure), so memory is bounded by a few pages whatever the window's size.
//!
//! Numbered paging (page or offset) goes sequentially until the first page reveals how many
//! pages there are (a page count, or a total from the end rule or the source's `total`);
//! then the rest are fetched concurrently, as many in flight as the rate limit can use, and
//! still delivered in order. Cursor and keyset paging are sequential by nature.
//!
//! Guards: a page identical to the previous one (a vendor ignoring the page parameter), a
//! paging that goes past the page count the vendor reported, and [`MAX_PAGES`].
//!
//! The window's record counts and reported totals are returned for the completeness check,
//! which is `exec`'s: it also sees the ids.
//!
//! Over 700 lines on purpose: the request loop, the guards and the in-order delivery are one
//! state machine over the same page state, easier to check in one place; about a seventh of
//! the file is its unit tests.

use std::cmp::Ordering;
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::hash::{Hash, Hasher};

use futures::stream::FuturesOrdered;
use futures::StreamExt as _;
use serde_json::Value;
use tokio::sync::mpsc;

use super::error::SourceError;
use super::http::{HttpSource, Site};
use super::request::{build_call, PageState};
use super::retry::Failure;
use crate::connectors::wire;
use crate::plan::{EndRule, FieldPath, PaginationPlan, SourcePlan, ValueOrder};
use crate::template::{Renderer, RequestContext};

pub use crate::plan::MAX_PAGES;

impl WindowRequest<'_> {
    /// The spec's page bound (`max_pages`), else [`MAX_PAGES`].
    fn max_pages(&self) -> u64 {
        if self.plan.max_pages == 0 {
            MAX_PAGES
        } else {
            self.plan.max_pages
        }
    }
}

/// One page's records, in page order.
#[derive(Debug)]
pub struct PageRecords {
    /// Zero-based position of the page in the window.
    pub index: u64,
    pub records: Vec<Value>,
}

/// What fetching a window saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowFetch {
    pub pages: u64,
    /// Records received, duplicates included.
    pub records: u64,
    /// Every total the vendor reported, in page order.
    pub totals: Vec<u64>,
}

impl WindowFetch {
    /// The last total the vendor reported.
    pub fn reported_total(&self) -> Option<u64> {
        self.totals.last().copied()
    }

    /// Whether the vendor's total changed while paging (records moved in or out of the
    /// window meanwhile), which makes a count comparison meaningless.
    pub fn total_moved(&self) -> bool {
        self.totals.windows(2).any(|w| w[0] != w[1])
    }
}

/// A decoded page.
#[derive(Debug)]
struct Page {
    records: Vec<Value>,
    total: Option<u64>,
    page_count: Option<u64>,
    has_next: Option<bool>,
    next_cursor: Option<Value>,
    fingerprint: u64,
}

/// Everything fixed for one window's requests.
pub struct WindowRequest<'a> {
    pub source: &'a HttpSource,
    pub plan: &'a SourcePlan,
    pub renderer: &'a Renderer,
    /// Context with the window set; paging fields are filled per page.
    pub context: RequestContext,
    pub spec: &'a str,
    /// The window as shown in errors.
    pub window: String,
    /// How keyset values compare (numbers exactly, times as instants).
    pub order: ValueOrder,
}

impl WindowRequest<'_> {
    fn site(&self, page: String) -> Site {
        Site {
            spec: self.spec.to_owned(),
            window: self.window.clone(),
            page,
        }
    }

    fn page_label(&self, state: &PageState) -> String {
        if let Some(page) = state.page {
            format!("page {page}")
        } else if let Some(offset) = state.offset {
            format!("offset {offset}")
        } else if let Some(cursor) = &state.cursor {
            format!("cursor {cursor}")
        } else if matches!(self.plan.pagination, PaginationPlan::None) {
            "the only page".to_owned()
        } else {
            "the first page".to_owned()
        }
    }

    async fn fetch(&self, state: &PageState) -> Result<Page, SourceError> {
        let label = self.page_label(state);
        let mut context = self.context.clone();
        context.page = state.page;
        context.offset = state.offset;
        context.cursor = state.cursor.as_ref().map(wire::scalar_text);
        context.page_size = self.plan.pagination.page_size();
        let call = build_call(self.plan, self.renderer, &context, state).map_err(|e| {
            SourceError::Request {
                at: Box::new(self.site(label.clone())),
                message: self.source.mask(&e.to_string()),
            }
        })?;
        let site = self.site(label);
        let payload = self
            .source
            .call_accepting(&call, &site, &|payload| self.suspect(payload))
            .await?;
        self.decode(payload, &site)
    }

    /// What is wrong with an answer that has no records path at all (as opposed to an
    /// empty or null one): most often an error envelope the connector does not recognise
    /// (`{"code":1001,"msg":"系统繁忙"}` from an `http` vendor without `error_path`). Taken
    /// for an empty last page it would end paging silently, so it is retried, and fails
    /// the window if it persists. An answer whose total says 0 is an empty page.
    fn suspect(&self, payload: &Value) -> Option<Failure> {
        if self.plan.records.segments().is_empty() || self.plan.records.get(payload).is_some() {
            return None;
        }
        if self
            .total_path()
            .and_then(|path| path.get(payload))
            .and_then(as_u64)
            == Some(0)
        {
            return None;
        }
        let mut body = payload.to_string();
        if let Some((cut, _)) = body.char_indices().nth(200) {
            body.truncate(cut);
            body.push('…');
        }
        Some(Failure::Transient {
            code: "no_records".to_owned(),
            message: format!(
                "the answer has no `{}` (the records path) and is not recognised as an error: \
                 {body}",
                self.plan.records
            ),
        })
    }

    /// Where the answer's total is: the source's `total`, else a `total` end rule's path.
    fn total_path(&self) -> Option<&FieldPath> {
        self.plan
            .total
            .as_ref()
            .or(match self.plan.pagination.end_rule() {
                Some(EndRule::Total(path)) => Some(path),
                _ => None,
            })
    }

    fn decode(&self, mut payload: Value, site: &Site) -> Result<Page, SourceError> {
        let number = |path: &FieldPath| path.get(&payload).and_then(as_u64);
        let end_rule = self.plan.pagination.end_rule();
        let total = self
            .plan
            .total
            .as_ref()
            .and_then(number)
            .or_else(|| match end_rule {
                Some(EndRule::Total(path)) => number(path),
                _ => None,
            });
        let page_count = match end_rule {
            Some(EndRule::PageCount(path)) => number(path),
            _ => None,
        };
        let has_next = match end_rule {
            Some(EndRule::HasNext(path)) => path.get(&payload).and_then(as_bool),
            _ => None,
        };
        let next_cursor = match &self.plan.pagination {
            PaginationPlan::Cursor { from, .. } => from
                .get(&payload)
                .filter(|v| !v.is_null() && !wire::scalar_text(v).is_empty())
                .cloned(),
            _ => None,
        };
        let records = match self.plan.records.take(&mut payload) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(records)) => records,
            Some(other) => {
                return Err(SourceError::Records {
                    at: Box::new(site.clone()),
                    path: self.plan.records.to_string(),
                    found: kind_of(&other).to_owned(),
                })
            }
        };
        let mut hasher = DefaultHasher::new();
        for record in &records {
            record.to_string().hash(&mut hasher);
        }
        Ok(Page {
            records,
            total,
            page_count,
            has_next,
            next_cursor,
            fingerprint: hasher.finish(),
        })
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Delivers pages and keeps the window's counts.
struct Delivery<'a> {
    out: &'a mpsc::Sender<PageRecords>,
    fetch: WindowFetch,
    previous: Option<u64>,
    /// Fail on a page identical to the previous one (a vendor ignoring the page parameter).
    /// Keyset paging resends its boundary, so a repeated page is expected there; it stops
    /// on a page that brings no new record instead.
    guard_repeats: bool,
}

impl Delivery<'_> {
    async fn deliver(
        &mut self,
        request: &WindowRequest<'_>,
        page: Page,
        label: String,
    ) -> Result<(), SourceError> {
        if self.guard_repeats && !page.records.is_empty() && self.previous == Some(page.fingerprint)
        {
            return Err(SourceError::EndlessPaging {
                at: Box::new(request.site(label)),
            });
        }
        self.previous = Some(page.fingerprint);
        self.fetch.pages += 1;
        if self.fetch.pages > request.max_pages() {
            return Err(SourceError::TooManyPages {
                spec: request.spec.to_owned(),
                window: request.window.clone(),
                max: request.max_pages(),
            });
        }
        self.fetch.records += page.records.len() as u64;
        if let Some(total) = page.total {
            self.fetch.totals.push(total);
        }
        if page.records.is_empty() {
            return Ok(());
        }
        let index = self.fetch.pages - 1;
        self.out
            .send(PageRecords {
                index,
                records: page.records,
            })
            .await
            .map_err(|_| SourceError::Stopped {
                spec: request.spec.to_owned(),
                window: request.window.clone(),
            })
    }
}

/// Fetches every page of one window into `out`, in page order.
pub async fn fetch_window(
    request: &WindowRequest<'_>,
    out: &mpsc::Sender<PageRecords>,
) -> Result<WindowFetch, SourceError> {
    let mut delivery = Delivery {
        out,
        fetch: WindowFetch::default(),
        previous: None,
        guard_repeats: true,
    };
    match &request.plan.pagination {
        PaginationPlan::None => {
            let state = PageState::default();
            let page = request.fetch(&state).await?;
            delivery
                .deliver(request, page, request.page_label(&state))
                .await?;
        }
        PaginationPlan::Page { .. } | PaginationPlan::Offset { .. } => {
            numbered(request, &mut delivery).await?;
        }
        PaginationPlan::Cursor { .. } => {
            let mut state = PageState::first(&request.plan.pagination);
            loop {
                let label = request.page_label(&state);
                let page = request.fetch(&state).await?;
                let next = page.next_cursor.clone();
                let empty = page.records.is_empty();
                delivery.deliver(request, page, label.clone()).await?;
                let Some(next) = next.filter(|_| !empty) else {
                    break;
                };
                if state.cursor.as_ref() == Some(&next) {
                    return Err(SourceError::EndlessPaging {
                        at: Box::new(request.site(label)),
                    });
                }
                state.cursor = Some(next);
            }
        }
        PaginationPlan::Keyset { field, size, .. } => {
            delivery.guard_repeats = false;
            keyset(request, &mut delivery, field, *size).await?;
        }
    }
    Ok(delivery.fetch)
}

/// Keyset paging: each request carries a value of the keyset field, and the vendor answers
/// the records from that value on, in the field's order. Vendors differ on whether "from"
/// includes the value (`ts >= start_ts`) or not (`ts > start_ts`), and qsync cannot tell
/// which; records sharing the boundary value may straddle two pages. So the next request
/// resends the boundary inclusively under either reading: it carries the largest value of
/// the page *below* its maximum (records at the maximum come again under both readings),
/// and records already seen are recognised by `id` (the pager's own de-duplication; `exec`
/// de-duplicates what it writes). When that value would not move past the cursor, the
/// page's maximum is sent instead. Paging ends on an empty page, or on a page that brings
/// no new record and no value past the cursor.
///
/// A full page whose records all share one value may hide more records with that value:
/// neither reading can reach them (one skips them, the other repeats the page), so that
/// fails the window ([`SourceError::KeysetTie`]) instead of looping or skipping.
async fn keyset(
    request: &WindowRequest<'_>,
    delivery: &mut Delivery<'_>,
    field: &FieldPath,
    size: u32,
) -> Result<(), SourceError> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut state = PageState::first(&request.plan.pagination);
    let ordering = |a: &Value, b: &Value| request.order.compare(a, b);
    loop {
        let label = request.page_label(&state);
        let page = request.fetch(&state).await?;
        if page.records.is_empty() {
            delivery.deliver(request, page, label).await?;
            return Ok(());
        }
        let full = page.records.len() as u64 >= u64::from(size);
        let fresh = page
            .records
            .iter()
            .filter(|record| seen.insert(identity(record, request.plan.id.as_ref())))
            .count();
        let values: Vec<&Value> = page
            .records
            .iter()
            .filter_map(|record| field.get(record))
            .filter(|value| !value.is_null())
            .collect();
        let (Some(&max), Some(&min)) = (
            values.iter().max_by(|a, b| ordering(a, b)),
            values.iter().min_by(|a, b| ordering(a, b)),
        ) else {
            if full {
                return Err(SourceError::KeysetField {
                    at: Box::new(request.site(label)),
                    field: field.to_string(),
                });
            }
            delivery.deliver(request, page, label).await?;
            return Ok(());
        };
        // A value before the cursor: the vendor did not apply it (it ignores the parameter,
        // or pages in another order); going on would stop early or loop.
        if let Some(cursor) = &state.cursor {
            if ordering(min, cursor) == Ordering::Less {
                return Err(SourceError::KeysetIgnored {
                    at: Box::new(request.site(label)),
                    field: field.to_string(),
                    value: wire::scalar_text(min),
                    cursor: wire::scalar_text(cursor),
                });
            }
        }
        if full && ordering(min, max) == Ordering::Equal {
            return Err(SourceError::KeysetTie {
                at: Box::new(request.site(label)),
                field: field.to_string(),
                value: wire::scalar_text(max),
                size,
            });
        }
        let past_cursor = |value: &Value| {
            state
                .cursor
                .as_ref()
                .is_none_or(|cursor| ordering(value, cursor) == Ordering::Greater)
        };
        let below_max = values
            .iter()
            .filter(|value| ordering(value, max) == Ordering::Less)
            .max_by(|a, b| ordering(a, b))
            .copied();
        let next = match below_max {
            Some(below) if fresh > 0 && past_cursor(below) => Some(below.clone()),
            _ if past_cursor(max) => Some(max.clone()),
            _ => None,
        };
        delivery.deliver(request, page, label).await?;
        match next {
            Some(next) => state.cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// What tells two records apart: the `id` field's text, else the whole record's.
fn identity(record: &Value, id: Option<&FieldPath>) -> String {
    match id
        .and_then(|path| path.get(record))
        .filter(|v| !v.is_null())
    {
        Some(id) => wire::scalar_text(id),
        None => record.to_string(),
    }
}

/// Awaits `work` while driving the futures of `in_flight`, keeping what they yield (in
/// order) in `arrived`.
async fn driving<W: Future, F: Future>(
    work: W,
    in_flight: &mut FuturesOrdered<F>,
    arrived: &mut VecDeque<F::Output>,
) -> W::Output {
    tokio::pin!(work);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return out,
            Some(item) = in_flight.next(), if !in_flight.is_empty() => arrived.push_back(item),
        }
    }
}

/// The state of zero-based page `index` of numbered paging.
fn numbered_state(pagination: &PaginationPlan, index: u64) -> PageState {
    let signed = i64::try_from(index).unwrap_or(i64::MAX);
    match pagination {
        PaginationPlan::Page { first, .. } => PageState {
            page: Some(first.saturating_add(signed)),
            ..PageState::default()
        },
        PaginationPlan::Offset { size, .. } => PageState {
            offset: Some(signed.saturating_mul(i64::from(*size))),
            ..PageState::default()
        },
        _ => PageState::default(),
    }
}

/// Whether zero-based page `index` is the window's last. `reported` is the page count the
/// vendor reported so far (from a page count or a total): while it says more pages exist, a
/// short page is not the end (vendors drop records from a full page: filtered, deleted or
/// moved while paging), so the rules that fall back to a short page keep going.
fn is_last(pagination: &PaginationPlan, page: &Page, index: u64, reported: Option<u64>) -> bool {
    let size = u64::from(pagination.page_size().unwrap_or(1).max(1));
    let count = page.records.len() as u64;
    if count == 0 {
        return true;
    }
    let more_reported = reported.is_some_and(|pages| index + 1 < pages);
    let short = count < size && !more_reported;
    match pagination.end_rule() {
        None | Some(EndRule::ShortPage) => short,
        Some(EndRule::EmptyPage) => false,
        Some(EndRule::HasNext(_)) => page.has_next.map_or(short, |more| !more),
        Some(EndRule::PageCount(_)) => page.page_count.map_or(short, |n| index + 1 >= n),
        Some(EndRule::Total(_)) => page
            .total
            .map_or(short, |total| index * size + count >= total),
    }
}

/// How many pages the vendor says the window has, from a page count or a total.
fn reported_pages(pagination: &PaginationPlan, page: &Page) -> Option<u64> {
    let size = u64::from(pagination.page_size().unwrap_or(1).max(1));
    page.page_count
        .or_else(|| page.total.map(|total| total.div_ceil(size)))
}

async fn numbered(
    request: &WindowRequest<'_>,
    delivery: &mut Delivery<'_>,
) -> Result<(), SourceError> {
    let pagination = &request.plan.pagination;
    let state = numbered_state(pagination, 0);
    let first = request.fetch(&state).await?;
    let mut reported = reported_pages(pagination, &first);
    let mut done = is_last(pagination, &first, 0, reported);
    delivery
        .deliver(request, first, request.page_label(&state))
        .await?;
    let mut next = 1;
    if let (false, Some(pages)) = (done, reported) {
        // The count is known: fetch the rest concurrently, deliver in order. Pages in
        // flight keep being driven while a page waits for the writer (backpressure): an
        // unpolled request would hold its rate-limit turn and slot, and with windows
        // fetched ahead that stalls every window of the connection.
        let concurrency = request.source.limiter().concurrency();
        let end = pages.min(request.max_pages() + 1);
        let fetch_page = |index: u64| {
            let state = numbered_state(pagination, index);
            async move {
                let page = request.fetch(&state).await;
                (index, state, page)
            }
        };
        let mut in_flight = FuturesOrdered::new();
        let mut arrived = VecDeque::new();
        let mut upcoming = 1..end;
        loop {
            while in_flight.len() + arrived.len() < concurrency {
                let Some(index) = upcoming.next() else { break };
                in_flight.push_back(fetch_page(index));
            }
            let next_page = match arrived.pop_front() {
                Some(page) => Some(page),
                None => in_flight.next().await,
            };
            let Some((index, state, page)) = next_page else {
                break;
            };
            let page = page?;
            reported = reported.max(reported_pages(pagination, &page));
            done = is_last(pagination, &page, index, reported);
            let label = request.page_label(&state);
            driving(
                delivery.deliver(request, page, label),
                &mut in_flight,
                &mut arrived,
            )
            .await?;
            next = index + 1;
            if done {
                break;
            }
        }
    }
    while !done {
        let state = numbered_state(pagination, next);
        let label = request.page_label(&state);
        if let Some(pages) = reported {
            // One page past the count is fine (an `empty` end rule needs it); more is not.
            if next > pages {
                return Err(SourceError::PageCountGrew {
                    at: Box::new(request.site(label)),
                    reported: pages,
                });
            }
        }
        let page = request.fetch(&state).await?;
        reported = reported.max(reported_pages(pagination, &page));
        done = is_last(pagination, &page, next, reported);
        delivery.deliver(request, page, label).await?;
        next += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn page(records: usize, total: Option<u64>, has_next: Option<bool>) -> Page {
        Page {
            records: vec![json!({}); records],
            total,
            page_count: None,
            has_next,
            next_cursor: None,
            fingerprint: 0,
        }
    }

    fn paging(until: EndRule) -> PaginationPlan {
        PaginationPlan::Page {
            param: FieldPath::parse("page"),
            size_param: FieldPath::parse("size"),
            size: 10,
            first: 1,
            until,
        }
    }

    #[test]
    fn end_rules_recognise_the_last_page() {
        assert!(is_last(
            &paging(EndRule::ShortPage),
            &page(9, None, None),
            0,
            None
        ));
        assert!(!is_last(
            &paging(EndRule::ShortPage),
            &page(10, None, None),
            0,
            None
        ));
        assert!(!is_last(
            &paging(EndRule::EmptyPage),
            &page(3, None, None),
            0,
            None
        ));
        assert!(is_last(
            &paging(EndRule::EmptyPage),
            &page(0, None, None),
            4,
            None
        ));
        let has_next = paging(EndRule::HasNext(FieldPath::parse("more")));
        assert!(is_last(&has_next, &page(10, None, Some(false)), 0, None));
        assert!(!is_last(&has_next, &page(10, None, Some(true)), 0, None));
        // Missing flag: fall back to a short page.
        assert!(is_last(&has_next, &page(4, None, None), 0, None));
        let total = paging(EndRule::Total(FieldPath::parse("total")));
        assert!(is_last(&total, &page(10, Some(30), None), 2, None));
        assert!(!is_last(&total, &page(10, Some(30), None), 1, None));
        assert_eq!(reported_pages(&total, &page(10, Some(31), None)), Some(4));
        // A short page is the end only when no reported count says more pages exist.
        let short = paging(EndRule::ShortPage);
        assert!(!is_last(&short, &page(9, Some(25), None), 1, Some(3)));
        assert!(is_last(&short, &page(6, Some(25), None), 2, Some(3)));
        assert!(is_last(&short, &page(0, Some(25), None), 1, Some(3)));
        assert!(!is_last(&has_next, &page(4, None, None), 0, Some(2)));
    }

    #[test]
    fn numbered_states_follow_the_plan() {
        let p = paging(EndRule::ShortPage);
        assert_eq!(numbered_state(&p, 2).page, Some(3));
        let o = PaginationPlan::Offset {
            param: FieldPath::parse("offset"),
            size_param: FieldPath::parse("limit"),
            size: 50,
            until: EndRule::ShortPage,
        };
        assert_eq!(numbered_state(&o, 3).offset, Some(150));
    }

    #[test]
    fn totals_that_move_are_noticed() {
        let steady = WindowFetch {
            pages: 3,
            records: 25,
            totals: vec![25, 25, 25],
        };
        assert!(!steady.total_moved());
        assert_eq!(steady.reported_total(), Some(25));
        let moved = WindowFetch {
            totals: vec![25, 24, 23],
            ..steady
        };
        assert!(moved.total_moved());
    }
}
