"""End to end in a real browser: the app served by `streamlit run`, used through Debian's Chromium.

One server and one headless Chromium serve the whole module. The browser may reach only the
app's own server: every other host is refused and counted, and each test asserts the count is
zero. Screenshots of every page land in test-output/screenshots/ (look at them after a change).
Chromium comes from apt (`make test` installs it when run as root); the tests never download one.
"""

from __future__ import annotations

import os
import csv
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest

from core import cards
from core.song.decode import MIN_RECORDING_S
from tests.conftest import FER_FILE, has_shared, MUSIC_DIR, ROOT, music_like, wav_bytes
from tests.live_server import LiveServer, ServerFailed

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
NO_CHROMIUM = (f"{CHROMIUM} is missing: install Debian's Chromium with `apt-get install -y chromium` "
               "(`make test` does this itself when run as root)")
SCREENSHOTS = ROOT / "test-output" / "screenshots"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
VIEWPORT = {"width": 1280, "height": 900}
START_TIMEOUT_S = 90
PAGE_TIMEOUT_MS = 90_000     # first visit of a page loads its model (TensorFlow) on a 2-core machine
RESULT_TIMEOUT_MS = 120_000  # a 30-s song or a photo through the models, beside a training job
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-default-apps", "--disable-sync", "--no-first-run",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
    # Below Playwright's own request guard: names other than the app's resolve to nothing.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    # The webcam: Chromium's fake camera plays a y4m file the tests make; no permission prompt.
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
]


# ---------------------------------------------------------------- inputs the tests make

@dataclass
class FacePictures:
    photo_png: bytes         # 640x480, one face about 200 px tall
    webcam_bgr: np.ndarray   # 640x480, one face about 300 px tall (a person close to the camera)
    real: bool               # a FER2013 face the detector finds, not a drawing


def _framed(face_grey: np.ndarray, side_px: int) -> np.ndarray:
    """A 48x48 grey face upscaled to side_px and centred in a 640x480 BGR frame (mid-grey wall)."""
    frame = np.full((480, 640), 128, np.uint8)
    top, left = (480 - side_px) // 2, (640 - side_px) // 2
    frame[top:top + side_px, left:left + side_px] = cv2.resize(face_grey, (side_px, side_px),
                                                                interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)


def _drawn_face() -> np.ndarray:
    """A drawn 48x48 grey face, for checkouts without ../shared (the detector may not find it)."""
    face = np.full((48, 48), 90, np.uint8)
    cv2.ellipse(face, (24, 26), (17, 21), 0, 0, 360, 200, -1)
    for x in (17, 31):
        cv2.circle(face, (x, 21), 3, 40, -1)
        cv2.line(face, (x - 5, 15), (x + 4, 15), 60, 1)
    cv2.line(face, (24, 23), (24, 30), 150, 1)
    cv2.ellipse(face, (24, 34), (8, 4), 0, 0, 180, 50, 2)
    return face


@pytest.fixture(scope="module")
def face_pictures() -> FacePictures:
    """A real FER2013 'happy' face the detector finds in both frames, else a drawn face."""
    if has_shared(FER_FILE):
        from core.face import detect as faces

        with np.load(FER_FILE) as npz:
            rows = np.flatnonzero((npz["usage"] == 1) & (npz["label"] == 3))[:200]
            candidates = npz["pixels"][rows]
        for face in candidates:
            photo, webcam = _framed(face, 200), _framed(face, 300)
            # The webcam frame goes through YUV 4:2:0 and JPEG on its way back; check it as it arrives.
            seen = cv2.imdecode(cv2.imencode(".jpg", _through_i420(webcam))[1], cv2.IMREAD_COLOR)
            if len(faces.detect_faces(photo)) == 1 and len(faces.detect_faces(seen)) == 1:
                return FacePictures(cv2.imencode(".png", photo)[1].tobytes(), webcam, real=True)
    drawn = _drawn_face()
    return FacePictures(cv2.imencode(".png", _framed(drawn, 200))[1].tobytes(), _framed(drawn, 300), real=False)


def _through_i420(frame_bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2YUV_I420), cv2.COLOR_YUV2BGR_I420)


