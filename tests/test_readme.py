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


def test_readme_starts_with_the_two_setup_commands_then_a_short_quickstart():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines[0].split()[:5] == ["pip", "install", "-e", ".", "&&"] and "ntkcheck verify --budget quick" in lines[0]
    assert lines[1].split()[:3] == ["pip", "install", "-e"] and "python -m pytest" in lines[1]
    title = lines.index("# ntkcheck")
    quick = lines[title + 1:lines.index("", title + 2)]     # the block right after the title
    assert 5 <= len([x for x in quick if x.strip()]) <= 10 and any("ntkcheck verify" in x for x in quick)


def test_timings_agree_across_readme_developing_and_results():
    root = README.parent
    texts = {name: (root / name).read_text(encoding="utf-8") for name in ("README.md", "DEVELOPING.md",
                                                                           "results/README.md")}
    for name, text in texts.items():
        flat = " ".join(text.split())
        assert "~85 s wall on 2 idle cores" in flat and "~100 s in CI" in flat, name
        assert "~4 min" in flat, name
    for name in ("README.md", "results/README.md"):
        assert "~32 min" in " ".join(texts[name].split()), name


def test_readme_links_to_existing_docs():
    text = README.read_text(encoding="utf-8")
    for link in sorted(set(re.findall(r"\]\(((?:docs|examples|results)/[^)#]*)", text))):
        assert (README.parent / link).exists(), link
