"""The third-party patches of core/patches.py are in place, do what they replace did, and a
missing one is reported loudly at the server's start instead of silently doing nothing."""

import logging

from core import patches
from webapp import server_setup


def test_every_patched_name_is_present():
    # Fails after an upgrade that removed one: its speed or compatibility would be lost.
    assert patches.missing() == []


def test_a_missing_patched_name_is_logged_at_the_servers_start(monkeypatch, caplog):
    monkeypatch.setitem(patches.CHECKS, "glibc malloc_trim", lambda: False)
    monkeypatch.setattr(server_setup, "_checked", type(server_setup._checked)())
    with caplog.at_level(logging.ERROR):
        server_setup.check_internals_once()
    assert any("glibc malloc_trim" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


def test_the_song_worker_keeps_freed_memory_without_error():
    patches.keep_freed_memory()  # glibc's mallopt, called as a song worker starts
    patches.give_memory_back()
