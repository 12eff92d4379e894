//! The versioned schema. Each migration is a list of statements applied in
//! order and recorded in `schema_migrations`; statements are written to be
//! harmless when repeated (a migration interrupted half-way — DDL is not
//! transactional in MySQL — is simply applied again on the next start).
//! Never edit a released migration: add a new one.

/// One schema migration.
#[derive(Debug)]
pub struct Migration {
    /// Version, increasing from 1.
    pub version: u32,
    /// What it does.
    pub name: &'static str,
    /// Statements, applied in order.
    pub statements: &'static [&'static str],
}

/// Every migration this program knows, in order.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "catalogue, orders and order lines",
    statements: &[
        "CREATE TABLE IF NOT EXISTS products (
            id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            sku VARCHAR(32) NOT NULL,
            name VARCHAR(200) NOT NULL,
            description TEXT NOT NULL,
            price_cents INT UNSIGNED NOT NULL,
            stock INT UNSIGNED NOT NULL,
            image_key VARCHAR(255) NOT NULL,
            UNIQUE KEY products_sku (sku)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        "CREATE TABLE IF NOT EXISTS orders (
            id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            created_at DATETIME(6) NOT NULL,
            status VARCHAR(16) NOT NULL,
            total_cents BIGINT UNSIGNED NOT NULL,
            KEY orders_created_at (created_at)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        "CREATE TABLE IF NOT EXISTS order_lines (
            order_id BIGINT UNSIGNED NOT NULL,
            line_no SMALLINT UNSIGNED NOT NULL,
            product_id INT UNSIGNED NOT NULL,
            quantity INT UNSIGNED NOT NULL,
            unit_price_cents INT UNSIGNED NOT NULL,
            PRIMARY KEY (order_id, line_no),
            KEY order_lines_product (product_id),
            CONSTRAINT order_lines_order FOREIGN KEY (order_id) REFERENCES orders (id),
            CONSTRAINT order_lines_product FOREIGN KEY (product_id) REFERENCES products (id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    ],
}];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_from_one_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.name);
            assert!(!m.statements.is_empty());
        }
    }
}
