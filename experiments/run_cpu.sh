#!/usr/bin/env bash
# The executed experiment copies kept in this folder, at CPU budgets (2 cores, no GPU), one after another.
# The paper's numbers are for width 1.0, 200 epochs on a GPU: see experiments/params/*.yaml for those runs.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # one thread per process when the cores are shared; unset it on a quiet machine
cd "$(dirname "$0")/.."
run() { name=$1; shift; papermill nbs/10_train.ipynb "experiments/$name.ipynb" -k python3 -p out_dir "experiments/$name" -p quiet True "$@" && rm -f experiments/"$name"/*/split*/checkpoint.pt; }
run digits-AUROC                                                   # the README's main job: defaults (width 0.25, 15 epochs)
run digits-F1 -p protocol F1
run fashionmnist-AUROC-w0.25-e10-f0.05 -p dataset fashionmnist -p epochs 10 -p fraction 0.05
