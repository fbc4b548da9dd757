#!/usr/bin/env bash
# Side by side: Credence and plain CometBFT (the same version's kvstore
# example app, one hash per transaction), each as 4 validators on loopback,
# swept over offered rates. Every point starts a fresh chain, offers load to
# node 0 for DURATION, then prints one row: acknowledged/s, ack and final
# p50/p99, and per node CPU seconds (utime+stime over the load, from
# /proc/PID/stat), peak RSS (VmHWM: the process's own maximum) and disk bytes
# per acknowledged hash with a per-store breakdown (allocated blocks, du -B1,
# of each entry of data/, after the nodes are stopped). docs/benchmarks.md,
# "Side by side with plain CometBFT", has the method.
#
#   make bench-net [RATES="10000 25000"] [KV_RATES=...] [DURATION=30s] [SYSTEMS="credence kvstore"]
#
# Knobs (environment):
#   RATES            hashes/s offered to Credence (default "10000 25000 50000 100000")
#   KV_RATES         transactions/s offered to kvstore (default: RATES)
#   DURATION         load per point (default 30s)
#   SYSTEMS          which to run, in order (default "credence kvstore")
#   KV_INDEXER       kvstore's tx_index indexer: null (as Credence's) or kv (default null)
#   RECEIPT_CLIENTS  Credence: clients reading receipts of final hashes meanwhile (default 0)
#   RECEIPT_RATE     their total receipts/s; 0 as fast as they can (default 0)
#   CLIENTS          loadgen's concurrent clients, each sending 1,000 hashes per Submit and
#                    waiting for its answer (default 32, as kvload's)
#   KV_CLIENTS       kvload's concurrent senders (default 32)
#   KV_PER_REQUEST   kvstore transactions per HTTP request, a JSON-RPC batch (default 100)
#   RETAIN_BLOCKS    Credence: retain_blocks in every node's app.toml (default: as the
#                    homes are written)
#   CADENCE          Credence: batch_interval and consensus.timeout_commit of every node,
#                    e.g. 150ms (default: as the homes are written, 250ms)
#   MEMORY_LIMIT     Credence: run each node under this memory limit, e.g. 512M (a memory
#                    cgroup, see scripts/localnet.sh); default none
#   PROFILE          Credence: seconds of CPU profile to take of node 0 (the one under load)
#                    and node 1 (a validator), 5 s into each point's load, kept as
#                    node0.cpu.pprof and node1.cpu.pprof beside the chain; default 0 (none)
#   BENCH_DIR        where chains and results go (default .benchnet; results.tsv there)
#   BASE_PORT        first port of Credence's nodes, KV_BASE_PORT of kvstore's (below 32768)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RATES="${RATES:-10000 25000 50000 100000}"
KV_RATES="${KV_RATES:-$RATES}"
DURATION="${DURATION:-30s}"
SYSTEMS="${SYSTEMS:-credence kvstore}"
KV_INDEXER="${KV_INDEXER:-null}"
RECEIPT_CLIENTS="${RECEIPT_CLIENTS:-0}"
RECEIPT_RATE="${RECEIPT_RATE:-0}"
CLIENTS="${CLIENTS:-32}"
KV_CLIENTS="${KV_CLIENTS:-32}"
KV_PER_REQUEST="${KV_PER_REQUEST:-100}"
BENCH_DIR="${BENCH_DIR:-$ROOT/.benchnet}"
BASE_PORT="${BASE_PORT:-28656}"
KV_BASE_PORT="${KV_BASE_PORT:-29656}"
N=4
TICK="$(getconf CLK_TCK)"
COMETBFT="$ROOT/build/cometbft"
KVLOAD="$ROOT/build/kvload"
CREDENCED="$ROOT/build/credenced"
NET="$ROOT/scripts/localnet.sh"
RESULTS="$BENCH_DIR/results.tsv"

die() { echo "bench-net: $*" >&2; exit 1; }
(( BASE_PORT + 10 * N < 32768 && KV_BASE_PORT + 10 * N < 32768 )) || die "ports must stay below 32768"

cd "$ROOT"
mkdir -p "$BENCH_DIR" build
rm -rf "$BENCH_DIR/credence-defaults" # made again from this build: see credence_setting
# CometBFT at the version go.mod pins, built from the module cache, with
# badger compiled in so that both systems keep their stores in the same
# database.
if [[ " $SYSTEMS " == *" credence "* ]]; then make build >/dev/null; fi
if [[ " $SYSTEMS " == *" kvstore "* ]]; then
	go build -tags badgerdb -o "$COMETBFT" github.com/cometbft/cometbft/cmd/cometbft
	go build -o "$KVLOAD" ./scripts/kvload
fi

