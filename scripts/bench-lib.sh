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
