#!/usr/bin/env bash
# The face members' training run on a GPU machine lent by the device tool (issue 26): five
# VGG-style members and one student distilled from them, side by side in one process (Keras on
# JAX), training until BUDGET_S seconds after this script started, then each member's .keras and
# card. Run from the repository root there, with .whl (keras 3.15.1, namex, optree for Python
# 3.12: that machine has JAX but no Keras) and .gpu/fer_pack.npz (python -m bench.face_gpu_pack
# pack ...) carried. What comes back through $OUT (at most 8 files): each member's .keras, and
# cards.tar with the cards, the run's JSON log and its printed log.
#
#   bash bench/face_gpu_train.sh                      (on the device; BUDGET_S=380 by default)
#   PY=python SKIP_WHEELS=1 LIMIT=512 MEMBERS='{...}' BUDGET_S=60 OUT=/tmp/o bash bench/face_gpu_train.sh
set -uo pipefail
T0=$(date +%s)
BUDGET_S=${BUDGET_S:-380}
PY=${PY:-python3}
OUT=${OUT:-/tmp/face_gpu_out}
DATA=../shared/data/fer2013/fer2013.npz
WORK=/tmp/face_members
MEMBERS=${MEMBERS:-'{"sgd2_default": {}, "sgd2_pooling_average": {"pooling": "average"}, "sgd2_deep": {"convs_per_block": 3}, "sgd2_wide": {"filters": 40}, "sgd2_deep_wide": {"filters": 36, "convs_per_block": 3}}'}
TRAINING=${TRAINING:-'{"recipe": "sgd_nesterov", "epochs": 300, "batch_size": 128, "learning_rate": 0.02}'}
STUDENT=${STUDENT-}
mkdir -p "$OUT" "$WORK"
if [ -z "${SKIP_WHEELS:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee "$OUT/train.log"
$PY -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)" 2>&1 | tee -a "$OUT/train.log"
$PY -m bench.face_gpu_pack unpack .gpu/fer_pack.npz "$DATA" 2>&1 | tee -a "$OUT/train.log" || exit 4
echo "setup took $(( $(date +%s) - T0 )) s" | tee -a "$OUT/train.log"
$PY -m core.face.train --data "$DATA" --out "$WORK" --members "$MEMBERS" ${STUDENT:+--student $STUDENT} \
  --training "$TRAINING" --stop-at $(( T0 + BUDGET_S )) --log "$WORK/run_log.json" ${LIMIT:+--limit $LIMIT} 2>&1 \
  | tee -a "$OUT/train.log"
status=${PIPESTATUS[0]}
echo "exit $status after $(( $(date +%s) - T0 )) s" | tee -a "$OUT/train.log"
cp "$WORK"/*.keras "$OUT"/ 2>/dev/null
cp "$OUT/train.log" "$WORK/train.log"
(cd "$WORK" && tar cf "$OUT/cards.tar" *.json train.log) && rm "$OUT/train.log"
ls -la "$OUT"
exit $status
