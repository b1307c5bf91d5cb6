import subprocess, sys
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
