#!/usr/bin/env bash
# ONNX model-pack path on onnxruntime's CUDA vs CPU execution provider, for a lent GPU machine with no
# internet (benchmarks/onnx_providers.py does the work; see benchmarks/README.md).
#
# Expects python3 with numpy, opencv-python-headless, onnx and torch (+cu13: its nvidia-* pip
# packages bring the CUDA 13 runtime and cuDNN 9). The onnxruntime-gpu wheel (and dlib-bin, not
# needed here) are carried under .whl/ (layouts below) and installed with
#   pip install --no-index --no-deps --target /tmp/site
# then put first on PYTHONPATH, so it shadows a CPU-only onnxruntime. A /tmp/site that already has
# onnxruntime's CUDA provider (an earlier run on the same machine) is used as is.
#
#   bash benchmarks/device/gpu_bench.sh            # writes $OUT/onnx_providers_h100.{json,log}
#
# Knobs (environment): OUT (default benchmarks/results), PYTHON (python3), SITE (/tmp/site),
# WHEEL_DIR (.whl), FRAMES (30 timed calls per stage on CUDA), CPU_FRAMES (3), BENCH_TIMEOUT (300 s).
# Exit status: the benchmark's (3 = CUDA requested but not used), or 4 if the JSON says CUDA was not used.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PY=${PYTHON:-python3}
OUT=${OUT:-$PWD/benchmarks/results}
SITE=${SITE:-/tmp/site}
WHEEL_DIR=${WHEEL_DIR:-.whl}
FRAMES=${FRAMES:-30}
CPU_FRAMES=${CPU_FRAMES:-3}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-300}
mkdir -p "$OUT"

main() {
set -euo pipefail  # main runs in the pipeline's subshell below
t_start=$(date +%s)
echo "== gpu_bench.sh $(date -u +%FT%TZ) in $PWD, OUT=$OUT"

# -- onnxruntime-gpu (and whatever else is carried) into $SITE -----------------------------------------
# Looked for anywhere under $WHEEL_DIR (depth <= 3, e.g. .whl/p1/, .whl/p2/ ... carried by separate calls):
#   *.whl                          whole wheels (onnxruntime_gpu-*.whl, dlib_bin-*.whl)
#   NAME.whl.<suffix>              pieces of one wheel, joined in version-sorted order (NAME.whl.sha256 checked)
#   ort_rest.tar.xz + cudaxz.<i>   onnxruntime-gpu unpacked: the package without
#     (+ cuda.so.xz.sha256)        capi/libonnxruntime_providers_cuda.so, and that library xz-compressed
#                                  and split; joined, checked, decompressed into $SITE/onnxruntime/capi/
found() {  # found PATTERN: files under $WHEEL_DIR named PATTERN, version-sorted by file name
  [ -d "$WHEEL_DIR" ] || return 0
  find -L "$WHEEL_DIR" -maxdepth 3 -type f -name "$1" -printf '%f\t%p\n' | sort -V | cut -f2
}
sha_check() {  # sha_check FILE SUMFILE: first field of SUMFILE must be FILE's sha256
  local want got
  want=$(awk '{print $1; exit}' "$2")
  got=$(sha256sum "$1" | awk '{print $1}')
  if [ "$want" != "$got" ]; then
    echo "sha256 mismatch for $1 (pieces missing or damaged?): expected $want, got $got"
    exit 2
  fi
  echo "sha256 ok: $1"
}
ort_cuda_so="$SITE/onnxruntime/capi/libonnxruntime_providers_cuda.so"
mapfile -t wheels < <(found '*.whl')
declare -A bases=()
while IFS= read -r piece; do
  case "$piece" in *.sha256) continue ;; esac
  bases["${piece%.whl.*}.whl"]=1
