#!/usr/bin/env bash
# pgbench -S directly against PostgreSQL and through tablegate (a row filter on
# pgbench_accounts), in the same run. Prints throughput, the ratio, and tablegate's CPU time per
# query ((utime + stime) / transactions), and its memory with 1,000 idle client connections.
#
#   benches/pgbench.sh [seconds per run, default 20] [runs per mode, default 2]
#
# tablegate runs with tokio's default of one worker thread per core; TOKIO_WORKER_THREADS=1
# benches/pgbench.sh measures the single-threaded runtime (less CPU per query when tablegate
# shares the machine with PostgreSQL and pgbench).
#
# Needs PostgreSQL on 127.0.0.1:5432 (trust, user postgres) and pgbench. Uses the database
# tablegate_pgbench (recreated) and a release build of tablegate.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${1:-20}
runs=${2:-2}
clients=4
threads=2
scale=10
port=16499
db=tablegate_pgbench
work=$(mktemp -d)
proxy= splice=
trap 'kill $proxy $splice 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release --quiet --bin tablegate --example splice_baseline
bin=target/release/tablegate
splice_port=$((port + 1))

psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
pgbench -h 127.0.0.1 -U postgres -i -q -s $scale $db >/dev/null 2>&1

mkdir -p "$work/policies"
branches=$(seq -s, 1 $scale)
cat >"$work/policies/bench.toml" <<TOML
[datasource.$db]
[role.teller.datasource.$db]
tables = ["public.pgbench_*"]
rows."public.pgbench_accounts" = "bid IN ({{user.branches}})"
[[assign]]
user = "bench"
roles = ["teller"]
vars = { branches = [$branches] }
TOML
cat >"$work/users.toml" <<TOML
[[user]]
userid = "bench"
TOML
cat >"$work/tablegate.toml" <<TOML
listen = "127.0.0.1:$port"
http_listen = "127.0.0.1:0"
[directory]
users_file = "users.toml"
sqlite = "directory.db"
[datasource.$db]
url = "postgres://postgres@127.0.0.1:5432/$db"
pool_size = 8
[audit]
output = "audit.jsonl"
TOML
echo bench-password | $bin users --config "$work/tablegate.toml" set-password bench >/dev/null

$bin serve --config "$work/tablegate.toml" 2>"$work/serve.log" &
proxy=$!
target/release/examples/splice_baseline 127.0.0.1:$splice_port 127.0.0.1:5432 &
splice=$!
for _ in $(seq 1 50); do pg_isready -h 127.0.0.1 -p $port -q && break; sleep 0.2; done

cpu_ticks() { awk '{print $14 + $15}' /proc/$proxy/stat; }
tps() { sed -n 's/^tps = \([0-9.]*\).*/\1/p'; }

run() { # mode: simple|prepared; target: direct|splice|tablegate
    local mode=$1 target=$2 out
    if [ "$target" = direct ]; then
        out=$(pgbench -h 127.0.0.1 -p 5432 -U postgres -n -S -M "$mode" -c $clients -j $threads -T "$duration" $db 2>&1)
    elif [ "$target" = splice ]; then
        out=$(pgbench -h 127.0.0.1 -p $splice_port -U postgres -n -S -M "$mode" -c $clients -j $threads -T "$duration" $db 2>&1)
    else
        local before after
        before=$(cpu_ticks)
        out=$(PGPASSWORD=bench-password pgbench -h 127.0.0.1 -p $port -U bench -n -S -M "$mode" -c $clients -j $threads -T "$duration" $db 2>&1)
        after=$(cpu_ticks)
        local tx
        tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
        echo "$(( (after - before) * 1000000 / $(getconf CLK_TCK) / tx ))" >>"$work/cpu.$mode"
    fi
    echo "$out" | grep -q "^tps" || { echo "$out" >&2; exit 1; }
    tps <<<"$out"
}

average() { awk '{s+=$1} END {printf "%.0f", s/NR}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
printf '%-9s %8s %8s %6s %10s %6s %19s\n' mode direct splice ratio tablegate ratio 'tablegate µs/query'
for mode in simple prepared; do
    direct=() spliced=() proxied=()
    for _ in $(seq 1 "$runs"); do
        direct+=("$(run $mode direct)")
        spliced+=("$(run $mode splice)")
        proxied+=("$(run $mode tablegate)")
    done
    d=$(printf '%s\n' "${direct[@]}" | average)
    s=$(printf '%s\n' "${spliced[@]}" | average)
    p=$(printf '%s\n' "${proxied[@]}" | average)
    cpu=$(awk '{s+=$1} END {printf "%.1f", s/NR}' "$work/cpu.$mode")
    printf '%-9s %8s %8s %6s %10s %6s %19s\n' $mode "$d" "$s" "$(ratio "$s" "$d")" "$p" "$(ratio "$p" "$d")" "$cpu"
done
echo "(splice: a bare tokio proxy copying bytes, examples/splice_baseline.rs: the transport's own cost)"
echo "($clients clients, $threads threads, scale $scale, ${duration}s x $runs runs per mode; audit on; tps averaged)"
ulimit -n 4096 2>/dev/null || true
python3 -c 'import psycopg' 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check 'psycopg[binary]>=3.1'
python3 benches/idle_connections.py $port $proxy 1000
