//! `unishop seed`: fills the catalogue with the sample products 1..=N.
//! Idempotent: products are keyed by SKU; seeding again updates names and
//! prices but keeps stock, unless asked to restock.

use mysql_async::Value;
use mysql_async::prelude::*;

use crate::catalogue::sample_product;
use crate::db::Db;
use crate::error::{Error, Result};

/// Inserts or updates sample products `1..=products`; with `restock`, sets
/// the stock of existing ones to `stock` too. Returns the number of products
/// in the catalogue afterwards.
#[tracing::instrument(skip(db))]
pub async fn seed(db: &Db, products: u32, stock: u32, restock: bool) -> Result<u64> {
    db.migrate().await?;
    let mut c = db.conn().await?;
    let on_dup = if restock {
        "stock = VALUES(stock), "
    } else {
        ""
    };
    let mut next = 1u32;
    while next <= products {
        let last = (next + 499).min(products);
        let marks = vec!["(?,?,?,?,?,?)"; (last - next + 1) as usize].join(",");
        let mut params: Vec<Value> = Vec::new();
        for i in next..=last {
            let p = sample_product(i);
            params.extend([
                Value::from(p.sku),
                Value::from(p.name),
                Value::from(p.description),
                Value::from(p.price_cents),
                Value::from(stock),
                Value::from(p.image_key),
            ]);
        }
        let sql = format!(
            "INSERT INTO products (sku, name, description, price_cents, stock, image_key) VALUES {marks}
             ON DUPLICATE KEY UPDATE {on_dup}name = VALUES(name), description = VALUES(description),
             price_cents = VALUES(price_cents), image_key = VALUES(image_key)"
        );
        c.exec_drop(sql, params)
            .await
            .map_err(|e| Error::db("insert products", e))?;
        next = last + 1;
    }
    let n: Option<u64> = c
        .query_first("SELECT COUNT(*) FROM products")
        .await
        .map_err(|e| Error::db("count products", e))?;
    Ok(n.unwrap_or(0))
}
