CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL UNIQUE, card_number text NOT NULL, ssn text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers(id), total numeric(10,2) NOT NULL, status text NOT NULL);
INSERT INTO customers VALUES
  (1, 'Ada Lovelace', 'ada@example.com', '4242424242424242', '123-45-6789'),
  (2, 'Grace Hopper', 'grace@example.com', '5555555555554444', NULL),
  (3, 'Alan Turing', 'alan@example.com', '378282246310005', NULL);
INSERT INTO orders VALUES (101, 1, 42.50, 'delivered'), (102, 1, 320.00, 'delivered'), (103, 2, 15.99, 'shipped');
