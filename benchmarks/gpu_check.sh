#!/usr/bin/env bash
# The GPU check: does `--device cuda` grade correctly, and how fast?
#
# Grades the reference and the bundled buggy example on CUDA and on the CPU (sandboxed, as
# `llm-grade grade` does by default), runs GPT's mixed-precision check on its own, and prints
# the scores side by side with the wall times. The reference must score 100 on both devices
# and the example the same on both; any difference is printed as MISMATCH and the script
# exits 1. Run it on a machine whose torch sees a GPU:
#
#   bash benchmarks/gpu_check.sh            # PYTHON=... to pick the interpreter
#
# GPU_CHECK_DEVICE=cpu runs the same steps with the CPU in CUDA's place (a dry run of the
# script itself on a machine without a GPU). It needs llm-grade installed in that interpreter (it installs it from this checkout, without
# dependencies, if it is not) and takes about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

DEVICE="$DEVICE" "$PY" - <<'EOF'
import os, sys
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"device: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
if os.environ["DEVICE"] == "cuda" and not torch.cuda.is_available():
    sys.exit("no CUDA device visible to torch: nothing to check")
EOF
"$PY" -c "import llm_grade" 2>/dev/null || "$PY" -m pip install -q --no-deps .

run() {  # name, then the llm-grade arguments; the wall time goes to $OUT/name.time
  local name=$1
  shift
  local start=$EPOCHREALTIME
  "$PY" -m llm_grade grade "$@" -q > "$OUT/$name.log" 2>&1 || {
    cat "$OUT/$name.log"
    echo "llm-grade grade $* failed"
    exit 1
  }
  echo "$start $EPOCHREALTIME" > "$OUT/$name.time"
}

run ref-cuda reference --device "$DEVICE" --out "$OUT/ref-cuda"
run ref-cpu reference --device cpu --out "$OUT/ref-cpu"
run buggy-cuda examples/buggy --device "$DEVICE" --out "$OUT/buggy-cuda"
run buggy-cpu examples/buggy --device cpu --out "$OUT/buggy-cpu"
run mixed-cuda reference --device "$DEVICE" -k GPT --out "$OUT/mixed-cuda"

OUT="$OUT" "$PY" - <<'EOF'
import json, os, sys
out = os.environ["OUT"]

def load(name):
    with open(f"{out}/{name}/results.json") as fh:
        return json.load(fh)

def checks(r):
    return {(c["name"], t["name"]): (t["status"], t["points"]) for c in r["components"] for t in c["tests"]}

def seconds(name):
    start, end = map(float, open(f"{out}/{name}.time").read().split())
    return end - start

bad = 0
print(f"\n{'run':<12} {'device':<28} {'score':>7} {'wall':>7}")
for name in ("ref-cuda", "ref-cpu", "buggy-cuda", "buggy-cpu", "mixed-cuda"):
    r = load(name)
    env = r["environment"]
    print(f"{name:<12} {str(env.get('device', '?'))[:28]:<28} {r['score']:>7g} {seconds(name):>6.1f}s")
for a, b in (("ref-cuda", "ref-cpu"), ("buggy-cuda", "buggy-cpu")):
    ca, cb = checks(load(a)), checks(load(b))
    for key in sorted(set(ca) | set(cb)):
        if ca.get(key) != cb.get(key):
            bad += 1
            print(f"MISMATCH {a} vs {b}: {key}: {ca.get(key)} vs {cb.get(key)}")
if load("ref-cuda")["score"] != load("ref-cuda")["max_score"]:
    bad += 1
    print("MISMATCH: the reference does not score full marks on CUDA")
mixed = checks(load("mixed-cuda")).get(("GPT", "mixed_precision"))
print(f"GPT.mixed_precision on CUDA: {mixed}")
if mixed is None or mixed[0] != "passed":
    bad += 1
    print("MISMATCH: the mixed-precision check does not pass on CUDA")
print("ok: CUDA grades as the CPU does" if not bad else f"{bad} problem(s)")
sys.exit(1 if bad else 0)
EOF
