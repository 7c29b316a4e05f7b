#!/usr/bin/env bash
# The GPU checks, as ONE device call (about 7 minutes):
#   run(command="bash tests/benchmarks/gpu_check.sh", carry=[".gpu"], timeout_s=560)
# 1. the staircase suite (Poole et al.'s protocol, 75 cells) on cuda, grouped, 6 worker processes;
# 2. `mi-harness bench --device cuda` (GFLOP/s against the measured matmul peak, grouped vs plain loop);
# 3. grouped training = training alone, on cuda;
# 4. the graph encoders on cuda (DGI on Cora and Citeseer; InfoGraph, InfoGraph*, the supervised GIN on MUTAG),
#    when .gpu/data holds their files (git-ignored; nothing else brings data to that machine):
#   mkdir -p .gpu/data/tu && cp -r ../shared/data/planetoid .gpu/data/ && cp -r ../shared/data/tu/MUTAG .gpu/data/tu/
#    and carry=[".gpu"].
# The GPU machine has no network. Its image's python3 holds a CUDA torch, numpy, scipy, click, rich,
# pandas, seaborn, pytest; pydantic, pluggy and tabulate travel as wheels in .gpu/wheels (git-ignored;
#   pip download --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 -d .gpu/wheels pydantic pluggy tabulate scikit-learn).
# The built-in plugins load by module name, so PYTHONPATH=repo is enough. Results land in $OUT.
set -u
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.txt"
export PYTHONUNBUFFERED=1 MI_HARNESS_DATA_ROOT=/tmp OMP_NUM_THREADS=1
exec > >(tee "$LOG") 2>&1

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi failed"
nproc
if ls .gpu/wheels/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/wheels/*.whl \
    && echo "wheels installed into /tmp/site" || echo "wheel install FAILED"
  export PYTHONPATH=/tmp/site:$PWD
else
  echo "no .gpu/wheels carried: trying pip install -e . (needs network)"
  python3 -m pip install -q -e . || echo "pip install -e . FAILED"
  export PYTHONPATH=$PWD
fi
python3 -c "import torch, pydantic, pluggy; print('torch', torch.__version__, '| cuda', torch.version.cuda, '|', torch.cuda.get_device_name(0))"

echo "== staircase suite on cuda"
start=$(date +%s)
timeout 300 python3 -m harness.cli run staircase --device cuda --jobs 6 --store "$OUT/staircase.sqlite" --no-report \
  || echo "staircase FAILED or timed out (rc $?)"
echo "staircase wall: $(( $(date +%s) - start )) s"

echo "== mi-harness bench --device cuda"
timeout 120 python3 -m harness.cli bench --device cuda --steps 1000 --small-steps 500 --repeats 2 \
  --output "$OUT/gpu_bench.json" || echo "bench FAILED or timed out (rc $?)"

echo "== grouped training = training alone, on cuda"
timeout 60 python3 -m pytest tests/test_grouping.py -q -p no:cacheprovider -k "cuda or plan or adam" 2>&1 | tail -5
echo "== graph encoders on cuda"
if [ -d .gpu/data/planetoid ]; then
  for suite in gpu_dgi gpu_graph_encoders; do
    MI_HARNESS_DATA_ROOT=$PWD/.gpu/data timeout 150 python3 -m harness.cli run "tests/benchmarks/$suite.toml" \
      --device cuda --store "$OUT/encoders.sqlite" --no-report || echo "$suite FAILED or timed out (rc $?)"
  done
  python3 -c "
import json, sqlite3
for row in sqlite3.connect('$OUT/encoders.sqlite').execute('select method, data, status, estimate, wall_s, error from cells'):
    print(*row[:3], 'accuracy %.2f' % row[3] if row[3] is not None else '', 'wall %.1f s' % row[4], row[5][:200])"
else
  echo "no .gpu/data: graph encoders not run"
fi
echo "== done"
