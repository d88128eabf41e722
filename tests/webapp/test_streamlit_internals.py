"""The private Streamlit/Starlette internals the app relies on (webapp/streamlit_internals.py) are
there, and a missing one is reported loudly instead of silently doing nothing."""

import logging

import pytest

from webapp import streamlit_internals as internals


def test_every_private_internal_the_app_uses_is_present():
    # Fails after an upgrade that removed one: each workaround's promise would no longer hold.
    assert internals.missing() == []


@pytest.mark.parametrize("name", sorted(internals.CHECKS))
def test_a_missing_internal_is_listed(name, monkeypatch):
    monkeypatch.setitem(internals.CHECKS, name, lambda: False)
    assert name in internals.missing()


def test_a_missing_upload_spool_limit_is_logged_as_an_error(monkeypatch, caplog):
    class ParserWithoutSpoolLimit:
        pass

    monkeypatch.setattr(internals, "_multipart_parser", lambda: ParserWithoutSpoolLimit)
    monkeypatch.setattr(internals, "_reported", set())
    with caplog.at_level(logging.ERROR, logger=internals.log.name):
        internals.raise_upload_spool_limit(50 * 1024 * 1024)
    assert any("spool_max_size" in r.getMessage() and "temp folder" in r.getMessage() for r in caplog.records)


def test_a_missing_clean_up_hook_is_logged_as_an_error(monkeypatch, caplog):
    import types

    monkeypatch.setattr(internals, "_script_runner_module", lambda: types.SimpleNamespace())
    monkeypatch.setattr(internals, "_reported", set())
    with caplog.at_level(logging.ERROR, logger=internals.log.name):
        internals.replace_clean_up_hook(internals.close_pyplot_figures, None)
    assert any("_clean_problem_modules" in r.getMessage() for r in caplog.records)


def test_a_real_server_without_session_storage_is_logged_as_an_error(monkeypatch, caplog):
    class WebsocketSessionManager:  # the real class's name, without the private attributes
        pass

    class Runtime:
        _session_mgr = WebsocketSessionManager()

    monkeypatch.setattr(internals, "_reported", set())
    with caplog.at_level(logging.ERROR, logger=internals.log.name):
        assert internals.session_storage_of(Runtime()) is None
    assert any("closed tab" in r.getMessage() for r in caplog.records)


def test_a_missing_pages_mode_flag_is_logged_as_an_error(monkeypatch, caplog):
    monkeypatch.setattr(internals, "_pages_manager", lambda: object)
    monkeypatch.setattr(internals, "_reported", set())
    with caplog.at_level(logging.ERROR, logger=internals.log.name):
        assert internals.runs_in_legacy_pages_mode() is False
    assert any("uses_pages_directory" in r.getMessage() for r in caplog.records)
