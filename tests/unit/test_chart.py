"""`/stats <handle> chart` without a platform: the PNG decodes at its size with a plot on it;
the reply lane keeps the picture sealed in the notice body; the console writes it under
data_dir and prints the path; only admins get it."""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib import image as mpimg
from sqlmodel import select

from adapters.console import ConsoleAdapter
from bridge.engine import EngineOptions
from bridge.engine.chart import SIZE_PX, render_png
from bridge.models import Notice
from bridge.ports import Address, Message, Reply
from bridge.store.charts import ChartData, PostFigures
from tests.support import OPERATOR, build, person


def _decoded(png: bytes) -> object:
    pixels = mpimg.imread(io.BytesIO(png), format="png")
    assert pixels.shape[:2] == (SIZE_PX[1], SIZE_PX[0])
    assert pixels.std() > 0.05  # a plot, not a blank canvas
    return pixels


def test_the_chart_decodes_with_its_size_and_a_plot() -> None:
    data = ChartData("News", [("2026-12-01", 3), ("2026-12-02", 5)], [PostFigures(1, 4, 1, 0, 2)])
    _decoded(render_png(data))
    _decoded(render_png(ChartData("Empty", [], [])))  # no data yet still draws the axes


async def test_an_admin_gets_the_chart_sealed_in_the_reply_lane_others_are_refused(tmp_path: Path) -> None:
    h = build(f"sqlite:///{tmp_path / 'c.db'}", options=EngineOptions(history_default=0))
    try:
        await h.say(OPERATOR, "/newchannel news Daily News")
        await h.say(person(1), "/follow news")
        await h.say(OPERATOR, "/post news hello")
        await h.worker.start()
        await h.settle()
        await h.worker.stop()
        (reply,) = await h.engine.handle(Message(OPERATOR, "/stats news chart"))
        assert reply.image is not None and "Daily News" in reply.text
        _decoded(reply.image)
        refused = await h.engine.handle(Message(person(1), "/stats news chart"))
        assert refused[0].image is None and "Only admins" in refused[0].text
        assert h.worker.notices is not None
        h.worker.notices.enqueue(OPERATOR, [reply], 0, 1.0)
        with h.store.unit_of_work() as s:
            (row,) = s.exec(select(Notice)).all()
            assert b"PNG" not in bytes(row.body)  # sealed like every body
        (claimed,) = h.worker.notices.claim("t", 2.0, 60, 5, ["fake"])
        assert claimed.reply is not None and claimed.reply.image == reply.image
    finally:
        h.store.dispose()


async def test_the_console_writes_the_picture_under_data_dir_and_prints_its_path(tmp_path: Path) -> None:
    out = io.StringIO()
    console = ConsoleAdapter(input_stream=io.StringIO(""), output=out, data_dir=tmp_path / "data")
    png = render_png(ChartData("News", [], []))
    await console.reply(Address("console", "desk"), Reply("the chart", image=png))
    line = out.getvalue()
    path = Path(line.split("[picture: ", 1)[1].split("]", 1)[0])
    assert path.is_relative_to((tmp_path / "data" / "charts").resolve()) and path.read_bytes() == png
    assert path.stat().st_mode & 0o077 == 0
