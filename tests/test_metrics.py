"Tests of dias.evaluate against brute-force references and scikit-learn."
import matplotlib
matplotlib.use('Agg')
import numpy as np, pytest, torch
from sklearn.metrics import roc_auc_score, average_precision_score, f1_score, roc_curve
from dias.evaluate import *


def _random_case(seed, n_k=60, n_u=40, decimals=1):
    "Known and unknown scores with many ties (rounded), and random correctness of the knowns."
    rng = np.random.default_rng(seed)
    k = rng.normal(1, 1, n_k).round(decimals)
    u = rng.normal(0, 1, n_u).round(decimals)
    return k, rng.random(n_k) < 0.7, u


def _oscr_brute(k, correct, u):
    "O(n^2): one (FPR, CCR) point per distinct score as threshold, plus nothing accepted."
    pts = [(0.0, 0.0)]
    for t in sorted(set(np.r_[k, u]), reverse=True):
        ccr = sum(1 for s, c in zip(k, correct) if c and s >= t) / len(k)
        fpr = sum(1 for s in u if s >= t) / len(u)
        pts.append((fpr, ccr))
    return sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(pts, pts[1:]))


def _fpr_brute(k, u, tpr=0.95):
    "Smallest FPR over every threshold (all distinct scores and one above them) whose TPR >= tpr."
    cands = np.r_[np.unique(np.r_[k, u]), np.max(np.r_[k, u]) + 1]
    return min(np.mean(u >= t) for t in cands if np.mean(k >= t) >= tpr)


def _auroc_brute(k, u):
    return np.mean([(a > b) + 0.5 * (a == b) for a in k for b in u])


@pytest.mark.parametrize('seed', range(8))
@pytest.mark.parametrize('decimals', [0, 1, 3])
def test_oscr_matches_brute_force(seed, decimals):
    k, c, u = _random_case(seed, decimals=decimals)
    assert oscr(k, c, u) == pytest.approx(_oscr_brute(k, c, u), abs=1e-12)


def test_oscr_hand_cases():
    assert oscr([0.9, 0.7, 0.4], [True, False, True], [0.8]) == pytest.approx(1 / 3)
    assert oscr([0.5], [True], [0.5]) == pytest.approx(0.5)
    assert oscr([0.9, 0.8], [True, True], [0.1, 0.2]) == pytest.approx(1.0)
    assert oscr([0.1, 0.2], [True, True], [0.9, 0.8]) == pytest.approx(0.0)
    assert oscr([0.9, 0.8], [False, False], [0.1]) == 0.0


@pytest.mark.parametrize('seed', range(5))
def test_oscr_is_auroc_when_all_correct_and_at_most_accuracy(seed):
    k, c, u = _random_case(seed)
    assert oscr(k, np.ones(len(k), bool), u) == pytest.approx(auroc(k, u), abs=1e-12)
    assert oscr(k, c, u) <= c.mean() + 1e-12


@pytest.mark.parametrize('seed', range(6))
@pytest.mark.parametrize('tpr', [0.95, 0.9, 0.5, 1.0])
def test_fpr_at_95_tpr_matches_brute_force(seed, tpr):
    k, _, u = _random_case(seed, n_k=57, decimals=seed % 3)
    assert fpr_at_95_tpr(k, u, tpr=tpr) == pytest.approx(_fpr_brute(k, u, tpr))


def test_fpr_at_95_tpr_hand_case_and_sklearn():
    k = np.arange(1, 21) / 20
    assert fpr_at_95_tpr(k, [0.05, 0.10, 0.50, 0.95]) == pytest.approx(0.75)   # a tie counts as accepted
    assert fpr_at_95_tpr(k, [0.0, 0.01]) == 0.0
    k, _, u = _random_case(3, n_k=500, n_u=300, decimals=2)
    fpr, tpr, _ = roc_curve(np.r_[np.ones(len(k)), np.zeros(len(u))], np.r_[k, u], drop_intermediate=False)
    assert fpr_at_95_tpr(k, u) == pytest.approx(fpr[np.argmax(tpr >= 0.95)])


@pytest.mark.parametrize('seed', range(5))
def test_auroc_aupr_agree_with_references(seed):
    k, _, u = _random_case(seed, decimals=seed % 3)
    y, s = np.r_[np.ones(len(k)), np.zeros(len(u))], np.r_[k, u]
    assert auroc(k, u) == pytest.approx(_auroc_brute(k, u))
    assert auroc(k, u) == pytest.approx(roc_auc_score(y, s))
    assert aupr_in(k, u) == pytest.approx(average_precision_score(y, s))
    assert aupr_out(k, u) == pytest.approx(average_precision_score(1 - y, -s))
    fpr, tpr, _ = roc_curve_points(k, u)
    assert fpr[0] == 0 and tpr[-1] == 1


