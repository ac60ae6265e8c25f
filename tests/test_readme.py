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


def layout_rows() -> list[tuple[int, list[str]]]:
    """(layer, modules) for each row of README's "## Layout" table."""
    section = README.read_text().split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].isdigit():
            rows.append((int(cells[0]), re.findall(r"`(dnnh[\w.]*)`", cells[1])))
    return rows


def test_readme_layout_table_is_the_layer_list():
    """README's Layout table names every module of LAYERS (but the root ``dnnh``) once, in layer
    order, each on its own layer's number, and nothing LAYERS does not hold."""
    from test_layers import LAYERS

    layer = {module: level for level, modules in enumerate(LAYERS) for module in modules if module != "dnnh"}
    rows = layout_rows()
    named = [module for _, modules in rows for module in modules]
    assert rows and all(modules for _, modules in rows), "a Layout row names no module"
    assert sorted(set(layer) - set(named)) == [], "in LAYERS, missing from README's Layout table"
    assert sorted(set(named) - set(layer)) == [], "in README's Layout table, not in LAYERS"
    assert len(named) == len(set(named)), "a module is in README's Layout table twice"
    wrong = [f"{m}: README says layer {level}, LAYERS {layer[m]}" for level, modules in rows for m in modules
             if layer[m] != level]
    assert not wrong, "\n".join(wrong)
    levels = [level for level, _ in rows]
    assert levels == sorted(levels), "README's Layout rows are not in layer order"
