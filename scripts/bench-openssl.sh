#!/usr/bin/env bash
# make bench: TLS capture cost, all in one run on this machine.
#
# nginx (1 worker, TLS 1.3, files of 1 KiB and 64 KiB on 127.0.0.1) is
# driven by wrk -t1 -c16 -d$DURATION four ways per file size:
#   base      no capture
#   bpftrace  bpftrace merely counting uprobe SSL_write + uretprobe SSL_read
#             in libssl: the cost of the uprobe traps alone
#   probes    bin/ecaphost's openssl probes, every process filtered out
#   ecaphost  bin/ecaphost with the openssl module writing JSON to a file
# and prints, per size: requests/s and the ratio to base, requests wrk
# completed, HTTP requests ecaphost decoded on nginx's side and on wrk's,
# records counted lost, and the CPU seconds of the host and the plugin.
# The machine's speed drifts by ±10% within minutes, so each size runs
# ROUNDS rounds of all four (in reverse order every other round), each
# round's ratios taken within the round, and the table gives every round
# and the median of the ratios.
# Results go to stdout and, with WRITE_DOC=1, to docs/bench/openssl.md (data;
# docs/performance.md quotes the latest).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10s}
SIZES=${SIZES:-1k 64k}
ROUNDS=${ROUNDS:-5}
PORT=${PORT:-18443}
# (awk reads all its input: exiting early would kill ldconfig with SIGPIPE,
# which pipefail turns into a failure of the script.)
LIBSSL=${LIBSSL:-$(ldconfig -p | awk '/libssl\.so\.3 .*x86-64/ && !found {print $NF; found = 1}')}

for cmd in nginx wrk bpftrace openssl; do
  command -v "$cmd" >/dev/null || { echo "bench: $cmd is missing (apt-get install nginx wrk bpftrace openssl)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root" >&2; exit 1; }
[ -x "$root/bin/ecaphost" ] || { echo "bench: run make build first" >&2; exit 1; }

work=$(mktemp -d /tmp/ecaphost-bench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Files to serve and a certificate.
mkdir -p "$work/www"
head -c 1024 /dev/urandom | base64 -w 0 | cut -c 1-1024 | tr -d "\n" > "$work/www/1k"
head -c 65536 /dev/urandom | base64 -w 0 | cut -c 1-65536 | tr -d "\n" > "$work/www/64k"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat > "$work/nginx.conf" <<NGINX
user root;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/body;
  proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fastcgi;
  uwsgi_temp_path $work/uwsgi;
  scgi_temp_path $work/scgi;
  server {
    listen 127.0.0.1:$PORT ssl;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.3;
    keepalive_requests 1000000;
    root $work/www;
  }
}
NGINX
nginx -c "$work/nginx.conf"
sleep 0.5

# wrk_run SIZE: prints "REQUESTS RPS"
wrk_run() {
  local out
  out=$(wrk -t1 -c16 -d"$DURATION" "https://127.0.0.1:$PORT/$1")
  local reqs rps
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  echo "$reqs $rps"
}

# cpu_seconds PID: user+system CPU seconds used so far.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat" 2>/dev/null || echo 0
}

# capture_config SETTINGS: the ecaphost config of a run.
capture_config() {
  cat > "$work/capture.hcl" <<HCL
plugin_dir = "$root/bin/plugins"
output "file" {
  path   = "$work/events.jsonl"
  format = "json"
}
module "openssl" {
  $1
  config {
    libssl = "$LIBSSL"
  }
}
HCL
}

