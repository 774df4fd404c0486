# paf: build, run and test entry points. CI runs `make test` (through .ci/run).
#
#   make build                  release build of the workspace
#   sudo make run [ARGS=...]    paf in a private netns on TAP paf0 (scripts/run); ARGS go to `paf run`
#   make test                   deps, format check, clippy, shellcheck, all tests
#   make fmt / make lint        format in place / clippy + shellcheck
#   sudo make netns-up [NAME=paf-dev] [NETNS_OPTS=--dnsmasq]   a namespace to poke at by hand
#   sudo make netns-down [NAME=paf-dev]
#
# End-to-end tests need root (netns + TAP). Without it they print `SKIP <test>: <reason>` and
# pass; PAF_REQUIRE_NETNS=1 (set by .ci/run) turns a skip into a failure.

CARGO ?= cargo
NAME ?= paf-dev
NETNS_OPTS ?=
ARGS ?=
# Extra flags for `cargo test`, e.g. TEST_FLAGS=--release, or `-- --nocapture`.
TEST_FLAGS ?=
SCRIPTS := scripts/netns scripts/run scripts/install-deps .ci/run

.PHONY: build run test deps fmt fmt-check lint clippy shellcheck netns-up netns-down

build:
	$(CARGO) build --workspace --release

run:
	scripts/run $(ARGS)

test: deps fmt-check lint
	$(CARGO) test --workspace $(TEST_FLAGS)

deps:
	scripts/install-deps

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint: clippy shellcheck

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

shellcheck:
	shellcheck $(SCRIPTS)

netns-up:
	scripts/netns up $(NAME) $(NETNS_OPTS)

netns-down:
	scripts/netns down $(NAME)
