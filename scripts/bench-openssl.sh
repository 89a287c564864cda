#!/usr/bin/env bash
# make bench: what the openssl module costs in each mode, all in one run.
#
# nginx (1 worker, TLS 1.3, files of 1 KiB and 64 KiB on 127.0.0.1) is
# driven by wrk -t1 -c16 -d$DURATION (keep-alive). Each mode runs beside
# its reference, in the same rounds:
#
#   mode     ecaphost run                          reference
#   text     openssl writing JSON to a file        bpftrace merely counting
#                                                  uprobe SSL_write + uretprobe
#                                                  SSL_read: the traps alone
#   probes   text mode with every process filtered bpftrace, as for text
#            out in the kernel (not in the default
#            MODES)
#   keylog   mode "keylog" writing a key log       no capture (base)
#   pcap     mode "pcap" on lo, port $PORT         tcpdump -i lo -B 16384 -w
#                                                  FILE port $PORT
#
# and a base run (no capture) per round, which every ratio divides by. The
# machine's speed drifts by ±10% within minutes, so each size runs ROUNDS
# rounds of every run (in reverse order every other round), each round's
# ratios taken within the round; the table gives every round and the
# medians. Columns:
#   ecaphost ÷ ref   the target's ratio: ecaphost's rate ÷ the reference's
#   captured         text: HTTP requests decoded on nginx's / wrk's side
#                    of those wrk completed (events whose connection has
#                    nginx's address as its local / remote end); keylog: distinct client randoms
#                    in the key log of the TLS connections nginx accepted
#                    (stub_status; sessions of nginx's port, by the
#                    tls_keys events, as other programs may run TLS too);
#                    pcap: packets in the pcapng, the sessions keyed
#                    (tls_keys events) of those accepted, tcpdump's packets
#   lost             the module's LOST (exit summary): text, records (a
#                    request's body spans several); pcap, packets and their
#                    share, and tcpdump's drops of the packets its filter got
#   truncated        the module's counters whose name holds "truncated"
#                    (exit summary), "-" when it has none above 0
# Select rows with MODES="text keylog pcap" (default), SIZES="1k 64k",
# ROUNDS=3, DURATION=10s, nginx's port with PORT=18443 (its stub_status on
# PORT+1). The module runs as the README's default configuration does:
# libssl unnamed, so node-wide discovery probes every process's libssl and
# the figures are what that default costs (NODEWIDE=1, the default).
# NODEWIDE=0 names nginx's libssl (LIBSSL=, found by ldconfig), which
# turns discovery off. Capture is node-wide either way (no pid filter):
# the "captured" counts keep to nginx's port, so another program's TLS
# does not count, though it costs and is counted in "lost". PRIORITY=
# sets the host's priority (empty, the default: the host's own default,
# "background"; or "normal"). bpftrace
# probes LIBSSL, the one nginx and wrk load. Results go to stdout and,
# with WRITE_DOC=1, to docs/bench/openssl.md (data; docs/performance.md
# quotes the latest).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench-lib.sh
. "$root/scripts/bench-lib.sh"
DURATION=${DURATION:-10s}
SIZES=${SIZES:-1k 64k}
MODES=${MODES:-text keylog pcap}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18443}
NODEWIDE=${NODEWIDE:-1}
PRIORITY=${PRIORITY:-}
status_port=$((PORT + 1))
# (awk reads all its input: exiting early would kill ldconfig with SIGPIPE,
# which pipefail turns into a failure of the script.)
LIBSSL=${LIBSSL:-$(ldconfig -p | awk '/libssl\.so\.3 .*x86-64/ && !found {print $NF; found = 1}')}

need=(nginx wrk openssl curl)
for m in $MODES; do
  case $m in
    text | probes) need+=(bpftrace) ;;
    pcap) need+=(tcpdump capinfos) ;;
    keylog) ;;
    *) echo "bench: unknown mode $m in MODES (text, probes, keylog, pcap)" >&2; exit 1 ;;
  esac