done < <(found '*.whl.*')
for base in "${!bases[@]}"; do
  name=$(basename "$base")
  mapfile -t pieces < <(found "$name.*" | grep -v '\.sha256$')
  mkdir -p /tmp/wheels
  echo "joining /tmp/wheels/$name from ${#pieces[@]} pieces: ${pieces[*]}"
  cat "${pieces[@]}" > "/tmp/wheels/$name"
  sumfile=$(found "$name.sha256" | head -n 1)
  if [ -n "$sumfile" ]; then sha_check "/tmp/wheels/$name" "$sumfile"; fi
  wheels+=("/tmp/wheels/$name")
done
if [ -f "$ort_cuda_so" ]; then
  echo "$SITE already has onnxruntime with the CUDA provider: not installing onnxruntime again"
  mapfile -t wheels < <(printf '%s\n' "${wheels[@]}" | grep -v -e '/onnxruntime_gpu-' -e '^$' || true)
fi
if [ "${#wheels[@]}" -gt 0 ]; then
  for w in "${wheels[@]}"; do "$PY" -m zipfile -t "$w" > /dev/null || { echo "broken wheel: $w"; exit 2; }; done
  echo "installing into $SITE: ${wheels[*]}"
  if "$PY" -m pip --version > /dev/null 2>&1; then
    "$PY" -m pip install --no-index --no-deps --target "$SITE" "${wheels[@]}"
  else  # no pip: a wheel is a zip of its files as installed (no scripts needed here)
    echo "no pip for $PY: unzipping the wheels into $SITE instead"
    "$PY" -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]' "$SITE" "${wheels[@]}"
  fi
fi
rest=$(found 'ort_rest.tar.xz' | head -n 1)
mapfile -t cuda_pieces < <(found 'cudaxz.*' | grep -v '\.sha256$' || true)
if [ ! -f "$ort_cuda_so" ] && [ -n "$rest" ] && [ "${#cuda_pieces[@]}" -gt 0 ]; then
  echo "assembling onnxruntime-gpu in $SITE from $rest + ${#cuda_pieces[@]} pieces: ${cuda_pieces[*]}"
  mkdir -p "$SITE" /tmp/ortparts
  cat "${cuda_pieces[@]}" > /tmp/ortparts/cuda.so.xz
  sumfile=$(found 'cuda.so.xz.sha256' | head -n 1)
  if [ -n "$sumfile" ]; then sha_check /tmp/ortparts/cuda.so.xz "$sumfile"; else echo "no cuda.so.xz.sha256: not checked"; fi
  "$PY" - "$rest" /tmp/ortparts/cuda.so.xz "$SITE" <<'EOF'
import lzma, shutil, sys, tarfile
from pathlib import Path
rest, xz, site = sys.argv[1], sys.argv[2], Path(sys.argv[3])
with tarfile.open(rest, "r:xz") as tf:
    tf.extractall(site, filter="data") if hasattr(tarfile, "data_filter") else tf.extractall(site)
so = site / "onnxruntime" / "capi" / "libonnxruntime_providers_cuda.so"
tmp = so.with_suffix(".so.part")
with lzma.open(xz) as src, open(tmp, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 24)
tmp.replace(so)
print(f"wrote {so} ({so.stat().st_size / 1e6:.1f} MB)")
EOF
  rm -f /tmp/ortparts/cuda.so.xz
elif [ ! -f "$ort_cuda_so" ]; then
  echo "no onnxruntime-gpu under $WHEEL_DIR (whole, pieces, or ort_rest.tar.xz + cudaxz.*) and none in $SITE:" \
       "python3's own onnxruntime is used (found: rest='${rest}', ${#cuda_pieces[@]} cudaxz pieces)"
fi
if [ -d "$SITE" ]; then
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi

