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

use std::cmp::Ordering;
use std::collections::hash_map::DefaultHasher;
use std::collections::VecDeque;
use std::future::Future;
use std::hash::{Hash, Hasher};

use futures::stream::FuturesOrdered;
use futures::StreamExt as _;
use serde_json::Value;
use tokio::sync::mpsc;

use super::error::SourceError;
use super::http::{HttpSource, Site};
use super::request::{build_call, PageState};
use crate::connectors::wire;
use crate::plan::{EndRule, FieldPath, PaginationPlan, SourcePlan};
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
        let payload = self.source.call(&call, &site).await?;
        self.decode(payload, &site)
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

/// Orders two record values: numerically when both are numbers (or numeric text), else as
/// text. Used for keyset cursors and `modified` fields.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    let number = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => wire::scalar_text(a).cmp(&wire::scalar_text(b)),
    }
}

/// Delivers pages and keeps the window's counts.
struct Delivery<'a> {
    out: &'a mpsc::Sender<PageRecords>,
    fetch: WindowFetch,
    previous: Option<u64>,
}

impl Delivery<'_> {
    async fn deliver(
        &mut self,
        request: &WindowRequest<'_>,
        page: Page,
        label: String,
    ) -> Result<(), SourceError> {
        if !page.records.is_empty() && self.previous == Some(page.fingerprint) {
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
        PaginationPlan::Keyset { field, .. } => {
            let mut state = PageState::first(&request.plan.pagination);
            loop {
                let label = request.page_label(&state);
                let page = request.fetch(&state).await?;
                let next = page
                    .records
                    .iter()
                    .filter_map(|r| field.get(r))
                    .filter(|v| !v.is_null())
                    .max_by(|a, b| compare_values(a, b))
                    .cloned();
                delivery.deliver(request, page, label.clone()).await?;
                let Some(next) = next else {
                    break;
                };
                if state
                    .cursor
                    .as_ref()
                    .is_some_and(|prev| compare_values(&next, prev) != Ordering::Greater)
                {
                    return Err(SourceError::EndlessPaging {
                        at: Box::new(request.site(label)),
                    });
                }
                state.cursor = Some(next);
            }
        }
    }
    Ok(delivery.fetch)
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

/// Whether zero-based page `index` is the window's last.
fn is_last(pagination: &PaginationPlan, page: &Page, index: u64) -> bool {
    let size = u64::from(pagination.page_size().unwrap_or(1).max(1));
    let count = page.records.len() as u64;
    if count == 0 {
        return true;
    }
    let short = count < size;
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
    let mut done = is_last(pagination, &first, 0);
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
            done = is_last(pagination, &page, index);
            reported = reported.max(reported_pages(pagination, &page));
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
        done = is_last(pagination, &page, next);
        reported = reported.max(reported_pages(pagination, &page));
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
            0
        ));
        assert!(!is_last(
            &paging(EndRule::ShortPage),
            &page(10, None, None),
            0
        ));
        assert!(!is_last(
            &paging(EndRule::EmptyPage),
            &page(3, None, None),
            0
        ));
        assert!(is_last(
            &paging(EndRule::EmptyPage),
            &page(0, None, None),
            4
        ));
        let has_next = paging(EndRule::HasNext(FieldPath::parse("more")));
        assert!(is_last(&has_next, &page(10, None, Some(false)), 0));
        assert!(!is_last(&has_next, &page(10, None, Some(true)), 0));
        // Missing flag: fall back to a short page.
        assert!(is_last(&has_next, &page(4, None, None), 0));
        let total = paging(EndRule::Total(FieldPath::parse("total")));
        assert!(is_last(&total, &page(10, Some(30), None), 2));
        assert!(!is_last(&total, &page(10, Some(30), None), 1));
        assert_eq!(reported_pages(&total, &page(10, Some(31), None)), Some(4));
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
    fn values_compare_numerically_when_they_can() {
        assert_eq!(compare_values(&json!("100"), &json!(99)), Ordering::Greater);
        assert_eq!(
            compare_values(&json!("2024-01-02 00:00:00"), &json!("2024-01-01 23:59:59")),
            Ordering::Greater
        );
        assert_eq!(compare_values(&json!(1.5), &json!(1.5)), Ordering::Equal);
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
