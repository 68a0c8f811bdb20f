"""Seats (issue 29, item 1): the join links a teacher makes hold compute on a shared server, not cookies.
Made, handed out, opened in the app, revoked; a token is shown once and never stored."""

import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT, isolated_home
from tl_core.policy import access
from tl_core.store import seats
from tl_core.policy.access import Session, has_seat, queue_limits, session_from_seat, session_from_token

APP = str(ROOT / "app.py")


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = isolated_home(tmp_path / "home")
    monkeypatch.setenv("TL_HOME", str(h))
    return h


def test_a_seat_opens_with_its_token_only_and_stops_counting_when_revoked(home):
    made = seats.make(3, label="desk")
    assert [m["label"] for m in made] == ["desk 1", "desk 2", "desk 3"]
    stored = (home / "seats.json").read_text()
    assert all(m["token"] not in stored for m in made)  # only hashes are kept: the file opens no seat
    s = session_from_seat(made[0]["token"])
    assert s.seated and s.seat == made[0]["id"] and has_seat(s) and queue_limits(s).seated
    assert s.owner == session_from_seat(made[0]["token"]).owner  # the same identity on any device
    assert s.owner != session_from_seat(made[1]["token"]).owner
    for bad in (None, "", "x" * 43, made[0]["id"], made[0]["token"][:-1] + "A", "../" * 20, 5):
        assert session_from_seat(bad) is None
    assert seats.revoke([made[0]["id"]]) == 1
    assert session_from_seat(made[0]["token"]) is None  # a new visit with the revoked link: no seat
    assert not has_seat(s) and not queue_limits(s).seated  # an open page loses its seat at the next launch
    assert queue_limits(s).anon is not None  # and queues like a browser without one
    assert [r["revoked"] is not None for r in seats.list_seats()] == [True, False, False]
    assert seats.revoke(None, purge=True) == 3  # the two live ones revoked, all three forgotten
    assert seats.list_seats() == []


def test_a_browser_without_a_seat_is_held_to_the_anonymous_allowance_only_on_a_network_server(home):
    stranger = session_from_token(None)[0]
    on_my_machine = session_from_token(None, local=True)[0]
    assert queue_limits(stranger).anon == 4 and not queue_limits(stranger).seated
    assert queue_limits(on_my_machine).anon is None and not queue_limits(on_my_machine).seated
    signed = access.session_from_user("oidc|12345", "Ada")
    assert signed.seated and has_seat(signed) and queue_limits(signed).anon is None
    assert access.session_from_user("", "x") is None and access.session_from_user(None) is None
    assert queue_limits(access.CLI_SESSION).total is None
    from tl_core.app import api

    assert "No seat" in api.seat_words(stranger) and api.seat_words(on_my_machine) == ""
    assert "Signed in: Ada" in api.seat_words(signed)


def _app(home, monkeypatch, seat=None):
    monkeypatch.setenv("TL_HOME", str(home))
    at = AppTest.from_file(APP, default_timeout=120)
    if seat is not None:
        at.query_params["seat"] = seat
    at.run()
    assert not at.exception, at.exception
    return at


def _sidebar_text(at) -> str:
    shown = " ".join([c.value for c in at.sidebar.caption] + [w.value for w in at.sidebar.warning])
    return shown.replace("\\", "")  # as the markdown renders it (users' text is escaped)


def test_a_join_link_seats_the_browser_and_leaves_the_address_bar(home, monkeypatch):
    made = seats.make(1)
    at = _app(home, monkeypatch, seat=made[0]["token"])
    s = at.session_state.tl_session
    assert isinstance(s, Session) and s.seated and s.seat == made[0]["id"]
    assert "seat" not in at.query_params  # the token is not left in the address to be copied or shared
    assert "Your seat: seat 1" in _sidebar_text(at)


def test_a_bad_or_revoked_join_link_says_so_and_the_browser_can_still_look_around(home, monkeypatch):
    made = seats.make(1)
    seats.revoke([made[0]["id"]])
    for token in (made[0]["token"], "not-a-token"):
        at = _app(home, monkeypatch, seat=token)
        assert not at.session_state.tl_session.seated
        text = _sidebar_text(at)
        assert "does not open a seat" in text
        assert at.title  # the page itself is there
