#!/usr/bin/env bash
# Runs loom's fuzz targets for a fixed time; exits non-zero if one crashes.
#   scripts/run-fuzz.sh BUILD_DIR SECONDS
# BUILD_DIR is a build configured with -DLOOM_FUZZ=ON (see `make fuzz`). The
# seed corpus is generated into BUILD_DIR/fuzz-corpus by fuzz_make_seeds; the
# fuzzer adds what it finds there, and writes any crashing input to
# BUILD_DIR/fuzz-artifacts/ (re-run one with: BUILD_DIR/bin/fuzz_model_readers FILE).
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 BUILD_DIR [SECONDS]" >&2
  exit 2
fi
build=$1
seconds=${2:-60}
case "$seconds" in
  ''|*[!0-9]*) echo "run-fuzz: SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;;
esac

fuzzer=$build/bin/fuzz_model_readers
tok_fuzzer=$build/bin/fuzz_tokenizer_readers
seeds=$build/bin/fuzz_make_seeds
for exe in "$fuzzer" "$tok_fuzzer" "$seeds"; do
  if [ ! -x "$exe" ]; then
    echo "run-fuzz: $exe not found; build with -DLOOM_FUZZ=ON first (make fuzz)" >&2
    exit 2
  fi
done

corpus=$build/fuzz-corpus/model_readers
artifacts=$build/fuzz-artifacts
mkdir -p "$corpus" "$artifacts"
"$seeds" "$corpus"

here=$(cd "$(dirname "$0")/.." && pwd)
# The time is shared: a third for the tokenizer file parsers, the rest for
# the model readers.
tok_seconds=$((seconds / 3))
seconds=$((seconds - tok_seconds))
echo "run-fuzz: fuzz_model_readers for ${seconds}s (corpus $corpus)" >&2
# -timeout: one input taking this long is a hang (reported as a failure).
# -rss_limit_mb: a parse that allocates this much is a failure too.
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
  -dict="$here/fuzz/gguf.dict" -artifact_prefix="$artifacts/" -print_final_stats=1 "$corpus"

# SentencePiece .model and tiktoken seeds: a one-piece ModelProto (piece "a",
# score -1, trainer model_type 2, normalizer add_dummy_prefix false) and
# three rank lines.
tok_corpus=$build/fuzz-corpus/tokenizer_readers
mkdir -p "$tok_corpus"
printf '\x0a\x0a\x0a\x01a\x15\x00\x00\x80\xbf\x18\x01\x12\x02\x18\x02\x1a\x02\x18\x00' > "$tok_corpus/one_piece.model"
printf 'IQ== 0\nIGE= 1\naGVsbG8= 2\n' > "$tok_corpus/ranks.tiktoken"
if [ "$tok_seconds" -gt 0 ]; then
  echo "run-fuzz: fuzz_tokenizer_readers for ${tok_seconds}s (corpus $tok_corpus)" >&2
  "$tok_fuzzer" -max_total_time="$tok_seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 "$tok_corpus"
fi