done
for cmd in "${need[@]}"; do
  command -v "$cmd" >/dev/null || { echo "bench: $cmd is missing (apt-get install nginx wrk bpftrace openssl curl tcpdump tshark)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root" >&2; exit 1; }
[ -x "$root/bin/ecaphost" ] || { echo "bench: run make build first" >&2; exit 1; }
case $NODEWIDE in
  0 | 1) ;;
  *) echo "bench: NODEWIDE is 1 (libssl unnamed, the default) or 0 (libssl = LIBSSL), not $NODEWIDE" >&2; exit 1 ;;
esac

work=$(mktemp -d /tmp/ecaphost-bench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck disable=SC2086 # SIZES is a list
nginx_tls "$PORT" $SIZES
load0=$(cut -d' ' -f1-3 /proc/loadavg)

# wrk_run: prints "REQUESTS RPS TLS-CONNECTIONS" for a run on the file of
# $size: the connections nginx accepted during it, less the status
# request and the one wrk opens and closes without TLS to check the
# address before its run.
wrk_run() {
  local out a0 a1
  a0=$(nginx_accepted)
  out=$(wrk -t1 -c16 -d"$DURATION" "https://127.0.0.1:$PORT/$size")
  a1=$(nginx_accepted)
  awk -v conns=$((a1 - a0 - 2)) '/requests in/ {r = $1} /Requests\/sec/ {s = $2} END {print r, s, conns}' <<<"$out"
}

# capture_config SETTINGS CONFIG: the ecaphost config of a run: SETTINGS
# in the module block, CONFIG in its config block.
capture_config() {
  cat > "$work/capture.hcl" <<HCL
plugin_dir = "$root/bin/plugins"
$([ -z "$PRIORITY" ] || echo "priority = \"$PRIORITY\"")
output "file" {
  path   = "$work/events.jsonl"
  format = "json"
}
module "openssl" {
  $1
  config {
    $([ "$NODEWIDE" = 1 ] || echo "libssl = \"$LIBSSL\"")
    $2
  }
}
HCL
}

# ecaphost_run: wrk under bin/ecaphost running capture.hcl; sets ec_reqs
# ec_rps ec_conns, cpu (host / plugin), lost, trunc (the module's
# counters whose name holds "truncated") and fallback (the key modes'
# fallback probes: times attached and ms in all).
ecaphost_run() {
  rm -f "$work/events.jsonl" "$work/keylog" "$work/ecaphost.pcapng"
  host_start "$work/capture.hcl" openssl
  read -r ec_reqs ec_rps ec_conns < <(wrk_run)
  host_stop openssl
  cpu=$(printf '%.1f / %.1f' "$host_cpu" "$plugin_cpu")
  lost=${lost:-?}
  trunc=$(awk '$1 == "openssl" {for (i = 5; i <= NF; i++) if ($i ~ /truncated/) {printf "%s%s", sep, $i; sep = " "}}' "$work/host.log")
  trunc=${trunc:--}
  fallback=$(awk '$1 == "openssl" {for (i = 5; i <= NF; i++) if ($i ~ /^info_tls_keys_fallback_(ms|attached)=/) {sub(/^info_tls_keys_fallback_/, "", $i); printf "%s%s", sep, $i; sep = " "}}' "$work/host.log")
}

# pct PART WHOLE: PART as a share of WHOLE, "12.3%".
pct() {
  awk -v p="$1" -v w="$2" 'BEGIN {if (w > 0) printf "%.1f%%", 100 * p / w; else print "-"}'
}

# The runs (bench_rounds calls run_NAME; the size is $size). Each sets
# its rate (NAME_rps) and, for ecaphost's runs, the row's cells.
run_base() {
  read -r _ base_rps _ < <(wrk_run)
}

run_bpftrace() {
  bpftrace -e "uprobe:$LIBSSL:SSL_write { @w = count(); } uretprobe:$LIBSSL:SSL_read { @r = count(); }" \
    > "$work/bpftrace.out" 2>&1 &
  local bt=$!; pids+=("$bt")
  wait_for "$work/bpftrace.out" "Attaching" 10
  sleep 0.5
  read -r _ bpftrace_rps _ < <(wrk_run)
  stop_bpftrace "$bt"
}

run_tcpdump() {
  rm -f "$work/tcpdump.pcap"
  tcpdump -i lo -B 16384 -w "$work/tcpdump.pcap" port "$PORT" 2> "$work/tcpdump.err" &
  local td=$!; pids+=("$td")
  wait_for "$work/tcpdump.err" "listening on" 10
  read -r _ tcpdump_rps _ < <(wrk_run)
  kill -INT "$td"; wait "$td" || true
  local got filt drop
  got=$(awk '/packets captured/ {print $1}' "$work/tcpdump.err")
  filt=$(awk '/packets received by filter/ {print $1}' "$work/tcpdump.err")
  drop=$(awk '/packets dropped by kernel/ {print $1}' "$work/tcpdump.err")
  tcpdump_pkts=${got:-?}
  tcpdump_lost="${drop:-?} ($(pct "${drop:-0}" "${filt:-0}"))"
  rm -f "$work/tcpdump.pcap"
}

# decoded SIDE: the HTTP requests decoded on one side of nginx's port,
# SIDE local (nginx's) or remote (wrk's): capture is node-wide, and only
# these count.
decoded() {
  grep '"kind":"http_request"' "$work/events.jsonl" 2>/dev/null | grep -c "\"$1\":\"127.0.0.1:$PORT\"" || true
}

run_text() {
  capture_config "" ""
  ecaphost_run
  local srv cli
  srv=$(decoded local)
  cli=$(decoded remote)
  text_rps=$ec_rps
  text_cells="$srv / $cli of $ec_reqs ($(pct "$srv" "$ec_reqs") / $(pct "$cli" "$ec_reqs")) | $lost records | $trunc | $cpu"
}

# Probes that trap but filter everything out in the kernel: the cost of
# ecaphost's probes alone, to compare with bpftrace's count.
run_probes() {
  capture_config 'comm = "no-such-comm"' ""
  ecaphost_run
  probes_rps=$ec_rps
  probes_cells="- | $lost | $trunc | $cpu"
}

# port_randoms: the client randoms of the tls_keys events of connections
# to nginx's port (the key modes capture every process of the machine).
port_randoms() {
  grep '"kind":"tls_keys"' "$work/events.jsonl" 2>/dev/null | grep ":$PORT\"" |
    grep -o '"client_random":"[0-9a-f]*"' | cut -d'"' -f4 | sort -u
}

run_keylog() {
  capture_config "" "mode = \"keylog\"
    keylog_file = \"$work/keylog\""
  ecaphost_run
  # Sessions of nginx's port whose lines are in the key log.
  local keys=0
  [ -f "$work/keylog" ] && keys=$(awk 'NR == FNR {want[$1] = 1; next} !/^#/ && NF == 3 && want[$2] {print $2}' \
    <(port_randoms) "$work/keylog" | sort -u | wc -l)
  keylog_rps=$ec_rps
  keylog_cells="$keys keys of $ec_conns connections ($(pct "$keys" "$ec_conns")); fallback probes $fallback | $lost | $trunc | $cpu"
}

run_pcap() {
  capture_config "" "mode = \"pcap\"
    pcap_file = \"$work/ecaphost.pcapng\"
    ifname = \"lo\"
    port = $PORT"
  ecaphost_run
  local pkts=0 keys
  [ -f "$work/ecaphost.pcapng" ] && pkts=$(capinfos -M -c "$work/ecaphost.pcapng" 2>/dev/null | awk '/Number of packets/ {print $NF}')
  keys=$(port_randoms | wc -l)
  pcap_rps=$ec_rps
  pcap_captured="${pkts:-?} packets, $keys keys of $ec_conns connections ($(pct "$keys" "$ec_conns")); fallback probes $fallback"
  pcap_lost="$lost ($(pct "$lost" "$(awk -v p="${pkts:-0}" -v l="$lost" 'BEGIN {print p + l}')"))"
  pcap_rest="$trunc | $cpu"
  rm -f "$work/ecaphost.pcapng"
}

# ref_of MODE: the run MODE is compared with.
ref_of() {
  case $1 in
    text | probes) echo bpftrace ;;
    keylog) echo base ;;
    pcap) echo tcpdump ;;
  esac
}

