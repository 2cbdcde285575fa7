-- The example sales data warehouse (datasource `sales_dw`), for the example policies and their
-- tests in policies/ and policies/tests/.
CREATE TABLE regions (
    region text PRIMARY KEY,
    manager text NOT NULL
);

CREATE TABLE customers (
    id int PRIMARY KEY,
    name text NOT NULL,
    region text NOT NULL REFERENCES regions,
    phone varchar(20),
    email text,
    birth_date date
);

CREATE TABLE orders (
    id int PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers,
    region text NOT NULL REFERENCES regions,
    amount numeric(10, 2) NOT NULL,
    ordered_at timestamp with time zone NOT NULL,
    note text
);

INSERT INTO regions VALUES
    ('East', 'Mei Lin'), ('West', 'Tom Hardy'), ('North', 'Ola Berg'), ('South', 'Ana Ruiz');

INSERT INTO customers VALUES
    (1, 'Acme Trading', 'East', '555-0101', 'buyer@acme.example', '1980-04-12'),
    (2, 'Birch & Co', 'East', '555-0102', 'orders@birch.example', '1975-09-30'),
    (3, 'Cobalt Ltd', 'West', '555-0203', 'info@cobalt.example', '1990-01-01'),
    (4, 'Dune Foods', 'West', NULL, NULL, NULL),
    (5, 'Elm Partners', 'North', '555-0305', 'elm@elm.example', '1968-12-24'),
    (6, 'Fjord AS', 'North', '12', 'post@fjord.example', '2001-07-15'),
    (7, 'Granite SA', 'South', '555-0407', 'hola@granite.example', '1983-03-03'),
    (8, 'Harbor Inc', 'South', '555-0408', 'ap@harbor.example', '1979-11-11');

INSERT INTO orders
SELECT g,
       c.id,
       c.region,
       (g * 37 % 500) + 0.99,
       timestamp with time zone '2024-01-01 09:00+00' + g * interval '3 days',
       CASE WHEN g % 5 = 0 THEN 'call before delivery' END
FROM generate_series(1, 24) g
JOIN customers c ON c.id = 1 + (g - 1) % 8;