def write_y4m(path: Path, frame_bgr: np.ndarray, n_frames: int = 5, fps: int = 30) -> Path:
    """A YUV4MPEG2 (4:2:0) video of one still frame, for Chromium's --use-file-for-fake-video-capture."""
    h, w = frame_bgr.shape[:2]
    planes = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2YUV_I420).tobytes()  # Y (h*w), U, V (h*w/4 each)
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(n_frames):
            f.write(b"FRAME\n" + planes)
    return path


@pytest.fixture(scope="module")
def song_file(tmp_path_factory) -> Path:
    """A real 30-s mp3 from the shared clips, else a generated 30-s wav."""
    clips = sorted((MUSIC_DIR / "clips").glob("*.mp3")) if has_shared(MUSIC_DIR / "clips") else []
    if clips:
        return clips[0]
    path = tmp_path_factory.mktemp("songs") / "generated.wav"
    path.write_bytes(wav_bytes(music_like(30.0), 22050))
    return path


# ---------------------------------------------------------------- the server and the browser

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    try:
        with LiveServer(tmp_path_factory.mktemp("streamlit") / "server.log", START_TIMEOUT_S) as srv:
            yield srv
    except ServerFailed as e:
        pytest.fail(str(e))


@pytest.fixture(scope="module")
def browser(request, tmp_path_factory):
    if not CHROMIUM.exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{NO_CHROMIUM}: CI runs the browser tests (make test installs it as root)")
        pytest.skip(NO_CHROMIUM)
    from playwright import sync_api
    for stale in SCREENSHOTS.glob("FAILED_*.png"):  # from an earlier run
        stale.unlink()
    webcam = request.getfixturevalue("face_pictures").webcam_bgr
    devices = tmp_path_factory.mktemp("devices")
    camera = write_y4m(devices / "face.y4m", webcam)
    microphone = devices / "music.wav"  # what the fake microphone hears, looped
    microphone.write_bytes(wav_bytes(music_like(20.0, 48000, channels=2, seed=31), 48000))
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[
            *CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={camera}",
            f"--use-file-for-fake-audio-capture={microphone}"])
        yield chromium
        chromium.close()


@dataclass
class Visit:
    """One person's browser tab, and what it tried to reach beyond the app."""
    page: object
    outbound: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme not in ("http", "https", "ws", "wss") or parts.hostname in LOCAL_HOSTS


def _new_visit(browser) -> tuple[object, Visit]:
    context = browser.new_context(viewport=VIEWPORT, permissions=["camera", "microphone"])
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    visit = Visit(context.new_page())

    def guard(route):
        if _is_local(route.request.url):
            route.continue_()
        else:
            visit.outbound.append(route.request.url)
            route.abort("blockedbyclient")

    context.route("**/*", guard)
    visit.page.on("websocket", lambda ws: None if _is_local(ws.url) else visit.outbound.append(ws.url))
    visit.page.on("pageerror", lambda error: visit.page_errors.append(str(error)))
    return context, visit


def nav_labels(page) -> list[str]:
    """The sidebar's page names, as shown."""
    links = page.locator('[data-testid="stSidebarNavLink"] span[label]')
    links.first.wait_for(state="visible")
    return [link.get_attribute("label") for link in links.all()]


def content_width_px(page) -> float:
    """Width of the page's content column: about 736 px in Streamlit's centred layout, more when wide."""
    return page.locator('[data-testid="stMainBlockContainer"]').bounding_box()["width"]


@pytest.fixture(scope="module")
def first_visit(browser, server) -> dict:
    """The server's very first session opens a page by its address; then someone opens the home page.

    Runs before any other page test (they all depend on it), so it sees a fresh server.
    """
    context, visit = _new_visit(browser)
    try:
        page = visit.page
        page.goto(f"{server.url}/song_mood")
        wait_until_idle(page, 'h1:has-text("Song mood")', '[data-testid="stFileUploader"]')
        direct = {"nav": nav_labels(page), "url": page.url, "width_px": content_width_px(page)}
        page.goto(f"{server.url}/")
        wait_until_idle(page, 'h1:has-text("MoodLens")')
        home = {"nav": nav_labels(page), "width_px": content_width_px(page)}
        return {"direct": direct, "home": home, "outbound": visit.outbound, "page_errors": visit.page_errors}
    finally:
        context.close()


