"""asyncpg through tablegate: a pool hands one connection to two users' queries in turn.

Usage: asyncpg_pool.py PORT SSLMODE. asyncpg sends client_encoding 'utf-8' (quotes included) at
startup, prepares every statement, and resets a connection the pool takes back with
`SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;`. Prints one line per
check; tests/proxy.rs compares them.
"""

import asyncio
import ssl
import sys

import asyncpg

port, sslmode = sys.argv[1], sys.argv[2]

QUERY = "SELECT string_agg(DISTINCT region, ',' ORDER BY region) FROM orders WHERE amount > $1"


def tls():
    if sslmode == "disable":
        return False
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def main():
    pool = await asyncpg.create_pool(
        host="127.0.0.1",
        port=port,
        user="alice",
        password="alice-secret",
        database="shop",
        ssl=tls(),
        min_size=1,
        max_size=1,
    )
    for turn in range(2):
        async with pool.acquire() as conn:
            print("alice", turn, await conn.fetchval(QUERY, 0))
    async with pool.acquire() as conn:
        try:
            await conn.fetch("SELECT * FROM secret")
            print("alice read secret")
        except asyncpg.PostgresError as e:
            print("alice refused", e.sqlstate)
    await pool.close()


asyncio.run(main())
