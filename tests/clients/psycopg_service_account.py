"""psycopg 3 as AskTable's engine: a service account acting for a user, requiring SCRAM.

Usage: psycopg_service_account.py PORT SSLMODE. libpq's require_auth refuses a server that asks
for the secret in clear text, so the connection succeeds only if tablegate runs SCRAM for the
service account, over TLS too, where channel_binding=require also needs SCRAM-SHA-256-PLUS. Prints the acted-for user's regions; tests/proxy.rs compares.
"""

import sys

import psycopg

port, sslmode = sys.argv[1], sys.argv[2]

with psycopg.connect(
    host="127.0.0.1",
    port=port,
    user="asktable",
    password="engine-secret-0123",
    dbname="shop",
    sslmode=sslmode,
    require_auth="scram-sha-256",
    # Over TLS the exchange is bound to tablegate's certificate (SCRAM-SHA-256-PLUS).
    channel_binding="disable" if sslmode == "disable" else "require",
    options="-c tablegate.act_as=sam",
) as conn:
    print("sam", conn.execute("SELECT string_agg(DISTINCT region, ',') FROM orders").fetchone()[0])