@pytest.fixture
def visit(request, browser, server, first_visit):
    context, v = _new_visit(browser)
    failed_before = request.session.testsfailed
    yield v
    if request.session.testsfailed > failed_before:  # this test failed: keep what the person saw
        try:
            screenshot(v.page, f"FAILED_{request.node.name}")
        except Exception as e:  # a dead page must not hide the test's own failure
            print(f"no screenshot of the failure: {e}")
    context.close()


# ---------------------------------------------------------------- what a person sees

def wait_until_idle(page, *selectors: str, timeout_ms: int = PAGE_TIMEOUT_MS) -> None:
    """Wait for each selector to be visible, then for the script run to have finished."""
    for selector in selectors:
        page.locator(selector).first.wait_for(state="visible", timeout=timeout_ms)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stApp\"]')?.dataset.testScriptState === 'notRunning'",
        timeout=timeout_ms)


def open_page(visit: Visit, server: LiveServer, path: str, title: str) -> object:
    page = visit.page
    page.goto(f"{server.url}/{path}")
    wait_until_idle(page, f'h1:has-text("{title}")')
    return page


def assert_healthy(visit: Visit) -> None:
    """No Python exception on the page, no JavaScript error, and no request beyond the app."""
    page = visit.page
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.first.inner_text()
    assert not visit.page_errors, visit.page_errors
    assert visit.outbound == [], f"{len(visit.outbound)} request(s) left localhost: {visit.outbound}"


def error_texts(page) -> list[str]:
    return page.locator('[data-testid="stAlertContentError"]').all_inner_texts()


