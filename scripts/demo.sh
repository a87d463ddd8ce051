#!/usr/bin/env bash
# Run the sample order end to end through Airflow and say where everything ended up.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export FACEFACTORY_HOME="${FACEFACTORY_HOME:-$REPO/var}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$FACEFACTORY_HOME/airflow}"
export PATH="$REPO/.venv/bin:$PATH"
INPUTS="${FACEFACTORY_INPUT_ROOTS:-$FACEFACTORY_HOME/inputs}"
INPUTS="${INPUTS%%:*}"
ORDER_ID="${ORDER_ID:-demo-$(date -u +%Y%m%d-%H%M%S)}"
LOG="$FACEFACTORY_HOME/logs/$ORDER_ID.log"
mkdir -p "$FACEFACTORY_HOME/logs"

echo "[demo] running order $ORDER_ID (log: $LOG)"
START=$(date +%s)
if ! facefactory order run --order-id "$ORDER_ID" \
      --source "file://$INPUTS/sample/source.png" --target "file://$INPUTS/sample/target.mp4" \
      "$@" >"$LOG" 2>&1; then
  tail -n 25 "$LOG"
  echo "[demo] order $ORDER_ID FAILED (full log: $LOG)" >&2
  exit 1
fi
SECONDS_TAKEN=$(( $(date +%s) - START ))
URI="$(tail -n 1 "$LOG")"
WORK="$FACEFACTORY_HOME/work/orders/$ORDER_ID"
python - "$WORK" "$URI" "$SECONDS_TAKEN" "$FACEFACTORY_HOME/lineage/openlineage.jsonl" "$ORDER_ID" <<'PY'
import json, sys
from pathlib import Path

work, uri, took, lineage, order_id = Path(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4]), sys.argv[5]
validation = json.loads((work / "quality" / "validation.json").read_text())
summary = validation.get("meta", {}).get("facefactory", {}).get("summary", {})
events = [l for l in lineage.read_text().splitlines() if order_id in l] if lineage.exists() else []
print()
print(f"order {order_id}: published in {took}s (whole run through Airflow)")
print(f"  output video   : {uri}")
print(f"  QA report      : {work / 'report' / 'index.html'}")
print(f"  QA metrics     : {work / 'quality' / 'validation.json'}  (per frame: {work / 'swapped'}/*/metrics.json)")
print(f"  lineage events : {lineage}  ({len(events)} OpenLineage events for this order)")
print("  gate summary   : " + ", ".join(f"{k}={summary[k]}" for k in sorted(summary)
                                       if k not in ("thresholds", "failed_expectations")))
PY
