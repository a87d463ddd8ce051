#!/usr/bin/env bash
# facefactory set-up for the embedded default (idempotent: re-running only redoes what changed).
#  - system ffmpeg (apt) if missing
#  - Python 3.11 virtualenv at .venv with the pinned requirements, the repo and the engine
#  - Airflow config + metadata DB (SQLite) under $AIRFLOW_HOME, pool gpu_swaps
#  - the sample order's media under the first input root
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
VENV="$REPO/.venv"
export FACEFACTORY_HOME="${FACEFACTORY_HOME:-$REPO/var}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$FACEFACTORY_HOME/airflow}"
INPUTS="${FACEFACTORY_INPUT_ROOTS:-$FACEFACTORY_HOME/inputs}"
INPUTS="${INPUTS%%:*}"
SAMPLE_SECONDS="${SAMPLE_SECONDS:-4}"
SAMPLE_SIZE="${SAMPLE_SIZE:-1280x720}"
GPU_SWAP_SLOTS="${FACEFACTORY_SWAP_SLOTS:-${GPU_SWAP_SLOTS:-2}}"  # pool size = FACEFACTORY_SWAP_SLOTS (auto chunk size uses it too)

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# 1. ffmpeg --------------------------------------------------------------------------------
if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  say "installing ffmpeg (apt)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg >/dev/null
fi

# 1b. test tools (only for `make test` / CI): headless Chromium for the UI-form and QA-report tests
if [ "${FACEFACTORY_TEST_TOOLS:-0}" = "1" ] && ! command -v chromium >/dev/null; then
  say "installing chromium (apt) for the browser tests"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

# 2. virtualenv ----------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  PY=""
  for cand in python3.11 "$HOME/.pyenv/versions/3.11"*/bin/python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY="$cand"; break
    fi
  done
  if [ -z "$PY" ]; then
    say "Python 3.11 not found: installing it (apt)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3.11 python3.11-venv >/dev/null
    PY=python3.11
  fi
  say "creating $VENV with $("$PY" --version)"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi

STAMP="$VENV/.facefactory-install"
WANT="$(cat requirements.txt pyproject.toml images/worker/pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ] || ! "$VENV/bin/python" -c 'import faceworker, facefactory.operators, facefactory.quality, airflow' 2>/dev/null; then
  say "installing Python packages (pinned, CPU only)"
  "$VENV/bin/pip" install -q -r requirements.txt
  "$VENV/bin/pip" install -q --no-deps insightface==2.1   # sample faces only (no torch, no weights)
  "$VENV/bin/pip" install -q --no-deps -e . -e images/worker
  echo "$WANT" > "$STAMP"
else
  say "Python packages up to date"
fi

# 3. Airflow (embedded default) -------------------------------------------------------------
mkdir -p "$FACEFACTORY_HOME/lineage" "$FACEFACTORY_HOME/published" "$FACEFACTORY_HOME/work" \
         "$FACEFACTORY_HOME/models" "$INPUTS"
"$VENV/bin/python" scripts/render_airflow_cfg.py --airflow-home "$AIRFLOW_HOME" --facefactory-home "$FACEFACTORY_HOME" >/dev/null
export PATH="$VENV/bin:$PATH"
if [ ! -f "$AIRFLOW_HOME/.facefactory-db-ready" ]; then
  say "migrating the Airflow metadata DB in $AIRFLOW_HOME"
  airflow db migrate >/dev/null
  date -u +%FT%TZ > "$AIRFLOW_HOME/.facefactory-db-ready"
fi
airflow pools set gpu_swaps "$GPU_SWAP_SLOTS" "GPU swap slots: chunks swapped at once" >/dev/null

# 4. sample order -------------------------------------------------------------------------------
if [ ! -s "$INPUTS/sample/target.mp4" ] || [ ! -s "$INPUTS/sample/source.png" ]; then
  say "writing the sample order (${SAMPLE_SECONDS}s at ${SAMPLE_SIZE}) to $INPUTS/sample"
  faceworker sample --out "$INPUTS/sample" --seconds "$SAMPLE_SECONDS" --size "$SAMPLE_SIZE" 2>/dev/null >/dev/null
fi
say "ready: venv $VENV, AIRFLOW_HOME $AIRFLOW_HOME, FACEFACTORY_HOME $FACEFACTORY_HOME"
