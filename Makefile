# paf: build, run and test entry points. CI runs `make test` (through .ci/run).
#
#   make build                  release build of the workspace
#   sudo make run [ARGS=...]    paf in a private netns on TAP paf0 (scripts/run); ARGS go to `paf run`
#   make test                   deps, format check, clippy, shellcheck, all tests, a short fuzz run
#   make test-smoltcp           the vendored, patched smoltcp's own suite (part of make test)
#   make fuzz [FUZZ_SECONDS=300] [FUZZ_TARGETS='request_head ...']   every fuzz target, one by one
#   make fmt / make lint        format in place / clippy + shellcheck
#   sudo make netns-up [NAME=paf-dev] [NETNS_OPTS=--dnsmasq]   a namespace to poke at by hand
#   sudo make netns-down [NAME=paf-dev]
#   sudo make bench             paf vs nginx vs paf on kernel sockets (~20 min): bench/results.*
#   sudo make bench-quick       the same, 1 round of short runs (~4.5 min); BENCH_ARGS=... for more
#
# End-to-end tests need root (netns + TAP). Without it they print `SKIP <test>: <reason>` and
# pass; PAF_REQUIRE_NETNS=1 (set by .ci/run) turns a skip into a failure.

CARGO ?= cargo
NAME ?= paf-dev
NETNS_OPTS ?=
ARGS ?=
# Extra options for scripts/bench, e.g. BENCH_ARGS='--only nginx,paf --rounds 5'.
BENCH_ARGS ?=
# Extra flags for `cargo test`, e.g. TEST_FLAGS=--release, or `-- --nocapture`.
TEST_FLAGS ?=
# Seconds per fuzz target: `make fuzz` (long), and the short run at the end of `make test`.
FUZZ_SECONDS ?= 300
FUZZ_TEST_SECONDS ?= 10
# Fuzz targets to run (empty: all of them; see scripts/fuzz).
FUZZ_TARGETS ?=
SCRIPTS := scripts/netns scripts/run scripts/install-deps scripts/bench scripts/fuzz fuzz/capture-seeds .ci/run

.PHONY: test-smoltcp build run test deps fmt fmt-check lint clippy shellcheck netns-up netns-down bench bench-quick fuzz

build:
	$(CARGO) build --workspace --release

run:
	scripts/run $(ARGS)

test: deps fmt-check lint
	$(CARGO) test --workspace $(TEST_FLAGS)
	$(MAKE) test-smoltcp
	scripts/fuzz $(FUZZ_TEST_SECONDS) $(FUZZ_TARGETS)

# The vendored smoltcp's own suite (its workspace, its Cargo.lock): upstream's tests plus paf's
# loss-recovery unit tests and scenarios (net/vendor/smoltcp/PATCHES.md), with the congestion
# controller and the segmentation offload paf builds it with.
test-smoltcp:
	cd net/vendor/smoltcp && $(CARGO) test --lib --features socket-tcp-cubic,segmentation-offload $(TEST_FLAGS)

# libFuzzer through cargo-fuzz (installed by scripts/fuzz); crashes land in fuzz/artifacts/.
fuzz: deps
	scripts/fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

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

# scripts/bench builds the release binary itself (as root: cargo must be in root's PATH, or
# build first with `make build` and pass BENCH_ARGS=--no-build).
bench: deps
	BENCH_COMMAND="$(strip make bench $(BENCH_ARGS))" scripts/bench $(BENCH_ARGS)

bench-quick: deps
	BENCH_COMMAND="$(strip make bench-quick $(BENCH_ARGS))" scripts/bench --quick $(BENCH_ARGS)
