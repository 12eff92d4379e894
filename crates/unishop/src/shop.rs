//! The shop's data: catalogue queries, checkout, orders and order history.
//!
//! Checkout is one transaction: lock the ordered products (`SELECT … FOR
//! UPDATE`, in id order so that concurrent checkouts cannot deadlock each
//! other), check stock, decrement it, insert the order and its lines, commit.
//! Any refusal or failure before the commit rolls everything back: an order
//! is either complete or absent.

use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound, Utc};
use mysql_async::prelude::*;
use mysql_async::{TxOpts, Value};
use serde::{Deserialize, Serialize};

use crate::db::Db;
use crate::error::Error;

/// Most lines one order may have.
pub const MAX_LINES: usize = 50;
/// Most pieces of one product in one order.
pub const MAX_QUANTITY: u64 = 1000;

/// A product as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Product {
    /// Id.
    pub id: u32,
    /// Stock keeping unit.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// One sentence.
    pub description: String,
    /// Price in cents.
    pub price_cents: u32,
    /// Pieces in stock.
    pub stock: u32,
    /// Where the frontend finds its image (served from the bucket).
    pub image_url: String,
}

/// `POST /api/orders` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderRequest {
    /// What to buy.
    pub items: Vec<OrderItem>,
}

/// One item of an order request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderItem {
    /// Which product.
    pub product_id: u64,
    /// How many (1 to [`MAX_QUANTITY`]).
    pub quantity: u64,
}

/// An order as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Order {
    /// Id (the `orders` table's AUTO_INCREMENT key).
    pub id: u64,
    /// When it was placed: RFC 3339, UTC, microseconds (the `created_at` column).
    pub created_at: String,
    /// `placed`.
    pub status: String,
    /// Sum of the lines, in cents.
    pub total_cents: u64,
    /// The lines, in the order given.
    pub lines: Vec<OrderLine>,
}

/// One line of an order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderLine {
    /// Which product.
    pub product_id: u32,
    /// Its name.
    pub name: String,
    /// How many.
    pub quantity: u32,
    /// Price of one piece when ordered, in cents.
    pub unit_price_cents: u32,
}

/// An order of the history list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderSummary {
    /// Id.
    pub id: u64,
    /// When it was placed (RFC 3339, UTC, microseconds).
    pub created_at: String,
    /// `placed`.
    pub status: String,
    /// Total in cents.
    pub total_cents: u64,
    /// Number of pieces.
    pub pieces: u64,
}

/// Why an order was not placed.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// The request is malformed or names something that does not exist (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// Not enough stock (HTTP 409).
    #[error("{0}")]
    OutOfStock(String),
    /// The database failed (HTTP 503 when unavailable, else 500).
    #[error(transparent)]
    Db(#[from] Error),
}

fn db_err(action: &str) -> impl FnOnce(mysql_async::Error) -> OrderError + '_ {
    move |e| OrderError::Db(Error::db(action, e))
}

/// MySQL DATETIME text for the `created_at` column.
fn sql_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// How `created_at` is read back: RFC 3339, UTC, microseconds.
const CREATED_AT: &str = "DATE_FORMAT(o.created_at, '%Y-%m-%dT%H:%i:%s.%fZ')";

/// Checks an order request; returns product id → quantity (repeated products are added up).
pub fn validate(req: &OrderRequest) -> Result<BTreeMap<u32, u32>, OrderError> {
    if req.items.is_empty() {
        return Err(OrderError::Invalid(
            "an order needs at least one item".into(),
        ));
    }
    if req.items.len() > MAX_LINES {
        return Err(OrderError::Invalid(format!(
            "an order may have at most {MAX_LINES} items, not {}",
            req.items.len()
        )));
    }
    let mut wanted: BTreeMap<u32, u32> = BTreeMap::new();
    for it in &req.items {
        let Ok(id) = u32::try_from(it.product_id) else {
            return Err(OrderError::Invalid(format!(
                "unknown product {}",
                it.product_id
            )));
        };
        if it.quantity == 0 || it.quantity > MAX_QUANTITY {
            return Err(OrderError::Invalid(format!(
                "quantity of product {id} must be between 1 and {MAX_QUANTITY}, not {}",
                it.quantity
            )));
        }
        let q = wanted.entry(id).or_default();
        *q += it.quantity as u32;
        if u64::from(*q) > MAX_QUANTITY {
            return Err(OrderError::Invalid(format!(
                "quantity of product {id} must be between 1 and {MAX_QUANTITY}, not {q}"
            )));
        }
    }
    Ok(wanted)
}

/// Places an order in one transaction (retried up to three times on a deadlock).
pub async fn place_order(db: &Db, req: &OrderRequest) -> Result<Order, OrderError> {
    let wanted = validate(req)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let r =
            match tokio::time::timeout(crate::db::WORK_TIMEOUT, checkout(db, req, &wanted)).await {
                Ok(r) => r,
                Err(_) => Err(OrderError::Db(Error::DatabaseUnavailable {
                    reason: format!("checkout: no answer within {:?}", crate::db::WORK_TIMEOUT),
                    code: None,
                })),
            };
        match r {
            Err(OrderError::Db(e)) if e.server_code() == Some(1213) && attempt < 3 => {
                tracing::debug!(attempt, "checkout deadlocked; trying again");
            }
            r => return r,
        }
    }
}

