#!/usr/bin/env bash
# Calibrate and validate scratchsim on a lent GPU (H100 or H200); everything goes to $OUT.
#
#   OUT=/path/to/results bash experiments/gpu/validate.sh      # from anywhere; ~5 minutes
#   (then: tar -xzf validation.tar.gz -C experiments/validation/<gpu-name>)
#
# The machine's python3 has torch, numba, numpy and matplotlib but no network and no simpy:
# simpy (pure Python, MIT) is installed from the wheel carried in experiments/gpu/wheels/
# into a temporary directory. To refresh that wheel on a machine with network access:
#   pip download simpy==4.1.2 --no-deps --only-binary=:all: -d experiments/gpu/wheels
# Needs Python >= 3.11 (tomllib). Each step has its own time limit so that the whole script
# ends within 8 minutes; a step that fails or runs out of time is recorded in $OUT/steps.log
# and the next one still runs. For a smoke run of this script on a machine without a GPU:
#   OUT=/tmp/v DEVICE=cpu QUICK=1 bash experiments/gpu/validate.sh
set -uo pipefail
: "${OUT:?set OUT to the output directory}"
# The device tool brings back at most 8 files from $OUT: everything is made in a staging
# folder and packed into $OUT/validation.tar.gz at the end (steps.log and versions.txt are
# also copied beside it to read at a glance).
FINAL_OUT=$OUT
OUT=$(mktemp -d)
DEVICE=${DEVICE:-cuda}
PYTHON=${PYTHON:-python3}  # the lent machines' python3 is the one that holds PyTorch
QUICK_FLAG=${QUICK:+--quick}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
PYLIB=$(mktemp -d)
pack() {
    mkdir -p "$FINAL_OUT"
    tar -czf "$FINAL_OUT/validation.tar.gz" -C "$OUT" .
    cp "$OUT/steps.log" "$OUT/versions.txt" "$FINAL_OUT/" 2>/dev/null
    rm -rf "$PYLIB" "$OUT"
}
trap pack EXIT
if ! "$PYTHON" -c "import simpy" 2>/dev/null; then
    "$PYTHON" -m pip install --quiet --no-index --no-deps --target "$PYLIB" \
        "$REPO"/experiments/gpu/wheels/simpy-*.whl
fi
export PYTHONPATH="$REPO:$PYLIB${PYTHONPATH:+:$PYTHONPATH}"
cd "$REPO"

step() {  # step NAME SECONDS COMMAND...: run, log the outcome, keep going
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    timeout "$limit" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"
    rc=$?
    echo "$name: exit $rc after $((SECONDS - start)) s" | tee -a "$OUT/steps.log"
}

nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || true
"$PYTHON" -c "import torch, sys; print(sys.version); print(torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device')" \
    >"$OUT/versions.txt" 2>&1

# The CUDA path's exactness: every mode's weights after 50 iterations against gpu-only's.
step exactness 120 "$PYTHON" - "$OUT/exactness.json" "$DEVICE" <<'PY'
import json, sys, tempfile
import numpy as np
import simulator
DEVICE = sys.argv[2]
path = tempfile.mkdtemp()
trace = simulator.generate("zipf", path + "/t", table_rows=[2000, 3000, 500], batch_size=256,
                           num_batches=60, seed=1, pooling="1-3", show_progress=False)
w1 = simulator.min_capacity(trace, lookahead=1)
cases = {"hybrid": ("hybrid", {}), "cache": ("cache", {"capacity": w1}),
         "cache-prefetch": ("cache-prefetch", {"capacity": w1})}
for w, victim in ((0, "lru"), (2, "lru"), (2, "future")):
    cases[f"scratchpipe-W{w}-{victim}"] = ("scratchpipe", {
        "capacity": simulator.min_capacity(trace, lookahead=w), "lookahead": w, "victim": victim})
report = {}
for optimizer in ("sgd", "rowwise-adagrad", "adam"):
    ref = simulator.train(trace, "gpu-only", device=DEVICE, iterations=50, optimizer=optimizer)
    for name, (mode, options) in cases.items():
        for overlap in (False, True):
            r = simulator.train(trace, mode, device=DEVICE, iterations=50, optimizer=optimizer,
                                overlap=overlap, **options)
            key = f"{optimizer} {name} overlap={overlap}"
            report[key] = {"exact": all(np.array_equal(ref.weights[k], r.weights[k])
                                        for k in ref.weights),
                           "mean_iteration_ms": r.to_dict()["mean_iteration_s"] * 1e3}
            print(key, report[key], flush=True)
json.dump(report, open(sys.argv[1], "w"), indent=2)
PY
step calibrate 90 "$PYTHON" -m simulator calibrate --device "$DEVICE" $QUICK_FLAG -o "$OUT/profile.toml" --json
# Three rounds each (the CLI's default is 4): the whole script must end within 8 minutes.
step validate-calibrated 200 "$PYTHON" -m simulator validate --device "$DEVICE" $QUICK_FLAG \
    --rounds 3 --profile "$OUT/profile.toml" -o "$OUT/validate-calibrated" --json
case "$(cat "$OUT/versions.txt")" in
    *H200*) PRESET=h200-pcie5 ;;
    *"H100 80GB HBM3"*) PRESET=h100-sxm5 ;;  # the SXM part's name; the PCIe card says PCIe
    *) PRESET=h100-pcie5 ;;
esac
step validate-preset 60 "$PYTHON" -m simulator validate --device "$DEVICE" --quick --rounds 3 \
    --profile "$PRESET" -o "$OUT/validate-$PRESET" --json
