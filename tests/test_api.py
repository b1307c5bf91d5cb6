"""dias.api and dias.cli on small PNG folders: fit/predict/save/load, the command line end to end, and the errors.

Every classifier here is tiny (width 0.125, 1 epoch) so the file runs in well under a minute on 2 CPU cores.
"""
import json, os, shutil, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dias.api import (ModelFormatError, NotFittedError, OpenSetClassifier, UnreadableImageError, folder_open_set,
                      load_image_folder)
from dias.cli import main

COLOURS = dict(red=(220, 30, 30), green=(30, 200, 40), blue=(30, 40, 220), yellow=(230, 220, 30))
KNOWN = ['red', 'green', 'blue']
TINY = dict(width=0.125, epochs=1, batch_size=8, device='cpu', quiet=True)


def write_class(root, name, n, seed=0, size=(12, 10)):
    rng = np.random.default_rng(seed)
    d = Path(root) / name
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        a = np.clip(np.array(COLOURS[name]) + rng.normal(0, 12, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
        Image.fromarray(a).save(d / f'{name}_{i}.png')
    return d


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    "2 shared CPU cores: torch's default of one thread per core is many times slower under contention."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp('imgs')
    for c in COLOURS:
        write_class(root / 'train', c, 6)
        write_class(root / 'test', c, 2, seed=1)
    return root


@pytest.fixture(scope='module')
def clf(folders):
    return OpenSetClassifier(**TINY).fit(folders / 'train', known=KNOWN)


def test_fit_predict_types(clf, folders):
    paths = sorted((folders / 'test').glob('*/*.png'))
    labels = clf.predict(paths)
    assert clf.classes_ == KNOWN and len(labels) == len(paths)
    assert set(labels) <= set(KNOWN) | {'unknown'}
    p = clf.predict_proba(paths)
    assert p.shape == (len(paths), 3) and np.allclose(p.sum(1), 1)
    # the score is the maximum softmax probability of the classifier's own logits, computed here without the API
    from dias.api import _read_all
    from dias.train import predict_logits
    direct = torch.softmax(predict_logits(clf.model, _read_all(paths, clf.image_size)), 1).max(1).values.numpy()
    np.testing.assert_allclose(clf.score(paths), direct, rtol=1e-6)
    assert clf.threshold == pytest.approx(0.5 + 0.5 / 3 - 0.05)
    # the rule: unknown exactly where the score is below the threshold
    assert [l == 'unknown' for l in labels] == list(p.max(1) < clf.threshold)


def test_inputs_in_any_form_agree(clf, folders):
    p = folders / 'test' / 'red' / 'red_0.png'
    x = load_image_folder(folders / 'test', ['red', 'blue']).x[:1]
    ref = clf.predict_proba([p])
    for form in (str(p), p, Image.open(p), x, x.float() / 255, x[0], x.numpy()):
        np.testing.assert_array_equal(clf.predict_proba(form), ref)


def test_threshold_is_the_operating_point(clf, folders):
    paths = sorted((folders / 'test').glob('*/*.png'))
    try:
        clf.threshold = 1.0
        assert clf.predict(paths) == ['unknown'] * len(paths)
        clf.threshold = 0.0
        assert 'unknown' not in clf.predict(paths)
        with pytest.raises(ValueError, match=r'\[0, 1\]'): clf.threshold = 2
    finally: clf.threshold = 0.5 + 0.5 / 3 - 0.05


def test_save_load_round_trip(clf, folders, tmp_path):
    paths = sorted((folders / 'test').glob('*/*.png'))
    clf.threshold = 0.61
    try:
        f = clf.save(tmp_path / 'm.dias')
        clf2 = OpenSetClassifier.load(f, device='cpu')
        assert clf2.predict(paths) == clf.predict(paths)
        np.testing.assert_array_equal(clf2.predict_proba(paths), clf.predict_proba(paths))
        assert (clf2.classes_, clf2.threshold, clf2.image_size, clf2.width) == (KNOWN, 0.61, 32, 0.125)
        d = torch.load(f, weights_only=True)
        assert {'weights', 'classes', 'image_size', 'width', 'threshold', 'config', 'dias_version', 'format', 'format_version'} <= set(d)
        assert not list(tmp_path.glob('*.tmp'))
    finally: clf.threshold = 0.5 + 0.5 / 3 - 0.05


def edited(src, dst, **kw):
    d = torch.load(src, weights_only=True)
    d.update(kw)
    torch.save(d, dst)
    return dst


def test_load_rejects_other_versions_and_architectures(clf, tmp_path):
    f = clf.save(tmp_path / 'm.dias')
    with pytest.raises(ModelFormatError, match='format version 99'):
        OpenSetClassifier.load(edited(f, tmp_path / 'v.dias', format_version=99))
    with pytest.raises(ModelFormatError, match='do not fit'):
        OpenSetClassifier.load(edited(f, tmp_path / 'w.dias', width=0.5))
    with pytest.raises(ModelFormatError, match='resnet'):
        OpenSetClassifier.load(edited(f, tmp_path / 'a.dias', architecture='resnet18'))
    (tmp_path / 'junk.dias').write_bytes(b'junk')
    with pytest.raises(ModelFormatError, match='not a dias model file'):
        OpenSetClassifier.load(tmp_path / 'junk.dias')
    with pytest.raises(FileNotFoundError): OpenSetClassifier.load(tmp_path / 'none.dias')


def test_load_keeps_the_training_options(folders, tmp_path):
    "Options given at construction (epsilon, lr, ...) survive save/load, so a refit of a loaded model trains as the original did."
    c = OpenSetClassifier(**TINY, epsilon=-0.2, lr=0.05).fit(folders / 'train', known=KNOWN)
    c2 = OpenSetClassifier.load(c.save(tmp_path / 'o.dias'), device='cpu')
    assert c2.overrides == dict(epsilon=-0.2, lr=0.05)
    assert c2.fit(folders / 'train', known=KNOWN).threshold == pytest.approx(0.5 + 0.5 / 3 - 0.2)


def test_tensors_and_dataset_fit_like_the_folder(folders):
    fi = load_image_folder(folders / 'train', KNOWN)
    a = OpenSetClassifier(**TINY).fit(folders / 'train', known=KNOWN)
    b = OpenSetClassifier(**TINY).fit(fi.x.float() / 255, y=[KNOWN[i] for i in fi.y])
    c = OpenSetClassifier(**TINY).fit(list(zip(fi.x, fi.y.tolist())), classes=KNOWN)
    assert b.classes_ == ['blue', 'green', 'red'] and c.classes_ == KNOWN   # sorted labels when known is not given
    b2 = OpenSetClassifier(**TINY).fit(fi.x, y=fi.y, known=[0, 1, 2], classes=KNOWN)
    assert b2.classes_ == KNOWN
    np.testing.assert_array_equal(a.predict_proba(fi.x), b2.predict_proba(fi.x))


class Colours(torch.utils.data.Dataset):
    "A torchvision-style Dataset (classes, targets) that counts the images it decodes."
    def __init__(self, folder):
        self.classes = sorted(p.name for p in folder.iterdir())
        self.files = [(f, i) for i, c in enumerate(self.classes) for f in sorted((folder / c).glob('*.png'))]
        self.targets, self.decoded = [i for _, i in self.files], []
    def __len__(self): return len(self.files)
    def __getitem__(self, i):
        self.decoded.append(self.classes[self.files[i][1]])
        return Image.open(self.files[i][0]).convert('RGB'), self.files[i][1]


def test_torchvision_style_dataset(folders):
    ds = Colours(folders / 'train')
    c = OpenSetClassifier(**TINY).fit(ds, known=['blue', 'red'])
    assert c.classes_ == ['blue', 'red'] and sorted(set(ds.decoded)) == ['blue', 'red']   # others never decoded


def test_other_classes_are_never_read_for_training(folders, tmp_path):
    shutil.copytree(folders / 'train', tmp_path / 'train')
    (tmp_path / 'train' / 'yellow' / 'yellow_0.png').write_bytes(b'corrupt')   # never read if yellow is not known
    c = OpenSetClassifier(**TINY).fit(tmp_path / 'train', known=['red', 'blue'])
    assert c.classes_ == ['red', 'blue']
    ds = folder_open_set(folders / 'train', ['red', 'blue'])
    assert ds.K == 2 and len(ds.train_y) + len(ds.test_y) == 12 and len(ds.unknown_y) == 12
    assert ds.unknown_classes == [1, 3]   # green, yellow in the sorted class list


def test_evaluate_folder(clf, folders):
    m = clf.evaluate(folders / 'test')
    assert (m['n_known'], m['n_unknown']) == (6, 2)
    # the same metrics from the benchmarks' path: the folder as an OpenSetData, evaluated by dias.evaluate
    from dias.evaluate import open_set_metrics
    from dias.train import predict_logits
    ds = folder_open_set(folders / 'train', KNOWN, test_root=folders / 'test')
    lg = lambda x: predict_logits(clf.model, x)
    ref = open_set_metrics(lg(ds.test_x), ds.test_y, lg(ds.unknown_x), 3, clf.threshold)
    for k in ('auroc', 'f1', 'accuracy', 'oscr', 'fpr95', 'aupr_in', 'aupr_out', 'f1_best'):
        assert m[k] == pytest.approx(ref[k]), k


# ---------------------------------------------------------------- errors, each before any training
def test_error_empty_folder(tmp_path):
    (tmp_path / 'a').mkdir()
    with pytest.raises(ValueError, match='empty'): OpenSetClassifier(**TINY).fit(tmp_path)


def test_error_known_class_not_in_folder(folders):
    with pytest.raises(ValueError, match=r"'cat'.*available classes: \['blue', 'green', 'red', 'yellow'\]"):
        OpenSetClassifier(**TINY).fit(folders / 'train', known=['red', 'cat'])


def test_error_fewer_than_two_known(folders):
    with pytest.raises(ValueError, match='at least 2 known classes'):
        OpenSetClassifier(**TINY).fit(folders / 'train', known=['red'])
    with pytest.raises(ValueError, match='at least 2'):
        OpenSetClassifier(**TINY).fit(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), y=[0, 0, 0, 0])


def test_error_unreadable_image_is_named(folders, tmp_path):
    shutil.copytree(folders / 'train', tmp_path / 'train')
    (tmp_path / 'train' / 'blue' / 'blue_3.png').write_bytes(b'\x89PNG broken')
    with pytest.raises(UnreadableImageError, match='blue_3.png'):
        OpenSetClassifier(**TINY).fit(tmp_path / 'train', known=KNOWN)


def test_error_predict_before_fit(folders):
    c = OpenSetClassifier()
    for call in (lambda: c.predict([folders / 'test' / 'red' / 'red_0.png']), lambda: c.predict_proba([]),
                 lambda: c.evaluate(folders / 'test'), lambda: c.save('x.dias'), lambda: c.threshold):
        with pytest.raises(NotFittedError, match='not fitted'): call()


# ---------------------------------------------------------------- command line, end to end
def cli(*args, script=False):
    "Run the command line in a new process: the `dias` console script, or `python -m dias.cli`."
    exe = [shutil.which('dias')] if script and shutil.which('dias') else [sys.executable, '-m', 'dias.cli']
    return subprocess.run(exe + list(map(str, args)), capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))


