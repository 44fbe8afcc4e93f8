# imhub: `make run` starts a demo hub, `make test` runs every test.
# Both install what they need on a fresh Debian machine.

GO       ?= go
BIN      := bin/hub
ADDR     ?= 127.0.0.1:8080
FUZZTIME ?= 30s
SOAK     ?= 1h
# apt-get as root, else through sudo.
APT      := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: build run demo demo-backend test test-failover lint bench bench-compare bench-room centrifugo soak fuzz deps clean cluster-up cluster-down

## build: the hub binary in bin/
build:
	$(GO) build -trimpath -o $(BIN) ./cmd/hub

## run: the hub with the in-process broker and the dashboard, in demo mode,
## with a stand-in of the IM's REST API (-dev-im): the dashboard also signs
## in to the IM as jared, with a UserSig of /dev/usersig, and shows his groups
run:
	@echo 'building the hub into $(BIN): a minute or so the first time, as Go fetches and compiles its modules; it starts right after'
	@$(MAKE) --no-print-directory build
	./$(BIN) -dev -dev-im -addr $(ADDR) -log-level debug

## demo: realistic callbacks to the hub of `make run` or to the load balancer
## of `make cluster-up` (in a second terminal), signed with CALLBACK_TOKEN:
## messages (each group message checked first with Group.CallbackBeforeSendMsg,
## its verdict printed), recalls, reads, logins, members joining and leaving
## (the groups made first; jared, the dashboard's IM login, removed from one
## every 30 callbacks and invited back); N=100 stops after 100 callbacks
CALLBACK_TOKEN ?= local-cluster-callback-token
N ?= 0
demo:
	$(GO) run ./cmd/hubdemo -url http://$(ADDR) -app 1400000000 -token '$(CALLBACK_TOKEN)' -n $(N)

## demo-backend: a stand-in for the app's own backend on BACKEND_ADDR, for a hub
## run with -forward 1400000000=http://$(BACKEND_ADDR)/: it logs each callback
## and denies one group message in ten
BACKEND_ADDR ?= 127.0.0.1:9090
demo-backend:
	$(GO) run ./cmd/hubdemo -backend $(BACKEND_ADDR) -app 1400000000

## cluster-up / cluster-down: Redis, three hubs and HAProxy on loopback
## (the dashboard through the load balancer at http://127.0.0.1:8080/), and
## the demo backend on 127.0.0.1:9090 that the hubs forward the app's
## callbacks to (its log in .cluster/backend.log); FORWARD=off: none
cluster-up: build
	$(GO) build -trimpath -o bin/hubdemo ./cmd/hubdemo
	CALLBACK_TOKEN='$(CALLBACK_TOKEN)' deploy/local/cluster.sh up

cluster-down:
	deploy/local/cluster.sh down

# The client's tests need a WebSocket in node: Node 22 has one, Node 20
# behind a flag. Evaluated when used, after deps has installed node.
NODE_TEST = node $(shell node --experimental-websocket -e 0 >/dev/null 2>&1 && echo --experimental-websocket) --test --test-timeout=120000
# Node packages the tests use, installed here, not globally, in one npm call
# (a second --no-save install would prune the first): tsc checks the
# client's type declarations; tls-sig-api-v2, the IM's own UserSig library,
# checks the hub's UserSig verifier.
NODE_PKGS := typescript@5.9 tls-sig-api-v2@1.0.2
NODE_STAMP := .cache/node/installed-$(subst @,-,$(subst $() ,+,$(NODE_PKGS)))
TSC := .cache/node/node_modules/.bin/tsc

$(NODE_STAMP):
	npm install --prefix .cache/node --no-save --no-audit --no-fund $(NODE_PKGS)
	touch $@

## test: every test, with the race detector; screenshots in test-output/
test: deps $(NODE_STAMP)
	$(GO) vet ./...
	$(TSC) -p web/sdk/typecheck
	$(NODE_TEST) web/jstest/
	mkdir -p test-output
	IMHUB_REQUIRE_NODE_TESTS=1 $(GO) test -race -count=1 -artifacts -outputdir $(CURDIR)/test-output ./...

## test-failover: the chaos and failover tests of real processes (hubs,
## Redis, Sentinel, Cluster), FAILOVER_COUNT times in a row (3): each run
## must end with every acknowledged event delivered, or its client told
FAILOVER_COUNT ?= 3
test-failover: deps
	$(GO) test -race -count=$(FAILOVER_COUNT) -timeout 60m -run '^(TestChaos|TestRedisClusterFailover|TestRedisClusterPrimaryRestart|TestSentinelFailover.*|TestClusterFailover.*)$$' ./cmd/hub/

## lint: formatting and vet, also for Windows and macOS: the hub builds on
## every system Go supports but js/wasm (where the WebSocket library has no
## server), and its tests and tools on these two as well
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=windows $(GO) vet ./...
	GOOS=darwin $(GO) vet ./...

