"Runs that survive: a real training process killed mid-epoch resumes to the same numbers."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
from dias.data import load_open_set
from dias.train import DIASConfig, DIASTrainer, NonFiniteLossError, CheckpointError, load_checkpoint, atomic_save

PARAMS = dict(splits=[0], methods=['dias'], epochs=4, width=0.125, fraction=0.3, device='cpu', quiet=True, seed=3)

def launch(out_dir):
    code = f"from dias.experiment import run_experiment; run_experiment(**{dict(PARAMS, out_dir=str(out_dir))!r})"
    env = dict(os.environ, OMP_NUM_THREADS='2', MKL_NUM_THREADS='2')
    return subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)

def test_sigkill_mid_epoch_then_resume_gives_identical_metrics(tmp_path):
    ref = launch(tmp_path / 'ref'); out_ref, _ = ref.communicate(timeout=600)
    assert ref.returncode == 0, out_ref
    ck = tmp_path / 'run' / 'dias' / 'split0' / 'checkpoint.pt'
    p = launch(tmp_path / 'run')
    t0 = time.time()
    while not ck.exists():                              # first epoch written
        assert p.poll() is None, p.communicate()[0]
        assert time.time() - t0 < 300; time.sleep(0.05)
    time.sleep(0.5)                                     # well inside the second epoch
    p.send_signal(signal.SIGKILL); p.wait()
    assert p.returncode == -signal.SIGKILL
    epoch_at_kill = load_checkpoint(ck)['epoch']
    assert 1 <= epoch_at_kill < PARAMS['epochs'], epoch_at_kill       # killed before the end
    assert not (tmp_path / 'run' / 'metrics.json').exists()
    q = launch(tmp_path / 'run'); out, _ = q.communicate(timeout=600)
    assert q.returncode == 0, out
    assert f'Resuming from {ck} at epoch {epoch_at_kill}/{PARAMS["epochs"]}' in out
    a = json.loads((tmp_path / 'ref' / 'metrics.json').read_text())['results']['dias']['0']
    b = json.loads((tmp_path / 'run' / 'metrics.json').read_text())['results']['dias']['0']
    for k in ('auroc', 'f1', 'accuracy', 'oscr', 'fpr95'): assert a[k] == b[k], (k, a[k], b[k])
    wa, wb = [torch.load(d / 'dias' / 'split0' / 'checkpoint.pt', weights_only=False)['nets'] for d in (tmp_path / 'ref', tmp_path / 'run')]
    for net in wa:
        for name, t in wa[net].items(): assert torch.equal(t, wb[net][name]), (net, name)

@pytest.fixture(scope='module')
def data(): return load_open_set('digits', 'AUROC', split=0, fraction=0.2)

def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, data):
    tr = DIASTrainer(DIASConfig(K=data.K, epochs=3, width=0.125), device='cpu', quiet=True)
    ck = tmp_path / 'ck.pt'
    tr.fit(data, ckpt_path=ck, stop_after=1)
    good = ck.read_bytes()
    step = tr.copycat_pass_step
    def poisoned(xb, yb):                               # the classifier's loss blows up in epoch 2
        out = step(xb, yb)
        if tr.epoch == 1: out['cls1'] = torch.tensor(float('nan'))
        return out
    tr.copycat_pass_step = poisoned
    with pytest.raises(NonFiniteLossError, match=r"Loss '.*' is nan at epoch 2, batch 1"): tr.fit(data, ckpt_path=ck)
    assert ck.read_bytes() == good and load_checkpoint(ck)['epoch'] == 1

def test_corrupt_or_foreign_checkpoint_is_an_error_not_overwritten(tmp_path, data):
    cfg = DIASConfig(K=data.K, epochs=1, width=0.125, moderate=False)
    ck = tmp_path / 'ck.pt'; ck.write_bytes(b'\x80\x02garbage')
    with pytest.raises(CheckpointError, match='ck.pt is corrupt or truncated'): DIASTrainer(cfg, 'cpu', quiet=True).fit(data, ckpt_path=ck)
    assert ck.read_bytes() == b'\x80\x02garbage'
    torch.save({'hello': 1}, ck)
    with pytest.raises(CheckpointError, match='not a dias checkpoint'): DIASTrainer(cfg, 'cpu', quiet=True).fit(data, ckpt_path=ck)
    DIASTrainer(cfg, 'cpu', quiet=True).fit(data, ckpt_path=ck, fresh=True)      # explicit start over
    assert load_checkpoint(ck)['epoch'] == 1
    other = DIASConfig(K=data.K, epochs=1, width=0.25, moderate=False)
    with pytest.raises(CheckpointError, match=r'width: saved 0.125 vs now 0.25'): DIASTrainer(other, 'cpu', quiet=True).fit(data, ckpt_path=ck)

def test_interrupted_atomic_write_keeps_previous(tmp_path):
    ck = tmp_path / 'ck.pt'
    atomic_save({'config': {}, 'epoch': 1}, ck)
    class Boom:
        def __reduce__(self): raise KeyboardInterrupt('killed during write')
    with pytest.raises(KeyboardInterrupt): atomic_save({'config': {}, 'epoch': 2, 'x': Boom()}, ck)
    assert load_checkpoint(ck)['epoch'] == 1
    assert [p.name for p in tmp_path.iterdir()] == ['ck.pt']