def screenshot(page, name: str) -> Path:
    """The whole page: Streamlit scrolls inside its main block, so grow the window to fit it first."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], height)})
    page.wait_for_timeout(800)  # charts re-lay themselves out to the new size
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(VIEWPORT)
    return path


def wait_for_song_result(page, mood_map, name: str) -> None:
    """Until the song `name` is on the mood map and in the results table, the run finished, no error."""
    mood_map.filter(has_text=name).wait_for(state="visible", timeout=RESULT_TIMEOUT_MS)
    results_table = '[data-testid="stMain"] [data-testid="stDataFrame"] [role="gridcell"]'
    page.locator(f'{results_table}:has-text("{name}")').first.wait_for(  # the grid's accessible cells
        state="attached", timeout=RESULT_TIMEOUT_MS)                       # are hidden
    wait_until_idle(page)
    assert error_texts(page) == []


def grid_cells(page, frame_index: int = 0) -> list[str]:
    """The cells of a dataframe (its accessible grid; the picture itself is drawn on a canvas)."""
    frame = page.locator('[data-testid="stMain"] [data-testid="stDataFrame"]').nth(frame_index)
    return frame.locator('[role="gridcell"]').all_text_contents()


# JavaScript: true once the camera preview shows a frame that is not black (mean red level > 40).
CAMERA_SHOWS_A_PICTURE = """() => {
    const video = document.querySelector('[data-testid="stCameraInput"] video');
    if (!video || video.readyState < 2 || !video.videoWidth) return false;
    const canvas = document.createElement('canvas');
    canvas.width = 64; canvas.height = 48;
    const context = canvas.getContext('2d');
    context.drawImage(video, 0, 0, 64, 48);
    const rgba = context.getImageData(0, 0, 64, 48).data;
    let sum = 0;
    for (let i = 0; i < rgba.length; i += 4) sum += rgba[i];
    return sum / (rgba.length / 4) > 40;
}"""


def chart_texts(chart) -> list[str]:
    return chart.locator("svg text").all_text_contents()


# ---------------------------------------------------------------- the tests

def test_a_page_opened_first_on_a_fresh_server_shows_the_apps_navigation(first_visit):
    # Streamlit runs a pages/ folder beside the main script in its legacy mode (sidebar: 'streamlit
    # app', 'loaded models'…, no page config) until the main script has called st.navigation.
    direct, home = first_visit["direct"], first_visit["home"]
    assert "Home" in home["nav"] and "Song mood" in home["nav"]
    assert direct["url"].endswith("/song_mood")
    assert direct["nav"] == home["nav"]
    assert direct["width_px"] == home["width_px"] > 800  # the app's wide layout on both
    assert first_visit["outbound"] == [] and first_visit["page_errors"] == []


def test_home_page_links_to_every_page_and_the_link_opens_it(visit, server):
    page = open_page(visit, server, "", "MoodLens")
    for label in ("Home", "Song mood", "Face expression"):
        assert label in nav_labels(page)
    links = page.locator('[data-testid="stPageLink"]')
    links.filter(has_text="Compare variants").wait_for(timeout=30_000)  # the last link drawn
    assert links.filter(has_text="Song mood").count() == 1
    assert links.filter(has_text="Face expression").count() == 1
    assert_healthy(visit)
    screenshot(page, "home")

    links.filter(has_text="Song mood").locator("a").click()
    wait_until_idle(page, 'h1:has-text("Song mood")', '[data-testid="stFileUploader"]')
    assert page.url.endswith("/song_mood")
    assert_healthy(visit)


def test_song_page_puts_an_uploaded_clip_on_the_mood_map_and_in_the_table(visit, server, song_file):
    page = open_page(visit, server, "song_mood", "Song mood")
    mood_map = page.locator('[data-testid="stPlotlyChart"]').filter(has_text="Mood map")
    mood_map.wait_for(state="visible")  # empty until a song comes
    screenshot(page, "song_mood_empty")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(song_file))
    wait_for_song_result(page, mood_map, song_file.name)
    texts = chart_texts(mood_map)
    assert song_file.name in texts                           # the song's labelled point / legend entry
    assert any(t.startswith("valence") for t in texts) and any(t.startswith("arousal") for t in texts)
    assert mood_map.locator(".scatterlayer .point").count() >= 1  # the song's marker is drawn

    cells = grid_cells(page)
    assert cells[0] == song_file.name, cells                 # one row: file, valence, arousal, …
    valence, arousal = float(cells[1]), float(cells[2])
    assert 0 <= valence <= 1 and 0 <= arousal <= 1
    assert cells[3] in ("Q1", "Q2", "Q3", "Q4")
    with page.expect_download() as download:  # the CSV is made when the button is clicked
        page.get_by_role("button", name="Download the results (CSV)").click()
    assert download.value.suggested_filename == "moodlens_songs.csv"
    header, row = Path(download.value.path()).read_text().splitlines()
    assert header == "file,valence,arousal,quadrant,mood,duration_s,valence sd,arousal sd,what the model hears"
    file, csv_valence = row.split(",")[:2]
    assert file == song_file.name and abs(float(csv_valence) - valence) <= 0.0005  # the grid shows 3 places
    assert_healthy(visit)
    screenshot(page, "song_mood")


def _face_result(page, real_face: bool) -> list:
    """Wait for the result of one picture; with a drawn face the person may need the whole-picture box."""
    main = page.locator('[data-testid="stMain"]')
    found = main.locator('[data-testid="stImage"]')
    no_face = main.get_by_text("No face was found")
    found.or_(no_face).first.wait_for(state="visible", timeout=RESULT_TIMEOUT_MS)
    wait_until_idle(page, timeout_ms=RESULT_TIMEOUT_MS)
    if real_face:
        assert no_face.count() == 0, "the detector found no face in a picture it finds faces in"
    elif no_face.count():
        page.get_by_text("Score the whole picture as one face").click()
        wait_until_idle(page, '[data-testid="stMain"] [data-testid="stImage"]', timeout_ms=RESULT_TIMEOUT_MS)
    assert error_texts(page) == []
    image = main.locator('[data-testid="stImage"] img').first
    # The picture is fetched from /media after the run: wait for it to arrive and decode.
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle(),
                           timeout=RESULT_TIMEOUT_MS)
    caption = main.locator('[data-testid="stImage"]').first.inner_text()
    expected = (r"^1 face found, numbered left to right" if real_face
                else r"faces? found, numbered left to right|^the whole picture, scored as one face")
    assert re.search(expected, caption), caption
    bars = main.locator('[data-testid="stPlotlyChart"]').filter(has_text="Face 1:")
    bars.first.wait_for(state="visible")
    texts = chart_texts(bars.first)
    for expression in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"):
        assert expression in texts
    assert bars.first.locator(".bars .point").count() == 7  # one bar per expression
    return texts


def test_face_page_shows_boxes_and_probabilities_for_an_uploaded_photo(visit, server, face_pictures):
    page = open_page(visit, server, "face_expression", "Face expression")
    page.get_by_role("tab", name=re.compile(r"Photo$")).click()
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        files=[{"name": "me.png", "mimeType": "image/png", "buffer": face_pictures.photo_png}])
    _face_result(page, face_pictures.real)
    assert_healthy(visit)
    screenshot(page, "face_expression_photo")
    # The model's card, closed once there is a picture, is filled when the person opens it.
    main = page.locator('[data-testid="stMain"]')
    card_chart = main.locator('[data-testid="stPlotlyChart"]').filter(has_text="PublicTest confusion")
    assert card_chart.count() == 0
    main.get_by_text("About the model (from its card)").click()
    card_chart.wait_for(state="visible", timeout=RESULT_TIMEOUT_MS)
    wait_until_idle(page)
    assert error_texts(page) == [] and main.locator('[data-testid="stImage"]').count() == 1  # the result stays


def test_face_page_reads_a_picture_taken_with_the_webcam(visit, server, face_pictures):
    page = open_page(visit, server, "face_expression", "Face expression")
    page.get_by_role("tab", name=re.compile(r"Webcam$")).click()
    camera = page.locator('[data-testid="stCameraInput"]')
    take = camera.get_by_role("button", name="Take photo")
    main = page.locator('[data-testid="stMain"]')
    result = main.locator('[data-testid="stImage"]').or_(main.get_by_text("No face was found")).first
    # As a person would: wait to see yourself, click, and take another if no picture came. Streamlit
    # restarts the stream when the widget's width settles (1 s debounce), and a click during a
    # restart takes nothing; a new stream's first frames can be black, and a picture taken from one
    # is retaken, as a person would (at most 3 pictures). The page takes the picture out of the
    # widget, which starts again: the picture is shown once, with its boxes.
    for attempt in range(3):
        deadline = time.monotonic() + 60
        while not result.is_visible():
            assert time.monotonic() < deadline, "no picture after 60 s of clicking 'Take photo'"
            page.wait_for_function(CAMERA_SHOWS_A_PICTURE)
            take.click()
            page.wait_for_timeout(1500)
        wait_until_idle(page, timeout_ms=RESULT_TIMEOUT_MS)
        no_face = main.get_by_text("No face was found")
        if not (face_pictures.real and no_face.count()) or attempt == 2:
            break
        page.get_by_role("button", name="Remove the picture").click()
        result.wait_for(state="hidden")
        page.wait_for_timeout(1500)
    assert camera.get_by_role("button", name="Clear photo").count() == 0  # the widget shows no second copy
    assert main.locator('[data-testid="stImage"]').count() == 1           # the picture once, with its boxes
    _face_result(page, face_pictures.real)
    assert_healthy(visit)
    screenshot(page, "face_expression_webcam")


def test_compare_page_tables_the_trained_variants_and_runs_them_on_a_song_and_a_photo(
        visit, server, song_file, face_pictures):
    from core.metrics import METRICS
    from core.variants.zoo import DEFAULT, trained_variants

    tasks = {"song": "Song mood (CRNN)", "face": "Face expression (CNN)"}
    zoos = {task: trained_variants(task) for task in tasks}
    ready = [task for task, zoo in zoos.items() if DEFAULT in zoo and len(zoo) >= 2]
    assert ready == list(tasks), f"each task's default and variants are committed in models/: {zoos.keys()}"
    page = open_page(visit, server, "compare_variants", "Compare variants")
    for task in ready:
        page.locator('[data-testid="stRadio"] label').filter(has_text=tasks[task]).click()
        # This task's table, not the one it replaces: its first metric's column, and its cells
        # (the grid's accessible cells are hidden, so wait for them in the page, not on screen).
        page.wait_for_function(
            """(column) => { const f = document.querySelector('[data-testid="stMain"] [data-testid="stDataFrame"]');
                             return !!f && [...f.querySelectorAll('[role="columnheader"]')].some(h => h.textContent.includes(column))
                                    && !!f.querySelector('[role="gridcell"]'); }""",
            arg=METRICS[task][0].label, timeout=RESULT_TIMEOUT_MS)
        wait_until_idle(page)
        cells = grid_cells(page)
        assert f"★ {DEFAULT}" in cells, cells                # the default row, starred
        others = [name for name in zoos[task] if name != DEFAULT]
        assert any(name in cells for name in others), (others, cells)
        assert page.locator('[data-testid="stMain"] [data-testid="stPlotlyChart"]').count() >= 2
        assert error_texts(page) == []
        _compare_on_own_input(page, task, song_file, face_pictures)
        assert_healthy(visit)
        screenshot(page, f"compare_variants_{task}")


def _compare_on_own_input(page, task: str, song_file: Path, face_pictures) -> None:
    """Upload a song or photo on the Compare page and check every selected variant's result."""
    main = page.locator('[data-testid="stMain"]')
    variants = main.locator('[data-testid="stMultiSelect"]').filter(has_text="Variants")  # not the metrics' one
    selected = variants.locator('[aria-label="Selected values"] [data-tag]').evaluate_all(
        "tags => tags.map(tag => tag.getAttribute('aria-label'))")
    assert len(selected) >= 2, selected
    uploader = main.locator('[data-testid="stFileUploader"] input[type="file"]')
    if task == "song":
        uploader.set_input_files(str(song_file))
        chart = main.locator('[data-testid="stPlotlyChart"]').filter(has_text="Your song through each variant")
    else:
        uploader.set_input_files(files=[{"name": "me.png", "mimeType": "image/png", "buffer": face_pictures.photo_png}])
        no_face = main.get_by_text("No face was found")
        main.locator('[data-testid="stImage"]').or_(no_face).first.wait_for(state="visible", timeout=RESULT_TIMEOUT_MS)
        wait_until_idle(page, timeout_ms=RESULT_TIMEOUT_MS)
        if no_face.count():
            assert not face_pictures.real, "the detector found no face in a picture it finds faces in"
            page.get_by_text("Score the whole picture as one face").click()
        chart = main.locator('[data-testid="stPlotlyChart"]').filter(has_text="Face 1")
    chart.first.wait_for(state="visible", timeout=RESULT_TIMEOUT_MS)
    wait_until_idle(page, timeout_ms=RESULT_TIMEOUT_MS)
    assert error_texts(page) == []
    legend = " ".join(chart_texts(chart.first))
    for name in selected:  # every variant has its point (song) or its bars (face) in the chart
        assert name in legend, (name, legend)
    if task == "song":
        table = main.locator('[data-testid="stDataFrame"]').filter(  # under the map: one row a variant
            has=page.locator('[role="columnheader"]', has_text="mood"))
        table.locator(f'[role="gridcell"]:has-text("{selected[-1]}")').first.wait_for(state="attached")
        rows = table.locator('[role="gridcell"]').all_text_contents()
        assert [name for name in selected if name in rows] == selected, rows
    else:
        assert "face(s); labels from" in main.locator('[data-testid="stImage"]').first.inner_text()
    # The pooling layer's input and output for this input, per variant with a pooling layer.
    assert main.get_by_text("Just before and after the first pooling layer").count() == 1


