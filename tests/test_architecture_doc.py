"""docs/architecture.md's picture matches the folders: every apt_core module appears, in its layer (and no module
of the library or the dashboard is over 500 lines).

The picture is the first ``text`` block of the page: a line ``N name ───`` opens layer N
(numbered from the bottom, as ``LAYERS`` in tests/test_architecture.py orders them); on the
lines below it a ``folder/`` token followed by ``name.py`` tokens places those modules, a
folder with no ``.py`` token after it places the whole folder, and ``name.py`` tokens before
any folder are top-level modules.  Anything else on a line is its description.
"""
from __future__ import annotations

import re
from pathlib import Path

from test_architecture import LAYERS, _layer_of, import_graph

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"

LAYER_LINE = re.compile(r"^\s*(\d+) (.+?) ─")
FOLDER, MODULE = re.compile(r"^[a-z_]+/$"), re.compile(r"^[a-z_]+\.py$")


def picture(text: str) -> tuple[list[tuple[int, str]], dict[str, int], dict[str, int]]:
    """(layers as (number, name) top to bottom, module -> layer number, whole folder -> layer number)."""
    block = text.split("```text\n", 1)[1].split("```", 1)[0]
    layers: list[tuple[int, str]] = []
    modules: dict[str, int] = {}
    folders: dict[str, int] = {}
    for line in block.splitlines():
        head = LAYER_LINE.match(line)
        if head:
            layers.append((int(head.group(1)), head.group(2).strip()))
            continue
        if not layers or not line.strip():
            continue
        number = layers[-1][0]
        folder, named = "", False
        for token in line.split():
            if FOLDER.match(token):
                if folder and not named:
                    folders[folder] = number
                folder, named = token[:-1], False
            elif MODULE.match(token):
                modules["apt_core." + (folder + "." if folder else "") + token[:-3]] = number
                named = True
            else:
                break  # the description
        if folder and not named:
            folders[folder] = number
    return layers, modules, folders


def test_the_picture_reader_can_fail():
    text = "```text\n 2 upper ──\n   a/ x.py   job\n   b/ c/    whole\n 1 lower ──\n   y.py z/\n```\n"
    layers, modules, folders = picture(text)
    assert layers == [(2, "upper"), (1, "lower")]
    assert modules == {"apt_core.a.x": 2, "apt_core.y": 1}
    assert folders == {"b": 2, "c": 2, "z": 1}


def test_the_layers_are_drawn_bottom_up_in_the_order_of_the_architecture_test():
    layers, _, _ = picture(DOC.read_text())
    assert [name for _, name in reversed(layers)] == [name for name, _ in LAYERS]
    assert [number for number, _ in reversed(layers)] == list(range(1, len(LAYERS) + 1))


def test_every_module_is_drawn_in_its_layer():
    _, modules, folders = picture(DOC.read_text())
    wrong, missing = [], []
    for module in sorted(import_graph()):
        path = ROOT / Path(*module.split("."))
        if path.is_dir():
            continue  # a package's __init__: a role package sits in the base layer, a method package with its folder
        layer = _layer_of(module) + 1
        drawn = modules.get(module)
        if drawn is None:
            drawn = folders.get(module.split(".")[1]) if module.count(".") >= 2 else None
        if drawn is None:
            missing.append(module)
        elif drawn != layer:
            wrong.append(f"{module}: drawn in layer {drawn}, is in layer {layer}")
    assert not missing, f"docs/architecture.md does not draw {missing}"
    assert not wrong, "docs/architecture.md draws modules in the wrong layer:\n" + "\n".join(wrong)


def test_everything_drawn_exists():
    _, modules, folders = picture(DOC.read_text())
    absent = [m for m in modules if not (ROOT / (m.replace(".", "/") + ".py")).is_file()]
    absent += [f + "/" for f in folders if not (ROOT / "apt_core" / f).is_dir()]
    assert not absent, f"docs/architecture.md draws what is not there: {absent}"


#: the longest a module of the library or the dashboard may be (issue 20: a file a newcomer can read)
MAX_LINES = 500


def test_no_module_over_500_lines():
    paths = [*(ROOT / "apt_core").rglob("*.py"), *(ROOT / "pages").rglob("*.py"), ROOT / "app.py"]
    long = {str(p.relative_to(ROOT)): n for p in paths if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules by concern (at most {MAX_LINES} lines): {long}"
