# Every Go command carries the badgerdb tag: CometBFT's badger backend is
# compiled in only with it, and the node refuses to start without it.
GO        ?= go
TAGS      := badgerdb
HOME_DIR  ?= $(CURDIR)/.credence
BUF       := $(GO) run github.com/bufbuild/buf/cmd/buf@v1.75.0
STATICCHECK := $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all wasm build run test test-deps e2e torture damage soak lint proto bench bench-net bench-statesync clean localnet-docker-up localnet-docker-down localnet-prometheus-image

all: build

# The verification page's verifier (web/verifier) for the browser, and Go's
# loader for it; both are build output (.gitignore), embedded by package web.
WASM_EXEC := $(shell $(GO) env GOROOT)/lib/wasm/wasm_exec.js
wasm:
	GOOS=js GOARCH=wasm $(GO) build -tags $(TAGS) -trimpath -ldflags='-s -w' -o web/static/verify.wasm ./web/verifier
	@if [ -f "$(WASM_EXEC)" ]; then cp "$(WASM_EXEC)" web/static/wasm_exec.js; \
	else cp "$$($(GO) env GOROOT)/misc/wasm/wasm_exec.js" web/static/wasm_exec.js; fi

build: wasm
	CGO_ENABLED=0 $(GO) build -tags $(TAGS) -trimpath -o build/credenced ./cmd/credenced

# A single-node dev chain in ./.credence, created on first use and resumed after.
# The terminal shows a live status line; the logs are in $(HOME_DIR)/credenced.log.
run: build
	@if [ ! -f "$(HOME_DIR)/config/genesis.json" ]; then ./build/credenced init --home "$(HOME_DIR)"; fi
	@echo "Example: ./build/credenced anchor --home $(HOME_DIR) --out receipts README.md"
	@./build/credenced start --home "$(HOME_DIR)" --console

# The browser tests (node/web_test.go) need chromium, the independent checks
# Debian's python3-pyld and python3-cryptography: Debian packages, the one
# thing Go cannot fetch, so test-deps installs them when missing (apt-get, as
# root or through sudo). Without them those tests fail, they never skip.
APT := $(shell [ "$$(id -u)" = 0 ] || echo sudo) env DEBIAN_FRONTEND=noninteractive apt-get
test-deps:
	@command -v chromium >/dev/null 2>&1 || { $(APT) update && $(APT) install -y chromium; }
	@/usr/bin/python3 -c 'import pyld, cryptography' >/dev/null 2>&1 || { $(APT) update && $(APT) install -y python3-pyld python3-cryptography; }

# -parallel 8: most node and CLI tests run a real chain and wait on its
# blocks, not on a core; go test's default (one per core) leaves the cores idle.
test: wasm test-deps
	@start=$$(date +%s); set -e; \
	echo "$(GO) vet -tags $(TAGS) ./..."; $(GO) vet -tags $(TAGS) ./...; \
	echo "$(GO) test -tags $(TAGS) -parallel 8 ./..."; $(GO) test -tags $(TAGS) -count=1 -parallel 8 -timeout 20m ./...; \
	echo "make test: passed in $$(( $$(date +%s) - start )) s"

# Tests on real processes and second builds (build tag e2e): the multi-node
# tests, kill -9 of one node while clients submit, and the upgrade switch,
# which needs a build that knows app version 3 (tag upgradetest).
e2e:
	$(GO) test -tags $(TAGS),e2e -count=1 -timeout 20m -v ./testnet/
	$(GO) test -tags $(TAGS),e2e -count=1 -timeout 10m -v -run 'TestKill9' ./node/
	$(GO) test -tags $(TAGS),upgradetest -count=1 -timeout 10m -v -run 'TestUpgrade' ./app/ ./node/

# Kill -9 trials on one node and on four validators (build tag torture).
# TRIALS=100 is the reported run; CI runs a short one.
TRIALS ?= 100
torture:
	$(GO) test -tags $(TAGS),e2e,torture -count=1 -timeout 300m -v -run TestTorture ./testnet/ -args -torture.trials=$(TRIALS)

# Store damage trials on one node's home: a random store file flipped, cut
# short, deleted or zeroed, then a start (build tag damage). 200 trials
# unless TRIALS is given on the command line (its default above is
# torture's); SEED replays a run.
SEED ?= 0
damage:
	$(GO) test -tags $(TAGS),e2e,damage -count=1 -timeout 600m -v -run TestDamage ./testnet/ -args -damage.trials=$(if $(filter command line,$(origin TRIALS)),$(TRIALS),200) -damage.seed=$(SEED)