# round_done ROUND: a table line per mode, each ratio taken within the
# round.
round_done() {
  local m ref ref_rps_var mode_rps_var cells_var rr er vr line
  for m in $MODES; do
    ref=$(ref_of "$m")
    ref_rps_var="${ref}_rps" mode_rps_var="${m}_rps" cells_var="${m}_cells"
    rr=$(ratio "${!ref_rps_var}" "$base_rps")
    er=$(ratio "${!mode_rps_var}" "$base_rps")
    vr=$(ratio "${!mode_rps_var}" "${!ref_rps_var}")
    ref_ratios[$m]+=" $rr" ec_ratios[$m]+=" $er" vs_ratios[$m]+=" $vr"
    if [ "$m" = pcap ]; then
      # tcpdump's run may come after ecaphost's in the round: joined here.
      pcap_cells="$pcap_captured; tcpdump $tcpdump_pkts | $pcap_lost; tcpdump dropped $tcpdump_lost | $pcap_rest"
    fi
    line=$(printf '| %s #%d | %s | %.0f | %s %.0f (%.2f) | %.0f (%.2f) | %.2f | %s |' \
      "$size" "$1" "$m" "$base_rps" "$ref" "${!ref_rps_var}" "$rr" "${!mode_rps_var}" "$er" "$vr" "${!cells_var}")
    results+=("$line")
    echo "$line"
  done
}

