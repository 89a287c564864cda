#!/usr/bin/env bash
# make bench: the cost of output "otlp" to an OpenTelemetry Collector on
# loopback, against output "file" (JSON), all in one run on this machine.
#
# nginx (1 worker, TLS 1.3, a 1 KiB file on 127.0.0.1) is driven by
# wrk -t1 -c16 -d$DURATION while bin/ecaphost's openssl module captures,
# writing either JSON to a file or OTLP (gRPC) to the test Collector of
# test/ecosystem (OTLP receiver -> file exporter). Each round runs both, in
# reverse order every other round; the table gives requests/s and their
# ratio (otlp / file) within the round, the CPU seconds of the host, the
# plugin and the Collector, and what ecaphost's exit summary says the
# otlp output delivered (acknowledged by the Collector) and dropped,
# beside the records the Collector's file holds. The Collector shares the
# two CPUs with nginx, wrk and ecaphost: no target on the ratio.
# Results go to stdout and, with WRITE_DOC=1, to docs/bench/otlp.md.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-lib.sh
. "$root/scripts/bench-lib.sh"
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18444}
OTLP_PORT=${OTLP_PORT:-14317}

for cmd in nginx wrk openssl go; do
  command -v "$cmd" >/dev/null || { echo "bench-otlp: $cmd is missing" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "bench-otlp: needs root" >&2; exit 1; }
[ -x "$root/bin/ecaphost" ] || { echo "bench-otlp: run make build first" >&2; exit 1; }

work=$(mktemp -d /tmp/ecaphost-bench-otlp.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

(cd "$root/test/ecosystem" && GOWORK=off go build -o "$work/otelcol" ./otelcol)

nginx_tls "$PORT" 1k

cat > "$work/otelcol.yaml" <<YAML
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:$OTLP_PORT
exporters:
  file:
    path: $work/otlp.json
    format: json
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [file]
YAML

# capture_config OUTPUT: the ecaphost config with that output block.
capture_config() {
  cat > "$work/capture.hcl" <<HCL
plugin_dir = "$root/bin/plugins"
$1
module "openssl" {}
HCL
}

# run KIND (file or otlp): one wrk run under capture; sets rps, reqs, hc
# (host CPU s), pc (plugin), cc (Collector), written, dropped, records.
run() {
  local col=""
  rm -f "$work/events.jsonl" "$work/otlp.json"
  if [ "$1" = otlp ]; then
    "$work/otelcol" --config "file:$work/otelcol.yaml" > "$work/otelcol.log" 2>&1 &
    col=$!; pids+=("$col")
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$OTLP_PORT") 2>/dev/null && break; sleep 0.1; done
    capture_config "output \"otlp\" {
  endpoint = \"127.0.0.1:$OTLP_PORT\"
  insecure = true
}"
  else
    capture_config "output \"file\" {
  path   = \"$work/events.jsonl\"
  format = \"json\"
}"
  fi
  host_start "$work/capture.hcl" openssl
  local c0=0 c1=0 out
  [ -n "$col" ] && c0=$(cpu_seconds "$col")
  out=$(wrk -t1 -c16 -d"$DURATION" "https://127.0.0.1:$PORT/1k")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  host_stop openssl
  [ -n "$col" ] && c1=$(cpu_seconds "$col")
  hc=$host_cpu pc=$plugin_cpu
  cc=$(awk -v a="$c0" -v b="$c1" 'BEGIN{print b-a}')
  read -r written dropped < <(sed -nE 's/^output [^:]+:[0-9]+: ([0-9]+) events written, ([0-9]+) dropped$/\1 \2/p; s/^output file .*: ([0-9]+) events written, ([0-9]+) dropped$/\1 \2/p' "$work/host.log" | tail -1)
  records=0
  if [ -n "$col" ]; then
    kill -TERM "$col"; wait "$col" || true
    records=$(grep -o '"timeUnixNano"' "$work/otlp.json" | wc -l)
  fi
}

results=()
wrk -t1 -c16 -d2s "https://127.0.0.1:$PORT/1k" >/dev/null # warm up
ratios=()
run_file() {
  run file
  f_rps=$rps f_hc=$hc f_pc=$pc f_written=$written
}
run_otlp() {
  run otlp
  o_rps=$rps o_reqs=$reqs o_hc=$hc o_pc=$pc o_cc=$cc o_written=$written o_dropped=$dropped o_records=$records
}
round_done() {
  line=$(awk -v r="#$1" -v fr="$f_rps" -v fh="$f_hc" -v fp="$f_pc" -v fw="$f_written" -v orps="$o_rps" -v oq="$o_reqs" \
    -v oh="$o_hc" -v op="$o_pc" -v oc="$o_cc" -v ow="$o_written" -v od="$o_dropped" -v orec="$o_records" 'BEGIN {
      printf "| %s | %.0f | %.1f / %.1f | %d | %.0f (%.2f) | %d | %.1f / %.1f / %.1f | %d | %d | %.1f%% | %d |",
        r, fr, fh, fp, fw, orps, orps/fr, oq, oh, op, oc, ow, od, (ow+od) ? 100*ow/(ow+od) : 0, orec }')
  results+=("$line")
  echo "$line"
  ratios+=("$(ratio "$o_rps" "$f_rps")")
}
bench_rounds "$ROUNDS" file otlp
line=$(printf '| median of %d | | | | (%.2f) | | | | | | |' "$ROUNDS" "$(median "${ratios[@]}")")
results+=("$line")
echo "$line"

header="| round | file (JSON) req/s | CPU s host / plugin | events written | otlp req/s (÷ file) | wrk requests (otlp run) | CPU s host / plugin / Collector | events the Collector acknowledged | dropped | delivered | records in the Collector's file |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
echo
echo "$header"
printf '%s\n' "${results[@]}"

write_run "$root/docs/bench/otlp.md" \
  "Machine: $(nproc) CPUs, kernel $(uname -r), shared with other work while measured (load $(cut -d' ' -f1 /proc/loadavg) at the end); nginx 1 KiB over TLS 1.3, wrk -t1 -c16 -d$DURATION, $ROUNDS rounds; the Collector (test/ecosystem, OTLP gRPC receiver -> file exporter) on the same two CPUs." \
  "$header"
