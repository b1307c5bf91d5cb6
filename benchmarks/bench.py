"""Throughput of DIAS training against its arithmetic (issue 5).

One run prints, for each width and precision: images/s of a full DIAS epoch (both phases), of each
phase (Copycat pass, GAN pass), of a Softmax epoch (two plain cross-entropy passes, the fair
baseline of METHOD.md) and of inference; the DIAS/Softmax time ratio; the achieved GFLOP/s of
each epoch against the matrix-multiply peak measured here; the peak memory.

Definitions
- An epoch over N images is two passes (Algorithm 1): DIAS = Copycat pass + GAN pass, Softmax =
  two CE passes. "img/s" of an epoch is N / (epoch seconds); of a phase, N / (phase seconds).
- FLOPs are counted, not estimated: forward hooks on every Conv2d, ConvTranspose2d and Linear
  record 2 * MACs of each call of the real step; a call made with gradients on adds 2 * MACs
  for the weight gradient when its weight requires grad, and 2 * MACs for the input gradient
  when its input requires grad (what autograd will compute). So the teacher's no-grad forward
  counts once, the frozen classifier and D in the generator step count forward + input
  gradient, and a trained layer counts 3x. BatchNorm, activations, losses and optimisers are
  not counted: they are the overhead the achieved GFLOP/s exposes.
- The timed code is the trainer's own: `DIASTrainer.train_epoch` (its data path, both
  `copycat_pass_step` and `gan_pass_step`, the per-batch loss checks), on synthetic uint8
  images with the trainer's batched augmentation (crop + flip, as for CIFAR/SVHN). Each batch
  costs the time between the ends of two consecutive steps; a pass is its median batch times
  its batch count (robust to bursts from other users of a shared machine); the fastest whole
  epoch, timed directly, is printed beside it. `CPU use` (process CPU time / threads / wall
  time) well below 100% means other processes took the cores and the figures are low.
- Peak memory: peak RSS on the CPU (Linux VmHWM, reset per configuration), including what the
  imported libraries take; torch.cuda.max_memory_allocated on CUDA.

    python benchmarks/bench.py              # widths 1.0, 0.5, 0.25; fp32 and bf16
    python benchmarks/bench.py --quick      # CI: width 0.25, 2 batches; prints, never fails on speed
    python benchmarks/bench.py --compile    # the same with DIASConfig(compile=True); compare with a run without
"""
import argparse, gc, os, platform, resource, statistics, sys, time
from dataclasses import dataclass
import torch
from torch import nn

from dias.data import OpenSetData
from dias.train import DIASConfig, DIASTrainer, METHODS, predict_logits
from dias.models import resolve_device


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true', help='CI mode: one width (0.25), 2 batches per pass, 1 warm-up batch')
    p.add_argument('--widths', type=str, default=None, help='comma-separated widths (default 1.0,0.5,0.25; --quick: 0.25)')
    p.add_argument('--batches', type=int, default=None, help='timed batches per pass (default 6; --quick: 2)')
    p.add_argument('--warmup', type=int, default=None, help='warm-up batches per pass before timing (default 2; --quick: 1)')
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--device', type=str, default='auto', help="'auto', 'cpu', 'cuda', 'cuda:N'")
    p.add_argument('--amp', type=str, default='both', choices=('none', 'bf16', 'both'), help="precision: fp32 ('none'), bf16 autocast, or both")
    p.add_argument('--threads', type=int, default=None, help='torch threads (default: torch\'s own choice)')
    p.add_argument('--K', type=int, default=6, help='known classes')
    p.add_argument('--no-softmax', action='store_true', help='skip the Softmax baseline')
    p.add_argument('--nchw', action='store_true', help='DIASConfig(channels_last=False): the NCHW layout, for comparison')
    p.add_argument('--compile', action='store_true', help='DIASConfig(compile=True): torch.compile the training forwards (compiled during the warm-up batches)')
    p.add_argument('--repeats', type=int, default=None, help='timed epochs per configuration; each pass is timed from its median batch over all of them (default 2; --quick: 1)')
    a = p.parse_args(argv)
    a.widths = [float(w) for w in (a.widths or ('0.25' if a.quick else '1.0,0.5,0.25')).split(',')]
    a.batches = a.batches or (2 if a.quick else 6)
    a.warmup = a.warmup if a.warmup is not None else (1 if a.quick else 2)
    a.repeats = a.repeats or (1 if a.quick else 2)
    if a.batches < 1 or a.warmup < 0 or a.repeats < 1: p.error('--batches and --repeats must be >= 1, --warmup >= 0')
    return a