# CPU seconds (user + system) of this shell's reaped children, from `times`
# (a builtin: redirected, not piped, or a subshell would answer).
children_cpu() {
	times >"$BENCH_DIR/times.txt"
	awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); s += t[1] * 60 + t[2] } printf "%.2f", s }' "$BENCH_DIR/times.txt"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
hwm_mb() { awk '/VmHWM/ {printf "%d", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo -; }

wait_height() { # RPC_PORT HEIGHT: wait up to 60 s for a node to reach a height
	for _ in $(seq 1 300); do
		h="$(curl -s -m 1 "http://127.0.0.1:$1/status" | jq -r '.result.sync_info.latest_block_height // 0' 2>/dev/null || echo 0)"
		(( ${h:-0} >= $2 )) && return 0
		sleep 0.2
	done
	die "node on RPC port $1 did not reach height $2"
}

# du_stores HOME: "bytes store" per entry of a node's data/.
du_stores() { du -s -B1 "$1"/data/* 2>/dev/null | awk '{n = $2; sub(".*/", "", n); print $1, n}'; }

# disk HOME ACKED: "total (store bytes/hash, ...)" for one node: the growth
# of each store since HOME/du.before (taken at height 2, before the load),
# over the hashes acknowledged.
disk() {
	du_stores "$1" | awk -v n="$2" -v base="$1/du.before" '
		BEGIN { while ((getline l < base) > 0) { split(l, f, " "); b[f[2]] = f[1] } }
		{ d = $1 - b[$2]; total += d; if (d != 0) { out[++k] = sprintf("%s %.1f", $2, d / n); v[k] = d } }
		END {
			for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] > v[i]) { t = v[i]; v[i] = v[j]; v[j] = t; t = out[i]; out[i] = out[j]; out[j] = t }
			s = ""; for (i = 1; i <= k; i++) s = s (i > 1 ? ", " : "") out[i]
			printf "%.1f (%s)", total / n, s
		}'
}

header_printed=""
row() { # SYSTEM RESULT_FILE PIDS... (after the load; homes in $homes)
	local sys="$1" res="$2"; shift 2
	# shellcheck disable=SC1090
	local acked acked_per_s ack_p50_ms ack_p99_ms final_p50_ms final_p99_ms offered verified=- bad=- lost=-
	source "$res"
	if [[ -z "$header_printed" ]]; then
		printf '%-9s %9s %11s %9s %9s %10s %10s %s\n' system offered acked/s ack_p50 ack_p99 final_p50 final_p99 'receipts verified/bad, or not committed'
		header_printed=1
	fi
	local check="$verified/$bad"; [[ "$sys" == kvstore ]] && check="not committed $lost"
	printf '%-9s %9s %11s %7sms %7sms %8sms %8sms %s\n' "$sys" "$offered" "$acked_per_s" "$ack_p50_ms" "$ack_p99_ms" \
		"$final_p50_ms" "$final_p99_ms" "$check"
	# CPU per hash (kvstore: per transaction, one hash each): the point's
	# CPU seconds over what was acknowledged in it, the budgets' unit.
	local n_acked="${acked:-0}"
	per_hash() { awk -v c="$1" -v n="$n_acked" 'BEGIN { if (n > 0) printf "%.2f", c * 1e6 / n; else printf "-" }'; }
	printf '%-9s load generator cpu %s s (%s µs/hash)\n' "" "$client_cpu" "$(per_hash "$client_cpu")"
	if [[ -n "${reads:-}" ]]; then
		printf '%-9s receipts read from node0: %s/s  p50 %sms  p99 %sms  refused %s  verified %s  bad %s\n' "" \
			"$reads_per_s" "$read_p50_ms" "$read_p99_ms" "$reads_refused" "$reads_verified" "$reads_bad"
	fi
	for i in $(seq 0 $((N - 1))); do
		printf '%-9s node%d cpu %6.1f s (%s µs/hash)  max RSS %5s MB  disk B/hash %s\n' "" "$i" "${cpu[$i]}" "$(per_hash "${cpu[$i]}")" "${hwm[$i]}" "$(disk "${homes[$i]}" "$acked")"
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\tnode%d\t%s\t%s\t%s\n' "$sys" "$offered" "$acked_per_s" "$ack_p50_ms" "$ack_p99_ms" \
			"$final_p50_ms" "$final_p99_ms" "$DURATION" "$i" "${cpu[$i]}" "${hwm[$i]}" "$(disk "${homes[$i]}" "$acked")" >>"$RESULTS"
	done
	unset reads
}

