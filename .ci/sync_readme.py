#!/usr/bin/env python
"""README.md is rendered from nbs/index.ipynb (Quarto, hence nbdev_readme, is not available offline).

    python .ci/sync_readme.py          # rewrite README.md from nbs/index.ipynb
    python .ci/sync_readme.py --check  # exit 1 if README.md is out of step (tests/test_readme.py runs this)

Markdown cells are copied as they are; code cells become ```python blocks; outputs are dropped."""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def render(nb_path=ROOT / 'nbs' / 'index.ipynb') -> str:
    nb = json.loads(Path(nb_path).read_text())
    parts = []
    for c in nb['cells']:
        src = ''.join(c['source']).strip('\n')
        if not src or src.startswith('#| hide'): continue
        parts.append(src if c['cell_type'] == 'markdown' else f"```python\n{src}\n```")
    return '<!-- generated from nbs/index.ipynb by .ci/sync_readme.py: edit the notebook, not this file -->\n\n' + '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    text, readme = render(), ROOT / 'README.md'
    if '--check' in sys.argv:
        ok = readme.exists() and readme.read_text() == text
        if not ok: print('README.md is out of step with nbs/index.ipynb: run python .ci/sync_readme.py')
        sys.exit(0 if ok else 1)
    readme.write_text(text)
