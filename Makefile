# icebreaker: the two commands a newcomer needs are `make run` and `make test`.
GO ?= go
BIN := bin/icebreaker

.PHONY: build run test test-deps cross fuzz bench bench-turn bench-ice bench-rendezvous bench-peer clean

# VERSION comes from git describe; outside a git checkout it is empty and the
# binary reports its Go build information instead (internal/version).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
LDFLAGS := -X github.com/icebreaker-net/icebreaker/internal/version.Stamp=$(VERSION)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/icebreaker

# Build and start the server with the embedded default configuration.
run: build
	./$(BIN) serve

# Install what the tests need (Debian packages), then run the whole suite.
test: test-deps cross
	gofmt -l . | tee /dev/stderr | (! read _)
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...
	cd test/interop && $(GO) vet ./... && $(GO) test -race -count=1 ./...

test-deps:
	bash scripts/install-test-deps.sh

# The tree (tests included) builds and vets for macOS and Windows too: there
# internal/udpio takes its portable path (plain net.UDPConn, no epoll/GSO).
cross:
	GOOS=darwin $(GO) vet ./...
	GOOS=windows $(GO) vet ./...

# Short fuzzing pass over every fuzz target (FUZZTIME per target).
FUZZTIME ?= 20s
fuzz:
	bash scripts/fuzz.sh $(FUZZTIME)

bench:
	bash bench/stun/run.sh

bench-turn:
	bash bench/turn/run.sh

# ICE time to connected through the NAT lab, icebreaker against pion (root).
bench-ice:
	bash bench/ice/run.sh

# Rendezvous (magic-wormhole mailbox) server against the reference Python server.
bench-rendezvous:
	bash bench/rendezvous/run.sh

# File transfer: icebreaker direct and relayed against magic-wormhole and the
# quic-go ceiling, on loopback and through the NAT lab (root; MB=32 for a quick run).
bench-peer:
	bash bench/peer/run.sh

clean:
	rm -rf bin
