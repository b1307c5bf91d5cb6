"The analysis notebooks (nbs/2X_*.ipynb), run as users run them: papermill with tiny parameters; and the tools of dias.analysis."
import json, os, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
from dias.analysis import sliced_wasserstein, halves_distance, classwise_auroc, require, mean_std_table, difficulty_ordering
from dias.data import known_unknown

ROOT = Path(__file__).resolve().parents[1]
TINY = ['-p', 'epochs', '1', '-p', 'width', '0.125', '-p', 'fraction', '0.2', '-p', 'device', 'cpu']

# --- dias.analysis: the Wasserstein helper and friends ---------------------------------------------

def test_sliced_wasserstein_identical_sets_is_zero():
    x = np.random.default_rng(0).standard_normal((300, 16))
    assert sliced_wasserstein(x, x) == 0.0
    assert sliced_wasserstein(x, x[::-1]) == pytest.approx(0.0, abs=1e-12)   # order does not matter

def test_sliced_wasserstein_shifted_1d_gaussians_is_the_shift():
    rng = np.random.default_rng(1)
    a = rng.standard_normal(2000)
    assert sliced_wasserstein(a, a + 2.5) == pytest.approx(2.5, abs=1e-9)             # the same sample, shifted
    assert sliced_wasserstein(a, rng.standard_normal(3000) - 1.5) == pytest.approx(1.5, abs=0.1)  # independent samples

def test_sliced_wasserstein_is_symmetric_and_checks_shapes():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((100, 4)), rng.standard_normal((70, 4)) + 1
    assert sliced_wasserstein(a, b) == pytest.approx(sliced_wasserstein(b, a), abs=1e-12)
    assert sliced_wasserstein(a, b) > sliced_wasserstein(a, rng.standard_normal((70, 4)))
    with pytest.raises(ValueError, match='dimension'): sliced_wasserstein(a, b[:, :3])
    with pytest.raises(ValueError, match='NaN'): sliced_wasserstein(a, np.full((3, 4), np.nan))

def test_halves_distance_is_the_sampling_floor():
    x = np.random.default_rng(3).standard_normal((2000, 3))
    assert halves_distance(x) < 0.1 < sliced_wasserstein(x, x + [0.5, 0, 0])     # noise of 1000 vs 1000 points, below a 0.5 shift (0.25)
    assert halves_distance(x[:200]) > halves_distance(x)                          # and it shrinks as the sample grows
    with pytest.raises(ValueError, match='at least 4'): halves_distance(x[:3])

def test_difficulty_ordering_reports_each_link():
    m = dict(easy=dict(auroc=.9), moderate=dict(auroc=.7), hard2=dict(auroc=.8), hard1=dict(auroc=.5))
    o = difficulty_ordering(m, 'auroc')
    assert o == {'easy > moderate': True, 'moderate > hard2': False, 'moderate > hard1': True, 'holds': False}

def test_classwise_auroc_and_tables():
    a = dict(known_scores=np.array([.9, .8]), unknown_scores=np.array([.1, .85, .95]), unknown_class=np.array([3, 5, 5]))
    assert classwise_auroc(a) == {3: 1.0, 5: 0.25}
    with pytest.raises(ValueError, match='unknown_class'): classwise_auroc({k: a[k] for k in ('known_scores', 'unknown_scores')})
    with pytest.raises(ValueError, match='n_fakes=0'): require((True, 'ok'), (False, 'n_fakes=0; accepted: an int >= 10'))
    assert '0.500 ± 0.100' in mean_std_table({'x': dict(auroc=(0.5, 0.1), f1=(0.2, 0.0))})

# --- the notebooks through papermill ---------------------------------------------------------------

