//! Examples for the whole transformer: steps + map + convert over realistic records.

use chrono::TimeZone;
use serde_json::{json, Value};

use super::*;
use crate::plan::{Expr, FieldPath, FilterOp, Piece};

fn path(s: &str) -> FieldPath {
    FieldPath::parse(s)
}

fn field(s: &str) -> Expr {
    Expr::Field(path(s))
}

fn col(name: &str, ty: ColumnType, expr: Expr) -> ColumnPlan {
    ColumnPlan {
        name: name.to_owned(),
        ty,
        expr,
    }
}

fn flatten(p: &str) -> TransformStep {
    TransformStep::Flatten {
        path: path(p),
        prefix: p.replace('.', "_"),
    }
}

fn clock() -> RunClock {
    RunClock {
        // 2024-05-01 02:30:00 UTC = 10:30 in Shanghai.
        now: Utc
            .with_ymd_and_hms(2024, 5, 1, 2, 30, 0)
            .single()
            .expect("valid"),
        tz: DEFAULT_TZ,
    }
}

fn text(s: &str) -> Cell {
    Cell::Text(s.into())
}

fn run(steps: &[TransformStep], columns: &[ColumnPlan], record: &Value) -> Vec<Vec<Cell>> {
    let t = Transformer::new(steps, columns, clock()).expect("compiles");
    let mut out = Vec::new();
    t.rows(record, &mut out).expect("record transforms");
    out
}

fn refund() -> Value {
    json!({
        "as_id": 101,
        "as_date": "2024-04-27 15:56:01",
        "refund": "12.345",
        "extend": {"processInstanceId": "p-9"},
        "items": [
            {"asi_id": 1, "qty": "2", "sku": {"name": "cup"}},
            {"asi_id": 2, "qty": 3, "sku": {"name": "mug"}}
        ]
    })
}

fn id_column() -> ColumnPlan {
    col(
        "id",
        ColumnType::String { length: None },
        Expr::Interpolate(vec![
            Piece::Field(path("as_id")),
            Piece::Text("-".into()),
            Piece::Field(path("items_asi_id")),
        ]),
    )
}

#[test]
fn flatten_carries_parent_fields_and_prefixes_element_fields() {
    let columns = [
        id_column(),
        col("as_id", ColumnType::Bigint, field("as_id")),
        col("as_date", ColumnType::Datetime, field("as_date")),
        col("items_qty", ColumnType::Int, field("items_qty")),
        col("sku", ColumnType::Text, field("items_sku.name")),
        col("pi", ColumnType::Text, field("extend.processInstanceId")),
        col(
            "refund",
            ColumnType::Decimal {
                precision: 12,
                scale: 2,
            },
            field("refund"),
        ),
        col("created", ColumnType::Datetime, Expr::Sql("NOW()".into())),
    ];
    let rows = run(&[flatten("items")], &columns, &refund());
    let date = Cell::DateTime(
        chrono::NaiveDate::from_ymd_opt(2024, 4, 27)
            .and_then(|d| d.and_hms_opt(15, 56, 1))
            .expect("valid"),
    );
    let refund = Cell::Decimal("12.35".into());
    assert_eq!(
        rows,
        vec![
            vec![
                text("101-1"),
                Cell::Int(101),
                date.clone(),
                Cell::Int(2),
                text("cup"),
                text("p-9"),
                refund.clone(),
            ],
            vec![
                text("101-2"),
                Cell::Int(101),
                date,
                Cell::Int(3),
                text("mug"),
                text("p-9"),
                refund,
            ],
        ]
    );
}

#[test]
fn empty_or_missing_array_keeps_parent_once() {
    let columns = [
        col("as_id", ColumnType::Bigint, field("as_id")),
        col("items_qty", ColumnType::Int, field("items_qty")),
    ];
    for record in [json!({"as_id": 1, "items": []}), json!({"as_id": 1})] {
        let rows = run(&[flatten("items")], &columns, &record);
        assert_eq!(rows, vec![vec![Cell::Int(1), Cell::Null]], "{record}");
    }
}

#[test]
fn missing_interpolated_field_rejects_the_record() {
    let t = Transformer::new(&[flatten("items")], &[id_column()], clock()).expect("compiles");
    let mut out = vec![vec![Cell::Int(0)]];
    let record = json!({"as_id": 1, "items": [{"asi_id": 1}, {"qty": 2}]});
    let err = t
        .rows(&record, &mut out)
        .expect_err("second item has no asi_id");
    assert_eq!(
        err.to_string(),
        "field `items_asi_id` used by `id` is missing or null"
    );
    // All or nothing: the first item's row was taken back.
    assert_eq!(out.len(), 1);
}

#[test]
fn conversion_failure_names_column_and_value() {
    let columns = [col("as_date", ColumnType::Datetime, field("as_date"))];
    let t = Transformer::new(&[], &columns, clock()).expect("compiles");
    let err = t
        .rows(&json!({"as_date": "abc"}), &mut Vec::new())
        .expect_err("abc is no date");
    assert_eq!(
        err.to_string(),
        r#"cannot convert `as_date` value "abc" to datetime: not a recognised date or datetime"#
    );
}

#[test]
fn several_flattens_are_cartesian_and_nested() {
    let record = json!({
        "id": 7,
        "items": [
            {"sku": "a", "batchs": [{"no": "x"}, {"no": "y"}]},
            {"sku": "b", "batchs": []}
        ],
        "sns": [{"sn": "s1"}, {"sn": "s2"}]
    });
    let steps = [flatten("items"), flatten("items_batchs"), flatten("sns")];
    let columns = [
        col("sku", ColumnType::Text, field("items_sku")),
        col("no", ColumnType::Text, field("items_batchs_no")),
        col("sn", ColumnType::Text, field("sns_sn")),
    ];
    let rows = run(&steps, &columns, &record);
    let cells = |sku: &str, no: Option<&str>, sn: &str| {
        vec![text(sku), no.map_or(Cell::Null, text), text(sn)]
    };
    assert_eq!(
        rows,
        vec![
            cells("a", Some("x"), "s1"),
            cells("a", Some("x"), "s2"),
            cells("a", Some("y"), "s1"),
            cells("a", Some("y"), "s2"),
            cells("b", None, "s1"),
            cells("b", None, "s2"),
        ]
    );
}