/// One checkout in one transaction: the products locked, the stock taken,
/// the order and its lines written; refused (rolled back) when a product is
/// unknown or short.
async fn checkout(
    db: &Db,
    req: &OrderRequest,
    wanted: &BTreeMap<u32, u32>,
) -> Result<Order, OrderError> {
    let mut conn = db.conn().await?;
    let mut tx = conn
        .start_transaction(TxOpts::default())
        .await
        .map_err(db_err("begin checkout"))?;
    let marks = vec!["?"; wanted.len()].join(",");
    let ids: Vec<Value> = wanted.keys().map(|id| Value::from(*id)).collect();
    let rows: Vec<(u32, String, u32, u32)> = tx
        .exec(
            format!(
                "SELECT id, name, price_cents, stock FROM products WHERE id IN ({marks}) ORDER BY id FOR UPDATE"
            ),
            ids,
        )
        .await
        .map_err(db_err("lock products"))?;
    let found: BTreeMap<u32, (String, u32, u32)> = rows
        .into_iter()
        .map(|(id, name, price, stock)| (id, (name, price, stock)))
        .collect();
    // Refusals: the transaction is rolled back when `tx` is dropped; roll back
    // explicitly so that the connection goes back to the pool clean at once.
    let refusal = wanted.iter().find_map(|(id, q)| match found.get(id) {
        None => Some(OrderError::Invalid(format!("unknown product {id}"))),
        Some((name, _, stock)) if stock < q => Some(OrderError::OutOfStock(format!(
            "not enough stock for product {id} ({name}): {stock} left, {q} asked"
        ))),
        _ => None,
    });
    if let Some(r) = refusal {
        let _ = tx.rollback().await;
        return Err(r);
    }
    tx.exec_batch(
        "UPDATE products SET stock = stock - ? WHERE id = ?",
        wanted.iter().map(|(id, q)| (*q, *id)),
    )
    .await
    .map_err(db_err("decrement stock"))?;
    let lines = order_lines(req, wanted, &found);
    let total: u64 = lines
        .iter()
        .map(|l| u64::from(l.quantity) * u64::from(l.unit_price_cents))
        .sum();
    let created = Utc::now().trunc_subsecs(6);
    tx.exec_drop(
        "INSERT INTO orders (created_at, status, total_cents) VALUES (?, 'placed', ?)",
        (sql_time(created), total),
    )
    .await
    .map_err(db_err("insert order"))?;
    let id = tx
        .last_insert_id()
        .ok_or_else(|| OrderError::Db(Error::Other("the order got no id".into())))?;
    insert_lines(&mut tx, id, &lines).await?;
    tx.commit().await.map_err(db_err("commit order"))?;
    Ok(Order {
        id,
        created_at: created.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        status: "placed".into(),
        total_cents: total,
        lines,
    })
}

/// An order's lines: in the request's order, a product repeated in it
/// added up into its first line (`wanted`), at the price `found` locked.
fn order_lines(
    req: &OrderRequest,
    wanted: &BTreeMap<u32, u32>,
    found: &BTreeMap<u32, (String, u32, u32)>,
) -> Vec<OrderLine> {
    let mut lines: Vec<OrderLine> = Vec::new();
    for it in &req.items {
        let id = it.product_id as u32;
        if lines.iter().any(|l| l.product_id == id) {
            continue;
        }
        let (name, price, _) = &found[&id];
        lines.push(OrderLine {
            product_id: id,
            name: name.clone(),
            quantity: wanted[&id],
            unit_price_cents: *price,
        });
    }
    lines
}

/// Inserts order `id`'s lines in one statement.
async fn insert_lines(
    tx: &mut mysql_async::Transaction<'_>,
    id: u64,
    lines: &[OrderLine],
) -> Result<(), OrderError> {
    let marks = vec!["(?,?,?,?,?)"; lines.len()].join(",");
    let mut params: Vec<Value> = Vec::with_capacity(lines.len() * 5);
    for (n, l) in lines.iter().enumerate() {
        params.extend([
            Value::from(id),
            Value::from(n as u32 + 1),
            Value::from(l.product_id),
            Value::from(l.quantity),
            Value::from(l.unit_price_cents),
        ]);
    }
    tx.exec_drop(
        format!(
            "INSERT INTO order_lines (order_id, line_no, product_id, quantity, unit_price_cents) VALUES {marks}"
        ),
        params,
    )
    .await
    .map_err(db_err("insert order lines"))?;
    Ok(())
}