# measure PIDS... -- COMMAND...: run the load, fill cpu[] and hwm[].
measure() {
	local pids=() t0=()
	while [[ "$1" != -- ]]; do pids+=("$1"); shift; done
	shift
	for p in "${pids[@]}"; do t0+=("$(cpu_ticks "$p")"); done
	for h in "${homes[@]}"; do du_stores "$h" >"$h/du.before"; done
	children_cpu >"$BENCH_DIR/cpu.before"
	"$@"
	# The load generator's own CPU (with the few tools reaped meanwhile):
	# it shares the machine with the nodes.
	children_cpu >"$BENCH_DIR/cpu.after"
	client_cpu="$(awk -v a="$(cat "$BENCH_DIR/cpu.before")" -v b="$(cat "$BENCH_DIR/cpu.after")" 'BEGIN {printf "%.1f", b - a}')"
	cpu=() hwm=()
	for i in "${!pids[@]}"; do
		cpu+=("$(awk -v a="${t0[$i]}" -v b="$(cpu_ticks "${pids[$i]}")" -v t="$TICK" 'BEGIN {printf "%.1f", (b - a) / t}')")
		hwm+=("$(hwm_mb "${pids[$i]}")")
	done
}

credence_point() {
	local rate="$1"
	export LOCALNET_DIR="$BENCH_DIR/credence-$rate" LOCALNET_BASE_PORT="$BASE_PORT" LOCALNET_CHAIN_ID=credence-bench
	export LOCALNET_MEMORY_LIMIT="${MEMORY_LIMIT:-}"
	"$NET" reset >/dev/null 2>&1 || true
	"$NET" up $N >/dev/null
	trap '"$NET" down >/dev/null 2>&1 || true' EXIT
	if [[ -n "${RETAIN_BLOCKS:-}${CADENCE:-}" ]]; then
		"$NET" down >/dev/null
		for i in $(seq 0 $((N - 1))); do
			[[ -z "${RETAIN_BLOCKS:-}" ]] || toml_set "$LOCALNET_DIR/node$i/config/app.toml" "" retain_blocks "$RETAIN_BLOCKS"
			if [[ -n "${CADENCE:-}" ]]; then
				toml_set "$LOCALNET_DIR/node$i/config/app.toml" "" batch_interval "\"$CADENCE\""
				toml_set "$LOCALNET_DIR/node$i/config/config.toml" consensus timeout_commit "\"$CADENCE\""
			fi
		done
		"$NET" up $N >/dev/null
	fi
	if (( ${PROFILE:-0} > 0 )); then
		# Go's pprof on loopback, at the one offset of a node's ports unused.
		"$NET" down >/dev/null
		for i in 0 1; do
			toml_set "$LOCALNET_DIR/node$i/config/config.toml" rpc pprof_laddr "\"127.0.0.1:$((BASE_PORT + 10 * i + 9))\""
		done
		"$NET" up $N >/dev/null
		for i in 0 1; do
			(sleep 5 && curl -sf -o "$LOCALNET_DIR/node$i.cpu.pprof" \
				"http://127.0.0.1:$((BASE_PORT + 10 * i + 9))/debug/pprof/profile?seconds=$PROFILE" ||
				echo "bench-net: no CPU profile from node $i" >&2) &
		done
	fi
	wait_height $((BASE_PORT + 1)) 2
	homes=() pids=()
	for i in $(seq 0 $((N - 1))); do homes+=("$LOCALNET_DIR/node$i"); pids+=("$(cat "$LOCALNET_DIR/node$i.pid")"); done
	local res="$LOCALNET_DIR/loadgen.kv" extra=()
	if (( RECEIPT_CLIENTS > 0 )); then extra=(--receipt-clients "$RECEIPT_CLIENTS" --receipt-rate "$RECEIPT_RATE"); fi
	measure "${pids[@]}" -- "$CREDENCED" loadgen --node "127.0.0.1:$((BASE_PORT + 2))" --home "${homes[0]}" \
		--rate "$rate" --duration "$DURATION" --clients "$CLIENTS" --result "$res" "${extra[@]}" >"$LOCALNET_DIR/loadgen.txt" 2>&1 ||
		{ cat "$LOCALNET_DIR/loadgen.txt" >&2; echo "bench-net: loadgen failed at $rate/s (above)" >&2; failed=1; }
	"$NET" down >/dev/null
	if [[ -f "$res" ]]; then row credence "$res"; fi
}

