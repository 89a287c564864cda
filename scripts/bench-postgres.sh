#!/usr/bin/env bash
# make bench: the cost of capturing PostgreSQL's statements, all in one run.
#
# A throwaway PostgreSQL cluster of Debian's packages (initdb as the
# postgres user, its own directory, a Unix socket only, fsync off) is
# driven by pgbench -S -M prepared -c CLIENTS -T DURATION (select-only,
# extended protocol: one Bind and one Execute per transaction) after
# pgbench -i -s SCALE, three ways:
#   base      no capture
#   bpftrace  bpftrace merely counting the probe points of the postgres
#             module: uprobes pgstat_report_activity,
#             pg_parse_query, PortalRun, pq_endmessage, uretprobe PortalRun,
#             tracepoint sched_process_exit
#   ecaphost  bin/ecaphost with the postgres module writing JSON to a file
# and prints per round: transactions/s and the ratio to base, the
# transactions pgbench counted and the execute events in the JSON (one per
# transaction), records counted lost, and the CPU seconds of the host and
# the plugin. The machine's speed drifts by ±10% within minutes: each of
# ROUNDS rounds runs the three (in reverse order every other round),
# ratios are taken within a round, and the table gives every round and the
# medians. Results go to stdout and, with WRITE_DOC=1, to
# docs/bench/postgres.md.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10}
# PRIORITY is the host's priority setting. normal: on a machine where niced
# builds keep every CPU busy, a host in the background (SCHED_IDLE) gets
# almost no CPU, falls behind and loses statements (run of 18:48Z in
# docs/bench/mysqld.md); at normal priority it pays its full cost here.
PRIORITY=${PRIORITY:-normal}
ROUNDS=${ROUNDS:-5}
CLIENTS=${CLIENTS:-4}
SCALE=${SCALE:-1}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
POSTGRES=$PGBIN/postgres

for cmd in bpftrace runuser "$PGBIN/initdb" "$PGBIN/pgbench"; do
  command -v "$cmd" >/dev/null || { echo "bench: $cmd is missing (apt-get install postgresql bpftrace)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root" >&2; exit 1; }
[ -x "$root/bin/ecaphost" ] || { echo "bench: run make build first" >&2; exit 1; }
. "$root/scripts/bench-lib.sh"

work=$(mktemp -d /tmp/ecaphost-bench-postgres.XXXXXX)
chmod 755 "$work"
chown postgres: "$work"
pids=()
as_pg() { runuser -u postgres -- env PGHOST="$work" PGPORT=5432 PGUSER=postgres PGDATABASE=postgres "$@"; }
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  as_pg "$PGBIN/pg_ctl" -D "$work/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

as_pg "$PGBIN/initdb" -D "$work/data" -A trust -U postgres --no-sync > "$work/initdb.log"
as_pg "$PGBIN/pg_ctl" -D "$work/data" -l "$work/server.log" -w \
  -o "-k $work -c listen_addresses='' -c fsync=off -c max_connections=20" start > /dev/null
as_pg "$PGBIN/pgbench" -i -q -s "$SCALE" > "$work/init.log" 2>&1

# pb_run: prints "TPS TRANSACTIONS" of one pgbench run.
pb_run() {
  as_pg "$PGBIN/pgbench" -n -S -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$DURATION" 2>/dev/null |
    awk '/actually processed:/ {split($NF, a, "/"); n = a[1]} /^tps = / && !t {t = $3} END {print t, n}'
}

run_base() { read -r base_tps _ < <(pb_run); }

run_bpftrace() {
  bpftrace -e "
uprobe:$POSTGRES:pgstat_report_activity, uprobe:$POSTGRES:pg_parse_query,
uprobe:$POSTGRES:PortalRun, uprobe:$POSTGRES:pq_endmessage { @u = count(); }
uretprobe:$POSTGRES:PortalRun { @r = count(); }
tracepoint:sched:sched_process_exit { @x = count(); }" > "$work/bpftrace.out" 2>&1 &
  bt=$!; pids+=("$bt")
  wait_for "$work/bpftrace.out" "Attaching" 10
  sleep 0.5
  read -r bt_tps bt_n < <(pb_run)
  stop_bpftrace "$bt"
  # uprobe and uretprobe hits per transaction (@u, @r in bpftrace's output)
  hits=$(awk -v n="$bt_n" '/^@[ur]:/ {h += $2} END {printf "%.1f", n ? h / n : 0}' "$work/bpftrace.out")
}

run_ecaphost() {
  cat > "$work/capture.hcl" <<HCL
plugin_dir = "$root/bin/plugins"
priority   = "$PRIORITY"
output "file" {
  path   = "$work/events.jsonl"
  format = "json"
}
module "postgres" {
  uid = $(id -u postgres)
  config {
    binary = "$POSTGRES"
  }
}
HCL
  rm -f "$work/events.jsonl"
  host_start "$work/capture.hcl" postgres
  read -r ec_tps ec_n < <(pb_run)
  host_stop postgres
  execs=$(grep -c '"kind":"execute"' "$work/events.jsonl" || true)
  size_mb=$(du -m "$work/events.jsonl" | cut -f1)
  rm -f "$work/events.jsonl"
}

pb_run >/dev/null # warm up
load0=$(awk '{print $1}' /proc/loadavg)
results=()
bt_ratios=() ec_ratios=() ratios=()
round_done() {
  line=$(awk -v r="#$1" -v b="$base_tps" -v t="$bt_tps" -v e="$ec_tps" -v n="$ec_n" -v x="$execs" \
    -v lost="${lost:-?}" -v hc="$host_cpu" -v pc="$plugin_cpu" -v mb="$size_mb" -v hits="$hits" 'BEGIN {
      printf "| %s | %.0f | %.0f (%.2f) | %s | %.0f (%.2f) | %.2f | %d | %d | %s | %.1f / %.1f | %d |",
        r, b, t, t/b, hits, e, e/b, (e/b)/(t/b), n, x, lost, hc, pc, mb }')
  results+=("$line")
  echo "$line"
  bt_ratios+=("$(ratio "$bt_tps" "$base_tps")")
  ec_ratios+=("$(ratio "$ec_tps" "$base_tps")")
  ratios+=("$(ratio "$ec_tps" "$bt_tps")")
}
bench_rounds "$ROUNDS" base bpftrace ecaphost
line=$(printf '| median of %d | | (%.2f) | | (%.2f) | **%.2f** | | | | | |' "$ROUNDS" \
  "$(median "${bt_ratios[@]}")" "$(median "${ec_ratios[@]}")" "$(median "${ratios[@]}")")
results+=("$line")
echo "$line"

header="| round | base tx/s | bpftrace count tx/s (ratio) | probe hits per transaction | ecaphost capturing to JSON tx/s (ratio) | ecaphost ÷ bpftrace | transactions pgbench counted (ecaphost run) | execute events | lost | CPU s host / plugin | JSON MiB |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
echo
echo "$header"
printf '%s\n' "${results[@]}"

write_run "$root/docs/bench/postgres.md" \
  "Machine: $(nproc) CPUs, kernel $(uname -r), shared with other work while measured (load average $load0 at the start, $(awk '{print $1}' /proc/loadavg) at the end); host priority $PRIORITY; PostgreSQL $("$POSTGRES" --version | awk '{print $3}'), pgbench -S -M prepared -c $CLIENTS -j $CLIENTS -T $DURATION, scale $SCALE, $ROUNDS rounds." \
  "$header"
