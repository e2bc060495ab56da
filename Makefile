# drtc — two commands on a fresh Debian machine with Swift:
#   make run    install what a node needs, build release, run a node with the defaults
#   make test   install what the tests need, run swift test and the Python interop tier
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The GStreamer webrtcbin peer of the media interop tests (Tests/Interop/gst_webrtc_peer.py runs
# under Debian's python3 with python3-gi): webrtcbin (bad), libnice ICE, VP8 (good), Opus and
# the test sources (base), and the GObject bindings of all three.
GSTREAMER_PACKAGES := gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-nice \
	gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0 python3-gi
APT_PACKAGES := pkg-config libsodium-dev liblmdb-dev libsrtp2-dev libssl-dev protobuf-compiler lmdb-utils wrk chromium chromium-driver nftables iproute2 faketime \
	$(GSTREAMER_PACKAGES)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VENV := .venv
PY_REQUIREMENTS := Tests/Interop/requirements.txt
RUN_ARGS ?=

.PHONY: help deps venv build build-release build-test run test swift-test interop bench bench-anchor fuzz proto clean

help:
	@echo "make run     build (release) and run a node: API on 127.0.0.1:8080, data in ./drtc-data"
	@echo "make test    swift test + Python interop tier (installs apt packages and a venv)"
	@echo "make bench   release benchmarks (one JSON line each)"
	@echo "make bench-anchor  sfu-forward side by side with the Pion anchor (quiet machine)"
	@echo "make fuzz    libFuzzer on every untrusted-input decoder, FUZZ_SECONDS each (default 180)"

# Installs only what is missing, so repeated runs cost nothing.
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# The venv is rebuilt when the pinned requirements change.
$(VENV)/.stamp: $(PY_REQUIREMENTS)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r $(PY_REQUIREMENTS)
	touch $@

venv: $(VENV)/.stamp

build: deps
	swift build

build-release: deps
	swift build -c release --product drtc

run: build-release
	@echo "starting drtc: API on http://127.0.0.1:8080 (override with RUN_ARGS='--api HOST:PORT …'), Ctrl-C leaves gracefully"
	./.build/release/drtc node $(RUN_ARGS)

# `make test` builds once, optimised and testable, in its own folder (so `make run` and
# `make bench` keep a plain release build): the Swift suites and the Python tier then run the
# same binaries, and twenty nodes of the mesh tests cost a fraction of the CPU that debug
# builds did (README "Tests" has the figures behind this choice).
TEST_BUILD := .build-test
TEST_FLAGS := -c release -Xswiftc -enable-testing --scratch-path $(TEST_BUILD)

build-test: deps
	swift build $(TEST_FLAGS) --build-tests

# The suites' scratch files (LMDB environments, key files, data dirs: NSTemporaryDirectory())
# go to a folder of this run, removed afterwards whatever the result, so that repeated runs do
# not pile up in /tmp.
swift-test: build-test
	@scratch=$$(mktemp -d "$${TMPDIR:-/tmp}/drtc-swift-test-XXXXXX") && \
	echo "swift test $(TEST_FLAGS) --skip-build  (TMPDIR=$$scratch/)" && \
	TMPDIR="$$scratch/" swift test $(TEST_FLAGS) --skip-build; \
	rc=$$?; rm -rf "$$scratch"; exit $$rc

interop: build-test venv
	DRTC_BIN=$(CURDIR)/$(TEST_BUILD)/release/drtc $(VENV)/bin/pytest -q Tests/Interop

test: swift-test interop

bench: deps
	swift build -c release --product drtc-bench --product drtc
	./.build/release/drtc-bench

# Side by side with a third-party SFU (Pion v3 from Debian's Go packages, built offline into
# $(PION_ANCHOR_BUILD) on first use): the anchor's bench.sh runs pion-sfu on core 0 with
# GOMAXPROCS=1 and its load generator on core 1, then `drtc-bench sfu-forward`, which pins its
# engine (event loop + socket reader) to core 0 and its publisher to core 1 itself (bench.py's
# "stock" mode: it does not move drtc-bench's threads). About 4 minutes; run it on a quiet
# machine (load average < 1.5). ANCHOR_ARGS is passed on, e.g. ANCHOR_ARGS="--reps 1".
PION_ANCHOR ?= /work/shared/anchors/pion_sfu
PION_ANCHOR_BUILD ?= $${TMPDIR:-/tmp}/pion-anchor/build
bench-anchor: deps
	swift build -c release --product drtc-bench
	BUILD_DIR=$(PION_ANCHOR_BUILD) DRTC_BENCH=$(CURDIR)/.build/release/drtc-bench \
	  $(PION_ANCHOR)/bench.sh --drtc-before none --drtc-after stock $(ANCHOR_ARGS)

# libFuzzer targets for the decoders that read untrusted bytes (not part of CI):
# multiaddr, multistream-select, Noise frames + handshake, Yamux frames + session, Gossipsub RPCs
# (through the router), registry-sync frames, STUN + ICE-lite agent, RTP (parse and in-place
# rewrite) + compound RTCP incl. transport-cc + an SFU room fed RTP/RTCP, SDP parse + answer,
# QoS bundles, test signalling and sample series.
FUZZ_SECONDS ?= 180
fuzz: deps
	scripts/fuzz.sh $(FUZZ_SECONDS)

# Regenerates the committed Swift protobuf code. Needs protoc-gen-swift (swift-protobuf 1.39.0,
# `swift build -c release --product protoc-gen-swift` in a checkout of it) on PATH or in PROTOC_GEN_SWIFT.
PROTOC_GEN_SWIFT ?= $(shell command -v protoc-gen-swift)
proto: deps
	protoc --plugin=protoc-gen-swift=$(PROTOC_GEN_SWIFT) --swift_opt=Visibility=Public \
		--swift_out=Sources/Registry/Generated -I Specs Specs/registry.proto
	protoc --plugin=protoc-gen-swift=$(PROTOC_GEN_SWIFT) --swift_opt=Visibility=Public \
		--swift_out=Sources/QoS/Generated -I Specs Specs/qos.proto
	protoc --plugin=protoc-gen-swift=$(PROTOC_GEN_SWIFT) --swift_opt=Visibility=Public \
		--swift_out=Sources/Rewards/Generated -I Specs Specs/rewards.proto

clean:
	rm -rf .build $(TEST_BUILD) $(VENV)
