"""The Compare page's "Design a variant" panel (webapp/design_panel.py) through Streamlit's AppTest:
what a person sees before any training starts. The training itself (a worker, its curves, the
forest plot) is proved in tests/variants/test_design.py and, in a real browser, in
tests/test_browser_design.py."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

TIMEOUT_S = 120


@pytest.fixture
def panel(tmp_path, monkeypatch):
    """The Compare page with training set up (a music folder with annotations, a cache folder, a
    private variants folder), and every submitted design recorded instead of trained."""
    from core.variants import design_queue

    data = tmp_path / "music"
    data.mkdir()
    (data / "annotations.csv").write_text("song_id,valence,arousal,quadrant\n")
    (tmp_path / "cache").mkdir()
    monkeypatch.setenv("MOODLENS_DESIGN_DATA", str(data))
    monkeypatch.setenv("MOODLENS_DESIGN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MOODLENS_VARIANTS_DIR", str(tmp_path / "variants"))
    submitted = []
    monkeypatch.setattr(design_queue.TrainingQueue, "submit",
                        lambda self, task, name, config, owner: submitted.append((task, name, config)))
    app = AppTest.from_file(str(ROOT / "pages" / "compare_variants.py"), default_timeout=TIMEOUT_S)
    app.run()
    assert not app.exception, app.exception
    yield app, submitted
    from webapp import design_panel

    design_panel._queue.clear()  # the next test's queue gets its own folders


def _train_button(app: AppTest):
    return app.button(key="design_train")


def _errors(app: AppTest) -> list[str]:
    return [e.value for e in app.error]


def test_the_default_design_can_be_trained_and_is_submitted_as_shown(panel):
    app, submitted = panel
    assert any(h.value == "Design a variant" for h in app.subheader)
    assert any(c.value.startswith("Estimated training time here") for c in app.caption)
    assert not _errors(app) and not _train_button(app).disabled
    app.text_input(key="design_lstm_units").set_value("32, 16").run()
    app.text_input(key="design_name").set_value("narrow_lstm").run()
    _train_button(app).click().run()
    assert not app.exception, app.exception
    assert [(task, name, config["lstm_units"]) for task, name, config in submitted] == [
        ("song", "narrow_lstm", [32, 16])]


@pytest.mark.parametrize("key, value, said", [
    ("design_lstm_units", "0, 16", "LSTM"),
    ("design_lstm_units", "32, sixteen", "LSTM"),
    ("design_name", "../escape", "name"),
])
def test_a_design_that_cannot_be_trained_says_why_and_cannot_be_submitted(panel, key, value, said):
    app, submitted = panel
    app.text_input(key=key).set_value(value).run()
    errors = _errors(app)
    assert errors and errors[0].startswith("This design cannot be trained") and said.lower() in errors[0].lower(), errors
    assert "design_train" not in [b.key for b in app.button], "a design that cannot be trained offered Train it"


def test_a_design_over_the_time_limit_is_refused_with_the_command_to_train_it(panel, monkeypatch):
    app, submitted = panel
    assert not _train_button(app).disabled
    monkeypatch.setenv("MOODLENS_DESIGN_LIMIT_S", "1")  # a server that allows one second
    app.run()
    assert any("would not finish within the panel's limit" in e and "python -m core.train song" in e
               for e in _errors(app)), _errors(app)
    assert _train_button(app).disabled and not submitted
