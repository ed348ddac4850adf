#!/usr/bin/env bash
# Device check: the CPU and CUDA paths give the same metrics (within a stated tolerance) on
# ML-100K for plain MF, one attack (Average, unpopular targets) and APT, and the speed ratio.
#
#   scripts/gpu_check.sh [--dataset ml-100k] [--data-dir DIR] [--device cuda] [--seeds 1]
#                        [--epochs 25] [--tol 0.02]
#
# Runs `python -m apt_core run ... --json` once with --device cpu and once with --device DEVICE
# (default cuda; `--device cpu` runs the CPU path twice, which checks the script itself on a
# machine without a GPU), then compares every phase's target HR@50 and test HR@50.
# Tolerance: float reductions run in a different order on a GPU, so the trained factors
# differ in the last bits and a few users' top-50 lists can change; 0.02 is 19 of ML-100K's
# 943 users for test HR.  The exit status is 0 when every metric agrees within --tol, 1 when
# one does not, 2 on a usage or run error.  Python: $PYTHON, else .venv/bin/python, else python3.
set -euo pipefail
cd "$(dirname "$0")/.."

dataset=ml-100k; data_dir=""; device=cuda; seeds=1; epochs=25; tol=0.02
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dataset) dataset="$2"; shift 2 ;;
    --data-dir) data_dir="$2"; shift 2 ;;
    --device) device="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --epochs) epochs="$2"; shift 2 ;;
    --tol) tol="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown option $1" >&2; exit 2 ;;
  esac
done
if [[ -n "${PYTHON:-}" ]]; then py="$PYTHON"; elif [[ -x .venv/bin/python ]]; then py=.venv/bin/python; else py=python3; fi
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
args=(run --dataset "$dataset" --attack average --targets unpopular --defense apt --seeds "$seeds" --epochs "$epochs"
      --no-cache --no-history --json)
[[ -n "$data_dir" ]] && args+=(--data-dir "$data_dir")

echo "gpu_check: $dataset, MF + Average attack (unpopular targets) + APT, $seeds seed(s), $epochs epochs; cpu vs $device, tolerance $tol"
i=0
for dev in cpu "$device"; do
  start=$(date +%s%N)
  if ! "$py" -m apt_core "${args[@]}" --device "$dev" > "$out/run$i.json"; then
    echo "gpu_check: the run with --device $dev failed" >&2
    exit 2
  fi
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  echo "  --device $dev: $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s wall (whole process, data loading included)"
  i=$((i + 1))
done

"$py" - "$out/run0.json" "$out/run1.json" "$tol" <<'EOF'
import json, sys

a, b = (json.load(open(p)) for p in sys.argv[1:3])
tol = float(sys.argv[3])
print(f"  devices: {a['device']} | {b['device']}")
print(f"  {'phase':<8} {'metric':<10} {'A':>8} {'B':>8} {'|diff|':>8}  ok")
bad = 0
rows_b = {r["phase"]: r for r in b["rows"]}
for r in a["rows"]:
    other = rows_b.get(r["phase"])
    if other is None:
        continue
    for metric in ("target_hr", "test_hr"):
        x, y = r[metric], other[metric]
        if x is None or y is None:
            continue
        diff = abs(x - y)
        ok = diff <= tol
        bad += not ok
        print(f"  {r['phase']:<8} {metric:<10} {x:>8.4f} {y:>8.4f} {diff:>8.4f}  {'yes' if ok else 'NO'}")
print(f"  {'phase':<8} {'fit s A':>8} {'fit s B':>8} {'A / B':>7}")
for r in a["rows"]:
    other = rows_b.get(r["phase"])
    if other and r.get("seconds") and other.get("seconds"):
        print(f"  {r['phase']:<8} {r['seconds']:>8.2f} {other['seconds']:>8.2f} {r['seconds'] / other['seconds']:>7.2f}")
print("gpu_check: " + ("all metrics agree within the tolerance" if not bad else f"{bad} metric(s) differ by more than {tol}"))
sys.exit(1 if bad else 0)
EOF
