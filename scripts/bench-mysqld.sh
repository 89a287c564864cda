#!/usr/bin/env bash
# make bench: the cost of capturing MariaDB's statements, all in one run.
#
# A throwaway MariaDB (Debian's mariadbd, its own data directory, a Unix
# socket, 128 MiB buffer pool) is driven by sysbench oltp_read_only (one
# table of TABLE_SIZE rows, THREADS threads, DURATION seconds, server-side
# prepared statements: COM_STMT_EXECUTE) three ways:
#   base      no capture
#   bpftrace  bpftrace merely counting the probe points of the mysqld
#             module: uprobe and uretprobe dispatch_command, uprobe
#             Prepared_statement::execute_loop
#   ecaphost  bin/ecaphost with the mysqld module writing JSON to a file
# and prints per round: transactions/s and the ratio to base, the queries
# sysbench counted and the statement events in the JSON (every query is
# one COM_STMT_EXECUTE, BEGIN and COMMIT included), the statements counted
# lost (statements_lost: each query is an event or counted there), all
# records counted lost, and the CPU seconds of the host and the plugin. The machine's speed
# drifts by ±10% within minutes: each of ROUNDS rounds runs the three (in
# reverse order every other round), ratios are taken within a round, and
# the table gives every round and the medians.
# Results go to stdout and, with WRITE_DOC=1, to docs/bench/mysqld.md.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench-lib.sh
. "$root/scripts/bench-lib.sh"
DURATION=${DURATION:-10}
# PRIORITY is the host's priority setting. normal: on a machine where niced
# builds keep every CPU busy, a host in the background (SCHED_IDLE) gets
# almost no CPU, falls behind and loses statements (run of 18:48Z in
# docs/bench/mysqld.md); at normal priority it pays its full cost here.
PRIORITY=${PRIORITY:-normal}
ROUNDS=${ROUNDS:-5}
THREADS=${THREADS:-4}
TABLE_SIZE=${TABLE_SIZE:-10000}
MARIADBD=${MARIADBD:-/usr/sbin/mariadbd}

for cmd in mariadb-install-db mariadb sysbench bpftrace; do
  command -v "$cmd" >/dev/null || { echo "bench: $cmd is missing (apt-get install mariadb-server mariadb-client sysbench bpftrace)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root" >&2; exit 1; }
[ -x "$root/bin/ecaphost" ] || { echo "bench: run make build first" >&2; exit 1; }

work=$(mktemp -d /tmp/ecaphost-bench-mysqld.XXXXXX)
chmod 755 "$work"
pids=()
server=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

sock=$work/mysqld.sock
mariadb-install-db --no-defaults --datadir="$work/data" --user=root --auth-root-authentication-method=normal \
  --skip-test-db > "$work/install.log" 2>&1
"$MARIADBD" --no-defaults --datadir="$work/data" --socket="$sock" --skip-networking --user=root \
  --pid-file="$work/mysqld.pid" --log-error="$work/error.log" --innodb-buffer-pool-size=128M &
server=$!
for _ in $(seq 600); do mariadb --no-defaults --socket="$sock" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.1; done
mariadb --no-defaults --socket="$sock" -uroot -e 'CREATE DATABASE sbtest'
sb=(sysbench oltp_read_only --db-driver=mysql --mysql-socket="$sock" --mysql-user=root --mysql-db=sbtest
  --tables=1 --table-size="$TABLE_SIZE")
"${sb[@]}" prepare > "$work/prepare.log"

# sb_run: prints "TPS QUERIES" of one sysbench run.
sb_run() {
  local out
  out=$("${sb[@]}" --threads="$THREADS" --time="$DURATION" --report-interval=0 run)
  awk '/transactions:/ {gsub(/\(/, "", $3); tps = $3} /queries:/ && !q {q = $2} END {print tps, q}' <<<"$out"
}

dispatch=$(nm -D "$MARIADBD" | awk '$3 ~ /^_Z16dispatch_command19enum_server_commandP3THDPcj/ && !f {print $3; f = 1}')
execloop=$(nm -D "$MARIADBD" | awk '$3 ~ /^_ZN18Prepared_statement12execute_loopE/ && !f {print $3; f = 1}')

