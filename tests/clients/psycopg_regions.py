"""psycopg 3 through tablegate: two users, the same query, their own rows; a refusal's SQLSTATE.

Usage: psycopg_regions.py PORT SSLMODE. Prints one line per check; tests/proxy.rs compares them.
"""

import sys

import psycopg

port, sslmode = sys.argv[1], sys.argv[2]


def connect(user, password):
    return psycopg.connect(
        host="127.0.0.1", port=port, user=user, password=password, dbname="shop", sslmode=sslmode
    )


QUERY = "SELECT string_agg(DISTINCT region, ',' ORDER BY region) FROM orders WHERE amount > %s"

for user, password in [("alice", "alice-secret"), ("sam", "sam-secret")]:
    with connect(user, password) as conn:
        # A parameter makes psycopg use the extended protocol (Parse/Bind/Execute).
        regions = conn.execute(QUERY, (0,)).fetchone()[0]
        print(user, regions)

with connect("alice", "alice-secret") as conn:
    try:
        conn.execute("SELECT * FROM secret")
        print("alice read secret")
    except psycopg.Error as e:
        print("alice refused", e.sqlstate)

# After 5 runs psycopg prepares a query; rollback() then sends DEALLOCATE ALL.
with connect("alice", "alice-secret") as conn:
    for _ in range(6):
        conn.execute(QUERY, (0,)).fetchone()
    conn.rollback()
    regions = conn.execute(QUERY, (0,), prepare=True).fetchone()[0]
    print("alice after rollback", regions)
