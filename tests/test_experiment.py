"The experiment template, run as users run it: papermill with -p / -y parameters."
import json, subprocess, sys, time
from pathlib import Path
import numpy as np, torch
import pytest
from dias.evaluate import metrics_from_arrays
from dias.experiment import check_params, run_experiment, split_dir

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / 'nbs' / '10_train.ipynb'

def papermill(out_nb, *args):
    return subprocess.run([sys.executable, '-m', 'papermill', str(NB), str(out_nb), '-k', 'python3', *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)

def test_papermill_tiny_run(tmp_path):
    "A tiny run through papermill writes metrics.json and .npz files from which every metric is recomputed."
    out = tmp_path / 'run'
    r = papermill(tmp_path / 'out.ipynb', '-y', 'splits: [0, 3]', '-p', 'epochs', '1', '-p', 'width', '0.125',
                  '-p', 'fraction', '0.2', '-p', 'out_dir', str(out), '-p', 'quiet', 'True', '-p', 'device', 'cpu')
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / 'metrics.json').read_text())
    assert m['params']['splits'] == [0, 3] and m['params']['epochs'] == 1      # -p / -y values reached the notebook
    assert set(m['results']) == {'dias', 'softmax'}
    for method in ('dias', 'softmax'):
        for s in (0, 3):
            res = m['results'][method][str(s)]
            for k in ('auroc', 'f1', 'accuracy'): assert 0 <= res[k] <= 1
            a = np.load(split_dir(out, method, s) / 'scores.npz')
            assert len(a['known_true']) == res['n_known_test'] and len(a['unknown_true']) == res['n_unknown_test']
            assert (a['unknown_true'] == res['K']).all()
            again = metrics_from_arrays(a, res['K'], res['threshold'])
            for k in ('auroc', 'f1', 'accuracy', 'oscr'): assert again[k] == pytest.approx(res[k])
            assert (split_dir(out, method, s) / 'history.csv').read_text().startswith('epoch,')
    # the executed notebook shows the table
    nb = json.loads((tmp_path / 'out.ipynb').read_text())
    text = json.dumps(nb, ensure_ascii=False)
    assert 'mean ± std' in text

def test_papermill_bad_parameter_fails_fast(tmp_path):
    t = time.time()
    r = papermill(tmp_path / 'bad.ipynb', '-p', 'dataset', 'cifar11', '-p', 'out_dir', str(tmp_path / 'x'))
    assert r.returncode != 0
    assert "accepted: ['digits'" in r.stderr + r.stdout
    assert not (tmp_path / 'x').exists()
    assert time.time() - t < 120

@pytest.mark.parametrize('bad, msg', [
    (dict(dataset='imagenet'), 'dataset='), (dict(protocol='auc'), 'protocol='), (dict(splits=[7]), 'split indices'),
    (dict(methods=['dias', 'x']), 'methods='), (dict(device='tpu'), 'device='), (dict(epochs=0), 'epochs=0'),
    (dict(batch_size=-1), 'batch_size=-1'), (dict(width=0), 'width=0'), (dict(config=dict(alpha_hard=-0.1)), 'alpha_hard'),
    (dict(config=dict(lam=-1)), 'lam must be >= 0'), (dict(config=dict(beta=-1)), 'beta must be >= 0'),
    (dict(data_root='/nonexistent/dir'), 'does not exist'), (dict(image_size=48), 'image_size=48'),
    (dict(unknown_param=1), 'unknown parameter'), (dict(dataset='folder'), 'needs data_root'),
])
def test_bad_parameters(bad, msg):
    with pytest.raises(ValueError, match=None) as e: check_params(**bad)
    assert msg in str(e.value)

