#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/ against the real Libp2p, Gossipsub, Registry, RTC, SFU,
# QoS and Rewards modules and runs each one.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (make fuzz FUZZ_SECONDS=300)
# The package modules are compiled with -sanitize=fuzzer,address into .build-fuzz/, then each
# Fuzz/<Name>.swift is linked with libFuzzer's main. Crashes land in fuzz-out/<Name>/; add each
# one to Fixtures/fuzz-regressions/<Name>/ so the regression test replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-120}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(MultiaddrFuzz MultistreamFuzz NoiseFrameFuzz YamuxFrameFuzz GossipRPCFuzz RegistrySyncFuzz
                                STUNFuzz RTPFuzz SDPFuzz QoSFuzz ReceiptFuzz)

SCRATCH=.build-fuzz
for module in Libp2p Gossipsub Registry RTC SFU QoS Rewards; do
    swift build -c release --scratch-path "$SCRATCH" --target "$module" \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing
done
BIN="$SCRATCH/release"
OBJECTS=$(find "$BIN/Libp2p.build" "$BIN/Gossipsub.build" "$BIN/Registry.build" "$BIN/Identity.build" "$BIN/SwiftProtobuf.build" \
    "$BIN/RTC.build" "$BIN/SFU.build" "$BIN/QoS.build" "$BIN/Rewards.build" -name '*.o')
mkdir -p fuzz-out
# Swift's own crash backtracer faults under ASan ("unknown-crash in memserver_read") and hides
# the trap; without it libFuzzer prints the real stack.
export SWIFT_BACKTRACE=enable=no
for target in "${TARGETS[@]}"; do
    exe="fuzz-out/$target"
    # RTC links OpenSSL (DTLS, the EVP SRTP protector) and libsrtp2; their module maps sit beside CSodium's.
    swiftc -O -parse-as-library -sanitize=fuzzer,address -I "$BIN/Modules" -I Sources/CSodium -I Sources/COpenSSL -I Sources/CSRTP \
        "Fuzz/$target.swift" $OBJECTS -lsodium -lssl -lcrypto -lsrtp2 -o "$exe" 2> >(grep -v "Cannot export local symbol" >&2)
    corpus="fuzz-out/$target-corpus"
    mkdir -p "$corpus" "fuzz-out/$target-crashes"
    [ -d "Fixtures/fuzz-regressions/$target" ] && cp -n Fixtures/fuzz-regressions/"$target"/* "$corpus"/ 2>/dev/null || true
    echo "== $target for ${SECONDS_PER_TARGET}s"
    "$exe" -max_total_time="$SECONDS_PER_TARGET" -artifact_prefix="fuzz-out/$target-crashes/" -print_final_stats=1 "$corpus" 2>&1 \
        | grep -E "^#[0-9]+ *DONE|stat::number_of_executed_units|ERROR|SUMMARY" || true
done
