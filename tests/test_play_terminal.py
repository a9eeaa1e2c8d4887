"""``detente play --against`` at a real pseudo-terminal (pexpect): what a person sees and types, how they
leave, and the saved game that ``detente report`` shows."""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

import pexpect
import pytest

import detente
from detente.cli import main
from detente.report import transcript_section
from detente.runs import PLAY_ROOT, read_run_info

SRC = str(Path(detente.__file__).resolve().parents[1])
PROMPT = "(type A or B) > "
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def plain(text: str) -> str:
    """Terminal output without colour codes and carriage returns."""
    return ANSI.sub("", text).replace("\r\n", "\n")


def as_foreground_job() -> None:
    """Give the child the default SIGINT, as an interactive shell does for a command it runs in the
    foreground. A test run started in the background (``make test &`` in a script, as CI may be) has
    SIGINT ignored, the child would inherit that, and ^C would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(cwd: Path, *args: str) -> pexpect.spawn:
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    return pexpect.spawn(sys.executable, ["-m", "detente.cli", "play", *args], cwd=str(cwd), env=env,
                         encoding="utf-8", timeout=60, dimensions=(40, 160), preexec_fn=as_foreground_job)


def test_a_person_plays_ipd_against_tft_through_typos_and_the_game_is_saved(tmp_path):
    child = spawn(tmp_path, "--game", "ipd", "--against", "tft", "--param", "n_rounds=3")
    child.expect_exact(PROMPT)
    assert "--- round 1 ---" in child.before and "you play A, the other plays B: you get 0" in child.before
    assert "Score so far: you 0, the other agent 0." in child.before
    child.sendline("a")
    child.expect_exact(PROMPT)
    assert "The other agent played <A> last round." in child.before
    for typo in ("maybe", "C", "A or B", "cooperate"):  # more typos than an agent's 3 tries
        child.sendline(typo)
        child.expect_exact("[not accepted: no option found; write exactly one of <A>, <B>]")
        child.expect_exact(PROMPT)
    child.sendline("<B>")
    child.expect_exact(PROMPT)
    assert "Score so far: you 8, the other agent 3." in child.before
    child.sendline("b")  # tft copies round 2's B
    child.expect(pexpect.EOF)
    out = plain(child.before)
    child.close()
    assert child.exitstatus == 0, out
    assert "total: you 9, tft 4" in out and "Traceback" not in out

    folder, = (tmp_path / PLAY_ROOT).iterdir()
    assert f"saved {PLAY_ROOT / folder.name / 'transcripts' / 'crossplay.jsonl'}" in out
    assert read_run_info(folder).game == "ipd"
    games = transcript_section(folder).files[0]["games"]
    assert [g["players"] for g in games] == [["human", "tft"]] and games[0]["totals"] == [9.0, 4.0]
    assert main(["report", str(folder)]) == 0
    assert 'id="search"' in (folder / "report.html").read_text()


@pytest.mark.parametrize("leave", ["ctrl-c", "end of input"])
def test_ctrl_c_or_end_of_input_leaves_with_one_line_and_saves_nothing(tmp_path, leave):
    child = spawn(tmp_path, "--game", "ipd", "--against", "tft", "--seat", "1")
    child.expect_exact(PROMPT)
    child.sendline("A")
    child.expect_exact(PROMPT)
    if leave == "ctrl-c":
        child.sendintr()
    else:
        child.sendeof()
    child.expect(pexpect.EOF)
    out = plain(child.before)
    child.close()
    assert child.exitstatus == 0
    assert out.strip().splitlines()[-1] == "game left before its end; nothing saved"
    assert "Traceback" not in out and "KeyboardInterrupt" not in out
    assert not (tmp_path / "runs").exists()


def test_play_options_that_do_not_fit_are_one_line_errors(tmp_path, capsys):
    assert main(["play", "--against", "human"]) == 2
    assert "--agents human,human" in capsys.readouterr().err
    assert main(["play", "--agents", "tft,alld", "--seat", "1"]) == 2
    assert "--seat goes with --against" in capsys.readouterr().err
    (tmp_path / "run.json").write_text("{}")
    assert main(["play", "--agents", "tft,alld", "--out", str(tmp_path)]) == 2
    assert "already holds run.json" in capsys.readouterr().err