# Memory under sustained load: 4 validators, RATE hashes/s for DURATION,
# every node's RSS sampled (scripts/soak.sh; minutes, not in CI).
# MEMORY_LIMIT=512M runs each node under that limit (a memory cgroup).
RATE ?= 10000
DURATION ?= 10m
MEMORY_LIMIT ?=
soak:
	MEMORY_LIMIT=$(MEMORY_LIMIT) scripts/soak.sh $(RATE) $(DURATION)

# Side by side with plain CometBFT (kvstore): 4 validators each, a sweep of
# offered rates, one row per point (scripts/benchnet.sh; knobs there: RATES,
# KV_RATES, DURATION, SYSTEMS, RECEIPT_CLIENTS ...; minutes, not in CI).
bench-net:
	scripts/benchnet.sh

# A fifth node joins by state sync a 4-validator chain holding HASHES
# anchored hashes (filled first at SYNC_RATE/s, not measured); reports the
# join time, restore time, chunks and the joiner's peak RSS. Minutes.
HASHES    ?= 10000000
SYNC_RATE ?= 35000
bench-statesync:
	$(GO) test -tags $(TAGS),e2e -run '^$$' -bench StateSyncJoin -benchtime 1x -timeout 3h -v ./testnet/ \
		-statesync.hashes=$(HASHES) -statesync.rate=$(SYNC_RATE)

lint:
	$(GO) vet -tags $(TAGS),e2e ./...
	$(STATICCHECK) -tags $(TAGS),e2e ./...
	$(GO) vet -tags $(TAGS),e2e,torture,damage ./testnet/
	$(STATICCHECK) -tags $(TAGS),e2e,torture,damage ./testnet/
	$(GO) vet -tags $(TAGS),upgradetest ./app/ ./node/
	$(STATICCHECK) -tags $(TAGS),upgradetest ./app/ ./node/
	@test -z "$$(gofmt -l .)" || (gofmt -l .; echo "gofmt needed"; exit 1)

# Regenerates proto/ output; a clean tree stays clean.
proto:
	cd proto && $(BUF) generate

bench:
	$(GO) test -tags $(TAGS) -run '^$$' -bench . -benchmem ./proof/ ./node/ ./app/

clean:
	rm -rf build web/static/verify.wasm web/static/wasm_exec.js

# A 4-validator testnet in containers on a private network.
DOCKER_HOMES := testnet/homes
localnet-docker-up: build
	@test -d $(DOCKER_HOMES) || ./build/credenced testnet --validators 4 --starting-ip 172.29.0.10 \
		--chain-id credence-docker --output $(DOCKER_HOMES)
	docker build -q -t credence:local -f testnet/Dockerfile build
	cd testnet && docker-compose $(if $(PROMETHEUS),--profile prometheus) up -d
	@echo "gRPC: 127.0.0.1:36659 36669 36679 36689   RPC: 127.0.0.1:36657 36667 36677 36687"
	@echo "HTTP: 127.0.0.1:36661 36671 36681 36691$(if $(PROMETHEUS),   Prometheus: 127.0.0.1:39090 (docs/grafana-dashboard.json))"

localnet-docker-down:
	cd testnet && docker-compose --profile prometheus down

# Optional Prometheus for the docker testnet (make localnet-docker-up PROMETHEUS=1):
# Debian's prometheus package and the shared libraries its binary links.
PROM_DIR := build/prometheus
localnet-prometheus-image:
	rm -rf $(PROM_DIR) && mkdir -p $(PROM_DIR)/rootfs/prometheus
	cd $(PROM_DIR) && apt-get download prometheus && dpkg-deb -x prometheus_*.deb deb
	install -D $(PROM_DIR)/deb/usr/bin/prometheus $(PROM_DIR)/rootfs/usr/bin/prometheus
	for lib in $$(ldd $(PROM_DIR)/deb/usr/bin/prometheus | grep -o '/[^ ]*'); do install -D "$$lib" "$(PROM_DIR)/rootfs$$lib"; done
	cp testnet/prometheus/Dockerfile testnet/prometheus/prometheus.yml $(PROM_DIR)/
	docker build -q -t credence-prometheus:local $(PROM_DIR)
