"""`/stats <handle> chart` on Matrix through the whole App against the test Synapse (issue 15):
the chart is uploaded (encrypted in an encrypted direct chat) and sent as an `m.image` that
decodes to a PNG of the expected size with something drawn on it; a follower asking is refused."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable

import matplotlib.image as mpimg

from bridge.engine.chart import SIZE_PX

from .conftest import Follower
from .synapse import RegisteredUser
from .test_matrix_app import Bridge, ask, bridge, content_of, copy_of, media_bytes, numbered

__all__ = ["bridge"]  # the App fixture, shared with the App tests


async def test_stats_chart_is_uploaded_and_sent_as_an_image_that_decodes(
    bridge: Bridge, bot_user: RegisteredUser, follower_factory: Callable[[], Awaitable[Follower]],
) -> None:
    op, reader = await follower_factory(), await follower_factory()
    await bridge(bot_user, op.user_id)
    bot = bot_user.user_id
    op_room = await op.open_dm(bot, encrypted=True)
    reader_room = await reader.open_dm(bot, encrypted=False)
    await ask(op, op_room, "/newchannel news Daily News", bot, "created")
    await ask(reader, reader_room, "/follow news", bot, "You now follow")
    for n, text in enumerate(("one", "two"), start=1):
        await ask(op, op_room, f"/post news {text}", bot, f"Post #{n} is on its way")
        await copy_of(reader, reader_room, bot, numbered(n))

    await op.say(op_room, "/stats news chart")
    image = await copy_of(op, op_room, bot, lambda s: content_of(s).get("msgtype") == "m.image")
    content = content_of(image.source)
    assert "file" in content and "url" not in content  # uploaded encrypted into an encrypted DM
    assert content["info"]["mimetype"] == "image/png"
    png = await media_bytes(op, content)
    pixels = mpimg.imread(io.BytesIO(png), format="png")
    assert pixels.shape[:2] == (SIZE_PX[1], SIZE_PX[0])
    assert pixels.std() > 0.05  # not a blank canvas

    refused = await ask(reader, reader_room, "/stats news chart", bot, "Only admins")
    assert "Only admins" in refused