def test_hand_values():
    assert auroc([0.9, 0.8], [0.85, 0.1]) == pytest.approx(0.75)
    assert aupr_in([0.9, 0.4], [0.6]) == pytest.approx(5 / 6)
    assert aupr_out([0.9, 0.4], [0.6]) == pytest.approx(0.5)


def test_macro_f1_label_convention():
    # class 0: F1 2/3; class 1: 1; unknown class K=2: one found, one missed -> 2/3
    assert macro_f1([0, 1, 2, 2], [0, 1, 2, 0], K=2) == pytest.approx(7 / 9)
    # an unknown predicted unknown is a true positive of class K: all right -> 1
    assert macro_f1([0, 1, 2], [0, 1, 2], K=2) == pytest.approx(1.0)
    # class K is always one of the K + 1 averaged classes, even when absent: F1 0 there
    assert macro_f1([0, 1], [0, 1], K=2) == pytest.approx(2 / 3)
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    assert macro_f1(t, p, K=4) == pytest.approx(f1_score(t, p, labels=range(5), average='macro', zero_division=0))


@pytest.mark.parametrize('seed', range(6))
def test_best_threshold_f1_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    K, n = 3 + seed % 3, 80
    s, p = rng.random(n).round(2), rng.integers(0, K, n)
    y = np.where(rng.random(n) < 0.3, K, np.where(rng.random(n) < 0.7, p, rng.integers(0, K, n)))
    brute = max(macro_f1(y, reject(p, s, t, K), K) for t in np.r_[s, 2.0])
    f1, t = best_threshold_f1(s, p, y, K)
    assert f1 == pytest.approx(brute, abs=1e-12)
    assert macro_f1(y, reject(p, s, t, K), K) == pytest.approx(f1, abs=1e-12)
    for t_fixed in np.linspace(0, 1, 51): assert f1 >= macro_f1(y, reject(p, s, t_fixed, K), K) - 1e-12


def test_scores_and_threshold():
    z = torch.tensor([[0., 0., 0.], [1000., 0., -1000.]])
    np.testing.assert_allclose(msp(z), [1 / 3, 1.0])
    np.testing.assert_allclose(energy(z), [np.log(3), 1000.0])
    np.testing.assert_allclose(max_logit(z), [0., 1000.])
    assert set(SCORES) == {'msp', 'max_logit', 'energy'} and score_fn('energy') is energy
    assert inherent_threshold(6) == pytest.approx(7 / 12 - 0.05)
    probs = np.array([[0.9, 0.05, 0.05], [0.5, 0.3, 0.2], [0.2, 0.7, 0.1]])
    np.testing.assert_array_equal(predict_open(probs, inherent_threshold(3)), [0, 3, 1])
    np.testing.assert_array_equal(predict_open(probs, 0.5 + 1 / 6, epsilon=-0.05), [0, 3, 1])


def _logits(seed=0, K=4, n_k=300, n_u=200):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, K, (n_k,), generator=g)
    known = torch.randn(n_k, K, generator=g) + 3 * torch.nn.functional.one_hot(y, K)
    return known, y, torch.randn(n_u, K, generator=g), K


@pytest.mark.parametrize('score', ['msp', 'max_logit', 'energy'])
def test_metrics_from_arrays_equals_open_set_metrics(score, tmp_path):
    known, y, unknown, K = _logits()
    thr = inherent_threshold(K)
    m = open_set_metrics(known, y, unknown, K, thr, score=score)
    assert set(m) == {'auroc', 'f1', 'accuracy', 'oscr', 'fpr95', 'aupr_in', 'aupr_out', 'f1_best', 'threshold_best'}
    arrays = open_set_predictions(known, y, unknown, K, score=score)
    assert set(arrays) == set(ARRAY_KEYS)
    np.savez(tmp_path / 'scores.npz', **arrays)
    with np.load(tmp_path / 'scores.npz') as saved: assert metrics_from_arrays(saved, K, thr) == m
    # each metric against its direct definition
    ks, us = score_fn(score)(known), score_fn(score)(unknown)
    assert m['auroc'] == pytest.approx(auroc(ks, us))
    assert m['accuracy'] == pytest.approx(closed_accuracy(known, y))
    y_all = np.r_[y.numpy(), np.full(len(unknown), K)]
    open_pred = np.r_[predict_open(softmax(known), thr), predict_open(softmax(unknown), thr)]
    assert m['f1'] == pytest.approx(macro_f1(y_all, open_pred, K))
    assert m['f1_best'] >= m['f1'] and m['oscr'] <= m['accuracy']
    # each threshold-free metric on the right scores, the right way round (knowns positive for AUPR-In, unknowns for AUPR-Out)
    assert m['fpr95'] == pytest.approx(fpr_at_95_tpr(ks, us)) and m['fpr95'] != pytest.approx(fpr_at_95_tpr(us, ks))
    assert m['aupr_in'] == pytest.approx(average_precision_score(np.r_[np.ones(len(ks)), np.zeros(len(us))], np.r_[ks, us]))
    assert m['aupr_out'] == pytest.approx(average_precision_score(np.r_[np.zeros(len(ks)), np.ones(len(us))], -np.r_[ks, us]))
    assert m['oscr'] == pytest.approx(oscr(ks, known.argmax(1).numpy() == y.numpy(), us))


