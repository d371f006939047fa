CREATE TABLE IF NOT EXISTS customers (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  email TEXT NOT NULL UNIQUE,
  card_number TEXT NOT NULL,
  country TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
  id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers(id),
  total REAL NOT NULL,
  status TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  order_id INTEGER NOT NULL REFERENCES orders(id),
  amount REAL NOT NULL,
  reason TEXT NOT NULL,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
INSERT OR IGNORE INTO customers (id, name, email, card_number, country) VALUES
  (1, 'Ada Lovelace', 'ada@example.com', '4242424242424242', 'GB'),
  (2, 'Grace Hopper', 'grace@example.com', '5555555555554444', 'US'),
  (3, 'Alan Turing', 'alan@example.com', '378282246310005', 'GB'),
  (4, 'Katherine Johnson', 'katherine@example.com', '6011111111111117', 'US'),
  (5, 'Edsger Dijkstra', 'edsger@example.com', '4000056655665556', 'NL');
INSERT OR IGNORE INTO orders (id, customer_id, total, status, created_at) VALUES
  (101, 1, 42.50, 'delivered', '2026-10-01T10:00:00Z'),
  (102, 1, 320.00, 'delivered', '2026-10-12T15:30:00Z'),
  (103, 2, 15.99, 'shipped', '2026-11-02T09:10:00Z'),
  (104, 3, 1200.00, 'delivered', '2026-11-20T18:45:00Z'),
  (105, 5, 75.25, 'processing', '2026-11-28T08:00:00Z');
