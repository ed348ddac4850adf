"""The project carries its own documentation, and the app serves only this machine unless told otherwise.

A user who clones the repository has nothing outside it, so no user-facing text (README,
docs/, the app's pages, apt_core's messages and docstrings, scripts) may point to a file
outside the repository.  docs/ is written from the code: the CLI page must name every key the
JSON holds, the algorithms page every registered attack and defense.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

#: what a user of the repository reads
USER_FACING = sorted(
    [ROOT / "README.md", ROOT / "app.py", ROOT / ".streamlit" / "config.toml"]
    + list(DOCS.rglob("*.md"))
    + list((ROOT / "pages").rglob("*.py"))
    + list((ROOT / "apt_core").rglob("*.py"))
    + list((ROOT / "scripts").rglob("*.py"))
)
#: references to files a clone does not have (the developers' design notes, the shared data folder)
OUTSIDE = re.compile(r"\.\./shared|shared/DESIGN|DESIGN\.md|\bDESIGN (section|check)\b|\bDESIGN \d")


def test_outside_reference_pattern_can_fail():
    for text in ("see ../shared/DESIGN.md", "DESIGN section 8", "DESIGN check: ranks", "read DESIGN.md", "../shared/data"):
        assert OUTSIDE.search(text), text
    assert not OUTSIDE.search("the design of the page")


@pytest.mark.parametrize("path", USER_FACING, ids=lambda p: str(p.relative_to(ROOT)))
def test_user_facing_text_stays_inside_the_repository(path: Path):
    bad = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for n, line in enumerate(path.read_text().splitlines(), 1)
           if OUTSIDE.search(line)]
    assert not bad, "points outside the repository:\n" + "\n".join(bad)


def test_streamlit_serves_this_machine_only_by_default():
    text = (ROOT / ".streamlit" / "config.toml").read_text()
    try:
        import tomllib  # Python 3.11+
    except ImportError:  # 3.10: read the [server] table's two lines directly
        server = text.split("[server]", 1)[1].split("\n[", 1)[0]
        assert re.search(r'^address\s*=\s*"127\.0\.0\.1"', server, re.M)
        assert re.search(r"^headless\s*=\s*true", server, re.M)
        return
    config = tomllib.loads(text)
    assert config["server"]["address"] == "127.0.0.1"
    assert config["server"]["headless"] is True


def test_readme_says_how_to_serve_a_class_and_warns():
    readme = (ROOT / "README.md").read_text()
    assert "--server.address 0.0.0.0" in readme
    section = readme[readme.index("--server.address 0.0.0.0"):][:1500]
    assert "Warning" in section and "trust" in section


def _relative_links(text: str) -> list[str]:
    return [m for m in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text) if not re.match(r"[a-z]+:", m)]


@pytest.mark.parametrize("page", [ROOT / "README.md", *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_links_point_to_files_that_exist(page: Path):
    for link in _relative_links(page.read_text()):
        assert (page.parent / link).exists(), f"{page.name} links to missing {link}"


def test_readme_links_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    index = (DOCS / "README.md").read_text()
    assert "docs/README.md" in readme
    for page in DOCS.glob("*.md"):
        if page.name != "README.md":
            assert f"({page.name})" in index, f"docs/README.md does not list {page.name}"


def test_cli_doc_names_every_json_key():
    from apt_core.experiments.pipeline import Scenario, run_scenario

    out = run_scenario(Scenario(dataset="sample", epochs=1, defenses=("none",), device="cpu")).to_json()
    doc = (DOCS / "cli.md").read_text()
    keys = set(out) | set(out["config"]) | set(out["dataset"]) | set(out["rows"][0]) | set(out["per_seed"][0])
    missing = sorted(k for k in keys if f"`{k}`" not in doc)
    assert not missing, f"docs/cli.md does not mention: {missing}"
    assert [r["phase"] for r in out["rows"]][-1] == "popularity" and "`popularity`" in doc


def test_algorithms_doc_names_every_attack_and_defense():
    from apt_core.attacks import ATTACKS
    from apt_core.defenses import DEFENSES

    doc = (DOCS / "algorithms.md").read_text()
    missing = [n for n in [*ATTACKS, *DEFENSES] if f"`{n}`" not in doc]
    assert not missing, f"docs/algorithms.md does not describe: {missing}"
