#!/usr/bin/env bash
# Label a public sample (20 pairs of Anthropic's hh-rlhf, harmless-base test split) with a
# judge, then export the verdicts as a DPO dataset that TRL loads as it is.
#
#   examples/label_and_export_dpo.sh [OUT_DIR]          (default: ./example-dpo)
#
# Needs a provider key (ANTHROPIC_API_KEY, or OPENAI_API_KEY with JUDGE=openai:gpt-4o-mini).
# Writes its own SQLite database in OUT_DIR unless REFEREE_DATABASE_URL is set.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$(mkdir -p "${1:-example-dpo}" && cd "${1:-example-dpo}" && pwd)"
JUDGE="${JUDGE:-anthropic:claude-sonnet-4-6}"
export REFEREE_DATABASE_URL="${REFEREE_DATABASE_URL:-sqlite:///$OUT/referee.db}"

referee db upgrade
# hh-rlhf transcripts are detected; the human's choice is stored as gold beside the verdicts.
referee label "$ROOT/tests/data/hh-rlhf/harmless-base.test.head20.jsonl" --judge "$JUDGE" \
  --batch hh-rlhf-sample --rejects "$OUT/rejects.jsonl"
# Only pairs the judge decided the same way in both orders; a train/test split by prompt.
referee export dpo --batch hh-rlhf-sample --consistent-only --out "$OUT/dpo" \
  --test-size 0.2 --split-by prompt --overwrite
referee export dpo --batch hh-rlhf-sample --consistent-only --format parquet \
  --out "$OUT/dpo.parquet" --overwrite
echo "DPO dataset in $OUT/dpo (train.jsonl, test.jsonl, README.md) and $OUT/dpo.parquet"
