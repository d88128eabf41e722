"""Several people at once on a real server (`streamlit run`), each a websocket client that speaks
the browser's protocol (tests/streamlit_client.py, which bench/load.py uses too)."""

from __future__ import annotations

import asyncio
import os
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import music_like, wav_bytes
from tests.live_server import LiveServer, ServerFailed
from tests.streamlit_client import SessionClient
from tests.waiting import wait_until

pytestmark = pytest.mark.slow
PEOPLE = 4
# Seconds a closed tab's session is kept for it to reconnect (Streamlit's default is 120).
SESSION_TTL_S = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    try:
        with LiveServer(tmp_path_factory.mktemp("streamlit") / "server.log",
                        options={"server.disconnectedSessionTTL": SESSION_TTL_S}) as srv:
            yield srv
    except ServerFailed as e:
        pytest.fail(str(e))


def _photo(i: int) -> bytes:
    """A grey 320x240 picture with a different stripe for each person (no face in it)."""
    image = np.full((240, 320), 120, np.uint8)
    image[10 * i:10 * i + 8] = 30
    return cv2.imencode(".png", image)[1].tobytes()


async def _people_at_once(url: str, page: str, files: list[tuple[str, bytes, str]]):
    sessions = [SessionClient(url, page, timeout_s=240) for _ in files]
    try:
        for session in sessions:
            await session.open()
        return await asyncio.gather(*[s.upload(*f) for s, f in zip(sessions, files)])
    finally:
        for session in sessions:
            await session.close()


def test_songs_uploaded_at_once_each_get_their_own_mood(server):
    files = [(f"person_{i}.wav", wav_bytes(music_like(8.0, seed=i), 22050), "audio/wav") for i in range(PEOPLE)]
    runs = asyncio.run(_people_at_once(server.url, "song_mood", files))
    for (name, _, _), run in zip(files, runs):
        assert run.status == "FINISHED_SUCCESSFULLY" and run.errors == []
        chart = run.find(lambda e: e.WhichOneof("type") == "plotly_chart" and "Mood map" in e.plotly_chart.spec)
        assert chart is not None and name in chart.plotly_chart.spec
        others = [n for n, _, _ in files if n != name]
        assert not any(other in chart.plotly_chart.spec for other in others), "another person's song"
        table = run.find(lambda e: e.WhichOneof("type") == "dataframe")
        assert table is not None


def test_the_server_serves_a_song_without_loading_tensorflow(server):
    """The Song page serves through LiteRT (issue 24): after a song's result, the server process has
    not loaded TensorFlow's library (its memory map names every shared library it has loaded)."""
    song = ("one.wav", wav_bytes(music_like(4.0, seed=5), 22050), "audio/wav")
    run, = asyncio.run(_people_at_once(server.url, "song_mood", [song]))
    assert run.errors == []
    libraries = Path(f"/proc/{server.pid}/maps").read_text()
    assert "_pywrap_tensorflow" not in libraries and "libtensorflow" not in libraries
    assert "litert" in libraries.lower() or "tflite" in libraries.lower()  # the map does name libraries


def test_the_server_reads_songs_in_one_worker_process_per_cpu(server):
    """core/workers.py: songs' features are computed beside the server, not in its threads."""
    song = ("two.wav", wav_bytes(music_like(4.0, seed=6), 22050), "audio/wav")
    run, = asyncio.run(_people_at_once(server.url, "song_mood", [song]))
    assert run.errors == []
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == server.pid:
                children.append((stat.parent / "cmdline").read_bytes().split(b"\0"))
        except (OSError, IndexError, ValueError):
            continue
    workers = [b" ".join(cmdline) for cmdline in children if b"core.workers" in cmdline]
    assert sum(b"core.song.workers" in cmdline for cmdline in workers) == os.cpu_count()  # songs'
    # Pictures' workers (core.face.workers), once the face page or the warm-up has started them.
    assert sum(b"core.face.workers" in cmdline for cmdline in workers) in (0, os.cpu_count())


def test_photos_uploaded_at_once_each_get_an_answer_and_a_bad_one_a_message(server):
    files = [(f"photo_{i}.png", _photo(i), "image/png") for i in range(PEOPLE - 1)]
    files.append(("broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "image/png"))
    runs = asyncio.run(_people_at_once(server.url, "face_expression", files))
    for (name, _, _), run in zip(files, runs):
        assert run.status == "FINISHED_SUCCESSFULLY"
        if name == "broken.png":
            assert len(run.errors) == 1 and "broken.png" in run.errors[0]
        else:
            assert run.errors == []
            warning = run.find(lambda e: e.WhichOneof("type") == "alert" and "No face was found" in e.alert.body)
            assert warning is not None  # a grey picture: the page says what to do


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            return reply.status
    except urllib.error.HTTPError as e:
        return e.code


def test_a_closed_tab_s_song_is_dropped_once_its_reconnect_time_is_up(server):
    """Streamlit keeps a closed tab's session for server.disconnectedSessionTTL, for the tab to
    reconnect; after that the person's upload must be gone: their song no longer served at its
    /media URL, and the server's upload store empty (by its own count)."""
    async def upload_then_close():
        async with SessionClient(server.url, "song_mood", timeout_s=240) as session:
            await session.open()
            run = await session.upload("mine.wav", wav_bytes(music_like(4.0, seed=9), 22050), "audio/wav")
        audio = run.find(lambda e: e.WhichOneof("type") == "audio")
        assert audio is not None, "the song page shows no player for the song"
        return server.url + audio.audio.url

    song_url = asyncio.run(upload_then_close())
    assert _http_status(song_url) == 200, "the song is not served right after its tab closed"
    assert server.stored_bytes()["uploads"] > 0
    # The server recounts its stores every 5 s.
    wait_until(lambda: _http_status(song_url) != 200 and not server.stored_bytes()["uploads"], SESSION_TTL_S + 15,
               interval_s=0.5, message="a closed tab's song is still kept")
    assert _http_status(song_url) == 404, "a closed tab's song is still kept"
    assert server.stored_bytes()["uploads"] == 0, "a closed tab's uploads are still in the upload store"
