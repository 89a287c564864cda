#!/usr/bin/env bash
# make bench: the cost of capturing a Go HTTPS server, all in one run.
#
# A net/http server over crypto/tls (plugins/gotls/gotlsmod/testdata/
# gopeer, built here with this machine's Go; HTTP/1.1, 1 KiB responses,
# keep-alive) is driven by wrk -t1 -c16 -d$DURATION three ways:
#   base      no capture
#   bpftrace  bpftrace merely counting the gotls module's probe points:
#             uprobes on (*tls.Conn).Write, Read and Close and on each RET
#             instruction of Read: the cost of the traps alone
#   ecaphost  bin/ecaphost with the gotls module (binary = the server)
#             writing JSON to a file
# bpftrace 0.17 refuses a uprobe inside a function when it cannot check the
# instruction boundary, so the server runs from a copy of the executable
# with a one-byte function symbol at each RET of Read (objcopy, sizes set
# by a few lines of Python): the same instructions at the same offsets.
# Per round: requests/s and the ratio to base, requests wrk completed, HTTP
# requests ecaphost decoded on the server's side, records counted lost,
# and the CPU seconds of the host and the plugin. The machine's speed
# drifts by ±10% within minutes: each of ROUNDS rounds runs the three (in
# reverse order every other round), ratios are taken within a round, and
# the table gives every round and the medians.
# Results go to stdout and, with WRITE_DOC=1, to docs/bench/gotls.md.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench-lib.sh
. "$root/scripts/bench-lib.sh"
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-5}

for cmd in wrk bpftrace objcopy go /usr/bin/python3; do
  command -v "$cmd" >/dev/null || { echo "bench: $cmd is missing (apt-get install wrk bpftrace binutils python3)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root" >&2; exit 1; }
[ -x "$root/bin/ecaphost" ] || { echo "bench: run make build first" >&2; exit 1; }

