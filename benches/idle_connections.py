"""Opens N logged-in, idle client connections through tablegate and reports tablegate's memory.

Usage: idle_connections.py PORT PID N   (run by benches/pgbench.sh)
"""

import sys

import psycopg


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


port, pid, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
before = rss_mib(pid)
connections = [
    psycopg.connect(host="127.0.0.1", port=port, user="bench", password="bench-password",
                    dbname="tablegate_pgbench", sslmode="disable")
    for _ in range(count)
]
after = rss_mib(pid)
print(f"{count} idle connections: tablegate RSS {after:.1f} MiB ({after - before:+.1f} MiB, "
      f"{(after - before) * 1024 / count:.1f} KiB per connection)")
for c in connections:
    c.close()
