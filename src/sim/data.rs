//! The simulator's seeded datasets and the store that pages them: generation (realistic
//! Chinese shops, warehouses, goods and people, modified times spread over the span before
//! the anchor), time-window filtering, ordering by modified time, and the two paging faults
//! that live in the data itself: drift (records already served get their modified time
//! bumped, shifting later records onto earlier pages) and duplicates across page boundaries.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// One simulated dataset (one vendor resource).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dataset {
    /// Jushuitan after-sale orders: `/open/refund/single/query` and Qimen
    /// `jushuitan.refund.list.query`.
    JstRefunds,
    /// Jushuitan sales outbound orders: `/open/orders/out/simple/query`.
    JstOrders,
    /// Jackyun warehouses: `erp.warehouse.get`.
    JikeyunWarehouses,
    /// WDT refunds: `aftersales.refund.Refund.search` and Qimen
    /// `wdt.aftersales.refund.refund.search`.
    WdtRefunds,
    /// Yida process instances: `/v1.0/yida/processes/instances`.
    YidaInstances,
    /// The generic signed JSON API: `GET /http/api/v1/orders`.
    HttpOrders,
}

impl Dataset {
    pub const ALL: [Dataset; 6] = [
        Dataset::JstRefunds,
        Dataset::JstOrders,
        Dataset::JikeyunWarehouses,
        Dataset::WdtRefunds,
        Dataset::YidaInstances,
        Dataset::HttpOrders,
    ];

    /// The name used in `/_sim/truth/<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::JstRefunds => "jst_refunds",
            Dataset::JstOrders => "jst_orders",
            Dataset::JikeyunWarehouses => "jikeyun_warehouses",
            Dataset::WdtRefunds => "wdt_refunds",
            Dataset::YidaInstances => "yida_instances",
            Dataset::HttpOrders => "http_orders",
        }
    }

    pub fn from_name(name: &str) -> Option<Dataset> {
        Dataset::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The record field that identifies a record (top level).
    pub fn id_field(self) -> &'static str {
        match self {
            Dataset::JstRefunds => "as_id",
            Dataset::JstOrders => "io_id",
            Dataset::JikeyunWarehouses => "warehouseId",
            Dataset::WdtRefunds => "refund_id",
            Dataset::YidaInstances => "processInstanceId",
            Dataset::HttpOrders => "order_id",
        }
    }

    fn salt(self) -> u64 {
        match self {
            Dataset::JstRefunds => 0x11,
            Dataset::JstOrders => 0x22,
            Dataset::JikeyunWarehouses => 0x33,
            Dataset::WdtRefunds => 0x44,
            Dataset::YidaInstances => 0x55,
            Dataset::HttpOrders => 0x66,
        }
    }
}

/// One record: its id, its modified time (the paging order), and its vendor JSON.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) key: String,
    pub(crate) modified: DateTime<Utc>,
    pub(crate) value: Value,
}

/// A page cut from a dataset.
#[derive(Debug, Clone, Default)]
pub(crate) struct Page {
    pub(crate) records: Vec<Value>,
    /// Records in the window (after any drift bump).
    pub(crate) total: usize,
    pub(crate) drift_bumped: bool,
    pub(crate) duplicated: bool,
}

/// How a page request is cut.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageRequest {
    pub(crate) from: Option<DateTime<Utc>>,
    pub(crate) to: Option<DateTime<Utc>>,
    /// Zero-based page number (vendors' bases are removed by the caller).
    pub(crate) page: usize,
    pub(crate) size: usize,
    pub(crate) drift: bool,
    pub(crate) duplicate: bool,
}

/// Every dataset's records.
#[derive(Debug, Default)]
pub(crate) struct Store {
    sets: BTreeMap<Dataset, Vec<Record>>,
    /// Jushuitan `ts` rowversion counter, bumped on every change.
    rowversion: u64,
}