work=$(mktemp -d /tmp/ecaphost-bench-gotls.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# The server, and its copy with symbols at Read's RET instructions.
(cd "$root/plugins/gotls/gotlsmod/testdata/gopeer" && GOWORK=off GOFLAGS= CGO_ENABLED=0 go build -o "$work/gopeer" .)
read_rets=$(go tool objdump -s 'crypto/tls.\(\*Conn\).Read$' "$work/gopeer" | awk '$NF == "RET" {print $2}')
text=$(readelf -SW "$work/gopeer" | awk '{for (i = 1; i < NF; i++) if ($i == ".text") print "0x" $(i + 2)}')
args=() names=()
i=0
for va in $read_rets; do
  args+=(--add-symbol "gotls_ret$i=.text:$(printf '0x%x' $((va - text))),function,global")
  names+=("gotls_ret$i")
  i=$((i + 1))
done
objcopy "${args[@]}" "$work/gopeer" "$work/gp-bench"
/usr/bin/python3 - "$work/gp-bench" <<'PY'
import struct, sys
# Give the gotls_ret* symbols objcopy added a size of 1 byte (ELF64, little endian).
path = sys.argv[1]
b = bytearray(open(path, "rb").read())
shoff, = struct.unpack_from("<Q", b, 0x28)
shentsize, shnum = struct.unpack_from("<HH", b, 0x3a)
secs = [struct.unpack_from("<IIQQQQIIQQ", b, shoff + i * shentsize) for i in range(shnum)]
for s in secs:
    if s[1] != 2:  # SHT_SYMTAB
        continue
    strtab = secs[s[6]]
    for off in range(s[4], s[4] + s[5], 24):
        name, = struct.unpack_from("<I", b, off)
        start = strtab[4] + name
        if bytes(b[start:start + 9]) == b"gotls_ret":
            struct.pack_into("<Q", b, off + 16, 1)
open(path, "wb").write(b)
PY
bin="$work/gp-bench"
probes="uprobe:$bin:\"crypto/tls.(*Conn).Write\", uprobe:$bin:\"crypto/tls.(*Conn).Read\", uprobe:$bin:\"crypto/tls.(*Conn).Close\""
for n in "${names[@]}"; do probes="$probes, uprobe:$bin:$n"; done

"$bin" server -h1 -size 1024 > "$work/server.out" 2>&1 &
server=$!; pids+=("$server")
for _ in $(seq 50); do grep -q listening "$work/server.out" && break; sleep 0.1; done
addr=$(awk '/listening/ {print $2}' "$work/server.out")
[ -n "$addr" ] || { echo "bench: the Go server did not start: $(cat "$work/server.out")" >&2; exit 1; }

# wrk_run: prints "REQUESTS RPS"
wrk_run() {
  local out
  out=$(wrk -t1 -c16 -d"$DURATION" "https://$addr/hello")
  echo "$(awk '/requests in/ {print $1}' <<<"$out") $(awk '/Requests\/sec/ {print $2}' <<<"$out")"
}

cat > "$work/capture.hcl" <<HCL
plugin_dir = "$root/bin/plugins"
output "file" {
  path   = "$work/events.jsonl"
  format = "json"
}
module "gotls" {
  config {
    binary = "$bin"
  }
}
HCL

run_base() { read -r base_reqs base_rps < <(wrk_run); }

run_bpftrace() {
  bpftrace -e "$probes { @n = count(); }" > "$work/bpftrace.out" 2>&1 &
  bt=$!; pids+=("$bt")
  wait_for "$work/bpftrace.out" "Attaching" 10
  sleep 0.5
  read -r bt_reqs bt_rps < <(wrk_run)
  stop_bpftrace "$bt"
  bt_traps=$(awk '/@n:/ {print $2}' "$work/bpftrace.out")
}

run_ecaphost() {
  rm -f "$work/events.jsonl"
  host_start "$work/capture.hcl" gotls
  read -r ec_reqs ec_rps < <(wrk_run)
  host_stop gotls
  srv=$(grep -c '"kind":"http_request","pid":'"$server"',' "$work/events.jsonl" || true)
  rm -f "$work/events.jsonl"
}

results=()
wrk_run >/dev/null # warm up
ratios=() bt_ratios=() ec_ratios=()
round_done() {
  line=$(awk -v s="#$1" -v br="$base_rps" -v tr="$bt_rps" -v traps="${bt_traps:-?}" -v er="$ec_rps" -v er2="$ec_reqs" \
    -v srv="$srv" -v lost="${lost:-?}" -v hc="$host_cpu" -v pc="$plugin_cpu" 'BEGIN {
      printf "| %s | %.0f | %.0f (%.2f) | %s | %.0f (%.2f) | %.2f | %d | %d (%.1f%%) | %s | %.1f / %.1f |",
        s, br, tr, tr/br, traps, er, er/br, (er/br)/(tr/br), er2, srv, 100*srv/er2, lost, hc, pc }')
  results+=("$line")
  echo "$line"
  ratios+=("$(ratio "$ec_rps" "$bt_rps")")
  bt_ratios+=("$(ratio "$bt_rps" "$base_rps")")
  ec_ratios+=("$(ratio "$ec_rps" "$base_rps")")
}
bench_rounds "$ROUNDS" base bpftrace ecaphost
line=$(printf '| median of %d | | (%.2f) | | (%.2f) | **%.2f** | | | | |' "$ROUNDS" \
  "$(median "${bt_ratios[@]}")" "$(median "${ec_ratios[@]}")" "$(median "${ratios[@]}")")
results+=("$line")
echo "$line"

header="| round | base req/s | bpftrace count req/s (ratio) | traps bpftrace counted | ecaphost capturing to JSON req/s (ratio) | ecaphost ÷ bpftrace | wrk requests (ecaphost run) | requests decoded on the server's side | lost | CPU s host / plugin |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
echo
echo "$header"
printf '%s\n' "${results[@]}"

write_run "$root/docs/bench/gotls.md" \
  "Machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r); server built by $(go version | cut -d' ' -f3), wrk -t1 -c16 -d$DURATION, 1 KiB responses over HTTP/1.1 and TLS 1.3, $ROUNDS rounds." \
  "$header"
