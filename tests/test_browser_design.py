"""End to end in a real browser: design a song variant on the Compare page, watch its curves arrive,
and see it in the forest plot. A tiny budget (MOODLENS_DESIGN_MAX_EPOCHS=1) over the real 764 songs'
annotations and folds (so it joins the zoo's comparison), their embeddings made up (musicnn is tested
elsewhere): the training takes seconds, not minutes."""

from __future__ import annotations

import datetime as dt
import re
import time

import numpy as np
import pytest

from tests.conftest import MUSIC_DIR, has_shared
from tests.live_server import LiveServer, ServerFailed
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, NO_CHROMIUM, VIEWPORT, screenshot, wait_until_idle
from tests.variants.test_design import fake_song_data

pytestmark = pytest.mark.slow

NAME = "browser_design"
TRAINING_TIMEOUT_MS = 300_000
CURVE_DELAY_GOAL_S = 5.0


@pytest.fixture(scope="module")
def design_server(tmp_path_factory):
    if not has_shared(MUSIC_DIR / "annotations.csv"):
        pytest.skip("the real annotations give the zoo's folds: ../shared/data/music is missing")
    from core.song.data import load_annotations

    song_ids, targets, quadrants = load_annotations(MUSIC_DIR)
    monkeypatch = pytest.MonkeyPatch()
    try:
        data_dir, cache_dir = fake_song_data(tmp_path_factory.mktemp("design_data"), list(song_ids),
                                             np.asarray(targets), list(quadrants), monkeypatch)
    finally:
        monkeypatch.undo()
    env = {"MOODLENS_DESIGN_DATA": str(data_dir), "MOODLENS_DESIGN_CACHE": str(cache_dir),
           "MOODLENS_VARIANTS_DIR": str(tmp_path_factory.mktemp("variants")), "MOODLENS_DESIGN_MAX_EPOCHS": "1"}
    try:
        with LiveServer(tmp_path_factory.mktemp("streamlit") / "server.log", 120, env=env) as server:
            yield server
    except ServerFailed as e:
        pytest.fail(str(e))


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        pytest.skip(NO_CHROMIUM)
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _ended_at(caption: str) -> float:
    """'Last epoch: fold 0, epoch 2, ended at 16:09:03.2' -> that time today, as a Unix time."""
    hours, minutes, seconds, tenths = map(int, re.search(r"ended at (\d+):(\d+):(\d+)\.(\d)", caption).groups())
    today = dt.datetime.now()
    return today.replace(hour=hours, minute=minutes, second=seconds, microsecond=tenths * 100_000).timestamp()


def test_a_person_designs_a_variant_watches_it_learn_and_sees_it_in_the_forest_plot(design_server, chromium):
    context = chromium.new_context(viewport=VIEWPORT)
    context.set_default_timeout(120_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(f"{design_server.url}/compare_variants")
        wait_until_idle(page, 'h1:has-text("Compare variants")', 'h3:has-text("Design a variant")')
        lstm = page.get_by_role("textbox", name="LSTM units per layer")
        lstm.fill("32, 16")
        lstm.press("Enter")
        wait_until_idle(page)
        name = page.get_by_role("textbox", name="Name of your variant")
        name.fill(NAME)
        name.press("Enter")
        wait_until_idle(page)
        assert page.get_by_text("This design cannot be trained").count() == 0
        page.get_by_role("button", name="Train it").click()

        caption = page.get_by_text(re.compile(r"Last epoch: fold \d, epoch \d+, ended at"))
        caption.first.wait_for(state="visible", timeout=TRAINING_TIMEOUT_MS)
        seen = time.time()
        delay = seen - _ended_at(caption.first.inner_text())
        assert delay < CURVE_DELAY_GOAL_S, f"an epoch's curve reached the browser {delay:.1f} s after it ended"
        curves = page.locator('[data-testid="stPlotlyChart"]').filter(has_text=f"{NAME}: loss per epoch")
        assert curves.count() >= 1
        screenshot(page, "design_a_variant_training")

        page.get_by_text(f"{NAME} is trained and joins the comparison").first.wait_for(
            state="visible", timeout=TRAINING_TIMEOUT_MS)
        forest = page.locator('[data-testid="stPlotlyChart"]').filter(has_text=NAME).first
        forest.wait_for(state="visible", timeout=120_000)
        wait_until_idle(page)
        assert page.get_by_text(re.compile(rf"{NAME}.*(no detectable difference|better|worse)", re.I)).count() >= 1
        assert page.locator('[data-testid="stException"]').count() == 0
        assert not errors, errors
        screenshot(page, "design_a_variant_in_the_forest_plot")
        print(f"curve delay {delay:.2f} s")
    finally:
        context.close()