# -- CUDA 13 / cuDNN 9 from torch's nvidia-* pip packages (nvidia/cu13/lib, nvidia/cudnn/lib, ...) ----
nv_libs=$("$PY" - <<'EOF'
import glob, os, site, sys
roots = []
for p in [*site.getsitepackages(), site.getusersitepackages(), *sys.path]:
    if p and os.path.isdir(p) and p not in roots:
        roots.append(p)
dirs = []
for r in roots:
    for d in sorted(glob.glob(os.path.join(r, "nvidia", "*", "lib"))):
        if d not in dirs and glob.glob(os.path.join(d, "*.so*")):
            dirs.append(d)
print(":".join(dirs))
EOF
)
export LD_LIBRARY_PATH="${nv_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

# -- what is there -----------------------------------------------------------------------------------
nvidia-smi || echo "nvidia-smi failed or missing"
"$PY" --version
"$PY" - <<'EOF' || true
import onnxruntime as ort, numpy, os
print("onnxruntime", ort.__version__, "from", os.path.dirname(ort.__file__))
print("available providers", ort.get_available_providers())
print("numpy", numpy.__version__)
EOF
cuda_so=$ort_cuda_so
if [ ! -f "$cuda_so" ]; then
  cuda_so=$("$PY" -c "import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi', 'libonnxruntime_providers_cuda.so'))" 2>/dev/null || true)
fi
if [ -n "$cuda_so" ] && [ -f "$cuda_so" ]; then
  echo "ldd $cuda_so (unresolved libraries, if any):"
  ldd "$cuda_so" | grep "not found" || echo "  none"
fi
for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libcufft.so.12 libcudnn.so.9; do
  where=""
  for d in ${LD_LIBRARY_PATH//:/ }; do
    if [ -e "$d/$lib" ]; then where=$d; break; fi
  done
  echo "  $lib: ${where:-not on LD_LIBRARY_PATH}"
done

# -- preflight: does a one-node model get CUDA? if not, does onnxruntime.preload_dlls() help? -----------
preflight() {
  "$PY" - "$@" <<'EOF'
import sys
import numpy as np, onnx, onnxruntime as ort
from onnx import TensorProto, helper
if "--preload" in sys.argv:
    ort.preload_dlls()
g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "pre",
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]); m.ir_version = 9
s = ort.InferenceSession(m.SerializeToString(), providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
s.run(None, {"x": np.ones((1, 4), np.float32)})
print("preflight session providers:", s.get_providers())
sys.exit(0 if s.get_providers()[0] == "CUDAExecutionProvider" else 1)
EOF
}
extra=()
if preflight; then
  echo "preflight: CUDA ok"
elif preflight --preload; then
  echo "preflight: CUDA only after onnxruntime.preload_dlls(): passing --preload-dlls"
  extra+=(--preload-dlls)
else
  echo "preflight: CUDA NOT usable (the benchmark will say why, then this script fails)"
fi

# -- the benchmark ---------------------------------------------------------------------------------------
set +e
PYTHONUNBUFFERED=1 timeout "$BENCH_TIMEOUT" "$PY" benchmarks/onnx_providers.py --providers cpu,cuda \
  --frames "$FRAMES" --cpu-frames "$CPU_FRAMES" --require-cuda --out "$OUT/onnx_providers_h100.json" "${extra[@]}" \
  2>&1 | tee "$OUT/onnx_providers_h100.log"
rc=${PIPESTATUS[0]}
set -e
echo "benchmark exit status $rc after $(( $(date +%s) - t_start )) s"
if [ "$rc" -ne 0 ]; then
  exit "$rc"
fi
"$PY" - "$OUT/onnx_providers_h100.json" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
cuda = doc["providers"].get("cuda", {})
print("sessions on:", json.dumps(cuda.get("session_providers")))
if not doc["cuda"]["used"]:
    print("CUDA EXECUTION PROVIDER WAS NOT USED:", cuda.get("skipped"))
    sys.exit(4)
EOF
echo "== done in $(( $(date +%s) - t_start )) s; results in $OUT"
}

set +e
main 2>&1 | tee -a "$OUT/gpu_bench.log"
exit "${PIPESTATUS[0]}"
