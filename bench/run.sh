#!/usr/bin/env bash
# The benchmark matrix (issue: fan-out, latency, memory, matching), side by side with a Node `ws`
# broadcast server and a Socket.IO server in the same run. Builds release, installs the Node
# peers, pins servers to core 0 and the load generator to core 1, runs every scenario in RUNS
# rounds (default 3) of one run of SECONDS (default 5) per server, and prints one table of
# medians with ratios.
# Talks only to 127.0.0.1. Usage: bench/run.sh   (RUNS=1 SECONDS_PER_RUN=2 for a quick look)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cargo build --release --quiet
cargo build --release --quiet --example loadgen --example actix_peer
(cd bench/peers && { [ -d node_modules ] || npm ci --no-audit --no-fund --silent; })

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
pin() { if command -v taskset >/dev/null; then taskset -c "$1" "${@:2}"; else "${@:2}"; fi; }
# Starts a pinned server in the background; $! is then the server itself (exec), not a subshell.
pin_bg() { if command -v taskset >/dev/null; then exec taskset -c "$1" "${@:2}"; else exec "${@:2}"; fi; }

# Waits for "$2" in file "$1" and prints the line.
wait_for() { for _ in $(seq 100); do grep -m1 "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "no '$2' in $1" >&2; exit 1; }

start_switchboard() { # name rules_dir
  cat > "$work/$1.toml" <<TOML
[http]
bind = "127.0.0.1:0"
[streamerbot]
bind = "127.0.0.1:0"
[custom]
bind = "127.0.0.1:0"
token = "bench"
max_connections = 20000
rate_limit_per_second = 1000000
[astro]
bind = "127.0.0.1:0"
[[astro.tokens]]
token = "bench"
room = "bench"
scopes = ["*"]
[socketio]
bind = "127.0.0.1:0"
api_keys = ["bench"]
[limits]
send_queue = 4096
TOML
  RUST_LOG=warn pin_bg 0 target/release/switchboard --config "$work/$1.toml" --data-dir "$work/$1-data" --rules-dir "$2" > "$work/$1.out" 2> "$work/$1.err" &
  pids+=($!)
  wait_for "$work/$1.out" '^ready' > /dev/null
  eval "${1}_pid=$!"
  eval "${1}_sb=$(grep -m1 ' streamerbot ' "$work/$1.out" | awk '{print $2}')"
  eval "${1}_custom=$(grep -m1 '^  custom  ' "$work/$1.out" | awk '{print $2}')"
  eval "${1}_astro=$(grep -m1 '^  astro  ' "$work/$1.out" | awk '{print $2}')"
  eval "${1}_sio=$(grep -m1 '^  socketio  ' "$work/$1.out" | awk '{print $2}' | sed -e 's|^http://|ws://|' -e 's|/socket.io/$||')"
}

start_peer() { # name command...
  local name=$1; shift
  pin_bg 0 "$@" > "$work/$name.out" 2>&1 &
  pids+=($!)
  eval "${name}_pid=$!"
  eval "${name}_port=$(wait_for "$work/$name.out" '^listening' | awk '{print $2}')"
}

mkdir -p "$work/no-rules" "$work/rules"
for i in $(seq 0 99); do
  printf '{"kind":"rule","schemaVersion":1,"id":"01JD3Q5S8N0W4X7Y2Z6A9B1E%02d","name":"other %s","triggers":[{"on":"other_%s"}],"steps":[{"kind":"log","message":"x","level":"debug"}]}\n' "$i" "$i" "$i" > "$work/rules/other-$i.rule.json"
done
printf '{"kind":"rule","schemaVersion":1,"id":"01JD3Q5S8N0W4X7Y2Z6A9B1F00","name":"tick","triggers":[{"on":"tick"}],"steps":[{"kind":"log","message":"{{ event.data.seq }}","level":"debug"}]}\n' > "$work/rules/tick.rule.json"

start_switchboard sw "$work/no-rules"
start_switchboard swr "$work/rules"
start_peer ws node bench/peers/ws-peer.js
start_peer sio node bench/peers/socketio-peer.js
start_peer actix target/release/examples/actix_peer

results="$work/results.jsonl"
run() { # label target args...
  local label=$1 target=$2; shift 2
  local base=()
  case $target in
    sb) base=(--dialect streamerbot --url "$sw_sb" --publish "$sw_custom" --token bench --pid "$sw_pid") ;;
    custom) base=(--dialect custom --url "$sw_custom" --token bench --pid "$sw_pid") ;;
    astro) base=(--dialect astro --url "$sw_astro" --publish "$sw_custom" --token bench --pid "$sw_pid") ;;
    hb) base=(--dialect holobridge --url "$sw_sio" --publish "$sw_custom" --token bench --pid "$sw_pid") ;;
    sbrules) base=(--dialect streamerbot --url "$swr_sb" --publish "$swr_custom" --token bench --pid "$swr_pid") ;;
    ws) base=(--dialect ws --url "ws://127.0.0.1:$ws_port/" --pid "$ws_pid") ;;
    actix) base=(--dialect ws --url "ws://127.0.0.1:$actix_port/" --pid "$actix_pid") ;;
    sio) base=(--dialect socketio --url "ws://127.0.0.1:$sio_port" --pid "$sio_pid") ;;
  esac
  pin 1 target/release/examples/loadgen "${base[@]}" --label "$label/$target" "$@" >> "$results"
}

# Each round runs every server once, so that the machine's drift (it moves by a third between
# hours here) reaches all of them alike and every ratio compares neighbouring runs.
rounds() { # label args...
  local label=$1; shift
  for _ in $(seq "$RUNS"); do
    for target in sb custom actix ws sio; do run "$label" "$target" "$@"; done
  done
}
rounds S1 --subscribers 100 --rate 200 --seconds "$SECONDS_PER_RUN"
rounds S2 --subscribers 1000 --rate 20 --seconds "$SECONDS_PER_RUN"
rounds S3 --subscribers 100 --window 1 --seconds "$SECONDS_PER_RUN"
rounds S4 --subscribers 100 --window 32 --seconds "$SECONDS_PER_RUN"
# S5's rounds also hold its two Switchboard variants.
s5=(--subscribers 1000 --window 8 --seconds "$SECONDS_PER_RUN")
for _ in $(seq "$RUNS"); do
  run S5 sb "${s5[@]}"
  run S5-rules sbrules "${s5[@]}"
  run S5-credits sb "${s5[@]}" --kind follow
  for target in astro hb custom actix ws sio; do run S5 "$target" "${s5[@]}"; done
done
# S6 measures RSS growth, which memory freed by earlier runs in the same process hides: each
# Switchboard face gets a server of its own that has run nothing before.
start_switchboard s6sb "$work/no-rules"
start_switchboard s6astro "$work/no-rules"
start_switchboard s6hb "$work/no-rules"
pin 1 target/release/examples/loadgen --dialect streamerbot --url "$s6sb_sb" --publish "$s6sb_custom" --token bench --pid "$s6sb_pid" --label S6/sb --idle 10000 >> "$results"
pin 1 target/release/examples/loadgen --dialect astro --url "$s6astro_astro" --publish "$s6astro_custom" --token bench --pid "$s6astro_pid" --label S6/astro --idle 10000 >> "$results"
pin 1 target/release/examples/loadgen --dialect holobridge --url "$s6hb_sio" --publish "$s6hb_custom" --token bench --pid "$s6hb_pid" --label S6/hb --idle 10000 >> "$results"
for target in actix ws sio; do
  run S6 "$target" --idle 10000
done

python3 bench/table.py "$results"