#[test]
fn rename_with_conversion_and_split() {
    let steps = [
        TransformStep::Rename {
            from: path("dateField_lgkgut9r"),
            to: "datetime_new".into(),
            convert: Some(ColumnType::Date),
        },
        TransformStep::Split {
            field: path("tags"),
            separator: ",".into(),
        },
        flatten("tags"),
    ];
    let columns = [
        col("d", ColumnType::Date, field("datetime_new")),
        col("tag", ColumnType::Text, field("tags")),
    ];
    let record = json!({"dateField_lgkgut9r": 1_714_204_561_000_i64, "tags": "a,b"});
    let rows = run(&steps, &columns, &record);
    let day = Cell::Date(chrono::NaiveDate::from_ymd_opt(2024, 4, 27).expect("valid"));
    assert_eq!(
        rows,
        vec![vec![day.clone(), text("a")], vec![day, text("b")]]
    );

    let t = Transformer::new(&steps, &columns, clock()).expect("compiles");
    let err = t
        .rows(&json!({"dateField_lgkgut9r": "nope"}), &mut Vec::new())
        .expect_err("bad date");
    assert!(err.to_string().contains("`datetime_new`"), "{err}");
}

#[test]
fn filters_before_and_after_flatten() {
    let steps = [
        TransformStep::Filter {
            field: path("status"),
            op: FilterOp::Ne,
            value: json!("cancelled"),
        },
        flatten("items"),
        TransformStep::Filter {
            field: path("items_qty"),
            op: FilterOp::Gt,
            value: json!(1),
        },
    ];
    let columns = [col("q", ColumnType::Int, field("items_qty"))];
    let record = json!({"status": "ok", "items": [{"qty": "1"}, {"qty": "5"}, {"qty": 10}]});
    assert_eq!(
        run(&steps, &columns, &record),
        vec![vec![Cell::Int(5)], vec![Cell::Int(10)]]
    );
    let cancelled = json!({"status": "cancelled", "items": [{"qty": 5}]});
    assert_eq!(run(&steps, &columns, &cancelled), Vec::<Vec<Cell>>::new());
}

#[test]
fn map_expression_examples() {
    let record = json!({
        "a": null, "b": "B", "n": 5, "status": "2",
        "t": "2024-04-27T07:56Z",
    });
    let s = ColumnType::Text;
    // (expression, expected cell as text type)
    let examples: Vec<(Expr, Cell)> = vec![
        (Expr::Const(json!(3)), text("3")),
        (
            Expr::Coalesce(vec![field("a"), field("missing"), field("b")]),
            text("B"),
        ),
        (Expr::Coalesce(vec![field("a")]), Cell::Null),
        (
            Expr::Concat(vec![
                field("b"),
                Expr::Const(json!("-")),
                field("a"),
                field("n"),
            ]),
            text("B-5"),
        ),
        (
            Expr::DateFormat(Box::new(field("t")), "%Y%m%d %H".into()),
            text("20240427 15"),
        ),
        (
            Expr::DateFormat(Box::new(field("a")), "%Y".into()),
            Cell::Null,
        ),
        (Expr::Now, text("2024-05-01 10:30:00")),
        (Expr::DaysAgo(1), text("2024-04-30 00:00:00")),
        (
            Expr::Case {
                subject: Box::new(field("status")),
                arms: vec![
                    (json!(1), Expr::Const(json!("one"))),
                    (json!(2), Expr::Const(json!("two"))),
                ],
                default: Some(Box::new(Expr::Const(json!("other")))),
            },
            text("two"),
        ),
        (
            Expr::Case {
                subject: Box::new(field("b")),
                arms: vec![(json!("x"), Expr::Const(json!("one")))],
                default: None,
            },
            Cell::Null,
        ),
        (
            Expr::Interpolate(vec![Piece::Field(path("n")), Piece::Text("/".into())]),
            text("5/"),
        ),
    ];
    for (expr, expected) in examples {
        let columns = [col("c", s, expr.clone())];
        assert_eq!(
            run(&[], &columns, &record),
            vec![vec![expected]],
            "{expr:?}"
        );
    }
}

#[test]
fn date_format_of_bad_value_is_rejected() {
    let columns = [col(
        "d",
        ColumnType::Text,
        Expr::DateFormat(Box::new(field("t")), "%Y".into()),
    )];
    let t = Transformer::new(&[], &columns, clock()).expect("compiles");
    let err = t
        .rows(&json!({"t": "soon"}), &mut Vec::new())
        .expect_err("bad");
    assert!(
        err.to_string()
            .starts_with("cannot convert `d` value \"soon\""),
        "{err}"
    );
}

#[test]
fn invalid_date_format_fails_to_compile() {
    let columns = [col(
        "d",
        ColumnType::Text,
        Expr::DateFormat(Box::new(field("t")), "%Q".into()),
    )];
    let err = Transformer::new(&[], &columns, clock()).expect_err("bad format");
    assert_eq!(err.to_string(), "invalid date format \"%Q\" in column `d`");
}

#[test]
fn bench_runs_and_counts_rows() {
    let (rows, _elapsed) = bench::run(100);
    assert_eq!(rows, 300);
}