const SHOPS: &[&str] = &[
    "天猫旗舰店",
    "京东自营店",
    "抖音小店",
    "拼多多专营店",
    "唯品会特卖店",
    "小红书官方店",
    "快手好物店",
    "微信小程序商城",
];
const WAREHOUSES: &[(&str, &str, &str)] = &[
    ("杭州余杭仓", "浙江省", "杭州市"),
    ("广州白云仓", "广东省", "广州市"),
    ("上海嘉定仓", "上海市", "上海市"),
    ("成都双流仓", "四川省", "成都市"),
    ("武汉东西湖仓", "湖北省", "武汉市"),
    ("北京顺义仓", "北京市", "北京市"),
    ("郑州航空港仓", "河南省", "郑州市"),
    ("西安国际港仓", "陕西省", "西安市"),
];
const GOODS: &[(&str, &str)] = &[
    ("纯棉短袖T恤", "白色;XL"),
    ("不锈钢保温杯", "500ml;深空灰"),
    ("无线蓝牙耳机", "黑色"),
    ("加厚羽绒服", "藏青;L"),
    ("儿童运动鞋", "粉色;32码"),
    ("有机绿茶礼盒", "250g"),
    ("真丝枕套", "香槟金;48x74cm"),
    ("电动牙刷", "白色;标准款"),
    ("防晒霜", "SPF50;60ml"),
    ("机械键盘", "茶轴;87键"),
];
const PEOPLE: &[&str] = &[
    "张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄强", "周杰", "吴婷",
];
const REASONS: &[&str] = &[
    "七天无理由退货",
    "尺码不合适",
    "商品质量问题",
    "发错货",
    "少件漏发",
    "不想要了",
];
const DEPTS: &[&str] = &["财务部", "运营部", "仓储部", "客服部", "采购部"];

/// `yyyy-MM-dd HH:mm:ss` in Asia/Shanghai.
pub(crate) fn shanghai(t: DateTime<Utc>) -> String {
    t.with_timezone(&Shanghai)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Parses `yyyy-MM-dd HH:mm:ss` (or a bare date, as midnight) in Asia/Shanghai.
pub(crate) fn parse_shanghai(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })?;
    Shanghai
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

fn money(rng: &mut StdRng, low: u32, high: u32) -> f64 {
    f64::from(rng.gen_range(low * 100..high * 100)) / 100.0
}