def test_file_names_are_shown_as_text_and_nothing_leaves_localhost(visit, server):
    """Names that are Markdown, HTML, LaTeX or a formula: in the message, the map, the table, the
    Listen list and the CSV they are the name's characters, no element is made from them, and the
    browser asks nothing of the host they name."""
    image_name = "![t](https://example.invalid/x.png).mp3"  # refused: its name goes into the message
    bold_name = "**bold** <b>b</b>.wav"
    formula_name = "=1+2 $x^2$ :red[r] <img src=https://example.invalid/y.png>.wav"
    songs = [{"name": name, "mimeType": "audio/wav", "buffer": wav_bytes(music_like(6.0, seed=seed), 22050)}
             for seed, name in enumerate((bold_name, formula_name))]
    refused = {"name": image_name, "mimeType": "audio/mpeg", "buffer": np.random.default_rng(0).bytes(20_000)}
    page = open_page(visit, server, "song_mood", "Song mood")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(files=[refused, *songs])
    main = page.locator('[data-testid="stMain"]')
    mood_map = main.locator('[data-testid="stPlotlyChart"]').filter(has_text="Mood map")
    main.locator('[data-testid="stAlertContentError"]').wait_for(state="visible", timeout=RESULT_TIMEOUT_MS)
    mood_map.locator(".scatterlayer .point").nth(1).wait_for(state="attached", timeout=RESULT_TIMEOUT_MS)
    wait_until_idle(page, timeout_ms=RESULT_TIMEOUT_MS)

    (error,) = error_texts(page)
    assert error.startswith(f"{image_name}: This file could not be read as audio"), error
    texts = chart_texts(mood_map)
    assert bold_name in texts and formula_name in texts, texts  # the labelled points and the legend
    main.locator('[data-testid="stDataFrame"] [role="gridcell"]').filter(has_text=formula_name).first.wait_for(
        state="attached", timeout=RESULT_TIMEOUT_MS)  # the grid's accessible cells are hidden
    cells = grid_cells(page)
    assert bold_name in cells and formula_name in cells, cells
    main.get_by_text("Listen", exact=True).click()
    main.locator('[data-testid="stText"]').nth(2).wait_for(state="visible")
    assert main.locator('[data-testid="stText"]').all_inner_texts() == [image_name, bold_name, formula_name]
    # No element made from a name: no picture from the named host, no bold, no LaTeX, no colour.
    assert page.locator('img[src*="example.invalid"]').count() == 0
    assert main.locator("strong, b, em, a").filter(has_text=re.compile(r"^(bold|b|t)$")).count() == 0
    assert main.locator(".katex").count() == 0 and main.locator("span", has_text=re.compile(r"^r$")).count() == 0
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the results (CSV)").click()
    with open(download.value.path(), newline="") as table:
        files = [row["file"] for row in csv.DictReader(table)]
    assert sorted(files) == sorted([bold_name, "'" + formula_name])
    assert_healthy(visit)  # and no request left localhost (the guard counts every one it refused)
    screenshot(page, "song_mood_markup_names")


