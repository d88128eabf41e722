"""The suite's units of work for two processes (tests/conftest.py): every test file whose tests
take a shared trained fixture is in the one training unit, so those fixtures are made once."""

from __future__ import annotations

import ast

from tests.conftest import HEAVIEST_FIRST, ROOT, SHARED_TRAINING_FIXTURES, TRAINING_FILES, xdist_unit


def _takes_a_shared_fixture(source: str) -> bool:
    """Whether a function (a test or a fixture) in this source takes one of the shared fixtures."""
    return any(arg.arg in SHARED_TRAINING_FIXTURES for node in ast.walk(ast.parse(source))
               if isinstance(node, ast.FunctionDef) for arg in node.args.args)


def test_every_file_using_a_shared_trained_fixture_is_in_the_training_unit():
    files = sorted(p for p in (ROOT / "tests").rglob("test_*.py"))
    using = {p.relative_to(ROOT).as_posix() for p in files if _takes_a_shared_fixture(p.read_text(encoding="utf-8"))}
    assert using == set(TRAINING_FILES)
    assert {xdist_unit(f"{f}::test_x") for f in TRAINING_FILES} == {"training"}
    assert xdist_unit("tests/test_browser.py::test_x") == "tests/test_browser.py"  # its server: made once
    assert xdist_unit("tests/test_text.py::test_x[a::b]") == "tests/test_text.py::test_x[a::b]"


def test_the_check_sees_a_test_that_takes_a_shared_fixture():
    assert _takes_a_shared_fixture("def test_a(tmp_path, tiny_song_model):\n    pass\n")
    assert not _takes_a_shared_fixture("def test_a(tmp_path, song_wav):\n    pass\n")


def test_the_heaviest_first_order_names_only_units_there_are():
    assert all(unit == "training" or xdist_unit(f"{unit}::test_x") == unit for unit in HEAVIEST_FIRST)