def papermill(nb:str, out_nb:Path, *args):
    env = {**os.environ}; env.setdefault('OMP_NUM_THREADS', '1')   # one thread: much faster on a shared CPU
    return subprocess.run([sys.executable, '-m', 'papermill', str(ROOT / 'nbs' / nb), str(out_nb), '-k', 'python3', *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)

def run_tiny(tmp_path, nb:str, json_name:str, *args) -> tuple:
    out = tmp_path / 'out'
    r = papermill(nb, tmp_path / 'executed.ipynb', '-p', 'out_dir', str(out), *TINY, *args)
    assert r.returncode == 0, r.stderr[-3000:]
    text = json.dumps(json.loads((tmp_path / 'executed.ipynb').read_text()), ensure_ascii=False)
    assert 'Budget' in text and 'GPU' in text          # the executed notebook states its budget and the paper's
    return out, json.loads((out / json_name).read_text())

def test_20_difficulty(tmp_path):
    out, j = run_tiny(tmp_path, '20_difficulty.ipynb', 'difficulty.json', '-y', 'splits: [0]', '-p', 'n_fakes', '60', '-p', 'n_projections', '32')
    assert j['params']['epochs'] == 1 and j['params']['splits'] == [0] and j['n_fakes'] == 60   # -p / -y reached the notebook
    assert {'per_split', 'summary', 'claim', 'claim_per_split', 'order_easy_to_hard', 'lambda0_classifier', 'bn_stats', 'gan_bn_set'} <= set(j)
    assert {'easy', 'moderate', 'hard2', 'hard1', 'unknown', 'moderate_bn1', 'floor'} <= set(j['per_split']['0'])
    assert set(j['claim']) == {'auroc', 'wd_norm'}
    # two code paths, one classifier: the analysis's own view with the trained BN statistics against the experiment's evaluation
    assert j['bn_stats'] == 'real'
    assert j['summary_other_bn_stats']['unknown']['auroc'][0] == pytest.approx(j['lambda0_classifier']['auroc'][0])
    assert json.loads((out / 'metrics.json').read_text())['params']['config'] == {'lam': 0.0}

def test_21_ablation(tmp_path):
    out, j = run_tiny(tmp_path, '21_ablation.ipynb', 'ablation.json', '-y', 'splits: [0]')
    assert set(j['summary']) == {'softmax', 'easy', 'moderate', 'hard', 'hard_easy', 'hard_moderate', 'moderate_easy', 'dias'}
    assert {'auroc', 'f1', 'f1_best', 'accuracy'} <= set(j['summary']['dias'])
    assert {'claims', 'auroc_ranking', 'paper_table5', 'paper_table6'} <= set(j)
    assert j['paper_table6']['dias'] == [0.953, 0.880, 0.809, 0.859, 0.829]

def test_22_threshold(tmp_path):
    out, j = run_tiny(tmp_path, '22_threshold.ipynb', 'threshold.json', '-y', 'splits: [0]')
    r = j['per_split']['0']
    assert r['f1_best'] >= r['f1'] - 1e-12 and r['gap'] == pytest.approx(r['f1_best'] - r['f1'])
    assert r['threshold'] == pytest.approx(0.5 + 0.5 / 6 - 0.05)      # tau + epsilon, K = 6, alpha_hard = 0.5
    assert j['params']['protocol'] == 'F1' and {'f1', 'f1_best', 'gap'} <= set(j['summary'])

def test_23_classwise(tmp_path):
    out, j = run_tiny(tmp_path, '23_classwise.ipynb', 'classwise.json', '-y', 'splits: [0]')
    assert sorted(int(c) for c in j['per_class']) == sorted(known_unknown('digits', 'AUROC', 0)[1])   # the original unknown classes
    assert {'points', 'bins', 'spearman_softmax_auroc_vs_gain', 'share_of_pairs_with_gain', 'claims'} <= set(j)
    # each point's per-class AUROCs, again, with scikit-learn on the saved per-sample scores
    from sklearn.metrics import roc_auc_score
    for p in j['points']:
        for m in ('dias', 'softmax'):
            a = np.load(out / m / 'split0' / 'scores.npz')
            u = a['unknown_scores'][a['unknown_class'] == p['cls']]
            ref = roc_auc_score(np.r_[np.ones(len(a['known_scores'])), np.zeros(len(u))], np.r_[a['known_scores'], u])
            assert p[m] == pytest.approx(ref), (m, p['cls'])

def test_24_tsne(tmp_path):
    out, j = run_tiny(tmp_path, '24_tsne.ipynb', 'tsne.json', '-p', 'split', '0', '-p', 'n_fakes', '40', '-p', 'n_known', '80')
    assert j['n_points'] == {'known': 80, 'easy': 40, 'moderate': 40, 'hard': 40}
    assert set(j['mixing']) == {'easy', 'moderate', 'hard'} and all(0 <= v <= 1 for v in j['mixing'].values())
    assert np.load(out / 'tsne.npz')['embedding'].shape == (200, 2)

def test_25_gan_samples(tmp_path):
    out, j = run_tiny(tmp_path, '25_gan_samples.ipynb', 'gan_samples.json', '-p', 'split', '0', '-p', 'n_samples', '16')
    assert set(j['epochs']) == {'0', '1'} and len(j['losses']) == 1
    for e in j['epochs'].values(): assert (out / e['file']).is_file() and 0 < e['msp_bn1'] <= 1

def test_26_alpha_sweep(tmp_path):
    out, j = run_tiny(tmp_path, '26_alpha_sweep.ipynb', 'alpha_sweep.json', '-y', 'splits: [0]', '-y', 'alphas: [0.0, 1.0]')
    assert set(j['summary']) == {'0.0', '1.0'} and {'auroc', 'f1', 'f1_best'} <= set(j['summary']['1.0'])
    assert j['threshold']['0.0'] == pytest.approx(0.95) and j['threshold']['1.0'] == pytest.approx(1 / 6 - 0.05)   # tau moves with alpha
    assert json.loads((out / 'alpha_1.0' / 'metrics.json').read_text())['params']['config'] == {'alpha_hard': 1.0}

def test_bad_parameter_fails_fast(tmp_path):
    t = time.time()
    r = papermill('24_tsne.ipynb', tmp_path / 'bad.ipynb', '-p', 'n_fakes', '1', '-p', 'out_dir', str(tmp_path / 'x'))
    assert r.returncode != 0 and 'n_fakes=1; accepted' in r.stderr + r.stdout
    assert not (tmp_path / 'x').exists() and time.time() - t < 120

def test_ablation_refuses_one_model_under_two_names(tmp_path):
    "'copycat' is 'hard_easy' (and 'gan' is 'moderate'): the same switches would be trained twice."
    r = papermill('21_ablation.ipynb', tmp_path / 'bad.ipynb', '-y', 'methods: [softmax, hard_easy, copycat]', '-p', 'out_dir', str(tmp_path / 'x'))
    assert r.returncode != 0 and 'each combination of fakes once' in r.stderr + r.stdout
    assert not (tmp_path / 'x').exists()
