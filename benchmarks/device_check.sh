#!/usr/bin/env bash
# One command for a new GPU machine (about 8 minutes): the speed table, stacked --runs against
# fits one after another, and the CBM3D denoising table at full size with the default preset.
#
#   benchmarks/device_check.sh [OUT_DIR]          (default: benchmarks/results/device-DATE)
#
# Environment: DEVICE (cuda), PYTHON (.venv/bin/python), DATA (../shared/data), SIZES
# ("256 512 1024 2048"), BATCH_SIZES ("128 256 512"), CAP (1200 steps a denoising fit),
# IMAGES (CBM3D stems; default all). Each part has its own time limit and writes its JSON
# even when a later part fails; a configuration that runs out of memory is a row saying so.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results/device-$(date +%Y%m%d-%H%M)}
python=${PYTHON:-.venv/bin/python}
device=${DEVICE:-cuda}
data=${DATA:-../shared/data}
mkdir -p "$out"
status=0

part() {  # part NAME SECONDS COMMAND...: run one part under a time limit, log it, go on
    local name=$1 seconds=$2
    shift 2
    echo "== $name (at most ${seconds} s): $*"
    if ! timeout "$seconds" "$@" 2>&1 | tee "$out/$name.log"; then
        echo "== $name did not finish; see $out/$name.log"
        status=1
    fi
}

part speed 210 "$python" benchmarks/speed.py --device "$device" \
    --sizes ${SIZES:-256 512 1024 2048} --engines fast-fp32-strict fast fast-bf16 \
    --steps 5 --warmup 2 --timeout-each 60 --json "$out/speed.json"
part batching 75 "$python" benchmarks/batching.py --device "$device" \
    --sizes ${BATCH_SIZES:-128 256 512} --members 2 --json "$out/batching.json"
part denoise 200 "$python" benchmarks/stopping.py denoise "$data/CBM3D" --sigma 25 \
    ${IMAGES:+--images $IMAGES} --seeds 0 --cap "${CAP:-1200}" --device "$device" \
    --json "$out/denoise_cbm3d.json"
echo "wrote $out"
exit $status
