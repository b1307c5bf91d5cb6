"Speed options that must not change the arithmetic, checked by the notebook cells that CI's nbdev_test skips as slow."
import os, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

@pytest.mark.skipif(shutil.which('cc') is None and shutil.which('gcc') is None, reason='torch.compile (Inductor) needs a C compiler')
def test_compiled_step_matches_eager():
    "nbs/05_train.ipynb with its slow cell: one DIAS step with compile=True against eager (about a minute of compilation)."
    nbdev_test = Path(sys.executable).parent / 'nbdev_test'
    r = subprocess.run([str(nbdev_test), '--path', 'nbs/05_train.ipynb', '--flags', 'slow'], cwd=ROOT, capture_output=True, text=True,
                       timeout=900, env={**os.environ, 'MPLBACKEND': 'Agg'})
    assert r.returncode == 0 and 'Success' in r.stdout + r.stderr, (r.stdout + r.stderr)[-4000:]
