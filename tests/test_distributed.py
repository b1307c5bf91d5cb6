"Two processes with the gloo backend on the CPU, started by torchrun, as a user would."
import json, re, shutil, subprocess, sys
from pathlib import Path
import numpy as np, pytest, torch
from dias.data import load_open_set
from dias.evaluate import open_set_predictions, metrics_from_arrays
from dias.models import Classifier32
from dias.train import predict_logits
from dias.experiment import split_dir

ROOT = Path(__file__).resolve().parents[1]

@pytest.mark.skipif(not torch.distributed.is_available(), reason='torch.distributed not built')
def test_torchrun_two_processes_gloo(tmp_path):
    out = tmp_path / 'ddp'
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '-m', 'dias.distributed',
           '--dataset', 'digits', '--splits', '0', '--methods', 'dias', '--epochs', '2', '--width', '0.125', '--fraction', '0.3',
           '--batch-size', '32', '--device', 'cpu', '--backend', 'gloo', '--out-dir', str(out), '--quiet']
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env={**__import__('os').environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert 'dias.distributed: 2 processes, backend gloo' in r.stdout
    assert 'ranks start from identical weights: True' in r.stdout
    # gradients averaged by DDP in every step keep the replicas equal (without it they drift apart at once)
    assert 'ranks end with identical weights: True' in r.stdout, r.stdout[-2000:]
    m = json.loads((out / 'metrics.json').read_text())
    res = m['results']['dias']['0']
    # every test sample counted exactly once
    a = np.load(split_dir(out, 'dias', 0) / 'scores.npz')
    data = load_open_set('digits', split=0, fraction=0.3)
    assert len(a['known_true']) == len(data.test_y) and len(a['unknown_true']) == len(data.unknown_y)
    assert (a['known_true'] == data.test_y.numpy()).all()
    # the same metrics from one process on the saved model
    ck = torch.load(split_dir(out, 'dias', 0) / 'checkpoint.pt', weights_only=False)
    net = Classifier32(data.K, width=0.125); net.load_state_dict(ck['nets']['classifier'])
    single = open_set_predictions(predict_logits(net, data.test_x), data.test_y, predict_logits(net, data.unknown_x), data.K)
    again = metrics_from_arrays(single, data.K, res['threshold'])
    for k in ('auroc', 'f1', 'accuracy', 'oscr'): assert again[k] == pytest.approx(res[k], abs=1e-6), k
    assert ck['epoch'] == 2 and len(list(out.rglob('*.tmp*'))) == 0
