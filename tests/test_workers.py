"""The worker pool (core/workers.py): workers end with the pool or the process that started them,
one that cannot start says so, and one that dies or hangs is stopped and replaced."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.song import features as song_features
from core.song.workers import SongFeatureWorkers
from core.workers import WorkerDied, WorkersFailed
from tests.conftest import ROOT
from tests.song.test_workers import _assert_same_features
from tests.waiting import wait_until


def _ended(pid: int) -> bool:
    """The process has exited (gone, or a zombie its new parent has not reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def test_close_ends_the_workers():
    pool = SongFeatureWorkers(1)
    process = pool._all[0].process
    pool.close()
    assert process.returncode is not None


@pytest.mark.slow  # starts a Python that starts two workers (~10-20 s on 2 cores)
def test_the_workers_end_when_the_process_that_started_them_is_killed():
    """A server killed outright leaves no worker behind: each worker ends when its stdin closes."""
    code = ("import sys; from core.song.workers import SongFeatureWorkers; w = SongFeatureWorkers(2); "
            "print(*[x.process.pid for x in w._all], flush=True); sys.stdin.read()")
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    pids = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(pids) == 2 and not any(map(_ended, pids))
    parent.kill()
    parent.wait()
    wait_until(lambda: all(map(_ended, pids)), 20, interval_s=0.1, message="a worker outlived the process that started it")


def test_workers_that_cannot_start_say_so(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/bin/false")  # a worker that exits at once
    with pytest.raises(WorkersFailed, match=r"ended as it started, with exit status 1"):
        SongFeatureWorkers(2)


@pytest.mark.slow  # starts and restarts song worker processes (over 10 s on 2 cores)
def test_workers_that_die_and_cannot_start_again_say_so_instead_of_waiting(monkeypatch, song_wav):
    pool = SongFeatureWorkers(2)
    try:
        monkeypatch.setattr(sys, "executable", "/bin/false")  # from now on a new worker exits at once
        for _ in range(2):
            with pytest.raises(WorkerDied, match="ended unexpectedly"):
                pool.run(os._exit, 1)
        result = []  # a call that waited for a worker that never comes would hang the page
        thread = threading.Thread(target=lambda: result.append(pytest.raises(WorkerDied, pool.song_features, song_wav)),
                                  daemon=True)
        thread.start()
        thread.join(timeout=30)
        assert result, "the call still waits for a worker"
        assert "could not be started again" in str(result[0].value)
    finally:
        pool.close()


@pytest.mark.slow  # starts and restarts song worker processes (over 10 s on 2 cores)
def test_a_worker_that_hangs_on_a_file_is_stopped_and_replaced(song_wav):
    pool = SongFeatureWorkers(1, timeout_s=1.0)
    try:
        started = time.monotonic()
        with pytest.raises(WorkerDied, match="took over 1 s and was stopped"):
            pool.run(time.sleep, 30)  # what a decoder looping for ever looks like to the server
        assert time.monotonic() - started < 15
        _assert_same_features(pool.song_features(song_wav), song_features.song_features(song_wav))
    finally:
        pool.close()


# --- pictures -------------------------------------------------------------------------------------
