//! A throughput benchmark of flatten + map + convert on Jushuitan-shaped after-sales
//! records, and the sample data the write benchmark reuses.
//!
//! Run `cargo bench --bench transform` (release build); the figure is rows per second on
//! one core. Lives in the library so `qsync bench` can call it too.

use std::time::{Duration, Instant};

use chrono::TimeZone;
use serde_json::{json, Value};

use super::{Cell, RunClock, Transformer, DEFAULT_TZ};
use crate::plan::{ColumnPlan, ColumnType, Expr, FieldPath, Piece, TransformStep};

/// Items per sample record, so rows = 3 × records.
pub const ITEMS_PER_RECORD: usize = 3;

/// The `@flatten items` step of the sample spec.
pub fn sample_steps() -> Vec<TransformStep> {
    vec![TransformStep::Flatten {
        path: FieldPath::parse("items"),
        prefix: "items".into(),
    }]
}

/// The ~30 columns of the sample after-sales table; `id` is the key.
pub fn sample_columns() -> Vec<ColumnPlan> {
    let s = |n: u32| ColumnType::String { length: Some(n) };
    let money = ColumnType::Decimal {
        precision: 12,
        scale: 2,
    };
    let f = |name: &str| Expr::Field(FieldPath::parse(name));
    let mut columns = vec![ColumnPlan {
        name: "id".into(),
        ty: s(64),
        expr: Expr::Interpolate(vec![
            Piece::Field(FieldPath::parse("as_id")),
            Piece::Text("-".into()),
            Piece::Field(FieldPath::parse("items_asi_id")),
        ]),
    }];
    let plain: [(&str, ColumnType); 32] = [
        ("as_id", ColumnType::Bigint),
        ("as_date", ColumnType::Datetime),
        ("outer_as_id", s(64)),
        ("so_id", s(64)),
        ("type", s(32)),
        ("modified", ColumnType::Datetime),
        ("status", s(32)),
        ("remark", s(255)),
        ("question_type", s(64)),
        ("warehouse", s(64)),
        ("refund", money),
        ("payment", money),
        ("good_status", s(32)),
        ("shop_buyer_id", s(64)),
        ("shop_id", ColumnType::Bigint),
        ("logistics_company", s(64)),
        ("l_id", s(64)),
        ("o_id", ColumnType::Bigint),
        ("order_status", s(32)),
        ("wh_id", ColumnType::Int),
        ("wms_co_id", ColumnType::Bigint),
        ("freight", money),
        ("confirm_date", ColumnType::Datetime),
        ("items_asi_id", ColumnType::Bigint),
        ("items_sku_id", s(64)),
        ("items_qty", ColumnType::Int),
        ("items_r_qty", ColumnType::Int),
        ("items_price", money),
        ("items_amount", money),
        ("items_name", s(128)),
        ("items_receive_date", ColumnType::Datetime),
        ("items_sku_type", s(32)),
    ];
    columns.extend(plain.into_iter().map(|(name, ty)| ColumnPlan {
        name: name.into(),
        ty,
        expr: f(name),
    }));
    columns
}

/// One Jushuitan `refund.list.query` record with [`ITEMS_PER_RECORD`] items, shaped like the
/// vendor's (numbers as strings in places, epoch-free datetimes, Chinese text).
pub fn sample_record(n: u64) -> Value {
    let items: Vec<Value> = (0..ITEMS_PER_RECORD as u64)
        .map(|i| {
            json!({
                "asi_id": n * 10 + i,
                "sku_id": format!("SKU-{}", (n + i) % 5000),
                "qty": (i + 1).to_string(),
                "r_qty": i,
                "price": "19.90",
                "amount": 39.8,
                "name": "保温杯 500ml 不锈钢",
                "receive_date": "2024-04-27 15:56:01",
                "sku_type": "normal",
            })
        })
        .collect();
    json!({
        "as_id": n,
        "as_date": "2024-04-27 15:56:01",
        "outer_as_id": format!("OAS{n}"),
        "so_id": format!("SO{n}"),
        "type": "普通退货",
        "modified": "2024-04-27T07:56:12.123+00:00",
        "status": "Confirmed",
        "remark": "客户要求退货退款",
        "question_type": "质量问题",
        "warehouse": "杭州仓",
        "refund": "59.70",
        "payment": 59.7,
        "good_status": "BUYER_RETURNED_GOODS",
        "shop_buyer_id": format!("buyer{}", n % 1000),
        "shop_id": "10086",
        "logistics_company": "顺丰",
        "l_id": format!("SF{n}"),
        "o_id": n + 1_000_000,
        "order_status": "Sent",
        "wh_id": 1,
        "wms_co_id": 10_011_234,
        "freight": "",
        "confirm_date": 1_714_204_561_000_u64,
        "items": items,
    })
}