# ---------------------------------------------------------------- device, timing, memory
def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize(dev)
    elif dev.type == 'mps': torch.mps.synchronize()

def _rate(f, flops, dev, seconds):
    "GFLOP/s of `f` (which does `flops`), run for about `seconds` after a warm-up."
    for _ in range(2): f()
    sync(dev); t, r = time.perf_counter(), 0
    while True:
        f(); r += 1
        if dev.type == 'cpu' or r % 8 == 0:
            sync(dev)
            if time.perf_counter() - t > seconds: break
    return flops * r / (time.perf_counter() - t) / 1e9

def peak_gflops(dev, dtype, seconds) -> dict:
    "Measured matrix-multiply rates (GFLOP/s): torch.mm (MKL/cuBLAS) and a 1x1 convolution, the same GEMM through oneDNN/cuDNN."
    n = 2048 if dev.type == 'cpu' else 8192
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    mm = _rate(lambda: a @ b, 2 * n**3, dev, seconds / 2)
    cl = lambda *shape: torch.randn(*shape, device=dev, dtype=dtype).contiguous(memory_format=torch.channels_last)
    B, C, S = (16, 1024, 16) if dev.type == 'cpu' else (64, 4096, 32)
    x, w = cl(B, C, S, S), cl(C, C, 1, 1)
    conv1 = _rate(lambda: torch.nn.functional.conv2d(x, w), 2 * B * S * S * C * C, dev, seconds / 4)
    B, C, S = (64, 128, 16) if dev.type == 'cpu' else (512, 128, 16)   # classifier32's commonest layer, an implicit GEMM
    x, w = cl(B, C, S, S), cl(C, C, 3, 3)
    conv3 = _rate(lambda: torch.nn.functional.conv2d(x, w, padding=1), 2 * B * S * S * C * C * 9, dev, seconds / 4)
    return dict(mm=mm, conv1x1=conv1, conv3x3=conv3, peak=max(mm, conv1, conv3))

def rss_mb() -> float:
    "Current resident set size (MB), from /proc."
    try:
        for l in open('/proc/self/status'):
            if l.startswith('VmRSS:'): return int(l.split()[1]) / 1024
    except OSError: pass
    return float('nan')

def reset_peak(dev):
    "Start a new peak-memory window (CPU: Linux's clear_refs resets VmHWM; CUDA: allocator stats)."
    gc.collect()
    if dev.type == 'cuda': torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats(dev)
    else:
        try:
            with open('/proc/self/clear_refs', 'w') as f: f.write('5')
        except OSError: pass

def peak_mb(dev) -> float:
    "Peak memory since `reset_peak` (MB): CUDA max allocated, else peak RSS (VmHWM; ru_maxrss if /proc is missing)."
    if dev.type == 'cuda': return torch.cuda.max_memory_allocated(dev) / 2**20
    try:
        for l in open('/proc/self/status'):
            if l.startswith('VmHWM:'): return int(l.split()[1]) / 1024
    except OSError: pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- FLOP counting
