"""The README's example runs as written."""
import re
from pathlib import Path

import pytest


def test_readme_example_runs(capsys):
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "README has no python example"
    for code in blocks:
        if "import torch" in code:
            pytest.importorskip("torchvision")
        exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.strip()
