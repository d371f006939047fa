#!/bin/sh
# Creates the demo target: database crm, read by role crm_reader. The
# toolgate store (database toolgate) is created by the image itself.
set -eu
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres <<SQL
CREATE ROLE crm_reader LOGIN PASSWORD '${CRM_PASSWORD}';
CREATE DATABASE crm;
SQL
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d crm <<'SQL'
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL, card_number text NOT NULL);
INSERT INTO customers VALUES
  (1, 'Ada Lovelace', 'ada@example.com', '4242424242424242'),
  (2, 'Alan Turing', 'alan@example.com', '5555555555554444');
GRANT SELECT ON customers TO crm_reader;
SQL
