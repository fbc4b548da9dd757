#!/usr/bin/env bash
# Soak: a fresh 4-validator localnet, a fixed submission rate for a fixed
# time, every node's RSS sampled at an interval. Prints one line per sample
# (seconds, then RSS and its anonymous part in MB per node) and the loadgen summary; the samples
# also go to $OUT/rss.tsv, node0's heap profile at the end of the load to
# $OUT/heap.pprof (`go tool pprof -top build/credenced $OUT/heap.pprof`).
# Not part of `make test`: it takes minutes.
#
#   scripts/soak.sh [RATE hashes/s, default 10000] [DURATION, default 10m] [SAMPLE seconds, default 10]
#
# MEMORY_LIMIT=512M runs each node under that memory limit (a memory cgroup
# of its own, see scripts/localnet.sh), as a deployment would.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RATE="${1:-10000}"
DURATION="${2:-10m}"
SAMPLE="${3:-10}"
export LOCALNET_DIR="${LOCALNET_DIR:-$ROOT/.soak}"
export LOCALNET_BASE_PORT="${LOCALNET_BASE_PORT:-27656}"
export LOCALNET_CHAIN_ID=credence-soak
export LOCALNET_MEMORY_LIMIT="${MEMORY_LIMIT:-}"
OUT="${OUT:-$LOCALNET_DIR/results}"
NET="$ROOT/scripts/localnet.sh"

cd "$ROOT"
make build >/dev/null
"$NET" reset >/dev/null 2>&1 || true
"$NET" up 4 >/dev/null
trap '"$NET" down >/dev/null 2>&1 || true' EXIT
# node0 (the one under load) and node1 (a validator that only checks)
# serve Go's pprof on loopback, so that their heaps are kept beside the
# samples.
pprof_addr() { echo "127.0.0.1:$((LOCALNET_BASE_PORT + 9 + 10 * $1))"; }
"$NET" down >/dev/null
for i in 0 1; do
	sed -i "s|^pprof_laddr = .*|pprof_laddr = \"$(pprof_addr "$i")\"|" "$LOCALNET_DIR/node$i/config/config.toml"
done
"$NET" up 4 >/dev/null
mkdir -p "$OUT"
sleep 5

# RSS, then its anonymous part: the rest is badger's memory-mapped files,
# page cache the kernel reclaims under pressure.
rss_mb() { awk '/VmRSS/ {r = $2} /RssAnon/ {a = $2} END {printf "%d\t%d", r/1024, a/1024}' "/proc/$1/status" 2>/dev/null || printf -- '-\t-'; }
pids=()
for i in 0 1 2 3; do pids+=("$(cat "$LOCALNET_DIR/node$i.pid")"); done

echo "memory limit per node: ${LOCALNET_MEMORY_LIMIT:-none}" | tee "$OUT/limit.txt"
printf 'seconds\tnode0_mb\tnode0_anon\tnode1_mb\tnode1_anon\tnode2_mb\tnode2_anon\tnode3_mb\tnode3_anon\n' | tee "$OUT/rss.tsv"
./build/credenced loadgen --node "127.0.0.1:$((LOCALNET_BASE_PORT + 2))" --home "$LOCALNET_DIR/node0" \
	--rate "$RATE" --duration "$DURATION" >"$OUT/loadgen.txt" 2>&1 &
load=$!
start=$(date +%s)
last_heap=0
while kill -0 "$load" 2>/dev/null; do
	line="$(( $(date +%s) - start ))"
	for p in "${pids[@]}"; do line+=$'\t'"$(rss_mb "$p")"; done
	echo "$line" | tee -a "$OUT/rss.tsv"
	if (( ${line%%$'\t'*} / 60 > last_heap )); then
		last_heap=$(( ${line%%$'\t'*} / 60 ))
		for i in 0 1; do
			curl -sf -o "$OUT/heap-node$i-${line%%$'\t'*}.pprof" "http://$(pprof_addr "$i")/debug/pprof/heap" || true
		done
	fi
	sleep "$SAMPLE"
done
for i in 0 1 2 3; do
	kill -0 "${pids[$i]}" 2>/dev/null || echo "node $i exited during the soak (log: $LOCALNET_DIR/node$i.log)" | tee -a "$OUT/limit.txt"
	if [[ -n "$LOCALNET_MEMORY_LIMIT" ]]; then
		# The kernel's count of processes it killed for the limit: v2, then v1.
		cg="credence-$LOCALNET_CHAIN_ID-node$i"
		kills="$(cat "/sys/fs/cgroup/$cg/memory.events" "/sys/fs/cgroup/memory/$cg/memory.oom_control" 2>/dev/null | awk '$1 == "oom_kill" {print $2; exit}' || true)"
		echo "node $i: ${kills:-unknown} killed for the memory limit" | tee -a "$OUT/limit.txt"
	fi
done
for i in 0 1; do
	curl -sf -o "$OUT/heap-node$i-end.pprof" "http://$(pprof_addr "$i")/debug/pprof/heap" || echo "no heap profile from node$i at the end"
done
wait "$load" || { echo "loadgen failed:"; cat "$OUT/loadgen.txt"; exit 1; }
cat "$OUT/loadgen.txt"
