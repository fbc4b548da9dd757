#!/usr/bin/env bash
# A local Credence testnet of N validators as background processes on
# loopback: no root, no Docker. See README "Local testnet".
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${CREDENCED:-$ROOT/build/credenced}"
DIR="${LOCALNET_DIR:-$ROOT/.localnet}"
BASE_PORT="${LOCALNET_BASE_PORT:-26656}"
CHAIN_ID="${LOCALNET_CHAIN_ID:-credence-localnet}"
# A memory limit per node (for example 512M), enforced by a memory cgroup of
# its own, as an operator would with systemd's MemoryMax= or docker --memory:
# the limit counts the node's heap and the page cache of its mapped badger
# files, which the kernel then reclaims instead of letting RSS follow the data.
MEMORY_LIMIT="${LOCALNET_MEMORY_LIMIT:-}"

die() { echo "localnet: $*" >&2; exit 1; }

usage() {
	cat <<USAGE
usage: scripts/localnet.sh COMMAND [ARG]
  up [N]        generate N homes if absent (default 4) and start every node not running
  status        per node: height, app hash, peers, validator power, endpoints
  logs NODE     follow a node's log (NODE is 0, 1, …)
  stop NODE     stop a node cleanly (SIGTERM)
  kill NODE     kill a node (SIGKILL)
  start NODE    start a stopped node
  pause NODE    freeze a node (SIGSTOP)
  resume NODE   unfreeze a node (SIGCONT)
  down          stop every node
  reset         stop every node and delete the testnet ($DIR)
USAGE
}

nodes() { ls -d "$DIR"/node*/ 2>/dev/null | sed 's#/$##; s#.*/node##' | sort -n; }
home() { echo "$DIR/node$1"; }
pidfile() { echo "$DIR/node$1.pid"; }
logfile() { echo "$DIR/node$1.log"; }
rpc_port() { echo $((BASE_PORT + 10 * $1 + 1)); }
grpc_port() { echo $((BASE_PORT + 10 * $1 + 2)); }

