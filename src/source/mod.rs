//! Getting records from a vendor: windows, request building, pagination, rate limits and
//! retries. Talks to `connectors` for the vendor protocol and sends what they prepare.
//!
//! - [`window`]: the run's range and its windows.
//! - [`request`]: spec params → one `ApiCall` per page.
//! - [`http`]: sending a call (token, rate limit, retries, classification).
//! - [`pager`]: paging a window into a bounded channel of records.
//! - [`rate`], [`retry`]: the shared limiter and the retry rules.

pub mod error;
pub mod http;
pub mod pager;
pub mod rate;
pub mod request;
pub mod retry;
pub mod window;

pub use error::SourceError;
pub use http::{HttpSource, Site, SourceOptions, SourceStats};
pub use pager::{fetch_window, PageRecords, WindowFetch, WindowRequest};
pub use rate::{Limiters, RateLimiter};
pub use request::{build_call, PageState, RenderError};
pub use window::{resolve_range, split, RangeInputs, Window};

#[cfg(test)]
mod tests;
