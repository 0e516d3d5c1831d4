#!/usr/bin/env bash
# The GPU bench (python -m optbench.bench.gpu) at full size on a GPU machine that has Python 3.12 and JAX with CUDA
# (and PyTorch) but no TensorFlow, no Keras and no package index. Run from the repository root:
#
#   bash bench/gpu_device.sh [DATA_DIR [more options of the bench]]
#
# DATA_DIR (default .cache/fashion-mnist) holds Fashion-MNIST's train-images-idx3-ubyte.gz and
# train-labels-idx1-ubyte.gz (Debian's dataset-fashion-mnist installs them in /usr/share/datasets/fashion-mnist).
# The results go to $OUT/gpu-<date>-<host>.json where $OUT is set, else to bench/results/.
#
# Before, on a machine with a package index, fetch into .whl/ (ignored by git; carry it and DATA_DIR along) the
# wheels of Keras and of what it and the bench need beside JAX: pure-Python ones are py3-none-any, the others
# CPython 3.12 manylinux (optree and ml_dtypes are tagged manylinux_2_28, hence the second --platform):
#
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 -d .whl \
#     keras==3.15.1 absl-py==1.4.0 rich==15.0.0 namex==0.1.0 optree==0.20.0 h5py==3.14.0 ml_dtypes==0.6.0 \
#     markdown-it-py==4.3.0 mdurl==0.1.2 Pygments==2.21.0 packaging==26.3 click==8.5.1 PyYAML==6.0.3 \
#     typing_extensions==4.16.0
#
# (typing_extensions is optree's; PyTorch brings it too.) $WHEELS names another folder of wheels than .whl.
set -euo pipefail

data=${1:-.cache/fashion-mnist}
shift $(($# > 0 ? 1 : 0))
wheels=${WHEELS:-.whl}

# Only the wheels of what this Python lacks: another ml_dtypes or numpy ahead of JAX's own on the path could break it.
missing=()
for wheel in "$wheels"/*.whl; do
  name=$(basename "$wheel")
  python3 -c 'import importlib.metadata as m, sys; m.version(sys.argv[1])' "${name%%-*}" 2>/dev/null || missing+=("$wheel")
done
if ((${#missing[@]})); then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "${missing[@]}"
fi
export PYTHONPATH=/tmp/site:$PWD

json=()
if [[ -n ${OUT:-} ]]; then
  json=(--json "$OUT/gpu-$(date -u +%Y%m%d-%H%M%S)-$(hostname).json")
fi
python3 -m optbench.bench.gpu --size full --data "$data" "${json[@]}" "$@"
