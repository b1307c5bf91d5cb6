"""dias.data against tiny fixtures written in each data set's true on-disk format.

Every reader is exercised through `load_open_set`, the function users call. Images encode their
source class in their pixel values, so a test can check that the remapped label of every image
points back to the class it came from.
"""
import gzip, pickle, random, socket, time
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from torchvision import datasets

from dias import data
from dias.data import augment_batch, known_unknown, load_open_set, openness, resolve_root, to_float

KNOWN0 = [0, 1, 2, 4, 5, 9]  # AUROC split 0 of the 10-class sets


def value(c):  # grey level that encodes a 10-class source class
    return 20 * c + 1


def source_class(x):  # inverse of `value` on uint8 images (N,3,S,S)
    return ((x[:, 0, 0, 0].long() - 1) // 20)


# ---------------------------------------------------------------- MNIST / Fashion-MNIST (idx)
def write_idx(path, arr, gz):
    raw = bytes([0, 0, 8, arr.ndim]) + np.array(arr.shape, '>i4').tobytes() + arr.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(f'{path}.gz', 'wb') as f: f.write(raw)
    else: Path(path).write_bytes(raw)


def write_mnist(folder, gz, n_train=12, n_test=4):
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (('train', n_train), ('t10k', n_test)):
        y = np.repeat(np.arange(10), n)
        x = np.broadcast_to(value(y)[:, None, None], (len(y), 28, 28))
        write_idx(folder/f'{prefix}-images-idx3-ubyte', x, gz)
        write_idx(folder/f'{prefix}-labels-idx1-ubyte', y, gz)


@pytest.mark.parametrize('dataset,folder', [('mnist', 'MNIST'), ('fashionmnist', 'FashionMNIST')])
@pytest.mark.parametrize('gz', [False, True], ids=['plain-torchvision', 'gz'])
def test_idx_sets(tmp_path, dataset, folder, gz):
    write_mnist(tmp_path/folder/'raw', gz)
    d = load_open_set(dataset, data_root=tmp_path)
    assert (d.K, d.augment, d.train_x.dtype, d.train_y.dtype) == (6, False, torch.uint8, torch.int64)
    assert d.train_x.shape == (72, 3, 32, 32) and d.test_x.shape == (24, 3, 32, 32) and d.unknown_x.shape == (16, 3, 32, 32)
    assert (source_class(d.train_x) == torch.tensor(KNOWN0)[d.train_y]).all()
    assert (source_class(d.test_x) == torch.tensor(KNOWN0)[d.test_y]).all()
    assert (source_class(d.unknown_x) == d.unknown_y).all() and set(d.unknown_y.tolist()) == {3, 6, 7, 8}
    assert (d.train_x[:, 0] == d.train_x[:, 2]).all()  # grey replicated
    assert d.known_names[3] == (datasets.MNIST if dataset == 'mnist' else datasets.FashionMNIST).classes[4]


def test_idx_image_size_fraction(tmp_path):
    write_mnist(tmp_path/'MNIST'/'raw', gz=True)
    d = load_open_set('mnist', 'F1', 3, data_root=tmp_path, image_size=64, fraction=0.5, seed=1)
    known, _ = known_unknown('mnist', 'F1', 3)
    assert d.train_x.shape == (36, 3, 64, 64) and torch.bincount(d.train_y).tolist() == [6] * 6
    assert (source_class(d.train_x) == torch.tensor(known)[d.train_y]).all()
    assert len(d.test_y) == 24 and len(d.unknown_y) == 16  # test sets are never cut


# ---------------------------------------------------------------- CIFAR-10 / CIFAR-100 (pickles)
def cifar_rows(y):  # (N,3072) rows: R plane = 2c, G plane = 255 - 2c, B plane = 7, marker R[0,5] = 255
    x = np.empty((len(y), 3, 32, 32), np.uint8)
    x[:, 0], x[:, 1], x[:, 2] = (2 * y)[:, None, None], (255 - 2 * y)[:, None, None], 7
    x[:, 0, 0, 5] = 255
    return x.reshape(len(y), 3072)


def dump(path, obj):
    with open(path, 'wb') as f: pickle.dump(obj, f, protocol=2)


def write_cifar10(root, per_batch=2, n_test=3):
    folder = root/'cifar-10-batches-py'; folder.mkdir(parents=True)
    for i in range(1, 6):
        y = np.tile(np.arange(10), per_batch)
        dump(folder/f'data_batch_{i}', {'batch_label': f'training batch {i} of 5', 'labels': y.tolist(),
                                        'data': cifar_rows(y), 'filenames': [f'{j}.png' for j in range(len(y))]})
    y = np.tile(np.arange(10), n_test)
    dump(folder/'test_batch', {'batch_label': 'testing batch 1 of 1', 'labels': y.tolist(), 'data': cifar_rows(y),
                               'filenames': [f'{j}.png' for j in range(len(y))]})
    names = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']
    dump(folder/'batches.meta', {'label_names': names, 'num_cases_per_batch': 10 * per_batch, 'num_vis': 3072})


def write_cifar100(root, n_train=1, n_test=2):
    folder = root/'cifar-100-python'; folder.mkdir(parents=True)
    for name, n in (('train', n_train), ('test', n_test)):
        y = np.tile(np.arange(100), n)
        dump(folder/name, {'filenames': [f'{j}.png' for j in range(len(y))], 'batch_label': name, 'fine_labels': y.tolist(),
                           'coarse_labels': (y // 5).tolist(), 'data': cifar_rows(y)})
    dump(folder/'meta', {'fine_label_names': [f'fine{i}' for i in range(100)], 'coarse_label_names': [f'coarse{i}' for i in range(20)]})


def test_cifar10(tmp_path):
    write_cifar10(tmp_path)
    d = load_open_set('cifar10', 'AUROC', 0, data_root=tmp_path)
    assert d.augment and d.known_names == ['airplane', 'automobile', 'bird', 'deer', 'dog', 'truck']
    assert d.train_x.shape == (60, 3, 32, 32) and len(d.test_y) == 18 and len(d.unknown_y) == 12
    assert (d.train_x[:, 0, 1, 1] == 2 * torch.tensor(KNOWN0)[d.train_y]).all()
    assert (d.train_x[:, 1, 1, 1] == 255 - 2 * torch.tensor(KNOWN0)[d.train_y]).all() and (d.train_x[:, 2] == 7).all()
    assert (d.train_x[:, 0, 0, 5] == 255).all() and (d.train_x[:, 0, 5, 0] != 255).all()  # rows, then columns
    assert (d.unknown_x[:, 0, 1, 1] == 2 * d.unknown_y).all() and set(d.unknown_y.tolist()) == {3, 6, 7, 8}


@pytest.mark.parametrize('dataset,n_unknown', [('cifar_plus_10', 10), ('cifar_plus_50', 50)])
def test_cifar_plus(tmp_path, dataset, n_unknown):
    write_cifar10(tmp_path); write_cifar100(tmp_path)
    d = load_open_set(dataset, 'F1', 2, data_root=tmp_path)
    known, unknown = known_unknown(dataset, 'F1', 2)
    assert known == [0, 1, 8, 9] and d.known_names == ['airplane', 'automobile', 'ship', 'truck']
    assert (len(d.train_y), len(d.test_y), len(d.unknown_y)) == (40, 12, 2 * n_unknown)
    assert (d.test_x[:, 0, 1, 1] == 2 * torch.tensor(known)[d.test_y]).all()
    assert sorted(set(d.unknown_y.tolist())) == sorted(unknown)  # CIFAR-100 classes, from its test set
    assert (d.unknown_x[:, 0, 1, 1] == 2 * d.unknown_y).all()
    assert d.openness == pytest.approx(openness(4, n_unknown))


def test_cifar_reader_matches_torchvision(tmp_path, monkeypatch):
    "Our pickle reader gives torchvision's arrays (its MD5 check is switched off for this comparison only)."
    write_cifar10(tmp_path)
    monkeypatch.setattr(datasets.CIFAR10, '_check_integrity', lambda self: True)
    monkeypatch.setattr(datasets.cifar, 'check_integrity', lambda *a, **k: True)  # the meta file's MD5
    src = data._read_cifar(tmp_path, download=False)
    for train, x, y in ((True, src.train_x, src.train_y), (False, src.test_x, src.test_y)):
        tv = datasets.CIFAR10(str(tmp_path), train=train)
        assert (torch.from_numpy(tv.data).permute(0, 3, 1, 2) == x).all() and tv.targets == y.tolist()
    assert src.names == tv.classes


# ---------------------------------------------------------------- SVHN (.mat)
def write_svhn(root, n_train=12, n_test=4):
    for name, n in (('train_32x32.mat', n_train), ('test_32x32.mat', n_test)):
        digit = np.repeat(np.arange(10), n)
        X = np.empty((32, 32, 3, len(digit)), np.uint8)
        X[:] = value(digit)
        X[0, 5, 0, :] = 255  # row 0, column 5, red
        scipy.io.savemat(root/name, {'X': X, 'y': np.where(digit == 0, 10, digit).reshape(-1, 1).astype(np.uint8)})


def test_svhn(tmp_path, monkeypatch):
    write_svhn(tmp_path)
    d = load_open_set('svhn', data_root=tmp_path)
    assert d.augment and d.train_x.shape == (72, 3, 32, 32) and (len(d.test_y), len(d.unknown_y)) == (24, 16)
    assert (d.train_x[:, 0, 1, 1].long() == value(torch.tensor(KNOWN0)[d.train_y])).all()  # label 10 read as digit 0
    assert torch.bincount(d.train_y).tolist() == [12] * 6
    assert (d.train_x[:, 0, 0, 5] == 255).all() and (d.train_x[:, 0, 5, 0] != 255).all()
    assert set(d.unknown_y.tolist()) == {3, 6, 7, 8}
    monkeypatch.setattr(datasets.SVHN, '_check_integrity', lambda self: True)
    tv, src = datasets.SVHN(str(tmp_path), split='train'), data._read_svhn(tmp_path, download=False)
    assert (torch.from_numpy(tv.data) == src.train_x).all() and (torch.from_numpy(tv.labels) == src.train_y).all()


# ---------------------------------------------------------------- Tiny-ImageNet (folders of JPEGs)
def tiny_colour(c):  # class 0..199 -> RGB that survives JPEG
    return ((c % 10) * 25, (c // 10) * 12, 128)


def tiny_class(x):  # (N,3,S,S) uint8 -> class
    r, g = x[:, 0, 8, 8].float(), x[:, 1, 8, 8].float()
    return (r / 25).round().long() + 10 * (g / 12).round().long()


def write_tiny(root, known, n_known=12, n_other=2, n_val=2):
    folder = root/'tiny-imagenet-200'
    wnids = [f'n{1000 + 7 * i:08d}' for i in range(200)]  # sorted order = class order
    shuffled = wnids[:]; random.Random(0).shuffle(shuffled)
    (folder/'val'/'images').mkdir(parents=True)
    (folder/'wnids.txt').write_text('\n'.join(shuffled) + '\n')
    ann = []
    for c, w in enumerate(wnids):
        img = Image.new('RGB', (64, 64), tiny_colour(c))
        (folder/'train'/w/'images').mkdir(parents=True)
        (folder/'train'/w/f'{w}_boxes.txt').write_text('')
        for j in range(n_known if c in known else n_other): img.save(folder/'train'/w/'images'/f'{w}_{j}.JPEG')
        for j in range(n_val):
            f = f'val_{c * n_val + j}.JPEG'; img.save(folder/'val'/'images'/f); ann.append(f'{f}\t{w}\t0\t0\t63\t63')
    random.Random(1).shuffle(ann)
    (folder/'val'/'val_annotations.txt').write_text('\n'.join(ann) + '\n')


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('tiny')
    write_tiny(root, known_unknown('tiny_imagenet', 'AUROC', 0)[0])
    return root


def test_tiny_imagenet(tiny_root):
    known, unknown = known_unknown('tiny_imagenet', 'AUROC', 0)
    d = load_open_set('tiny_imagenet', data_root=tiny_root)
    assert d.augment and (d.K, len(d.train_y), len(d.test_y), len(d.unknown_y)) == (20, 240, 40, 360)
    assert d.train_x.shape[1:] == (3, 32, 32) and d.train_x.dtype == torch.uint8
    assert (tiny_class(d.train_x) == torch.tensor(known)[d.train_y]).all()  # sorted-wnid class index
    assert (tiny_class(d.test_x) == torch.tensor(known)[d.test_y]).all()
    assert (tiny_class(d.unknown_x) == d.unknown_y).all() and sorted(set(d.unknown_y.tolist())) == unknown
    assert d.known_names == [f'n{1000 + 7 * c:08d}' for c in known]
    assert d.openness == pytest.approx(1 - 0.1 ** 0.5)


def test_tiny_imagenet_64_fraction(tiny_root):
    d = load_open_set('tiny_imagenet', data_root=tiny_root, image_size=64, fraction=0.5)
    assert d.train_x.shape == (120, 3, 64, 64) and torch.bincount(d.train_y).tolist() == [6] * 20
    assert len(d.test_y) == 40 and len(d.unknown_y) == 360


# ---------------------------------------------------------------- digits (no files)
def test_digits_split_and_remap():
    d = load_open_set('digits', 'AUROC', 0, data_root='/this/root/is/not/used')
    assert (len(d.train_y) + len(d.test_y) + len(d.unknown_y)) > 0 and len(d.test_y) + len(d.unknown_y) == 540
    assert d.train_x.shape[1:] == (3, 32, 32) and d.train_x.max() == 255 and not d.augment
    src = data._read_digits()
    assert (d.train_x[d.train_y == 3] == data._images(src.train_x[src.train_y == 4], 32)).all()
    assert 'openness 0.2254' in repr(d)


# ---------------------------------------------------------------- missing data, arguments, roots
@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **k): raise AssertionError('network access attempted')
    monkeypatch.setattr(socket, 'socket', refuse)


@pytest.mark.parametrize('dataset,names', [
    ('mnist', ['train-images-idx3-ubyte', 'MNIST/raw']),
    ('fashionmnist', ['t10k-labels-idx1-ubyte', 'apt-get install dataset-fashion-mnist']),
    ('svhn', ['train_32x32.mat', 'test_32x32.mat']),
    ('cifar10', ['data_batch_5', 'test_batch', 'cifar-10-batches-py']),
    ('cifar_plus_10', ['data_batch_1']),
    ('tiny_imagenet', ['wnids.txt', 'val_annotations.txt', 'tiny-imagenet-200.zip'])])
def test_missing_data(tmp_path, monkeypatch, no_network, dataset, names):
    monkeypatch.setattr(data, 'FASHION_DEBIAN', tmp_path/'no-debian-package')
    t = time.perf_counter()
    with pytest.raises(FileNotFoundError) as e: load_open_set(dataset, data_root=tmp_path)
    assert time.perf_counter() - t < 2
    msg = str(e.value)
    assert str(tmp_path) in msg and all(n in msg for n in names)
    assert 'download=True' in msg and (dataset == 'tiny_imagenet' or 'needs internet' in msg)


def test_download_true_with_files_present_stays_offline(tmp_path, no_network):
    write_mnist(tmp_path/'MNIST'/'raw', gz=False); write_cifar10(tmp_path); write_svhn(tmp_path)
    for dataset in ('mnist', 'cifar10', 'svhn'):
        assert load_open_set(dataset, data_root=tmp_path, download=True).K == 6


def test_cifar_plus_needs_cifar100(tmp_path, no_network):
    write_cifar10(tmp_path)
    with pytest.raises(FileNotFoundError, match='cifar-100-python'): load_open_set('cifar_plus_50', data_root=tmp_path)


@pytest.mark.parametrize('kwargs,text', [
    (dict(dataset='cifar100'), "'tiny_imagenet'"), (dict(dataset='mnist', protocol='roc'), "['AUROC', 'F1']"),
    (dict(dataset='mnist', split=5), '[0, 1, 2, 3, 4]'), (dict(dataset='digits', image_size=28), '[32, 64]'),
    (dict(dataset='digits', fraction=0.0), '(0, 1]'), (dict(dataset='digits', fraction=2), '(0, 1]')])
def test_bad_arguments(kwargs, text):
    with pytest.raises(ValueError) as e: load_open_set(**kwargs)
    assert text in str(e.value)


def test_resolve_root(tmp_path, monkeypatch):
    monkeypatch.setenv('DIAS_DATA', str(tmp_path))
    assert resolve_root() == tmp_path and resolve_root(tmp_path/'..') == tmp_path/'..'
    monkeypatch.delenv('DIAS_DATA')
    assert resolve_root() == Path.home()/'.dias'/'data'
    with pytest.raises(FileNotFoundError, match='missing'): resolve_root(tmp_path/'missing')
    monkeypatch.setenv('DIAS_DATA', str(tmp_path/'gone'))
    with pytest.raises(FileNotFoundError, match='DIAS_DATA'): load_open_set('mnist')


def test_splits_and_openness():
    for protocol in ('AUROC', 'F1'):
        for s in range(5):
            k, u = known_unknown('cifar10', protocol, s)
            assert len(k) == 6 and sorted(k + u) == list(range(10))
            assert known_unknown('digits', protocol, s) == known_unknown('fashionmnist', protocol, s) == known_unknown('mnist', protocol, s)
    assert openness(6, 4) == pytest.approx(0.2254, abs=1e-4)
    assert openness(4, 10) == pytest.approx(0.4654, abs=1e-4)
    assert openness(4, 50) == pytest.approx(0.7278, abs=1e-4)


# ---------------------------------------------------------------- Fashion-MNIST from the Debian package
@pytest.mark.skipif(not data._idx_paths(data.FASHION_DEBIAN), reason='Debian package dataset-fashion-mnist not installed')
def test_fashion_debian(tmp_path):
    d = load_open_set('fashionmnist', 'AUROC', 1, data_root=tmp_path, fraction=0.05)
    assert (len(d.train_y), len(d.test_y), len(d.unknown_y)) == (1800, 6000, 4000)
    assert d.known_names == [datasets.FashionMNIST.classes[c] for c in known_unknown('fashionmnist', 'AUROC', 1)[0]]
    assert d.train_x.dtype == torch.uint8 and d.train_x.max() == 255 and d.train_x.shape[1:] == (3, 32, 32)


# ---------------------------------------------------------------- augmentation
def test_augment_batch_is_a_crop_of_the_padded_image():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8, generator=g)
    a = augment_batch(x, pad=2, generator=torch.Generator().manual_seed(5))
    xp = torch.nn.functional.pad(to_float(x), (2, 2, 2, 2))
    offsets = set()
    for i in range(16):  # brute force: exactly one of the 25 crops x 2 flips matches each output
        hits = [(oy, ox, f) for oy in range(5) for ox in range(5) for f in (0, 1)
                if torch.equal(a[i], (lambda c: c.flip(-1) if f else c)(xp[i, :, oy:oy + 8, ox:ox + 8]))]
        assert len(hits) == 1
        offsets.add(hits[0])
    assert len(offsets) > 4  # per-sample randomness, not one offset for the batch
    assert torch.equal(a, augment_batch(x, pad=2, generator=torch.Generator().manual_seed(5)))
    assert a.dtype == torch.float32 and 0 <= a.min() and a.max() <= 1