impl Store {
    /// Generates `records` records per dataset, modified within `span_days` before `anchor`.
    pub(crate) fn generate(
        seed: u64,
        records: usize,
        span_days: i64,
        anchor: DateTime<Utc>,
    ) -> Store {
        let mut store = Store::default();
        let span_secs = (span_days.max(1) * 86_400).max(60);
        for dataset in Dataset::ALL {
            let mut rng =
                StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ dataset.salt());
            let mut list = Vec::with_capacity(records);
            for i in 0..records {
                let mut modified = anchor - ChronoDuration::seconds(rng.gen_range(1..span_secs));
                if dataset == Dataset::YidaInstances {
                    // Yida shows minute precision; keep the truth on the minute too.
                    modified =
                        modified - ChronoDuration::seconds(modified.timestamp().rem_euclid(60));
                }
                let created = modified - ChronoDuration::seconds(rng.gen_range(60..3 * 86_400));
                let value = store.make(dataset, i, &mut rng, created);
                let mut record = Record {
                    key: String::new(),
                    modified,
                    value,
                };
                record.key =
                    crate::connectors::wire::scalar_text(&record.value[dataset.id_field()]);
                store.stamp(dataset, &mut record, modified);
                list.push(record);
            }
            store.sets.insert(dataset, list);
        }
        store
    }

    fn make(
        &mut self,
        dataset: Dataset,
        i: usize,
        rng: &mut StdRng,
        created: DateTime<Utc>,
    ) -> Value {
        let n = i as u64 + 1;
        let created_ms = created.timestamp_millis();
        match dataset {
            Dataset::JstRefunds => {
                let as_id = 10_000_000 + n;
                let items: Vec<Value> = (0..rng.gen_range(1..=3u64))
                    .map(|j| {
                        let (name, props) = pick(rng, GOODS);
                        let qty = rng.gen_range(1..=3u32);
                        let price = money(rng, 9, 500);
                        json!({
                            "asi_id": as_id * 10 + j,
                            "as_id": as_id,
                            "sku_id": format!("SKU{:05}", rng.gen_range(1..99_999)),
                            "qty": qty,
                            "r_qty": qty,
                            "price": price,
                            "amount": (price * f64::from(qty) * 100.0).round() / 100.0,
                            "name": name,
                            "properties_value": props,
                            "outer_oi_id": format!("{}", 3_000_000_000u64 + n * 10 + j),
                            "type": "退货",
                            "is_gift": false,
                        })
                    })
                    .collect();
                let refund: f64 = items.iter().filter_map(|it| it["amount"].as_f64()).sum();
                json!({
                    "as_id": as_id,
                    "as_date": shanghai(created),
                    "outer_as_id": format!("{}", 200_000_000_000u64 + n),
                    "o_id": 5_000_000 + n,
                    "so_id": format!("{}", 3_000_000_000u64 + n),
                    "type": *pick(rng, &["普通退货", "仅退款", "换货", "拒收退货"]),
                    "created": shanghai(created),
                    "modified": "",
                    "status": *pick(rng, &["WaitConfirm", "Confirmed", "Cancelled"]),
                    "shop_status": *pick(rng, &["WAIT_SELLER_AGREE", "SUCCESS", "CLOSED"]),
                    "good_status": *pick(rng, &["BUYER_RECEIVED", "BUYER_RETURNED_GOODS", "SELLER_RECEIVED"]),
                    "question_type": *pick(rng, REASONS),
                    "remark": "",
                    "refund": (refund * 100.0).round() / 100.0,
                    "payment": (refund * 100.0).round() / 100.0,
                    "shop_id": 10_000_000 + rng.gen_range(1..9u64),
                    "shop_name": *pick(rng, SHOPS),
                    "warehouse": pick(rng, WAREHOUSES).0,
                    "wh_id": 1,
                    "wms_co_id": 12_252,
                    "receiver_name": *pick(rng, PEOPLE),
                    "ts": "",
                    "items": items,
                })
            }
            Dataset::JstOrders => {
                let io_id = 20_000_000 + n;
                let items: Vec<Value> = (0..rng.gen_range(1..=3u64))
                    .map(|j| {
                        let (name, props) = pick(rng, GOODS);
                        let qty = rng.gen_range(1..=5u32);
                        let price = money(rng, 9, 500);
                        json!({
                            "ioi_id": io_id * 10 + j,
                            "sku_id": format!("SKU{:05}", rng.gen_range(1..99_999)),
                            "i_id": format!("I{:04}", rng.gen_range(1..9_999)),
                            "qty": qty,
                            "name": name,
                            "properties_value": props,
                            "sale_price": price,
                            "sale_amount": (price * f64::from(qty) * 100.0).round() / 100.0,
                            "oi_id": io_id * 10 + j,
                            "is_gift": "false",
                        })
                    })
                    .collect();
                let pay: f64 = items
                    .iter()
                    .filter_map(|it| it["sale_amount"].as_f64())
                    .sum();
                let wh = pick(rng, WAREHOUSES);
                json!({
                    "io_id": io_id,
                    "o_id": 5_000_000 + n,
                    "so_id": format!("{}", 4_000_000_000u64 + n),
                    "co_id": 12_252,
                    "shop_id": 10_000_000 + rng.gen_range(1..9u64),
                    "shop_name": *pick(rng, SHOPS),
                    "created": shanghai(created),
                    "modified": "",
                    "io_date": shanghai(created),
                    "status": *pick(rng, &["Confirmed", "WaitConfirm", "Delete"]),
                    "pay_amount": (pay * 100.0).round() / 100.0,
                    "freight": money(rng, 0, 20),
                    "logistics_company": *pick(rng, &["顺丰速运", "中通快递", "圆通速递", "京东物流"]),
                    "l_id": format!("SF{:012}", rng.gen_range(1..999_999_999_999u64)),
                    "receiver_name": *pick(rng, PEOPLE),
                    "receiver_state": wh.1,
                    "receiver_city": wh.2,
                    "wms_co_id": 12_252,
                    "ts": 0,
                    "items": items,
                })
            }
            Dataset::JikeyunWarehouses => {
                let (name, province, city) = pick(rng, WAREHOUSES);
                json!({
                    "warehouseId": 1_800_000_000_000_000_000u64 + n,
                    "warehouseCode": format!("WH{n:04}"),
                    "warehouseName": format!("{name}{n}号库"),
                    "isBlockup": 0,
                    "isDelete": 0,
                    "warehouseTypeCode": "1",
                    "warehouseTypeName": "普通仓",
                    "countryName": "中国",
                    "provinceName": province,
                    "cityName": city,
                    "address": format!("{city}物流园区{}号", rng.gen_range(1..200)),
                    "linkMan": *pick(rng, PEOPLE),
                    "tel": format!("1{:010}", rng.gen_range(3_000_000_000u64..9_999_999_999)),
                    "warehouseCompanyName": "模拟科技有限公司",
                    "gmtCreate": created_ms,
                    "gmtModified": 0,
                })
            }
            Dataset::WdtRefunds => {
                let refund_id = 300_000 + n;
                let tid = format!("{}", 5_000_000_000u64 + n);
                let details: Vec<Value> = (0..rng.gen_range(1..=3u64))
                    .map(|j| {
                        let (name, props) = pick(rng, GOODS);
                        let num = rng.gen_range(1..=3u32);
                        let price = money(rng, 9, 500);
                        json!({
                            "rec_id": refund_id * 10 + j,
                            "refund_id": refund_id,
                            "oid": format!("{tid}-{j}"),
                            "tid": tid,
                            "num": num,
                            "price": price,
                            "refund_num": num,
                            "refund_amount": (price * f64::from(num) * 100.0).round() / 100.0,
                            "goods_no": format!("G{:05}", rng.gen_range(1..99_999)),
                            "spec_no": format!("S{:05}", rng.gen_range(1..99_999)),
                            "goods_name": name,
                            "spec_name": props,
                            "created": created_ms,
                            "modified": 0,
                        })
                    })
                    .collect();
                json!({
                    "refund_id": refund_id,
                    "refund_no": format!("TK{}{:06}", created.format("%Y%m%d"), n),
                    "src_tids": tid,
                    "tid_list": tid,
                    "type": *pick(rng, &[1, 2, 3, 4]),
                    "status": *pick(rng, &[10, 20, 30, 80, 90]),
                    "stockin_status": rng.gen_range(0..=4),
                    "shop_no": format!("shop{:03}", rng.gen_range(1..20)),
                    "shop_name": *pick(rng, SHOPS),
                    "shop_id": rng.gen_range(1..20),
                    "return_warehouse_no": format!("wh{:02}", rng.gen_range(1..9)),
                    "refund_reason": *pick(rng, REASONS),
                    "buyer_nick": *pick(rng, PEOPLE),
                    "created": created_ms,
                    "modified": 0,
                    "modified_date": "",
                    "detail_list": details,
                })
            }
            Dataset::YidaInstances => {
                let person = *pick(rng, PEOPLE);
                json!({
                    "processInstanceId": format!("{:08x}-sim-{n:06}", rng.gen::<u32>()),
                    "title": format!("{person}提交的费用报销"),
                    "formUuid": "FORM-SIM-EXPENSE",
                    "processCode": "TPROC--SIM-EXPENSE",
                    "instanceStatus": *pick(rng, &["RUNNING", "COMPLETED", "TERMINATED"]),
                    "approvedResult": *pick(rng, &["agree", "disagree", ""]),
                    "createTimeGMT": created.format("%Y-%m-%dT%H:%MZ").to_string(),
                    "modifiedTimeGMT": "",
                    "originator": {
                        "userId": format!("user{:04}", rng.gen_range(1..9_999)),
                        "name": {"nameInChinese": person, "nameInEnglish": person, "type": "i18n"},
                        "deptName": *pick(rng, DEPTS),
                        "email": "",
                    },
                    "data": {
                        "dateField_lgkgut9r": created_ms,
                        "serialNumberField_lgorr6rv": format!("BX{}{:05}", created.format("%Y%m%d"), n),
                        "numberField_lgkgut81": money(rng, 10, 5_000),
                        "textField_x": format!("{}差旅报销", pick(rng, WAREHOUSES).2),
                        "selectField_dept": *pick(rng, DEPTS),
                    },
                    "version": rng.gen_range(1..40),
                })
            }
            Dataset::HttpOrders => {
                let lines: Vec<Value> = (0..rng.gen_range(1..=3u64))
                    .map(|j| {
                        let (name, props) = pick(rng, GOODS);
                        json!({"line_no": j + 1, "title": name, "variant": props,
                               "qty": rng.gen_range(1..=4), "unit_price": format!("{:.2}", money(rng, 9, 500))})
                    })
                    .collect();
                json!({
                    "order_id": 700_000 + n,
                    "order_no": format!("SO{}{:06}", created.format("%Y%m%d"), n),
                    "shop_name": *pick(rng, SHOPS),
                    "buyer": *pick(rng, PEOPLE),
                    "status": *pick(rng, &["paid", "shipped", "completed", "refunded"]),
                    "amount": format!("{:.2}", money(rng, 9, 2_000)),
                    "currency": "CNY",
                    "created_at": shanghai(created),
                    "updated_at": "",
                    "lines": lines,
                })
            }
        }
    }

    /// Writes `modified` into the record's vendor fields.
    fn stamp(&mut self, dataset: Dataset, record: &mut Record, modified: DateTime<Utc>) {
        record.modified = modified;
        let ms = modified.timestamp_millis();
        let v = &mut record.value;
        match dataset {
            Dataset::JstRefunds => {
                self.rowversion += 1;
                v["modified"] = json!(shanghai(modified));
                v["ts"] = json!(format!("{}", 100_000_000 + self.rowversion));
            }
            Dataset::JstOrders => {
                self.rowversion += 1;
                v["modified"] = json!(shanghai(modified));
                v["ts"] = json!(100_000_000 + self.rowversion);
            }
            Dataset::JikeyunWarehouses => v["gmtModified"] = json!(ms),
            Dataset::WdtRefunds => {
                v["modified"] = json!(ms);
                v["modified_date"] = json!(shanghai(modified));
                if let Some(details) = v["detail_list"].as_array_mut() {
                    for d in details {
                        d["modified"] = json!(ms);
                    }
                }
            }
            Dataset::YidaInstances => {
                v["modifiedTimeGMT"] = json!(modified.format("%Y-%m-%dT%H:%MZ").to_string());
            }
            Dataset::HttpOrders => v["updated_at"] = json!(shanghai(modified)),
        }
    }

    /// Every record's latest version, ordered by id.
    pub(crate) fn truth(&self, dataset: Dataset) -> Vec<Value> {
        let mut records: Vec<&Record> = self
            .sets
            .get(&dataset)
            .map(|l| l.iter().collect())
            .unwrap_or_default();
        records.sort_by(|a, b| a.key.cmp(&b.key));
        records.into_iter().map(|r| r.value.clone()).collect()
    }

    /// Indexes of the records in `[from, to]` (inclusive), by (modified, key).
    fn window(
        &self,
        dataset: Dataset,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Vec<usize> {
        let Some(list) = self.sets.get(&dataset) else {
            return Vec::new();
        };
        let mut idx: Vec<usize> = (0..list.len())
            .filter(|&i| {
                let m = list[i].modified;
                from.is_none_or(|f| m >= f) && to.is_none_or(|t| m <= t)
            })
            .collect();
        idx.sort_by(|&a, &b| {
            (list[a].modified, &list[a].key).cmp(&(list[b].modified, &list[b].key))
        });
        idx
    }

    /// Cuts page `req.page` of the window. With `drift`, a later page first bumps the
    /// window's earliest record (already served) to `now`, so every later record moves one
    /// place up and the first record of this page slides onto the previous one.
    pub(crate) fn page(&mut self, dataset: Dataset, req: PageRequest, now: DateTime<Utc>) -> Page {
        let mut page = Page::default();
        if req.drift && req.page > 0 {
            let idx = self.window(dataset, req.from, req.to);
            if let Some(&first) = idx.first() {
                let bumped = now
                    - ChronoDuration::seconds(now.timestamp().rem_euclid(
                        if dataset == Dataset::YidaInstances {
                            60
                        } else {
                            1
                        },
                    ));
                if let Some(mut record) = self.sets.get_mut(&dataset).map(|l| l[first].clone()) {
                    let when = bumped.max(record.modified);
                    self.stamp(dataset, &mut record, when);
                    if let Some(list) = self.sets.get_mut(&dataset) {
                        list[first] = record;
                    }
                    page.drift_bumped = true;
                }
            }
        }
        let idx = self.window(dataset, req.from, req.to);
        page.total = idx.len();
        let Some(list) = self.sets.get(&dataset) else {
            return page;
        };
        let size = req.size.max(1);
        let start = req.page.saturating_mul(size);
        if req.duplicate && req.page > 0 && start > 0 && start <= idx.len() {
            page.records.push(list[idx[start - 1]].value.clone());
            page.duplicated = true;
        }
        page.records.extend(
            idx.iter()
                .skip(start)
                .take(size)
                .map(|&i| list[i].value.clone()),
        );
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchor() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn generation_is_deterministic_and_in_span() {
        let a = Store::generate(7, 20, 3, anchor());
        let b = Store::generate(7, 20, 3, anchor());
        for d in Dataset::ALL {
            assert_eq!(a.truth(d), b.truth(d), "{d:?}");
            assert_eq!(a.truth(d).len(), 20);
        }
        let c = Store::generate(8, 20, 3, anchor());
        assert_ne!(a.truth(Dataset::JstRefunds), c.truth(Dataset::JstRefunds));
        for r in &a.sets[&Dataset::WdtRefunds] {
            assert!(r.modified < anchor() && r.modified > anchor() - ChronoDuration::days(3));
            assert_eq!(
                r.value["modified"].as_i64(),
                Some(r.modified.timestamp_millis())
            );
        }
    }

    #[test]
    fn paging_covers_the_window_once_without_faults() {
        let mut store = Store::generate(1, 23, 2, anchor());
        let mut seen = Vec::new();
        for page in 0..10 {
            let req = PageRequest {
                from: None,
                to: None,
                page,
                size: 5,
                drift: false,
                duplicate: false,
            };
            let p = store.page(Dataset::JstRefunds, req, anchor());
            assert_eq!(p.total, 23);
            if p.records.is_empty() {
                break;
            }
            seen.extend(p.records.iter().map(|r| r["as_id"].to_string()));
        }
        assert_eq!(seen.len(), 23);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 23);
    }

    #[test]
    fn drift_makes_a_naive_pager_miss_a_record() {
        let mut store = Store::generate(1, 10, 2, anchor());
        let to = Some(anchor());
        let mut seen = std::collections::BTreeSet::new();
        for page in 0..5 {
            let req = PageRequest {
                from: None,
                to,
                page,
                size: 3,
                drift: true,
                duplicate: false,
            };
            let p = store.page(
                Dataset::WdtRefunds,
                req,
                anchor() + ChronoDuration::hours(1),
            );
            seen.extend(p.records.iter().map(|r| r["refund_id"].to_string()));
        }
        assert!(
            seen.len() < 10,
            "drift should hide records, saw {}",
            seen.len()
        );
    }

    #[test]
    fn shanghai_round_trip() {
        let t = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(shanghai(t), "2024-01-01 08:00:00");
        assert_eq!(parse_shanghai("2024-01-01 08:00:00"), Some(t));
        assert_eq!(
            parse_shanghai("2024-01-01"),
            Some(t - ChronoDuration::hours(8))
        );
        assert_eq!(parse_shanghai("garbage"), None);
    }
}
