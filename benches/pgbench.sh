#!/usr/bin/env bash
# pgbench -S directly against PostgreSQL and through tablegate (a row filter on
# pgbench_accounts), in the same run, beside a bare tokio splice and (if installed) PgBouncer in
# session mode. Prints throughput, the ratio to direct, each proxy's CPU time per query
# ((utime + stime) / transactions), and tablegate's memory with 1,000 idle client connections.
#
#   benches/pgbench.sh [seconds per run, default 20] [runs per mode, default 2]
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
proxy= splice= bouncer=
trap 'kill $proxy $splice $bouncer 2>/dev/null || true; rm -rf "$work"' EXIT

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

targets=(direct splice)
declare -A port_of=([direct]=5432 [splice]=$splice_port [tablegate]=$port)
declare -A pid_of=([splice]=$splice [tablegate]=$proxy)
if command -v pgbouncer >/dev/null; then
    bouncer_port=$((port + 2))
    mkdir -p "$work/pgbouncer"
    cat >"$work/pgbouncer/pgbouncer.ini" <<INI
[databases]
$db = host=127.0.0.1 port=5432 dbname=$db user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
auth_type = trust
auth_file = $work/pgbouncer/users.txt
pool_mode = session
default_pool_size = 8
logfile = $work/pgbouncer/pgbouncer.log
INI
    echo '"postgres" ""' >"$work/pgbouncer/users.txt"
    if [ "$(id -u)" = 0 ]; then # PgBouncer will not run as root
        chmod 755 "$work" && chown -R postgres "$work/pgbouncer"
        runuser -u postgres -- pgbouncer -q "$work/pgbouncer/pgbouncer.ini" &
    else
        pgbouncer -q "$work/pgbouncer/pgbouncer.ini" &
    fi
    for _ in $(seq 1 50); do pg_isready -h 127.0.0.1 -p $bouncer_port -q && break; sleep 0.2; done
    bouncer=$(pgrep -f "pgbouncer -q $work/pgbouncer/pgbouncer.ini" | tail -n 1)
    targets+=(pgbouncer)
    port_of[pgbouncer]=$bouncer_port
    pid_of[pgbouncer]=$bouncer
fi
targets+=(tablegate)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tps() { sed -n 's/^tps = \([0-9.]*\).*/\1/p'; }

run() { # mode: simple|prepared; target: one of $targets
    local mode=$1 target=$2 user=postgres pid=${pid_of[$2]:-} out before after tx
    [ "$target" = tablegate ] && user=bench
    [ -n "$pid" ] && before=$(cpu_ticks "$pid")
    out=$(PGPASSWORD=bench-password pgbench -h 127.0.0.1 -p "${port_of[$target]}" -U $user -n -S -M "$mode" -c $clients -j $threads -T "$duration" $db 2>&1)
    echo "$out" | grep -q "^tps" || { echo "$out" >&2; exit 1; }
    if [ -n "$pid" ]; then
        after=$(cpu_ticks "$pid")
        tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
        echo "$(( (after - before) * 1000000 / $(getconf CLK_TCK) / tx ))" >>"$work/cpu.$mode.$target"
    fi
    tps <<<"$out" >>"$work/tps.$mode.$target"
}

average() { awk '{s+=$1} END {printf "%.0f", s/NR}' "$1"; }
printf '%-9s %-10s %8s %6s %10s\n' mode target tps ratio 'µs/query'
for mode in simple prepared; do
    for _ in $(seq 1 "$runs"); do
        for target in "${targets[@]}"; do run "$mode" "$target"; done
    done
    direct=$(average "$work/tps.$mode.direct")
    for target in "${targets[@]}"; do
        t=$(average "$work/tps.$mode.$target")
        cpu=-
        [ -f "$work/cpu.$mode.$target" ] && cpu=$(awk '{s+=$1} END {printf "%.1f", s/NR}' "$work/cpu.$mode.$target")
        printf '%-9s %-10s %8s %6s %10s\n' "$mode" "$target" "$t" "$(awk -v a="$t" -v b="$direct" 'BEGIN {printf "%.2f", a/b}')" "$cpu"
    done
done
echo "(splice: a bare tokio proxy copying bytes, examples/splice_baseline.rs: the transport's own cost)"
echo "($clients clients, $threads threads, scale $scale, ${duration}s x $runs runs per mode; audit on; tps averaged)"
ulimit -n 4096 2>/dev/null || true
python3 -c 'import psycopg' 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check 'psycopg[binary]>=3.1'
python3 benches/idle_connections.py $port $proxy 1000
