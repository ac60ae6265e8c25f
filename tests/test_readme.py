"""The README's library example runs as written (with one epoch instead of thirty)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_library_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    code = blocks[0]
    assert "epochs=30" in code
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace("epochs=30", "epochs=1, threads=1, num_workers=0"), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert re.search(r"^MAP 0\.\d+", out, flags=re.M)
    assert (tmp_path / "runs" / "digits-48" / "model.safetensors").exists()
