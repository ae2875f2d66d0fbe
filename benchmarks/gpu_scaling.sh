#!/usr/bin/env bash
# GPU scaling check for a lent GPU machine (benchmarks/gpu_scaling.py says what it measures).
# From the repository root, with the CIFAR-10 tarball copied into an ignored folder first:
#   mkdir -p .bench-data && cp ../shared/data/cifar10-jpeg.tar.xz .bench-data/ && echo /.bench-data/ >> .git/info/exclude
# then one device run, carry [".bench-data"], timeout_s 560:
#   bash benchmarks/gpu_scaling.sh
# About 6-8 minutes on one H200 (decode ~1 min, epoch times ~2-3 min, packing ~2-3 min).
# Results: $OUT/gpu_scaling.md and $OUT/gpu_scaling.json (each stage written as it ends).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu-scaling}"
TAR="${CIFAR_TAR:-}"
for candidate in .bench-data/cifar10-jpeg.tar.xz shared/data/cifar10-jpeg.tar.xz ../shared/data/cifar10-jpeg.tar.xz; do
    if [ -z "$TAR" ] && [ -f "$candidate" ]; then TAR="$candidate"; fi
done
if [ -z "$TAR" ]; then
    echo "gpu_scaling: no cifar10-jpeg.tar.xz (set CIFAR_TAR, or copy it into .bench-data/ and carry that)" >&2
    exit 2
fi
DATA=/tmp/labelrep-cifar
mkdir -p "$DATA" "$OUT"
[ -d "$DATA/cifar10/train" ] || tar xJf "$TAR" -C "$DATA"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.txt"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
set -o pipefail
"$PY" benchmarks/gpu_scaling.py --data-dir "$DATA/cifar10" --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_scaling.log"
