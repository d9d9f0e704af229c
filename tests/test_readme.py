"""The README's Python example runs as written."""
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "README has no python example"
    monkeypatch.setenv("NTKCHECK_CACHE", str(tmp_path))
    for code in blocks:
        exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    assert "PASS" in capsys.readouterr().out