@pytest.mark.parametrize('call, msg', [
    (lambda: auroc([], [0.1]), 'known_scores: empty'),
    (lambda: auroc([0.1], np.array([])), 'unknown_scores: empty'),
    (lambda: auroc([0.1, np.nan], [0.2]), 'NaN'),
    (lambda: fpr_at_95_tpr([0.1, np.inf], [0.2]), 'infinite'),
    (lambda: auroc(np.ones((2, 2)), [0.2]), '1-D'),
    (lambda: oscr([0.9, 0.7], [True], [0.8]), 'differ in length'),
    (lambda: macro_f1([0, 1], [0, 1, 2], K=2), 'differ in length'),
    (lambda: macro_f1([0, 3], [0, 1], K=2), 'out of range'),
    (lambda: macro_f1([0, 1.5], [0, 1], K=2), 'integers'),
    (lambda: closed_accuracy(np.zeros((3, 2)), [0, 1]), 'differ in length'),
    (lambda: predict_open(np.array([[3., -1.]]), 0.5), 'softmax(logits)'),
    (lambda: score_fn('entropy'), 'msp, max_logit, energy'),
    (lambda: inherent_threshold(1), 'K'),
    (lambda: inherent_threshold(5, alpha_hard=-0.1), 'alpha_hard'),
    (lambda: open_set_predictions(np.zeros((3, 4)), [0, 1, 2], np.zeros((2, 3)), 4), 'unknown_logits: expected 4 columns'),
    (lambda: open_set_predictions(np.zeros((3, 4)), [0, 1, 4], np.zeros((2, 4)), 4), 'known_labels: label 4 out of range'),
    (lambda: metrics_from_arrays({'known_scores': [0.5]}, 4, 0.5), 'missing key'),
    (lambda: mean_std([]), 'empty'),
    (lambda: summarize([dict(auroc=0.9), dict(f1=0.8)]), 'rows[1]: missing'),
    (lambda: summarize([]), 'rows: empty'),
])
def test_validation_errors(call, msg):
    with pytest.raises(ValueError, match=None) as e: call()
    assert msg in str(e.value)


def test_metrics_from_arrays_checks_consistency():
    known, y, unknown, K = _logits(n_k=20, n_u=10)
    a = open_set_predictions(known, y, unknown, K)
    with pytest.raises(ValueError, match='every unknown must carry label K'):
        metrics_from_arrays({**a, 'unknown_true': np.zeros(10, int)}, K, 0.5)
    with pytest.raises(ValueError, match='known_msp and known_true differ in length'):
        metrics_from_arrays({**a, 'known_msp': a['known_msp'][:-1]}, K, 0.5)


def test_mean_std_summarize_format():
    m, s = mean_std([0.90, 0.92, 0.94])
    assert m == pytest.approx(0.92) and s == pytest.approx(np.std([0.90, 0.92, 0.94], ddof=0))
    assert mean_std([0.5]) == (0.5, 0.0)
    assert format_mean_std(m, s) == '0.920 ± 0.016'
    assert format_mean_std(0.91234, 0.01149, digits=2) == '0.91 ± 0.01'
    out = summarize([dict(auroc=0.9, f1=0.8), dict(auroc=0.94, f1=0.84)])
    assert list(out) == ['auroc', 'f1'] and out['auroc'] == pytest.approx((0.92, 0.02))
    assert list(summarize([dict(auroc=0.9, f1=0.8)], ['f1'])) == ['f1']


def test_plots_return_figures():
    import matplotlib.pyplot as plt
    known, y, unknown, K = _logits(n_k=50, n_u=30)
    fig = plot_roc(msp(known), msp(unknown), label='MSP')
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes[0].lines) == 2
    assert plot_roc(energy(known), energy(unknown), ax=fig.axes[0]) is fig
    fig2 = plot_score_hist(msp(known), msp(unknown), threshold=inherent_threshold(K))
    assert any(l.get_xdata()[0] == pytest.approx(inherent_threshold(K)) for l in fig2.axes[0].lines)
    plot_score_hist([0.5, 0.5], [0.5])   # degenerate range still draws
    plt.close('all')
