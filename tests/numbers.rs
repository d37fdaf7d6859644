//! Number tokens reach MySQL from their exact text, never through a float (issue 13, item
//! 4): a scripted vendor on loopback sends the numbers as it writes them, the real binary
//! runs into a fresh MariaDB database, and the stored values are read back as text.

use serde_json::json;

use crate::scripted::{Reply, Vendor, World};

/// A page whose numbers are written exactly as below (not through a `Value`): record 1 as
/// number tokens, record 2 the same values as strings, record 3 the edge cases.
const PAGE: &str = r#"{"data": [
  {"id": 1, "amt": 123456789012345678.91, "small": 12345678901.1234567,
   "big": 9007199254740993, "huge": 12345678901234567890123456789012345678,
   "zero": -0, "exp": 1.5e3, "rate": 0.1, "tag": 1.50},
  {"id": 2, "amt": "123456789012345678.91", "small": "12345678901.1234567",
   "big": "9007199254740993", "huge": "12345678901234567890123456789012345678",
   "zero": "-0", "exp": "1.5e3", "rate": "0.1", "tag": "1.50"},
  {"id": 3, "amt": -0.005, "small": 1E-7, "big": -9223372036854775808,
   "huge": 18446744073709551616, "zero": -0.0, "exp": 2E+2, "rate": 1e-2, "tag": 1e3}
]}"#;

const SPEC: &str = r#"sync "amounts"

source http "/amounts" {
    connection api
    records data
    id id
}

target mysql "amounts" {
    connection bi
    key id
    create
}

map {
    id = id : bigint
    amt = amt : decimal(20,2)
    small = small : decimal(18,6)
    big = big : bigint
    big_text = big : string(40)
    huge = huge : decimal(38,0)
    huge_text = huge : string(40)
    zero = zero : decimal(10,2)
    exp_decimal = exp : decimal(10,2)
    exp_bigint = exp : bigint
    rate = rate : double
    tag = tag : string(10)
    label = "<id>/<big>/<huge>/<tag>" : string(80)
}
"#;

type Row = (
    i64,
    String,
    String,
    i64,
    String,
    String,
    String,
    String,
    String,
    i64,
    f64,
    String,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_are_stored_from_their_exact_text() {
    let vendor = Vendor::start(|_, _| Reply::bytes("application/json", PAGE.into())).await;
    let world = World::new(&vendor, "Asia/Shanghai", "").await;
    world.spec("amounts", SPEC);
    world.qsync(&["run", "amounts.qsync"], 0);

    let rows: Vec<Row> = world
        .rows(
            "SELECT id, CAST(amt AS CHAR), CAST(small AS CHAR), big, big_text, \
             CAST(huge AS CHAR), huge_text, CAST(zero AS CHAR), CAST(exp_decimal AS CHAR), \
             exp_bigint, rate, tag FROM amounts ORDER BY id",
        )
        .await;
    let huge = "12345678901234567890123456789012345678";
    let exact = |id: i64, tag: &str| {
        (
            id,
            "123456789012345678.91".to_owned(),
            // 7 decimals into 6, rounded half away from zero.
            "12345678901.123457".to_owned(),
            9_007_199_254_740_993,
            "9007199254740993".to_owned(),
            huge.to_owned(),
            huge.to_owned(),
            "0.00".to_owned(),
            "1500.00".to_owned(),
            1500,
            0.1,
            tag.to_owned(),
        )
    };
    assert_eq!(
        rows,
        [
            // A string column keeps the token as the vendor wrote it.
            exact(1, "1.50"),
            exact(2, "1.50"),
            (
                3,
                "-0.01".to_owned(),
                "0.000000".to_owned(),
                i64::MIN,
                "-9223372036854775808".to_owned(),
                "18446744073709551616".to_owned(),
                "18446744073709551616".to_owned(),
                "0.00".to_owned(),
                "200.00".to_owned(),
                200,
                0.01,
                // serde_json spells an exponent with its sign.
                "1e+3".to_owned(),
            ),
        ]
    );
    let labels: Vec<String> = world.rows("SELECT label FROM amounts ORDER BY id").await;
    assert_eq!(
        labels,
        [
            format!("1/9007199254740993/{huge}/1.50"),
            format!("2/9007199254740993/{huge}/1.50"),
            "3/-9223372036854775808/18446744073709551616/1e+3".to_owned(),
        ]
    );
    let rejects: Vec<String> = world.rows("SELECT reason FROM _qsync_rejects").await;
    assert_eq!(rejects, Vec::<String>::new());
}

/// Numbers that do not fit are rejected with the reason, never rounded into the column, and
/// the reject keeps the record's raw JSON with every digit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_that_do_not_fit_are_rejected_with_their_exact_text() {
    let body = r#"{"data": [
      {"id": 1, "n": 1.5e-1, "d": 1},
      {"id": 2, "n": 9223372036854775808, "d": 1},
      {"id": 3, "n": 1e400, "d": 1},
      {"id": 4, "n": 7, "d": 123456789012345678901234567890.5},
      {"id": 5, "n": 8, "d": 99999999.995},
      {"id": 6, "n": 9, "d": 99999999.994}
    ]}"#;
    let vendor = Vendor::start(move |_, _| Reply::bytes("application/json", body.into())).await;
    let world = World::new(&vendor, "Asia/Shanghai", "").await;
    world.spec(
        "fits",
        r#"sync "fits"

source http "/fits" {
    connection api
    records data
    id id
}

target mysql "fits" {
    connection bi
    key id
    create
}

map {
    id = id : bigint
    n = n : bigint
    d = d : decimal(10,2)
}
"#,
    );
    world.qsync(&["run", "fits.qsync"], 0);
    let rows: Vec<(i64, i64, String)> = world
        .rows("SELECT id, n, CAST(d AS CHAR) FROM fits ORDER BY id")
        .await;
    assert_eq!(rows, [(6, 9, "99999999.99".to_owned())]);
    let rejects: Vec<(String, String)> = world
        .rows("SELECT reason, raw FROM _qsync_rejects ORDER BY id")
        .await;
    let reasons: Vec<&str> = rejects.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "cannot convert `n` value 1.5e-1 to bigint: has a fractional part",
            "cannot convert `n` value 9223372036854775808 to bigint: out of range",
            "cannot convert `n` value 1e+400 to bigint: out of range",
            "cannot convert `d` value 123456789012345678901234567890.5 to decimal(10,2): out of range",
            // Rounded to the scale, it needs a ninth integer digit.
            "cannot convert `d` value 99999999.995 to decimal(10,2): out of range",
        ]
    );
    let raw: serde_json::Value = serde_json::from_str(&rejects[3].1).expect("raw is JSON");
    assert_eq!(
        raw.to_string(),
        json!({"id": 4, "n": 7, "d": serde_json::Number::from_string_unchecked(
            "123456789012345678901234567890.5".to_owned()
        )})
        .to_string()
    );
    assert!(
        rejects[3].1.contains("123456789012345678901234567890.5"),
        "{}",
        rejects[3].1
    );
}