class FlopCounter:
    "Forward hooks on Conv2d / ConvTranspose2d / Linear: 2*MACs forward, plus what backward will compute."
    def __init__(self, nets):
        self.flops, self.handles = 0, []
        for net in nets:
            for m in net.modules():
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)): self.handles.append(m.register_forward_hook(self.hook))
    def hook(self, m, inp, out):
        x = inp[0]
        if isinstance(m, nn.Conv2d): macs = out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.ConvTranspose2d): macs = x.numel() * (m.out_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        else: macs = out.numel() * m.in_features
        n = 1
        if torch.is_grad_enabled() and out.requires_grad:
            n += int(m.weight.requires_grad) + int(x.requires_grad)
        self.flops += 2 * macs * n
    def close(self):
        for h in self.handles: h.remove()


# ---------------------------------------------------------------- one configuration
def synthetic_data(n, K, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % K
    return OpenSetData(x, y, x[:2], y[:2], x[:2], y[:2], K=K, known_names=[str(i) for i in range(K)], dataset='synthetic',
                       protocol='AUROC', split=0, augment=True, known_classes=list(range(K)), unknown_classes=[K])

@dataclass
class Result:
    epoch_s: float; phase_s: tuple; flops_epoch: float; flops_phase: tuple; peak_mb: float; n: int; cpu_use: float; wall_epoch_s: float

def run_method(method, width, amp, dev, a, extra):
    "Warm up, count FLOPs of one batch per pass, then time `repeats` epochs of `train_epoch` over `batches` batches."
    bs, n = a.batch_size, a.batch_size * a.batches
    cfg = DIASConfig(K=a.K, batch_size=bs, width=width, amp=amp, epochs=1000, **METHODS[method], **extra)
    reset_peak(dev)
    tr = DIASTrainer(cfg, device=dev, quiet=True)
    steps = [tr.copycat_pass_step, tr.gan_pass_step]
    # warm-up (and FLOP count on the first batch of each pass, hooks removed before timing)
    warm = synthetic_data(bs * max(1, a.warmup), a.K, seed=1); tr._to_device(warm)
    flops = []
    for step in steps:
        for b, (xb, yb) in enumerate(tr._batches(warm)):
            if b == 0:   # counted on the eager networks (hooks do not fire inside compiled graphs); the arithmetic is the same
                compiled, tr.compiled = tr.compiled, {}
                fc = FlopCounter(tr.nets.values()); step(xb, yb); fc.close(); flops.append(fc.flops / len(xb))
                tr.compiled = compiled
            elif b < a.warmup: step(xb, yb)
    # timed epoch: the trainer's own loop; the phase boundary is the first call of the second pass
    data = synthetic_data(n, a.K, seed=2); tr._to_device(data)
    ends = []   # (pass, time) at the end of every step: batch i of a pass costs ends[i] - ends[i-1] (data path and loss checks included)
    def mark(i, f):
        def g(xb, yb):
            out = f(xb, yb); sync(dev); ends.append((i, time.perf_counter())); return out
        g.__name__ = f.__name__; return g
    tr.copycat_pass_step, tr.gan_pass_step = mark(0, steps[0]), mark(1, steps[1])
    per_batch, epochs, cpu = ([], []), [], []
    for _ in range(a.repeats):
        ends.clear()
        sync(dev); t0, c0 = time.perf_counter(), time.process_time()
        tr.train_epoch(data)
        sync(dev); t1, c1 = time.perf_counter(), time.process_time()
        prev = t0
        for i, t in ends: per_batch[i].append(t - prev); prev = t
        epochs.append(t1 - t0); cpu.append((c1 - c0) / (t1 - t0))
    nb = len(per_batch[0]) // a.repeats
    med = [statistics.median(p) * nb for p in per_batch]   # a pass from its median batch: robust to other users' bursts
    res = Result(sum(med), tuple(med), n * sum(flops), (n * flops[0], n * flops[1]), peak_mb(dev), n, min(cpu) / torch.get_num_threads(), min(epochs))
    return res, tr, data

def run_inference(tr, data, amp, dev, a):
    x = data.train_x
    predict_logits(tr.classifier, x[:a.batch_size], batch_size=a.batch_size, device=dev, amp=amp)  # warm-up
    fc = FlopCounter([tr.classifier]); predict_logits(tr.classifier, x[:a.batch_size], batch_size=a.batch_size, device=dev, amp=amp); fc.close()
    sync(dev); t = time.perf_counter()
    predict_logits(tr.classifier, x, batch_size=a.batch_size, device=dev, amp=amp)
    sync(dev); s = time.perf_counter() - t
    return len(x) / s, fc.flops / a.batch_size * len(x) / s / 1e9


# ---------------------------------------------------------------- main
def main(argv=None):
    a = parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    dev = resolve_device(a.device)
    amps = ['none', 'bf16'] if a.amp == 'both' else [a.amp]
    extra = dict(channels_last=False) if a.nchw else {}
    if a.compile: extra['compile'] = True; a.warmup = max(a.warmup, 2)   # the first batch counts FLOPs eagerly, the next ones compile
    T0 = time.perf_counter()
    print(f"# dias benchmark: {' '.join(sys.argv)}")
    dev_name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else (platform.processor() or platform.machine())
    try:
        if dev.type == 'cpu':
            dev_name = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), dev_name)
    except OSError: pass
    print(f"device: {dev} ({dev_name}); torch {torch.__version__}; threads {torch.get_num_threads()}; "
          f"cpu capability {torch.backends.cpu.get_cpu_capability()}; mkldnn {torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled}")
    try: print(f"load average (1, 5, 15 min): {', '.join(f'{l:.2f}' for l in os.getloadavg())}; cores {os.cpu_count()}")
    except OSError: pass
    print(f"batch {a.batch_size}, 3x32x32 synthetic uint8 images (crop+flip augmentation), K={a.K}; "
          f"{a.batches} timed + {a.warmup} warm-up batches per pass; {a.repeats} timed epoch(s), a pass = its median batch x {a.batches}; "
          f"layout {'NCHW' if a.nchw else 'DIASConfig default (channels_last=' + str(getattr(DIASConfig(K=2), 'channels_last', False)) + ')'}"
          f"{'; torch.compile on' if a.compile else ''}")
    sec = 0.3 if a.quick else 2.0
    pk = {'none': peak_gflops(dev, torch.float32, sec)}
    if 'bf16' in amps: pk['bf16'] = peak_gflops(dev, torch.bfloat16, sec)
    for k, v in pk.items():
        print(f"matmul peak {'fp32' if k == 'none' else k}: {v['peak']:.1f} GFLOP/s, the best of torch.mm {v['mm']:.1f}, "
              f"1x1-conv GEMM {v['conv1x1']:.1f}, 3x3-conv implicit GEMM {v['conv3x3']:.1f}")
    peaks = {k: v['peak'] for k, v in pk.items()}
    print(f"baseline RSS {rss_mb():.0f} MB\n")
    rows = []
    for w in a.widths:
        for amp in amps:
            d, tr, data = run_method('dias', w, amp, dev, a, extra)
            del tr, data; gc.collect()
            s = None
            if not a.no_softmax:
                s, tr, data = run_method('softmax', w, amp, dev, a, extra)
                inf, inf_gf = run_inference(tr, data, amp, dev, a)
                del tr, data; gc.collect()
            else: inf, inf_gf = float('nan'), float('nan')
            rows.append((w, amp, d, s, inf, inf_gf))
            pr = lambda gf, pk=peaks[amp]: f"{gf:6.1f} ({100 * gf / pk:3.0f}%)"
            gd = d.flops_epoch / d.epoch_s / 1e9
            print(f"width {w} {('fp32' if amp == 'none' else amp)}:")
            print(f"  DIAS epoch   {d.n / d.epoch_s:8.1f} img/s   Copycat pass {d.n / d.phase_s[0]:7.1f} img/s   GAN pass {d.n / d.phase_s[1]:7.1f} img/s"
                  f"   (fastest whole epoch: {d.n / d.wall_epoch_s:.1f} img/s)")
            print(f"  DIAS GFLOP/img-epoch {d.flops_epoch / d.n / 1e9:.3f} (Copycat {d.flops_phase[0] / d.n / 1e9:.3f}, GAN {d.flops_phase[1] / d.n / 1e9:.3f}); "
                  f"achieved GFLOP/s {pr(gd)} of peak [Copycat {d.flops_phase[0] / d.phase_s[0] / 1e9:.1f}, GAN {d.flops_phase[1] / d.phase_s[1] / 1e9:.1f}]")
            if s is not None:
                gs = s.flops_epoch / s.epoch_s / 1e9
                print(f"  Softmax epoch {s.n / s.epoch_s:7.1f} img/s (fastest whole epoch {s.n / s.wall_epoch_s:.1f})   GFLOP/img-epoch {s.flops_epoch / s.n / 1e9:.3f}; achieved GFLOP/s {pr(gs)} of peak")
                print(f"  DIAS/Softmax time ratio {d.epoch_s / s.epoch_s:.2f} (FLOP ratio {d.flops_epoch / s.flops_epoch:.2f}); "
                      f"DIAS efficiency = {100 * gd / gs:.0f}% of Softmax's GFLOP/s")
                print(f"  inference    {inf:8.1f} img/s ({inf_gf:.1f} GFLOP/s)")
            if dev.type == 'cpu':
                print(f"  CPU use during the DIAS epochs: {100 * d.cpu_use:.0f}% of {torch.get_num_threads()} threads x wall time"
                      + (" (other processes took cores: the figures above are low)" if d.cpu_use < 0.85 else ""))
            mem = 'max allocated' if dev.type == 'cuda' else 'peak RSS'
            print(f"  peak memory ({mem}): DIAS {d.peak_mb:.0f} MB" + (f", Softmax {s.peak_mb:.0f} MB" if s is not None else "") + "\n")
    # summary table
    print("| width | precision | DIAS img/s | Copycat pass | GAN pass | Softmax img/s | inference img/s | DIAS/Softmax time | DIAS GFLOP/s (% peak) | Softmax GFLOP/s (% peak) | DIAS peak MB | CPU use |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for w, amp, d, s, inf, _ in rows:
        pk = peaks[amp]; gd = d.flops_epoch / d.epoch_s / 1e9
        sm = (f"{s.n / s.epoch_s:.1f}", f"{d.epoch_s / s.epoch_s:.2f}", f"{s.flops_epoch / s.epoch_s / 1e9:.1f} ({100 * s.flops_epoch / s.epoch_s / 1e9 / pk:.0f}%)") if s else ('-', '-', '-')
        print(f"| {w} | {'fp32' if amp == 'none' else amp} | {d.n / d.epoch_s:.1f} | {d.n / d.phase_s[0]:.1f} | {d.n / d.phase_s[1]:.1f} | {sm[0]} | "
              f"{inf:.1f} | {sm[1]} | {gd:.1f} ({100 * gd / pk:.0f}%) | {sm[2]} | {d.peak_mb:.0f} | "
              + (f"{100 * d.cpu_use:.0f}% |" if dev.type == 'cpu' else "- |"))
    by = {(w, amp): d for w, amp, d, *_ in rows}
    for w in a.widths:
        if (w, 'none') in by and (w, 'bf16') in by:
            f, b = by[w, 'none'], by[w, 'bf16']
            print(f"bf16 autocast / fp32, width {w}: DIAS epoch {f.epoch_s / b.epoch_s:.2f}x faster "
                  f"(Copycat pass {f.phase_s[0] / b.phase_s[0]:.2f}x, GAN pass {f.phase_s[1] / b.phase_s[1]:.2f}x)")
    try: print(f"load average at the end (1, 5, 15 min): {', '.join(f'{l:.2f}' for l in os.getloadavg())}")
    except OSError: pass
    print(f"benchmark wall time {time.perf_counter() - T0:.0f} s")


if __name__ == '__main__': main()
