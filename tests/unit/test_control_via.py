"""`"via": "console"` on the control socket: the daemon takes the console's operator as logged in
only from the Unix user the console runs as; anyone else stating it is refused, and the CLI,
which never states it, is recorded as before (the operator as claimed, beside the Unix user)."""

from __future__ import annotations

import pytest

from broadcastd.controller.controlsocket import Peer
from broadcastd.controller.requests import RequestError, Who, who_asked

CONSOLE_UID = 998
DAEMON_USER = Peer(pid=4242, uid=CONSOLE_UID, user="broadcastd")
ROOT = Peer(pid=7, uid=0, user="root")


def test_the_console_user_is_trusted_and_recorded_as_via_console():
    who = who_asked({"via": "console"}, "chu-tich", DAEMON_USER, console_uid=CONSOLE_UID)
    assert who == Who("chu-tich", DAEMON_USER, "console")
    assert who.record() == {
        "operator": "chu-tich",
        "unix_user": "broadcastd",
        "uid": CONSOLE_UID,
        "pid": 4242,
        "via": "console",
    }
    assert "operator 'chu-tich' (logged in to the console)" in who.describe()
    assert "Unix user broadcastd (uid 998, pid 4242)" in who.describe()


def test_without_via_the_operator_stays_a_claim_and_the_record_keeps_its_shape():
    who = who_asked({"cmd": "stop"}, "chu-tich", ROOT, console_uid=CONSOLE_UID)
    assert who.via is None
    assert set(who.record()) == {"operator", "unix_user", "uid", "pid"}
    assert "operator 'chu-tich' (as claimed)" in who.describe()


@pytest.mark.parametrize(
    ("raw", "operator", "peer", "message"),
    [
        ({"via": "console"}, "chu-tich", ROOT, "only from the Unix user the console runs as"),
        ({"via": "console"}, "chu-tich", Peer(None, None, None), "got: an unknown user"),
        ({"via": "console"}, None, DAEMON_USER, "must name the operator it authenticated"),
        ({"via": "web"}, "chu-tich", DAEMON_USER, 'via must be "console" or absent'),
        ({"via": True}, "chu-tich", DAEMON_USER, "via must be text"),
    ],
)
def test_a_claim_to_be_the_console_from_anyone_else_is_refused(raw, operator, peer, message):
    with pytest.raises(RequestError, match=message):
        who_asked(raw, operator, peer, console_uid=CONSOLE_UID)