LIVE_TIMELINE_POINTS = """() => {
    const chart = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
        .find(c => c.textContent.includes('Face 1, last 30 s'));
    const plot = chart && chart.querySelector('.js-plotly-plot');
    return plot && plot.data ? Math.max(...plot.data.map(trace => (trace.x || []).length)) : -1;
}"""

# Share of the returned video's pixels in the boxes' red (255, 60, 60): the overlay drawn by the server.
LIVE_RED_SHARE = """(video) => {
    const canvas = document.createElement('canvas');
    canvas.width = video.videoWidth; canvas.height = video.videoHeight;
    const context = canvas.getContext('2d');
    context.drawImage(video, 0, 0);
    const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
    let red = 0;
    for (let i = 0; i < rgba.length; i += 4)
        if (rgba[i] > 200 && rgba[i + 1] < 120 && rgba[i + 2] < 120) red++;
    return red / (rgba.length / 4);
}"""


def test_face_page_live_video_draws_boxes_and_the_timeline_grows(visit, server, face_pictures):
    """Live mode with Chromium's fake camera playing the face: the video comes back from the server
    with the face's box drawn on it, the 30-s chart gains points every second, a moment is kept, and
    the session's summary downloads."""
    if not face_pictures.real:
        pytest.skip("needs a real FER face for the camera (../shared)")
    page = open_page(visit, server, "face_expression", "Face expression")
    page.get_by_role("tab", name=re.compile(r"Live video$")).click()
    # Before the video has played: the line that says what to do, and no empty chart or buttons.
    main = page.locator('[data-testid="stMain"]')
    main.get_by_text("Start the video: the chart of the last 30 seconds fills").wait_for(state="visible")
    assert page.locator('[data-testid="stPlotlyChart"]').filter(has_text="Face 1, last 30 s").count() == 0
    assert page.get_by_role("button", name="Keep this moment").count() == 0
    webrtc = page.frame_locator('iframe[title="streamlit_webrtc.component.webrtc_streamer"]')
    webrtc.get_by_role("button", name=re.compile("start", re.I)).click()
    video = webrtc.locator("video").first
    video.wait_for(state="visible", timeout=RESULT_TIMEOUT_MS)
    deadline = time.monotonic() + 90
    while not (video.evaluate("v => v.readyState >= 2 && v.currentTime > 2 && v.videoWidth > 0")):
        assert time.monotonic() < deadline, "the processed video did not play within 90 s"
        page.wait_for_timeout(500)
    red = max(video.evaluate(LIVE_RED_SHARE) for _ in range(5) if page.wait_for_timeout(300) is None)
    assert red > 0.002, f"no box drawn on the returned video (red share {red:.4f})"
    # The chart appears once the video plays and is redrawn every second: found and scrolled to in one
    # step in the page (a locator's scroll waits for it to be stable, and a redraw can detach it).
    page.locator('[data-testid="stPlotlyChart"]').filter(has_text="Face 1, last 30 s").wait_for(
        state="visible", timeout=RESULT_TIMEOUT_MS)
    page.evaluate("""() => [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
                          .find(c => c.textContent.includes('Face 1, last 30 s')).scrollIntoView()""")
    first = page.evaluate(LIVE_TIMELINE_POINTS)
    deadline = time.monotonic() + 30
    while page.evaluate(LIVE_TIMELINE_POINTS) <= max(first, 0):
        assert time.monotonic() < deadline, f"the live chart did not grow ({first} points)"
        page.wait_for_timeout(500)
    page.get_by_role("button", name="Keep this moment").click()
    main.get_by_text(re.compile(r"Moment 1: 1: \w+")).first.wait_for(state="visible", timeout=RESULT_TIMEOUT_MS)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the session's summary (CSV)").click()
    rows = Path(download.value.path()).read_text().splitlines()
    assert rows[0] == "expression,share_of_time,seconds" and len(rows) == 8
    assert sum(float(r.split(",")[1]) for r in rows[1:]) == pytest.approx(1.0, abs=0.01)
    screenshot(page, "face_expression_live")
    webrtc.get_by_role("button", name=re.compile("stop", re.I)).click()
    assert_healthy(visit)


