"""The app served by a real `streamlit run` on a free localhost port (browser tests, bench/load.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.waiting import WaitTimeout, wait_until

ROOT = Path(__file__).resolve().parent.parent


def server_environment() -> dict[str, str]:
    """This process's environment without the thread limits tests/conftest.py set for the test
    processes (named in MOODLENS_TEST_THREADS): a server runs with the app's own settings."""
    dropped = set(filter(None, os.environ.get("MOODLENS_TEST_THREADS", "").split(","))) | {"MOODLENS_TEST_THREADS"}
    return {k: v for k, v in os.environ.items() if k not in dropped}


class ServerFailed(RuntimeError):
    """The server exited or did not answer its health check; the message ends with its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`streamlit run streamlit_app.py` on 127.0.0.1, its output in `log`; started by the constructor,
    which returns once `/_stcore/health` answers (else ServerFailed). Use as a context manager.
    options: more `streamlit run` options, e.g. {"server.disconnectedSessionTTL": 2}; env: more
    environment variables for the server process."""

    def __init__(self, log: Path, start_timeout_s: float = 120, options: dict | None = None,
                 env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        streamlit = Path(sys.executable).parent / "streamlit"
        # No file watcher: other people edit the pages while tests run; a rerun mid-test is noise.
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [str(streamlit), "run", "streamlit_app.py", "--server.port", str(self.port),
                 "--server.address", "127.0.0.1", "--server.headless", "true",
                 "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
                 *[arg for name, value in (options or {}).items() for arg in (f"--{name}", str(value))]],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**server_environment(), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})
        try:
            self._wait_healthy(start_timeout_s)
        except BaseException:
            self.stop()
            raise

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise ServerFailed(f"streamlit exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    def _wait_healthy(self, timeout_s: float) -> None:
        try:
            wait_until(self._healthy, timeout_s, interval_s=0.3)
        except WaitTimeout:
            raise ServerFailed(f"no /_stcore/health after {timeout_s:.0f} s:\n{self.log_tail()}") from None

    def stored_bytes(self) -> dict[str, int]:
        """Bytes the server holds of people's files, by its own count (`/_stcore/metrics`):
        "uploads" (the upload store) and "media" (what st.audio / st.image / downloads serve).
        Streamlit recounts them at most every 5 s."""
        with urllib.request.urlopen(f"{self.url}/_stcore/metrics", timeout=30) as reply:
            lines = reply.read().decode().splitlines()
        stores = {"uploads": 'cache_type="UploadedFileManager"', "media": 'cache_type="st_memory_media_file_storage"'}
        return {name: sum(int(float(line.rsplit(" ", 1)[1])) for line in lines
                          if line.startswith("cache_memory_bytes{") and label in line)
                for name, label in stores.items()}

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, n_chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n_chars:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "LiveServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
