#!/usr/bin/env bash
# Constitutional AI: critique and revise responses to red-team prompts under the shipped
# harmlessness constitution, then export the run as SFT rows (the final responses) and DPO
# pairs (revision preferred to the original).
#
#   examples/cai_revise_sft_dpo.sh [OUT_DIR]            (default: ./example-cai)
#
# Needs a provider key (ANTHROPIC_API_KEY; JUDGE and GENERATOR choose the models).
# Writes its own SQLite database in OUT_DIR unless REFEREE_DATABASE_URL is set.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$(mkdir -p "${1:-example-cai}" && cd "${1:-example-cai}" && pwd)"
JUDGE="${JUDGE:-anthropic:claude-sonnet-4-6}"
GENERATOR="${GENERATOR:-$JUDGE}"
export REFEREE_DATABASE_URL="${REFEREE_DATABASE_URL:-sqlite:///$OUT/referee.db}"

referee db upgrade
referee constitutions show harmlessness --json > "$OUT/constitution.json"
# Lines without a response get one from the generator first.
referee revise "$ROOT/examples/data/red-team.jsonl" --constitution harmlessness \
  --judge "$JUDGE" --generator "$GENERATOR" --rounds 2 --seed 7
referee export sft --source revisions --out "$OUT/sft.jsonl" --overwrite
referee export dpo --source revisions --out "$OUT/dpo.jsonl" --overwrite
echo "SFT rows in $OUT/sft.jsonl, DPO pairs in $OUT/dpo.jsonl"