def test_a_picture_named_as_markdown_is_named_as_text_on_the_face_page(visit, server):
    name = "![t](https://example.invalid/x.png) **bold**.png"
    page = open_page(visit, server, "face_expression", "Face expression")
    page.get_by_role("tab", name=re.compile(r"Photo$")).click()
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        files=[{"name": name, "mimeType": "image/png", "buffer": b"GIF89a" + bytes(200)}])  # refused: not promised
    page.locator('[data-testid="stAlertContentError"]').wait_for(state="visible", timeout=RESULT_TIMEOUT_MS)
    wait_until_idle(page, timeout_ms=RESULT_TIMEOUT_MS)
    assert error_texts(page) == [f"{name}: This file is not an image that can be read (supported: jpg, png, "
                                 "webp). It may be damaged or of another type."]
    assert page.locator('img[src*="example.invalid"]').count() == 0
    assert page.locator('[data-testid="stMain"] strong').filter(has_text=re.compile(r"^bold$")).count() == 0
    assert_healthy(visit)


def test_song_page_records_from_the_microphone_and_puts_the_recording_on_the_map(visit, server):
    """Chromium's fake microphone plays a generated piece of music; a person records 7 s of it."""
    page = open_page(visit, server, "song_mood", "Song mood")
    recorder = page.locator('[data-testid="stAudioInput"]')
    recorder.get_by_role("button", name=re.compile("record", re.I)).first.click()
    page.wait_for_timeout(7000)
    recorder.get_by_role("button", name=re.compile("stop", re.I)).first.click()
    mood_map = page.locator('[data-testid="stPlotlyChart"]').filter(has_text="Mood map")
    wait_for_song_result(page, mood_map, "microphone recording")
    cells = grid_cells(page)
    assert cells[0] == "microphone recording" and 0 <= float(cells[1]) <= 1 and 0 <= float(cells[2]) <= 1
    assert float(cells[5]) >= MIN_RECORDING_S  # duration (s)
    assert_healthy(visit)
    screenshot(page, "song_mood_recording")