# credence_setting SECTION KEY: the value Credence's init writes to
# config.toml, so that kvstore's timeouts follow Credence's defaults.
credence_setting() {
	local d="$BENCH_DIR/credence-defaults"
	[[ -f "$d/config/config.toml" ]] || "$CREDENCED" init --home "$d" >/dev/null
	awk -v sec="$1" -v key="$2" '
		/^\[/ { cur = substr($0, 2, length($0) - 2) }
		cur == sec && $1 == key && $2 == "=" { print $3; exit }' "$d/config/config.toml"
}

# toml_set FILE SECTION KEY VALUE: set KEY in [SECTION] ("" is the top).
toml_set() {
	awk -v sec="$2" -v key="$3" -v val="$4" '
		/^\[/ { cur = substr($0, 2, length($0) - 2) }
		cur == sec && $1 == key && $2 == "=" { print key " = " val; next }
		{ print }' "$1" >"$1.tmp" && mv "$1.tmp" "$1"
}

kv_pids=()
kv_down() {
	for p in "${kv_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${kv_pids[@]}"; do
		for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	done
	kv_pids=()
}

kvstore_point() {
	local rate="$1"; local dir="$BENCH_DIR/kvstore-$rate"
	rm -rf "$dir"
	"$COMETBFT" testnet --v $N --o "$dir" --starting-ip-address 127.0.0.1 >/dev/null
	local peers=""
	for i in $(seq 0 $((N - 1))); do
		peers+="${peers:+,}$("$COMETBFT" show_node_id --home "$dir/node$i")@127.0.0.1:$((KV_BASE_PORT + 10 * i))"
	done
	homes=()
	for i in $(seq 0 $((N - 1))); do
		local h="$dir/node$i" c="$dir/node$i/config/config.toml"
		homes+=("$h")
		# Credence's departures from CometBFT's defaults (consensus.DefaultConfig),
		# applied to kvstore where they mean the same; the mempool holds as many
		# bytes as Credence's, so its count of transactions is not the cap.
		toml_set "$c" "" proxy_app '"persistent_kvstore"'
		toml_set "$c" "" db_backend '"badgerdb"'
		toml_set "$c" "" log_level '"info"'
		toml_set "$c" rpc laddr "\"tcp://127.0.0.1:$((KV_BASE_PORT + 10 * i + 1))\""
		toml_set "$c" rpc grpc_laddr '""'
		toml_set "$c" rpc max_open_connections 900
		# kvload batches its one-hash transactions in JSON-RPC batches, as
		# loadgen sends 1,000 hashes per request: HTTP is not what is measured.
		toml_set "$c" rpc max_request_batch_size 0
		toml_set "$c" p2p laddr "\"tcp://127.0.0.1:$((KV_BASE_PORT + 10 * i))\""
		toml_set "$c" p2p persistent_peers "\"$peers\""
		toml_set "$c" p2p allow_duplicate_ip true
		toml_set "$c" p2p addr_book_strict false
		toml_set "$c" p2p send_rate 67108864
		toml_set "$c" p2p recv_rate 67108864
		toml_set "$c" p2p max_packet_msg_payload_size 65536
		toml_set "$c" mempool size 1000000
		toml_set "$c" mempool max_txs_bytes 268435456
		toml_set "$c" consensus timeout_commit "$(credence_setting consensus timeout_commit)"
		toml_set "$c" consensus timeout_propose "$(credence_setting consensus timeout_propose)"
		toml_set "$c" consensus create_empty_blocks_interval '"30s"'
		toml_set "$c" tx_index indexer "\"$KV_INDEXER\""
		toml_set "$c" instrumentation prometheus false
		# Credence's genesis block size (consensus.maxBlockBytes).
		jq '.consensus_params.block.max_bytes = "22020096"' "$h/config/genesis.json" >"$h/config/genesis.tmp" &&
			mv "$h/config/genesis.tmp" "$h/config/genesis.json"
	done
	trap 'kv_down' EXIT
	for i in $(seq 0 $((N - 1))); do
		nohup "$COMETBFT" start --home "${homes[$i]}" >>"$dir/node$i.log" 2>&1 &
		kv_pids+=("$!")
	done
	wait_height $((KV_BASE_PORT + 1)) 2
	local res="$dir/kvload.kv"
	measure "${kv_pids[@]}" -- "$KVLOAD" --rpc "http://127.0.0.1:$((KV_BASE_PORT + 1))" --rate "$rate" \
		--duration "$DURATION" --clients "$KV_CLIENTS" --per-request "$KV_PER_REQUEST" --result "$res" >"$dir/kvload.txt" 2>&1 ||
		{ cat "$dir/kvload.txt" >&2; echo "bench-net: kvload failed at $rate/s (above)" >&2; failed=1; }
	kv_down
	if [[ -f "$res" ]]; then row kvstore "$res"; fi
}

failed=""
echo "bench-net: $N validators per chain on loopback, $DURATION per point, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf 'system\toffered\tacked_per_s\tack_p50_ms\tack_p99_ms\tfinal_p50_ms\tfinal_p99_ms\tduration\tnode\tcpu_s\tmax_rss_mb\tdisk_bytes_per_hash\n' >"$RESULTS"
for sys in $SYSTEMS; do
	case "$sys" in
	credence) for r in $RATES; do credence_point "$r"; done ;;
	kvstore) for r in $KV_RATES; do kvstore_point "$r"; done ;;
	*) die "unknown system $sys (credence, kvstore)" ;;
	esac
done
echo "bench-net: rows also in $RESULTS; chains and logs in $BENCH_DIR"
[[ -z "$failed" ]]
