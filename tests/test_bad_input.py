"Bad input to the Python API: a clear error that says what was wrong and what is accepted, before any work."
import time
import pytest, torch
from dias.data import load_open_set, known_unknown
from dias.models import Classifier32, Generator, resolve_device
from dias.train import DIASConfig, DIASTrainer
from dias.losses import smooth_labels, tau
from dias.experiment import check_params

@pytest.mark.parametrize('call, text', [
    (lambda: load_open_set('imagenet'), 'digits'),                        # unknown dataset, lists the valid ones
    (lambda: load_open_set('digits', protocol='ROC'), 'AUROC'),            # unknown protocol
    (lambda: load_open_set('digits', split=5), '5'),                       # split out of range
    (lambda: known_unknown('mnist', 'AUROC', -1), '-1'),
    (lambda: load_open_set('digits', image_size=48), '48'),                # image size the model cannot take
    (lambda: load_open_set('digits', fraction=0), 'fraction'),
    (lambda: load_open_set('cifar10', data_root='/does/not/exist'), 'does not exist'),
    (lambda: resolve_device('tpu'), "'auto', 'cpu', 'cuda'"),              # unknown device
    (lambda: DIASConfig(K=6, epochs=0), 'epochs must be a positive int'),
    (lambda: DIASConfig(K=6, batch_size=0), 'batch_size must be a positive int'),
    (lambda: DIASConfig(K=6, width=0), 'width must be > 0'),
    (lambda: DIASConfig(K=6, alpha_hard=1.2), 'alpha_hard must be in [0, 1]'),
    (lambda: DIASConfig(K=6, alpha_easy=-0.1), 'alpha_easy must be in [0, 1]'),
    (lambda: DIASConfig(K=6, lam=-0.1), 'lam must be >= 0'),
    (lambda: DIASConfig(K=6, beta=-0.1), 'beta must be >= 0'),
    (lambda: DIASConfig(K=6, image_size=28), 'image_size must be 32 or 64'),
    (lambda: DIASConfig(K=1), 'K must be an int >= 2'),
    (lambda: DIASConfig(K=6, amp='fp8'), "amp must be 'none' or 'bf16'"),
    (lambda: Classifier32(1), 'num_classes must be >= 2'),
    (lambda: Generator(image_size=48), '32 or 64'),
    (lambda: smooth_labels(torch.tensor([7]), 6, 0.5), 'label out of range'),
    (lambda: tau(6, 2.0), 'alpha_hard must be in [0, 1]'),
    (lambda: check_params(methods=['dias', 'openmax']), "accepted: a non-empty list from"),
    (lambda: check_params(dataset='folder', data_root='.', known=['cat', 'cat']), 'duplicates'),
    (lambda: check_params(dataset='folder', data_root='.', known=['cat']), 'at least 2'),
])
def test_bad_input_fails_fast_with_a_clear_message(call, text):
    t = time.time()
    with pytest.raises((ValueError, FileNotFoundError)) as e: call()
    assert text in str(e.value), str(e.value)
    assert time.time() - t < 5

def test_data_that_does_not_fit_the_model():
    data = load_open_set('digits', split=0, fraction=0.1)
    with pytest.raises(ValueError, match='K=6 known classes but the config says K=5'):
        DIASTrainer(DIASConfig(K=5, epochs=1, width=0.125), 'cpu', quiet=True).fit(data)
    with pytest.raises(ValueError, match='image'):
        DIASTrainer(DIASConfig(K=6, epochs=1, width=0.125, image_size=64), 'cpu', quiet=True).fit(data)
