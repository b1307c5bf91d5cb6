import json, shutil, subprocess, sys
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]

def test_readme_in_step_with_index():
    r = subprocess.run([sys.executable, str(ROOT / '.ci' / 'sync_readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout

def test_ci_runs_the_readme_test_command():
    "The README's test command and .ci/run's last line are the same command."
    readme, ci = (ROOT / 'README.md').read_text(), (ROOT / '.ci' / 'run').read_text()
    cmd = [l for l in ci.splitlines() if l.strip() and not l.startswith('#')][-1].strip()
    assert cmd in readme, cmd

def test_readme_main_command_runs_in_a_fresh_folder(tmp_path):
    "The main job's command as the README writes it (after the install), in a folder with no runs/ yet; tiny parameters appended."
    readme = (ROOT / 'README.md').read_text()
    line = next(l for l in readme.splitlines() if l.startswith('python3 -m venv') and 'papermill' in l)
    cmd = line[line.index('pip install -e ".[dev]" && ') + len('pip install -e ".[dev]" && '):]
    (tmp_path / 'nbs').mkdir(); shutil.copy(ROOT / 'nbs' / '10_train.ipynb', tmp_path / 'nbs')
    cmd = cmd.replace('papermill ', f'{sys.executable} -m papermill ', 1)
    cmd += " -y 'splits: [0]' -p epochs 1 -p width 0.125 -p fraction 0.1 -p quiet True -p device cpu"
    r = subprocess.run(cmd, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    m = json.loads((tmp_path / 'runs' / 'digits' / 'metrics.json').read_text())   # where the README says it writes
    assert set(m['results']) == {'dias', 'softmax'} and m['params']['dataset'] == 'digits'
    assert 'mean ± std' in r.stdout + r.stderr                                  # --log-output shows the table