run_base() { read -r base_tps base_q < <(sb_run); }

run_bpftrace() {
  bpftrace -e "uprobe:$MARIADBD:$dispatch { @d = count(); } uretprobe:$MARIADBD:$dispatch { @r = count(); } uprobe:$MARIADBD:$execloop { @e = count(); }" \
    > "$work/bpftrace.out" 2>&1 &
  bt=$!; pids+=("$bt")
  wait_for "$work/bpftrace.out" "Attaching" 10
  sleep 0.5
  read -r bt_tps _ < <(sb_run)
  stop_bpftrace "$bt"
}

run_ecaphost() {
  cat > "$work/capture.hcl" <<HCL
plugin_dir = "$root/bin/plugins"
priority   = "$PRIORITY"
output "file" {
  path   = "$work/events.jsonl"
  format = "json"
}
module "mysqld" {
  pid = $server
  config {
    binary = "$MARIADBD"
  }
}
HCL
  rm -f "$work/events.jsonl"
  host_start "$work/capture.hcl" mysqld
  read -r ec_tps ec_q < <(sb_run)
  host_stop mysqld
  stmts_lost=$(grep -o 'statements_lost=[0-9]*' "$work/host.log" | cut -d= -f2 || true)
  execs=$(grep -c '"kind":"stmt_execute"' "$work/events.jsonl" || true)
  queries=$(grep -c '"kind":"query"' "$work/events.jsonl" || true)
  size_mb=$(du -m "$work/events.jsonl" | cut -f1)
  rm -f "$work/events.jsonl"
}

sb_run >/dev/null # warm up
load0=$(awk '{print $1}' /proc/loadavg)
results=()
bt_ratios=() ec_ratios=() ratios=()
round_done() {
  line=$(awk -v r="#$1" -v b="$base_tps" -v t="$bt_tps" -v e="$ec_tps" -v q="$ec_q" -v x="$execs" -v qq="$queries" \
    -v sl="${stmts_lost:-0}" -v lost="${lost:-?}" -v hc="$host_cpu" -v pc="$plugin_cpu" -v mb="$size_mb" 'BEGIN {
      printf "| %s | %.0f | %.0f (%.2f) | %.0f (%.2f) | %.2f | %d | %d + %d | %d | %s | %.1f / %.1f | %d |",
        r, b, t, t/b, e, e/b, (e/b)/(t/b), q, x, qq, sl, lost, hc, pc, mb }')
  results+=("$line")
  echo "$line"
  bt_ratios+=("$(ratio "$bt_tps" "$base_tps")")
  ec_ratios+=("$(ratio "$ec_tps" "$base_tps")")
  ratios+=("$(ratio "$ec_tps" "$bt_tps")")
}
bench_rounds "$ROUNDS" base bpftrace ecaphost
line=$(printf '| median of %d | | (%.2f) | (%.2f) | **%.2f** | | | | | | |' "$ROUNDS" \
  "$(median "${bt_ratios[@]}")" "$(median "${ec_ratios[@]}")" "$(median "${ratios[@]}")")
results+=("$line")
echo "$line"

header="| round | base tx/s | bpftrace count tx/s (ratio) | ecaphost capturing to JSON tx/s (ratio) | ecaphost ÷ bpftrace | queries sysbench counted (ecaphost run) | stmt_execute + query events | statements counted lost | records counted lost | CPU s host / plugin | JSON MiB |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
echo
echo "$header"
printf '%s\n' "${results[@]}"

write_run "$root/docs/bench/mysqld.md" \
  "Machine: $(nproc) CPUs, kernel $(uname -r), shared with other work while measured (load average $load0 at the start, $(awk '{print $1}' /proc/loadavg) at the end); host priority $PRIORITY; $("$MARIADBD" --version | awk '{print $3}'), sysbench oltp_read_only --threads=$THREADS --time=$DURATION, 1 table of $TABLE_SIZE rows, $ROUNDS rounds." \
  "$header"