/// The catalogue, by id, from `offset`, at most `limit` products.
pub async fn list_products(db: &Db, offset: u32, limit: u32) -> Result<Vec<Product>, Error> {
    db.timed("list products", async {
        let mut c = db.conn().await?;
        let rows: Vec<(u32, String, String, String, u32, u32, String)> = c
            .exec(
                "SELECT id, sku, name, description, price_cents, stock, image_key FROM products ORDER BY id LIMIT ? OFFSET ?",
                (limit, offset),
            )
            .await
            .map_err(|e| Error::db("list products", e))?;
        Ok(rows.into_iter().map(product).collect())
    })
    .await
}

/// One product.
pub async fn get_product(db: &Db, id: u32) -> Result<Option<Product>, Error> {
    db.timed("read product", async {
        let mut c = db.conn().await?;
        let row: Option<(u32, String, String, String, u32, u32, String)> = c
            .exec_first(
                "SELECT id, sku, name, description, price_cents, stock, image_key FROM products WHERE id = ?",
                (id,),
            )
            .await
            .map_err(|e| Error::db("read product", e))?;
        Ok(row.map(product))
    })
    .await
}

fn product(r: (u32, String, String, String, u32, u32, String)) -> Product {
    let (id, sku, name, description, price_cents, stock, image_key) = r;
    Product {
        id,
        sku,
        name,
        description,
        price_cents,
        stock,
        image_url: format!("/{image_key}"),
    }
}

/// One order with its lines.
pub async fn get_order(db: &Db, id: u64) -> Result<Option<Order>, Error> {
    db.timed("read order", async {
        let mut c = db.conn().await?;
        let head: Option<(u64, String, String, u64)> = c
            .exec_first(
                format!("SELECT o.id, {CREATED_AT}, o.status, o.total_cents FROM orders o WHERE o.id = ?"),
                (id,),
            )
            .await
            .map_err(|e| Error::db("read order", e))?;
        let Some((id, created_at, status, total_cents)) = head else {
            return Ok(None);
        };
        let lines: Vec<(u32, String, u32, u32)> = c
            .exec(
                "SELECT l.product_id, p.name, l.quantity, l.unit_price_cents FROM order_lines l
                 JOIN products p ON p.id = l.product_id WHERE l.order_id = ? ORDER BY l.line_no",
                (id,),
            )
            .await
            .map_err(|e| Error::db("read order lines", e))?;
        Ok(Some(Order {
            id,
            created_at,
            status,
            total_cents,
            lines: lines
                .into_iter()
                .map(|(product_id, name, quantity, unit_price_cents)| OrderLine {
                    product_id,
                    name,
                    quantity,
                    unit_price_cents,
                })
                .collect(),
        }))
    })
    .await
}

/// The newest orders, newest first.
pub async fn recent_orders(db: &Db, limit: u32) -> Result<Vec<OrderSummary>, Error> {
    db.timed("list orders", async {
        let mut c = db.conn().await?;
        let rows: Vec<(u64, String, String, u64, Option<u64>)> = c
            .exec(
                format!(
                    "SELECT o.id, {CREATED_AT}, o.status, o.total_cents,
                            (SELECT CAST(SUM(l.quantity) AS UNSIGNED) FROM order_lines l WHERE l.order_id = o.id)
                     FROM orders o ORDER BY o.id DESC LIMIT ?"
                ),
                (limit,),
            )
            .await
            .map_err(|e| Error::db("list orders", e))?;
        Ok(rows
            .into_iter()
            .map(|(id, created_at, status, total_cents, pieces)| OrderSummary {
                id,
                created_at,
                status,
                total_cents,
                pieces: pieces.unwrap_or(0),
            })
            .collect())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(items: &[(u64, u64)]) -> OrderRequest {
        OrderRequest {
            items: items
                .iter()
                .map(|&(product_id, quantity)| OrderItem {
                    product_id,
                    quantity,
                })
                .collect(),
        }
    }

    #[test]
    fn validation_refuses_impossible_orders() {
        for (r, hint) in [
            (req(&[]), "at least one item"),
            (req(&[(1, 0)]), "between 1 and"),
            (req(&[(1, MAX_QUANTITY + 1)]), "between 1 and"),
            (req(&[(1, 600), (1, 600)]), "not 1200"),
            (req(&[(u64::MAX, 1)]), "unknown product"),
            (req(&vec![(1, 1); MAX_LINES + 1]), "at most"),
        ] {
            let e = validate(&r).unwrap_err();
            assert!(matches!(e, OrderError::Invalid(_)), "{e}");
            assert!(e.to_string().contains(hint), "{e}");
        }
        let ok = validate(&req(&[(3, 1), (1, 2), (3, 4)])).unwrap();
        assert_eq!(ok.into_iter().collect::<Vec<_>>(), vec![(1, 2), (3, 5)]);
    }

    #[test]
    fn datetimes_for_the_database() {
        let t = DateTime::parse_from_rfc3339("2026-11-25T10:00:01.123456Z").unwrap();
        assert_eq!(
            sql_time(t.with_timezone(&Utc)),
            "2026-11-25 10:00:01.123456"
        );
    }
}
