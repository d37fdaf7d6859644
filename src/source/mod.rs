//! Getting records from a vendor: windows, request building, pagination, rate limits and
//! retries. Talks to `connectors` for the vendor protocol and sends what they prepare.

pub mod request;
pub mod window;

pub use request::{build_call, PageState};
pub use window::{resolve_range, split, RangeInputs, Window};
