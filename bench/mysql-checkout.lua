-- sysbench workload: a shop's checkout, one transaction per event (used by
-- bench/mysql-replay.sh). Each checkout inserts an order and 1–4 order lines,
-- takes the lines' quantities off the products' stock (a fifth of the picks
-- among 50 best sellers: hot rows, as in a real shop), updates the order's
-- total, the customer's counters and the status of an order placed a little
-- earlier. `prepare` creates the tables in --mysql-db with --products,
-- --customers and --orders rows.
--   sysbench bench/mysql-checkout.lua --mysql-db=shop … prepare|run

sysbench.cmdline.options = {
  products = {"Products", 10000},
  customers = {"Customers", 100000},
  orders = {"Orders before the run", 1000000},
}

function prepare()
  local con = sysbench.sql.driver():connect()
  con:query([[CREATE TABLE products (id INT PRIMARY KEY, sku VARCHAR(20), title VARCHAR(200),
    price DECIMAL(10,2), stock INT NOT NULL)]])
  con:query([[CREATE TABLE customers (id INT PRIMARY KEY, email VARCHAR(120), orders_count INT NOT NULL,
    spent DECIMAL(12,2) NOT NULL, last_order_at DATETIME(6))]])
  con:query([[CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL,
    total DECIMAL(12,2) NOT NULL, status ENUM('new','paid','shipped','done') NOT NULL,
    created_at DATETIME(6) NOT NULL, KEY (customer_id))]])
  con:query([[CREATE TABLE order_items (order_id BIGINT NOT NULL, line INT NOT NULL, product_id INT NOT NULL,
    qty INT NOT NULL, price DECIMAL(10,2) NOT NULL, PRIMARY KEY (order_id, line), KEY (product_id))]])
  local p, c, o = sysbench.opt.products, sysbench.opt.customers, sysbench.opt.orders
  con:query(string.format([[INSERT INTO products SELECT seq, CONCAT('SKU-', seq), CONCAT('Product ', MD5(seq)),
    1 + (seq %% 9000) / 100, 1000000000 FROM seq_1_to_%d]], p))
  con:query(string.format([[INSERT INTO customers SELECT seq, CONCAT('c', seq, '@example.com'), 0, 0, NULL
    FROM seq_1_to_%d]], c))
  con:query(string.format([[INSERT INTO orders (customer_id, total, status, created_at) SELECT 1 + seq %% %d,
    10 + seq %% 200, 1 + seq %% 4, '2025-01-01' + INTERVAL seq SECOND FROM seq_1_to_%d]], c, o))
  con:query(string.format([[INSERT INTO order_items SELECT seq, 1, 1 + seq %% %d, 1 + seq %% 3, 9.99
    FROM seq_1_to_%d]], p, o))
end

function thread_init()
  drv = sysbench.sql.driver()
  con = drv:connect()
end

function thread_done()
  con:disconnect()
end

local function product()
  if sysbench.rand.uniform(1, 5) == 1 then
    return sysbench.rand.uniform(1, 50)
  end
  return sysbench.rand.uniform(1, sysbench.opt.products)
end

function event()
  local c = sysbench.rand.uniform(1, sysbench.opt.customers)
  con:query("BEGIN")
  con:query(string.format("INSERT INTO orders (customer_id, total, status, created_at) VALUES (%d, 0, 'new', NOW(6))", c))
  con:query("SET @o = LAST_INSERT_ID()")
  local lines = sysbench.rand.uniform(1, 4)
  for line = 1, lines do
    local p, q = product(), sysbench.rand.uniform(1, 3)
    con:query(string.format("INSERT INTO order_items SELECT @o, %d, id, %d, price FROM products WHERE id = %d", line, q, p))
    con:query(string.format("UPDATE products SET stock = stock - %d WHERE id = %d", q, p))
  end
  con:query("UPDATE orders SET total = (SELECT SUM(qty * price) FROM order_items WHERE order_id = @o) WHERE id = @o")
  con:query(string.format([[UPDATE customers SET orders_count = orders_count + 1,
    spent = spent + (SELECT total FROM orders WHERE id = @o), last_order_at = NOW(6) WHERE id = %d]], c))
  con:query("UPDATE orders SET status = 'paid' WHERE id = @o - 50")
  con:query("COMMIT")
end