def test_cli_end_to_end(folders, tmp_path, capsys):
    model = tmp_path / 'model.dias'
    r = cli('train', folders / 'train', '--known', 'red,green,blue', '--out', model, '--epochs', 1, '--width', 0.125,
            '--batch-size', 8, '--device', 'cpu', '--quiet')
    assert r.returncode == 0, r.stderr
    assert model.is_file() and 'not used for training (1): yellow' in r.stdout
    imgs = [folders / 'test' / c / f'{c}_0.png' for c in COLOURS]
    r = cli('predict', model, *imgs, '--json', '--device', 'cpu', script=True)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert [p['path'] for p in d['predictions']] == list(map(str, imgs)) and d['classes'] == KNOWN
    assert main(['predict', str(model), *map(str, imgs), '--device', 'cpu']) == 0   # text form, in process
    rows = [l.split('\t') for l in capsys.readouterr().out.splitlines()]
    assert [row[0] for row in rows] == list(map(str, imgs))
    assert all(row[1] in KNOWN + ['unknown'] and 0 <= float(row[2]) <= 1 for row in rows)
    assert [p['label'] for p in d['predictions']] == [row[1] for row in rows]
    clf = OpenSetClassifier.load(model, device='cpu')   # the CLI and the API agree on the same file
    assert clf.predict(imgs) == [row[1] for row in rows]
    np.testing.assert_allclose([p['score'] for p in d['predictions']], clf.score(imgs), rtol=1e-6)
    assert main(['evaluate', str(model), str(folders / 'test'), '--json']) == 0
    assert json.loads(capsys.readouterr().out)['n_unknown'] == 2


def test_cli_errors_and_help(folders, tmp_path, capsys):
    assert main(['train', str(folders / 'train'), '--known', 'red,cat', '--out', str(tmp_path / 'x.dias')]) == 1
    assert "available classes: ['blue', 'green', 'red', 'yellow']" in capsys.readouterr().err
    assert main(['train', str(folders / 'train'), '--known', 'red', '--out', str(tmp_path / 'x.dias')]) == 1
    assert 'at least 2' in capsys.readouterr().err
    assert main(['predict', str(tmp_path / 'missing.dias'), 'a.png']) == 1
    assert 'does not exist' in capsys.readouterr().err
    for cmd in ('train', 'predict', 'evaluate'):
        with pytest.raises(SystemExit) as e: main([cmd, '--help'])
        assert e.value.code == 0
    out = capsys.readouterr().out
    for opt in ('--known', '--out', '--epochs', '--width', '--batch-size', '--device', '--image-size', '--method',
                '--seed', '--quiet', '--json', '--threshold'):
        assert opt in out, opt
