"""The teacher makes, lists and revokes seats from the command line."""
import json
import os
import subprocess
import sys

from conftest import ROOT
from tl_core.policy.access import session_from_seat


def test_the_teacher_makes_lists_and_revokes_seats_from_the_command_line(home):
    env = {**os.environ, "TL_HOME": str(home)}

    def cli(*args, ok=True):
        p = subprocess.run([sys.executable, "-m", "tl_core", "class", *args], capture_output=True, text=True,
                           env=env, cwd=ROOT, timeout=60)
        assert (p.returncode == 0) == ok, p.stderr
        return p

    links = json.loads(cli("seats", "3", "--url", "http://class.example:8501/", "--json").stdout)
    assert len(links) == 3 and all(r["link"].startswith("http://class.example:8501/?seat=") for r in links)
    token = links[0]["link"].split("seat=")[1]
    assert session_from_seat(token).seat == links[0]["id"]
    listed = cli("list").stdout
    assert links[0]["id"] in listed and token not in listed and "live" in listed
    cli("revoke", links[0]["id"])
    assert session_from_seat(token) is None and "revoked" in cli("list").stdout
    assert "not a seat id" in cli("revoke", "../etc", ok=False).stderr
    assert "takes one number" in cli("seats", "lots", ok=False).stderr