def test_finished_results_are_not_overwritten(tmp_path):
    p = dict(splits=[4], methods=['softmax'], epochs=1, width=0.125, fraction=0.2, out_dir=str(tmp_path / 'r'), device='cpu', quiet=True)
    run_experiment(log=None, **p)
    before = (split_dir(tmp_path / 'r', 'softmax', 4) / 'result.json').read_bytes()
    with pytest.raises(ValueError, match='other parameters'): run_experiment(log=None, **{**p, 'lr': 0.05})
    assert (split_dir(tmp_path / 'r', 'softmax', 4) / 'result.json').read_bytes() == before
    run_experiment(log=None, **{**p, 'lr': 0.05, 'overwrite': True})
    ck = torch.load(split_dir(tmp_path / 'r', 'softmax', 4) / 'checkpoint.pt', weights_only=False)
    assert ck['config']['lr'] == 0.05                                          # trained again, with the new lr
    assert (split_dir(tmp_path / 'r', 'softmax', 4) / 'result.json').read_bytes() != before

def test_refusal_on_every_rank(tmp_path, monkeypatch):
    "A refused out_dir stops every torchrun rank (not only rank 0, which would leave the others waiting), and a non-zero rank writes nothing."
    import dias.experiment as E
    p = dict(splits=[4], methods=['softmax'], epochs=1, width=0.125, fraction=0.2, out_dir=str(tmp_path / 'r'), device='cpu', quiet=True)
    E._guard_out_dir(E.check_params(**p))
    saved = (tmp_path / 'r' / 'params.json').read_bytes()
    monkeypatch.setattr(E, 'is_main_process', lambda: False)
    with pytest.raises(ValueError, match='other parameters'): E.run_experiment(log=None, **{**p, 'lr': 0.05})   # before any training
    E._guard_out_dir(E.check_params(**{**p, 'lr': 0.05, 'overwrite': True}))
    assert (tmp_path / 'r' / 'params.json').read_bytes() == saved

def test_folder_splits_are_different_holdouts(tmp_path):
    "dataset='folder': split i is the i-th random hold-out (not five copies of one), and fraction subsamples the training images."
    from PIL import Image
    from dias.experiment import load_data, check_params
    rng = np.random.default_rng(0)
    for c in range(3):
        (tmp_path / f'c{c}').mkdir()
        for j in range(10): Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / f'c{c}' / f'{j}.png')
    p = check_params(dataset='folder', data_root=str(tmp_path), known=['c0', 'c1'])
    d0, d1 = load_data(p, 0), load_data(p, 1)
    assert (d0.split, d1.split) == (0, 1) and len(d0.test_y) == len(d1.test_y)
    assert not torch.equal(d0.test_x, d1.test_x)
    half = load_data({**p, 'fraction': 0.5}, 0)
    assert len(half.train_y) == sum(round(0.5 * n) for n in torch.bincount(d0.train_y).tolist()) and torch.equal(half.test_x, d0.test_x)

def test_papermill_image_folder(tmp_path):
    "dataset='folder': the practitioner's class folders get the benchmarks' report; other classes are unknowns only."
    from PIL import Image
    from sklearn.datasets import load_digits
    d = load_digits(); root = tmp_path / 'photos'
    for c in range(4):
        (root / f'digit{c}').mkdir(parents=True)
        for j, img in enumerate(d.images[d.target == c][:12]):
            Image.fromarray((img * 15).astype('uint8')).resize((20, 20)).save(root / f'digit{c}' / f'{j}.png')
    out = tmp_path / 'run'
    r = papermill(tmp_path / 'f.ipynb', '-p', 'dataset', 'folder', '-p', 'data_root', str(root), '-y', 'known: [digit2, digit0, digit1]',
                  '-y', 'splits: [0]', '-p', 'epochs', '1', '-p', 'width', '0.125', '-p', 'batch_size', '8', '-p', 'out_dir', str(out),
                  '-p', 'quiet', 'True', '-p', 'device', 'cpu')
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / 'metrics.json').read_text())
    res = m['results']['dias']['0']
    assert res['K'] == 3 and res['n_unknown_test'] == 12          # all of digit3, only as unknowns
    assert res['n_train'] + res['n_known_test'] == 36
