"""Every benchmark of the paper runs end to end through the experiment template, on small files written in
each data set's true on-disk format (the fixtures of test_data.py), with tiny parameters."""
import json, subprocess, sys
from pathlib import Path
import pytest, yaml
from test_data import write_mnist, write_cifar10, write_cifar100, write_svhn, write_tiny
from dias.data import known_unknown
from dias.experiment import check_params

ROOT = Path(__file__).resolve().parents[1]

def make(dataset, root):
    if dataset in ('mnist', 'fashionmnist'): write_mnist(root / ('MNIST' if dataset == 'mnist' else 'FashionMNIST') / 'raw', gz=True)
    elif dataset == 'svhn': write_svhn(root)
    elif dataset == 'cifar10': write_cifar10(root)
    elif dataset.startswith('cifar_plus'): write_cifar10(root); write_cifar100(root)
    elif dataset == 'tiny_imagenet': write_tiny(root, known_unknown('tiny_imagenet', 'AUROC', 2)[0], n_known=3, n_other=1, n_val=1)

@pytest.mark.parametrize('dataset', ['mnist', 'fashionmnist', 'svhn', 'cifar10', 'cifar_plus_10', 'cifar_plus_50', 'tiny_imagenet'])
def test_papermill_every_dataset(tmp_path, dataset):
    data_root = tmp_path / 'data'; data_root.mkdir(); make(dataset, data_root)
    out = tmp_path / 'out'
    r = subprocess.run([sys.executable, '-m', 'papermill', str(ROOT / 'nbs' / '10_train.ipynb'), str(tmp_path / 'o.ipynb'), '-k', 'python3',
                        '-p', 'dataset', dataset, '-p', 'data_root', str(data_root), '-y', 'splits: [2]', '-p', 'epochs', '1',
                        '-p', 'width', '0.125', '-p', 'batch_size', '16', '-p', 'out_dir', str(out), '-p', 'quiet', 'True', '-p', 'device', 'cpu'],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / 'metrics.json').read_text())
    assert m['params']['dataset'] == dataset
    res = m['results']['dias']['2']
    K, n_unknown_classes = (20, 180) if dataset == 'tiny_imagenet' else (4, int(dataset.split('_')[-1])) if dataset.startswith('cifar_plus') else (6, 4)
    assert res['K'] == K and m['openness'] == pytest.approx(1 - (K / (K + n_unknown_classes)) ** 0.5)
    for k in ('auroc', 'f1', 'accuracy'): assert 0 <= res[k] <= 1

@pytest.mark.parametrize('f', sorted((ROOT / 'experiments' / 'params').glob('*.yaml')), ids=lambda f: f.stem)
def test_parameter_sets_are_valid(f):
    p = yaml.safe_load(f.read_text())
    p.pop('data_root', None)
    check_params(**p)