## bench: Go benchmarks of the hot paths, then a short load run with Redis
## (the presets of BENCHMARKS.md: ./bin/hubbench -preset fanout -start -redis)
bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) build -trimpath -o bin/hubbench ./cmd/hubbench
	./bin/hubbench -start -redis -conns 2000 -channels 20 -rate 100 -duration 10s

## bench-compare: imhub, Centrifugo and a bare program (the floor) under the
## same load in turns, each with a Redis of its own, and their ratios
## (BENCHMARKS.md): the spread load, then one busy room (bench-room below);
## installs Centrifugo with the Go toolchain into CENTRIFUGO_DIR the first
## time. COMPARE="-conns 5000 -duration 20s" for less, COMPARE="-rounds 3" to
## measure each server three times in turns (medians); ROOM as for bench-room
CENTRIFUGO_VERSION ?= v6.9.1
CENTRIFUGO_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/imhub/centrifugo/$(CENTRIFUGO_VERSION)
COMPARE ?=
bench-compare: build centrifugo
	./bin/hubbench -preset compare -centrifugo-bin $(CENTRIFUGO_DIR)/centrifugo $(COMPARE)
	./bin/hubbench -preset room -centrifugo-bin $(CENTRIFUGO_DIR)/centrifugo $(ROOM)

## bench-room: one channel with every client in it, at message rates stepped
## past the knees (2,000 clients at 10, 25, 50 and 100/s; 10,000 at 5 and
## 10/s), imhub, Centrifugo and the floor in turns, with the spread of
## per-client latency (BENCHMARKS.md, "One busy room"). ROOM="-rounds 2"
## measures each twice in turns; ROOM="-room-steps 2000:25,50" other steps;
## ROOM="-targets imhub,floor" without Centrifugo
ROOM ?=
bench-room: build centrifugo
	./bin/hubbench -preset room -centrifugo-bin $(CENTRIFUGO_DIR)/centrifugo $(ROOM)

# centrifugo: Centrifugo installed with the Go toolchain, its target's test
# passed, redis-server present, and hubbench built: what bench-compare and
# bench-room need
centrifugo:
	@command -v redis-server >/dev/null || { $(APT) update && $(APT) install -y redis-server; }
	@test -x $(CENTRIFUGO_DIR)/centrifugo || { echo "installing Centrifugo $(CENTRIFUGO_VERSION) into $(CENTRIFUGO_DIR)"; \
	  GOBIN=$(CENTRIFUGO_DIR) $(GO) install github.com/centrifugal/centrifugo/v6@$(CENTRIFUGO_VERSION); }
	$(GO) build -trimpath -o bin/hubbench ./cmd/hubbench
	CENTRIFUGO_BIN=$(CENTRIFUGO_DIR)/centrifugo $(GO) test -tags centrifugo -count=1 -run '^TestCentrifugoTarget$$' ./cmd/hubbench

## soak: two hubs and Redis under mixed traffic for SOAK (1h; SOAK=10m for
## less), Redis restarted on the way; fails if a hub's memory, goroutines or
## open files or Redis's memory keep growing, or a steady client misses an
## event (BENCHMARKS.md, "Soak"; the tool is cmd/hubsoak)
soak: deps build
	$(GO) build -trimpath -o bin/hubsoak ./cmd/hubsoak
	./bin/hubsoak -duration $(SOAK)

## fuzz: each fuzz target for FUZZTIME
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./callback
	$(GO) test -run '^$$' -fuzz '^FuzzHandler$$' -fuzztime $(FUZZTIME) ./callback
	$(GO) test -run '^$$' -fuzz '^FuzzParseMatchesReference$$' -fuzztime $(FUZZTIME) ./callback
	$(GO) test -run '^$$' -fuzz '^FuzzScan$$' -fuzztime $(FUZZTIME) ./callback
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) ./hub/wsframe
	$(GO) test -run '^$$' -fuzz '^FuzzUserSig$$' -fuzztime $(FUZZTIME) ./hub/auth
	$(GO) test -run '^$$' -fuzz '^FuzzAgainstGobwas$$' -fuzztime $(FUZZTIME) ./hub/wsframe

## deps: system packages the tests use (redis-server, chromium, node, npm, curl,
## haproxy, and promtool from Debian's prometheus package)
deps:
	@missing=""; \
	  command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	  command -v chromium >/dev/null || missing="$$missing chromium"; \
	  command -v node >/dev/null || missing="$$missing nodejs"; \
	  command -v npm >/dev/null || missing="$$missing npm"; \
	  command -v curl >/dev/null || missing="$$missing curl"; \
	  command -v haproxy >/dev/null || missing="$$missing haproxy"; \
	  if [ -n "$$missing" ]; then \
	    echo "installing$$missing"; \
	    $(APT) update && $(APT) install -y $$missing; \
	  fi
	@# promtool checks the alert rules; the package would also start a
	@# Prometheus server where services start, and recommends node-exporter.
	@command -v promtool >/dev/null || { echo "installing prometheus (for promtool)"; \
	  $(APT) update && $(APT) install -y --no-install-recommends prometheus; }

clean:
	rm -rf bin test-output .cluster .cache
