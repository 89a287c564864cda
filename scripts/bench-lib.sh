# shellcheck shell=bash
# Helpers the make bench scripts source.

# cpu_seconds PID: user + system CPU seconds of process PID so far (0 if gone).
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat" 2>/dev/null || echo 0
}

# median N...: the median of its arguments.
median() {
  printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# wait_for FILE PATTERN SECONDS: wait until FILE holds PATTERN, at most SECONDS.
wait_for() {
  for _ in $(seq $(($3 * 10))); do grep -q "$2" "$1" && return; sleep 0.1; done
}

# stop_bpftrace PID: SIGINT (bpftrace prints its maps), then SIGKILL if it
# is still there after 20 s: a SIGINT that arrives while it attaches on a
# loaded machine can go unheeded, and the script would wait forever.
stop_bpftrace() {
  kill -INT "$1" 2>/dev/null || true
  for _ in $(seq 200); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# The functions below use the calling script's globals: root (the
# repository), work (its temporary directory) and pids (processes to kill
# on exit).

# bench_rounds ROUNDS RUN...: ROUNDS rounds of the runs named, each a
# function run_NAME of the script, in the order given in odd rounds and
# reversed in even ones, so that a drift of the machine's speed during a
# round favours no side. After each round the script's round_done ROUND
# reads what the runs set (a table line, the round's ratios).
bench_rounds() {
  local rounds=$1 round run i
  shift
  local order=("$@") reversed=()
  for ((i = ${#order[@]} - 1; i >= 0; i--)); do reversed+=("${order[i]}"); done
  for round in $(seq "$rounds"); do
    if [ $((round % 2)) = 1 ]; then
      for run in "${order[@]}"; do "run_$run"; done
    else
      for run in "${reversed[@]}"; do "run_$run"; done
    fi
    round_done "$round"
  done
}

# ratio A B: A / B, for a round's ratios.
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN {print a / b}'
}

# host_start CONFIG MODULE: bin/ecaphost runs CONFIG in the background
# (pid in host, the module's plugin in plugin), logging to $work/host.log;
# it returns once the host says it is capturing, noting the CPU seconds
# both have used so far for host_stop. A host not capturing within 30 s
# ends the script with its log.
host_start() {
  "$root/bin/ecaphost" run "$1" > "$work/host.log" 2>&1 &
  host=$!
  pids+=("$host")
  wait_for "$work/host.log" "capturing" 30
  grep -q capturing "$work/host.log" || { echo "bench: ecaphost did not start capturing within 30 s:" >&2; cat "$work/host.log" >&2; exit 1; }
  plugin=$(pgrep -P "$host" -f "ecaphost-plugin-$2" | awk 'NR == 1')
  host_cpu0=$(cpu_seconds "$host")
  plugin_cpu0=$(cpu_seconds "$plugin")
}

# host_stop MODULE: the CPU seconds the host and the plugin used since
# host_start go to host_cpu and plugin_cpu; then the host is sent SIGINT
# and waited for, and lost is MODULE's LOST column of its exit summary.
host_stop() {
  host_cpu=$(awk -v a="$host_cpu0" -v b="$(cpu_seconds "$host")" 'BEGIN {print b - a}')
  plugin_cpu=$(awk -v a="$plugin_cpu0" -v b="$(cpu_seconds "$plugin")" 'BEGIN {print b - a}')
  kill -INT "$host"
  wait "$host" || true
  lost=$(awk -v m="$1" '$1 == m {print $3}' "$work/host.log")
}

# write_run FILE MACHINE HEADER: with WRITE_DOC=1, appends the run to FILE
# (a data file under docs/bench/): a "## Run of" title with the time, the
# MACHINE line, then HEADER and the lines of the results array.
write_run() {
  [ "${WRITE_DOC:-0}" = 1 ] || return 0
  mkdir -p "$(dirname "$1")"
  {
    echo "## Run of $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "$2"
    echo
    echo "$3"
    printf '%s\n' "${results[@]}"
    echo
  } >> "$1"
}

# nginx_tls PORT FILE...: nginx (one worker, TLS 1.3 with a new
# self-signed certificate, no access log) serving $work/www on
# 127.0.0.1:PORT, with a file of random text for each size named (1k,
# 64k...); its pid file is $work/nginx.pid, for the script's cleanup.
# With the global status_port set, stub_status answers on plain HTTP at
# 127.0.0.1:status_port (nginx_accepted reads it).
nginx_tls() {
  local port=$1 size bytes status=""
  shift
  [ -z "${status_port:-}" ] || status="server {
    listen 127.0.0.1:$status_port;
    location / { stub_status; }
  }"
  mkdir -p "$work/www"
  for size in "$@"; do
    bytes=$(numfmt --from=iec "${size^^}")
    head -c "$bytes" /dev/urandom | base64 -w 0 | cut -c "1-$bytes" | tr -d "\n" > "$work/www/$size"
  done
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
    listen 127.0.0.1:$port ssl;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.3;
    keepalive_requests 1000000;
    root $work/www;
  }
  $status
}
NGINX
  nginx -c "$work/nginx.conf"
  sleep 0.5
}

# nginx_accepted: the connections nginx_tls's nginx accepted so far (its
# stub_status at status_port), this request's included.
nginx_accepted() {
  curl -s "http://127.0.0.1:$status_port/" | awk 'NR == 3 {print $1}'
}
