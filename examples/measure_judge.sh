#!/usr/bin/env bash
# Measure a judge against human labels: judge 200 PandaLM items (each carries three
# annotators' votes, whose majority is stored as gold) and 20 LLMBar items, then write the
# report as JSON and as one self-contained HTML page (set OPEN_REPORT=1 to open it).
#
#   examples/measure_judge.sh [OUT_DIR]                 (default: ./example-report)
#
# Needs a provider key (OPENAI_API_KEY; JUDGE chooses the model) and the `report` extra.
# Writes its own SQLite database in OUT_DIR unless REFEREE_DATABASE_URL is set.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$(mkdir -p "${1:-example-report}" && cd "${1:-example-report}" && pwd)"
JUDGE="${JUDGE:-openai:gpt-4o-mini}"
export REFEREE_DATABASE_URL="${REFEREE_DATABASE_URL:-sqlite:///$OUT/referee.db}"

referee db upgrade
# PandaLM holds a few empty and identical answers; judge them as they are, so the judge is
# measured on the whole sample (the defaults would reject or tie them without a call).
referee label "$ROOT/tests/data/pandalm/testset-v1.head200.json" --judge "$JUDGE" \
  --batch pandalm-200 --empty judge --identical judge --rejects "$OUT/rejects.jsonl"
referee label "$ROOT/tests/data/llmbar/llmbar_natural.head20.json" --judge "$JUDGE" \
  --batch llmbar-20 --rejects "$OUT/rejects.jsonl"
referee report --judge "$JUDGE"
referee report --judge "$JUDGE" --json > "$OUT/report.json"
referee report --judge "$JUDGE" --html "$OUT/report.html"
echo "report in $OUT/report.json and $OUT/report.html"
if [ "${OPEN_REPORT:-0}" = 1 ]; then
  python -m webbrowser "file://$OUT/report.html"
fi