/// The clock the samples use, fixed so runs are comparable.
pub fn sample_clock() -> RunClock {
    RunClock {
        now: chrono::Utc
            .with_ymd_and_hms(2024, 5, 1, 0, 0, 0)
            .single()
            .unwrap_or_else(chrono::Utc::now),
        tz: DEFAULT_TZ,
    }
}

/// Records per page in [`sample_pages`], Jushuitan's usual page size.
pub const RECORDS_PER_PAGE: usize = 50;

/// `records` sample records as Jushuitan response pages, one JSON body per line: the input
/// both qsync and `jq` read in the transform comparison.
pub fn sample_pages(records: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(records * 1100);
    let pages = records.div_ceil(RECORDS_PER_PAGE);
    for page in 0..pages {
        let first = page * RECORDS_PER_PAGE;
        let datas: Vec<Value> = (first..records.min(first + RECORDS_PER_PAGE))
            .map(|n| sample_record(n as u64))
            .collect();
        let body = json!({
            "code": 0,
            "msg": null,
            "data": {
                "page_index": page + 1,
                "page_size": RECORDS_PER_PAGE,
                "data_count": records,
                "page_count": pages,
                "has_next": page + 1 < pages,
                "datas": datas,
            }
        });
        serde_json::to_writer(&mut out, &body).expect("a Value always serializes");
        out.push(b'\n');
    }
    out
}

/// Decodes each page of `pages` (as [`sample_pages`] makes them) and transforms its records,
/// the way a run does after a response arrives; returns the rows produced and the time.
///
/// # Panics
/// When a page is not JSON or a sample record is rejected: both are bugs.
pub fn run_pages(pages: &[u8]) -> (usize, Duration) {
    let transformer = Transformer::new(&sample_steps(), &sample_columns(), sample_clock())
        .expect("the sample spec compiles");
    let mut rows: Vec<Vec<Cell>> = Vec::with_capacity(RECORDS_PER_PAGE * ITEMS_PER_RECORD);
    let mut total = 0;
    let start = Instant::now();
    for line in pages.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let mut body: Value = serde_json::from_slice(line).expect("sample pages are JSON");
        let Some(Value::Array(records)) = body
            .get_mut("data")
            .and_then(|d| d.get_mut("datas"))
            .map(Value::take)
        else {
            panic!("a sample page without data.datas");
        };
        for record in &records {
            total += transformer
                .rows(record, &mut rows)
                .expect("sample records convert");
        }
        // The page's rows go to the sink as one batch and are dropped here.
        rows.clear();
    }
    (total, start.elapsed())
}

/// The `jq` program doing the same flatten as `@flatten items` over [`sample_pages`]: each
/// item becomes an object of the record's fields and the item's fields as `items_<field>`.
pub const JQ_FLATTEN: &str = r#".data.datas[] | del(.items) as $record | .items[] | $record + with_entries(.key |= "items_" + .)"#;

/// Transforms `records` sample records and returns the rows produced and the time taken.
///
/// The input is a pool of 1000 distinct records (20 pages of 50, generated beforehand and
/// not timed) cycled through: a real run transforms each page right after decoding it, while
/// it is still in cache, so a gigabyte of pre-built records would measure memory instead.
///
/// # Panics
/// When the sample spec does not compile or a sample record is rejected: both are bugs.
pub fn run(records: usize) -> (usize, Duration) {
    let input: Vec<Value> = (0..1000).map(sample_record).collect();
    let transformer = Transformer::new(&sample_steps(), &sample_columns(), sample_clock())
        .expect("the sample spec compiles");
    let mut rows: Vec<Vec<Cell>> = Vec::with_capacity(1024 * ITEMS_PER_RECORD);
    let mut total = 0;
    let start = Instant::now();
    for record in input.iter().cycle().take(records) {
        total += transformer
            .rows(record, &mut rows)
            .expect("sample records convert");
        // Batches are handed to the sink and dropped; keep memory flat like a real run.
        if rows.len() >= 1000 {
            rows.clear();
        }
    }
    (total, start.elapsed())
}
