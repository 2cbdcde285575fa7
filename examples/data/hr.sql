-- The example HR database (datasource `hr`), for the example policies and their tests in
-- policies/ and policies/tests/.
CREATE TABLE employees (
    employee_id int PRIMARY KEY,
    name text NOT NULL,
    department text NOT NULL,
    manager_id int REFERENCES employees,
    salary int NOT NULL,
    phone varchar(20),
    national_id text NOT NULL,
    hired_on date NOT NULL
);

INSERT INTO employees VALUES
    (100, 'Grace Ho', 'Management', NULL, 15000, '555-9100', 'NID-100-A', '2015-02-01'),
    (101, 'Alice Chen', 'Sales', 100, 7000, '555-9101', 'NID-101-B', '2019-05-13'),
    (102, 'Sam Okafor', 'Sales', 100, 6800, '555-9102', 'NID-102-C', '2020-09-01'),
    (103, 'Bob Meyer', 'Support', 100, 5200, '555-9103', 'NID-103-D', '2021-03-22'),
    (104, 'Hana Sato', 'HR', 100, 6100, '555-9104', 'NID-104-E', '2018-11-05'),
    (105, 'Dora Kim', 'Analytics', 100, 8300, NULL, 'NID-105-F', '2022-01-10');
