#!/usr/bin/env bash
# One device call's worth of GPU checks (issue 34); see bench/GPU_CHECK.md.
#
#   bash bench/gpu_check.sh            on the lent GPU machine, from the repository root
#   bash bench/gpu_check.sh --dry-run  the same steps on this CPU at tiny sizes (a test runs it)
#
# Writes under $OUT (a temporary folder when unset): env.txt, cuda_tests.txt, summary.json,
# summary.md, gpu_check.log; prints the summary table last. Exit status: the cuda tests' (0 when
# all passed) or the bench's, whichever failed first.
set -uo pipefail
DRY=""
[ "${1:-}" = "--dry-run" ] && DRY="--dry-run"
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
if [ -z "$DRY" ] && [ -d .whl ]; then  # pycocotools, albumentations and what they need (bench/gpu_wheels.sh)
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "the carried wheels did not install" | tee "$OUT/env.txt"; exit 3; }
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
{
  "$PY" -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__,
'cuda', torch.version.cuda, 'available', torch.cuda.is_available(),
'device', torch.cuda.get_device_name() if torch.cuda.is_available() else 'none')"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
status=0
# the cuda tests (they skip with one line without a GPU: the dry run checks that they collect)
"$PY" -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py > "$OUT/cuda_tests.txt" 2>&1 || status=$?
[ "$status" = 5 ] && status=0  # pytest's "nothing collected": the module skipped itself (no GPU)
tail -n 15 "$OUT/cuda_tests.txt"
"$PY" bench/gpu_bench.py --out "$OUT" $DRY ${GPU_CHECK_DATA:+--data "$GPU_CHECK_DATA"} \
  > "$OUT/gpu_check.log" 2>&1 || { rc=$?; [ "$status" = 0 ] && status=$rc; tail -n 30 "$OUT/gpu_check.log"; }
rm -rf "$OUT/runs"  # weights stay on the machine: $OUT brings back a few small files
[ -f "$OUT/summary.md" ] && cat "$OUT/summary.md"
exit "$status"