running() {
	local f; f="$(pidfile "$1")"
	[[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

need_node() {
	[[ -n "${1:-}" ]] || die "which node? (0 … $(( $(nodes | wc -l) - 1 )))"
	[[ -d "$(home "$1")" ]] || die "no node $1 in $DIR"
}

need_bin() {
	[[ -x "$BIN" ]] || (cd "$ROOT" && make build >/dev/null) || die "cannot build $BIN"
}

# memory_cgroup N prints the cgroup.procs file of node N's memory cgroup,
# made with MEMORY_LIMIT (cgroup v2, or v1's memory controller).
memory_cgroup() {
	local bytes dir
	bytes="$(numfmt --from=iec "$MEMORY_LIMIT")" || die "LOCALNET_MEMORY_LIMIT=$MEMORY_LIMIT is not a size (say 512M)"
	if grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
		dir="/sys/fs/cgroup/credence-$CHAIN_ID-node$1"
		rmdir "$dir" 2>/dev/null || true # a fresh cgroup: its kill count is this run's
		mkdir -p "$dir" && echo "$bytes" >"$dir/memory.max"
	elif [[ -d /sys/fs/cgroup/memory ]]; then
		dir="/sys/fs/cgroup/memory/credence-$CHAIN_ID-node$1"
		rmdir "$dir" 2>/dev/null || true
		mkdir -p "$dir" && echo "$bytes" >"$dir/memory.limit_in_bytes"
	else
		false
	fi 2>/dev/null || die "cannot make a memory cgroup for LOCALNET_MEMORY_LIMIT (needs a writable /sys/fs/cgroup)"
	echo "$dir/cgroup.procs"
}

start_node() {
	need_node "$1"
	if running "$1"; then echo "node $1 already running (pid $(cat "$(pidfile "$1")"))"; return; fi
	need_bin
	if [[ -n "$MEMORY_LIMIT" ]]; then
		# The node joins its cgroup before exec, so every page it touches is
		# charged to it.
		nohup sh -c 'echo $$ >"$1" && shift && exec "$@"' sh "$(memory_cgroup "$1")" \
			"$BIN" start --home "$(home "$1")" >>"$(logfile "$1")" 2>&1 &
	else
		nohup "$BIN" start --home "$(home "$1")" >>"$(logfile "$1")" 2>&1 &
	fi
	echo $! >"$(pidfile "$1")"
	echo "node $1 started (pid $!, gRPC 127.0.0.1:$(grpc_port "$1"), RPC 127.0.0.1:$(rpc_port "$1"), log $(logfile "$1"))"
}

signal_node() {
	need_node "$2"
	running "$2" || die "node $2 is not running"
	kill "-$1" "$(cat "$(pidfile "$2")")"
}

stop_node() {
	need_node "$1"
	if ! running "$1"; then echo "node $1 is not running"; return; fi
	local pid; pid="$(cat "$(pidfile "$1")")"
	kill -CONT "$pid" 2>/dev/null || true
	kill -TERM "$pid"
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; echo "node $1 did not stop in 10s; killed"; else echo "node $1 stopped"; fi
	rm -f "$(pidfile "$1")"
}

status() {
	[[ -d "$DIR" ]] || die "no testnet in $DIR (run: scripts/localnet.sh up)"
	printf '%-5s %-8s %-8s %-18s %-6s %-6s %-22s %s\n' NODE STATE HEIGHT APP_HASH PEERS POWER GRPC RPC
	for i in $(nodes); do
		local state=stopped height=- hash=- peers=- power=-
		if running "$i"; then
			state=running
			if [[ "$(ps -o stat= -p "$(cat "$(pidfile "$i")")" 2>/dev/null)" == T* ]]; then state=paused; fi
			local st net
			if st="$(curl -s -m 2 "http://127.0.0.1:$(rpc_port "$i")/status")" && [[ -n "$st" ]]; then
				height="$(jq -r .result.sync_info.latest_block_height <<<"$st")"
				hash="$(jq -r .result.sync_info.latest_app_hash <<<"$st" | cut -c1-16)"
				power="$(jq -r .result.validator_info.voting_power <<<"$st")"
			fi
			if net="$(curl -s -m 2 "http://127.0.0.1:$(rpc_port "$i")/net_info")" && [[ -n "$net" ]]; then
				peers="$(jq -r .result.n_peers <<<"$net")"
			fi
		fi
		printf '%-5s %-8s %-8s %-18s %-6s %-6s %-22s %s\n' "$i" "$state" "$height" "$hash" "$peers" "$power" \
			"127.0.0.1:$(grpc_port "$i")" "127.0.0.1:$(rpc_port "$i")"
	done
}

cmd="${1:-}"
case "$cmd" in
up)
	n="${2:-4}"
	need_bin
	if [[ ! -d "$DIR" ]]; then
		"$BIN" testnet --validators "$n" --output "$DIR" --chain-id "$CHAIN_ID" --base-port "$BASE_PORT" >/dev/null
		echo "generated $n validator homes in $DIR (chain $CHAIN_ID; genesis: $DIR/node0/config/genesis.json)"
	elif [[ "$(nodes | wc -l)" -ne "$n" && -n "${2:-}" ]]; then
		die "$DIR holds $(nodes | wc -l) nodes, not $n; run reset first"
	fi
	for i in $(nodes); do start_node "$i"; done
	;;
status) status ;;
logs) need_node "${2:-}"; exec tail -n 100 -f "$(logfile "$2")" ;;
stop) stop_node "${2:-}" ;;
kill) signal_node KILL "${2:-}"; rm -f "$(pidfile "$2")"; echo "node $2 killed" ;;
start) start_node "${2:-}" ;;
pause) signal_node STOP "${2:-}"; echo "node $2 paused" ;;
resume) signal_node CONT "${2:-}"; echo "node $2 resumed" ;;
down) [[ -d "$DIR" ]] && for i in $(nodes); do stop_node "$i"; done ;;
reset)
	if [[ -d "$DIR" ]]; then for i in $(nodes); do stop_node "$i"; done; fi
	rm -rf "$DIR"; echo "removed $DIR"
	;;
-h | --help | help | "") usage ;;
*) usage; exit 2 ;;
esac