# The runs of a round: base, each mode's reference once, each mode.
runs=(base)
for m in $MODES; do
  r=$(ref_of "$m")
  [[ " ${runs[*]} " == *" $r "* ]] || runs+=("$r")
done
for m in $MODES; do runs+=("$m"); done

results=()
declare -A ref_ratios ec_ratios vs_ratios
for size in $SIZES; do
  wrk_run >/dev/null # warm up
  for m in $MODES; do ref_ratios[$m]="" ec_ratios[$m]="" vs_ratios[$m]=""; done
  bench_rounds "$ROUNDS" "${runs[@]}"
  for m in $MODES; do
    # shellcheck disable=SC2086 # the lists are space-separated numbers
    line=$(printf '| %s median of %d | %s | | %s (%.2f) | (%.2f) | **%.2f** | | | | |' "$size" "$ROUNDS" "$m" "$(ref_of "$m")" \
      "$(median ${ref_ratios[$m]})" "$(median ${ec_ratios[$m]})" "$(median ${vs_ratios[$m]})")
    results+=("$line")
    echo "$line"
  done
done

header="| file | mode | base req/s | reference req/s (÷ base) | ecaphost req/s (÷ base) | ecaphost ÷ reference | captured | lost | truncated | CPU s host / plugin |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
load1=$(cut -d' ' -f1-3 /proc/loadavg)
echo
echo "load average before the run: $load0; after: $load1"
echo "$header"
printf '%s\n' "${results[@]}"

if [ "$NODEWIDE" = 1 ]; then
  libssl="libssl unnamed (node-wide discovery, the default); bpftrace on $LIBSSL"
else
  libssl="libssl = $LIBSSL (node-wide discovery off)"
fi
write_run "$root/docs/bench/openssl.md" \
  "Machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r), load average $load0 before the run and $load1 after; nginx $(nginx -v 2>&1 | cut -d/ -f2), $(openssl version | cut -d' ' -f1-2), $libssl; wrk -t1 -c16 -d$DURATION, $ROUNDS rounds, modes $MODES, host priority ${PRIORITY:-default (background)}." \
  "$header"