# median VALUES...: the median of the numbers given.
median() {
  printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# wait_for FILE TEXT SECONDS: until FILE holds TEXT, at most SECONDS.
wait_for() {
  for _ in $(seq $(($3 * 10))); do grep -q "$2" "$1" && return; sleep 0.1; done
}

# run_base SIZE, run_bpftrace SIZE, run_probes SIZE, run_ecaphost SIZE:
# one wrk run each, setting the variables the table reads.
run_base() {
  read -r base_reqs base_rps < <(wrk_run "$1")
}

run_bpftrace() {
  bpftrace -e "uprobe:$LIBSSL:SSL_write { @w = count(); } uretprobe:$LIBSSL:SSL_read { @r = count(); }" \
    > "$work/bpftrace.out" 2>&1 &
  bt=$!; pids+=("$bt")
  wait_for "$work/bpftrace.out" "Attaching" 10
  sleep 0.5
  read -r bt_reqs bt_rps < <(wrk_run "$1")
  kill -INT "$bt"; wait "$bt" || true
}

# start_host: bin/ecaphost running capture.hcl in the background (pid in
# $host), once it says it is capturing.
start_host() {
  "$root/bin/ecaphost" run "$work/capture.hcl" > "$work/host.log" 2>&1 &
  host=$!; pids+=("$host")
  wait_for "$work/host.log" "capturing" 30
}

# Probes that trap but filter everything out in the kernel: the cost of
# ecaphost's probes alone, to compare with bpftrace's count.
run_probes() {
  capture_config 'comm = "no-such-comm"'
  start_host
  read -r _ tr_rps < <(wrk_run "$1")
  kill -INT "$host"; wait "$host" || true
}

run_ecaphost() {
  capture_config ""
  rm -f "$work/events.jsonl"
  start_host
  plugin=$(pgrep -P "$host" -f ecaphost-plugin-openssl | awk 'NR == 1')
  h0=$(cpu_seconds "$host"); p0=$(cpu_seconds "$plugin")
  read -r ec_reqs ec_rps < <(wrk_run "$1")
  h1=$(cpu_seconds "$host"); p1=$(cpu_seconds "$plugin")
  kill -INT "$host"; wait "$host" || true
  lost=$(awk '$1 == "openssl" {print $3}' "$work/host.log")
  srv=$(grep -c '"kind":"http_request","pid":[0-9]*,"tid":[0-9]*,"uid":[0-9]*,"comm":"nginx"' "$work/events.jsonl" || true)
  cli=$(grep -c '"kind":"http_request","pid":[0-9]*,"tid":[0-9]*,"uid":[0-9]*,"comm":"wrk"' "$work/events.jsonl" || true)
  size_mb=$(du -m "$work/events.jsonl" | cut -f1)
  rm -f "$work/events.jsonl"
}

results=()
for size in $SIZES; do
  wrk_run "$size" >/dev/null # warm up
  ratios=() bt_ratios=() tr_ratios=() ec_ratios=()
  for round in $(seq "$ROUNDS"); do
    # Odd rounds run the four in order, even rounds in reverse, so that a
    # drift of the machine's speed during a round favours neither side.
    if [ $((round % 2)) = 1 ]; then
      order="base bpftrace probes ecaphost"
    else
      order="ecaphost probes bpftrace base"
    fi
    for run in $order; do "run_$run" "$size"; done
    line=$(awk -v s="$size #$round" -v br="$base_rps" -v tr="$bt_rps" -v fr="$tr_rps" -v er="$ec_rps" -v er2="$ec_reqs" \
      -v srv="$srv" -v cli="$cli" -v lost="${lost:-?}" -v hc="$(awk -v a="$h0" -v b="$h1" 'BEGIN{print b-a}')" \
      -v pc="$(awk -v a="$p0" -v b="$p1" 'BEGIN{print b-a}')" -v mb="$size_mb" 'BEGIN {
        printf "| %s | %.0f | %.0f (%.2f) | %.0f (%.2f) | %.0f (%.2f) | %.2f | %d | %d (%.1f%%) | %d (%.1f%%) | %s | %.1f / %.1f | %d |",
          s, br, tr, tr/br, fr, fr/br, er, er/br, (er/br)/(tr/br), er2, srv, 100*srv/er2, cli, 100*cli/er2, lost, hc, pc, mb }')
    results+=("$line")
    echo "$line"
    ratios+=("$(awk -v t="$bt_rps" -v e="$ec_rps" 'BEGIN {print e/t}')")
    bt_ratios+=("$(awk -v b="$base_rps" -v t="$bt_rps" 'BEGIN {print t/b}')")
    tr_ratios+=("$(awk -v b="$base_rps" -v t="$tr_rps" 'BEGIN {print t/b}')")
    ec_ratios+=("$(awk -v b="$base_rps" -v e="$ec_rps" 'BEGIN {print e/b}')")
  done
  line=$(printf '| %s median of %d | | (%.2f) | (%.2f) | (%.2f) | **%.2f** | | | | | | |' "$size" "$ROUNDS" \
    "$(median "${bt_ratios[@]}")" "$(median "${tr_ratios[@]}")" "$(median "${ec_ratios[@]}")" "$(median "${ratios[@]}")")
  results+=("$line")
  echo "$line"
done

header="| file | base req/s | bpftrace count req/s (ratio) | ecaphost probes only, all filtered out in the kernel (ratio) | ecaphost capturing to JSON req/s (ratio) | ecaphost ÷ bpftrace | wrk requests (ecaphost run) | requests decoded on nginx's side | on wrk's side | lost | CPU s host / plugin | JSON MiB |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
echo
echo "$header"
printf '%s\n' "${results[@]}"

if [ "${WRITE_DOC:-0}" = 1 ]; then
  {
    echo "## Run of $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "Machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r); nginx $(nginx -v 2>&1 | cut -d/ -f2), $LIBSSL ($(openssl version | cut -d' ' -f1-2)), wrk -t1 -c16 -d$DURATION, $ROUNDS rounds."
    echo
    echo "$header"
    printf '%s\n' "${results[@]}"
    echo
  } >> "$root/docs/bench/openssl.md"
fi
