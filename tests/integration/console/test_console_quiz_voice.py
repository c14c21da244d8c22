"""Quizzes and voice notes in the console, end to end through `channelbridge run` (issue 15):
a vote on a quiz is answered with the correct answer and the explanation, once; a voice note
is printed as `[voice: <duration>s]`, edited and deleted like a photo."""

from __future__ import annotations

import struct
from pathlib import Path

from adapters.console import ogg_duration

from .test_console_e2e import _copies, _run

SCRIPT = """\
/newchannel news Daily News
:as alice
/follow news
:as bob
/follow news
:as operator
/quiz news "Capital of France?" "Lyon" "Paris" --answer 2 --explain "Since 508."
:voice {voice} /post news Listen
:sync
:as alice
/vote 1 1
/vote 1 2
:as bob
/vote 1 2
:as operator
/edit 2 Listen again
:sync
/delete 2
:sync
/results 1
"""


def _ogg_page(granule: int, payload: bytes) -> bytes:
    """One Ogg page (checksum left zero: nobody here verifies it)."""
    header = b"OggS" + bytes([0, 0]) + struct.pack("<qIII", granule, 1, 0, 0)
    return header + bytes([1, len(payload)]) + payload


def _opus_file(seconds: float) -> bytes:
    head = b"OpusHead" + bytes([1, 1]) + struct.pack("<HIhB", 312, 48_000, 0, 0)
    return _ogg_page(0, head) + _ogg_page(0, b"OpusTags") + _ogg_page(int(312 + seconds * 48_000), b"x")


def test_ogg_duration_reads_the_last_granule_position(tmp_path: Path) -> None:
    voice = tmp_path / "note.ogg"
    voice.write_bytes(_opus_file(12.4))
    assert ogg_duration(voice) == 12
    voice.write_bytes(b"not ogg at all")
    assert ogg_duration(voice) is None
    assert ogg_duration(tmp_path / "missing.ogg") is None


def test_console_quiz_reveals_once_and_voice_note_shows_its_duration(tmp_path: Path) -> None:
    voice = tmp_path / "note.ogg"
    voice.write_bytes(_opus_file(5))
    out = _run(tmp_path, SCRIPT.format(voice=voice))

    for who in ("alice", "bob"):
        copies = _copies(out, who)
        quiz = "Daily News (#1) quiz: Capital of France?  1) Lyon  2) Paris"
        assert any(c.startswith(quiz) for c in copies)
        assert "Daily News (#2): [voice: 5s] Listen" in copies
        assert "edited Daily News (#2): [voice: 5s] Listen again" in copies
        assert "deleted post #2" in copies
    bot_to = {who: [line for line in out.splitlines() if line.startswith(f"[bot → {who}]")]
              for who in ("alice", "bob", "operator")}  # fmt: skip
    wrong = "[bot → alice] Quiz #1: not quite — you answered 1. Lyon; the answer is 2. Paris."
    assert wrong in bot_to["alice"]
    assert any("You already answered quiz #1" in line for line in bot_to["alice"])
    assert sum("the answer is" in line for line in bot_to["alice"]) == 1
    assert "[bot → bob] Quiz #1: right! The answer is 2. Paris." in bot_to["bob"]
    assert "Since 508." in out
    assert "Answered correctly: 1 of 2" in out
