"""The HTTP transport under python-telegram-bot: aiohttp instead of PTB's default httpx.

Why: on the send hot path httpx + httpcore cost ~1.5-1.8 ms CPU per request at 32 concurrent
sends (a connection-pool scan per request, and a failed `import sniffio` per request when sniffio
is not installed); aiohttp's pool costs a fraction of that (see docs/telegram.md for figures).
PTB still builds the requests and parses the answers, so its error mapping (429 -> RetryAfter,
403 -> Forbidden, ...) is unchanged; a plain 400 keeps Telegram's description verbatim
(`errors.ExactBadRequest`).
"""

from __future__ import annotations

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

from .errors import raise_exact_400

_USER_AGENT = "channelbridge (python-telegram-bot; aiohttp)"


def _seconds(value: object, default: float | None) -> float | None:
    """A timeout argument PTB passed (a float, None = no limit, or its DEFAULT_NONE sentinel)."""
    if value is None or isinstance(value, int | float):
        return None if value is None else float(value)
    return default


class AiohttpRequest(BaseRequest):
    """A PTB `BaseRequest` on one `aiohttp.ClientSession` with a bounded connection pool.

    The session is created in `initialize` (inside the running loop) and closed in `shutdown`.
    """

    def __init__(
        self,
        *,
        connection_pool_size: int = 64,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 30.0,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        """The default read time-out in seconds (PTB adds it to getUpdates' long-poll timeout)."""
        return self._read_timeout

    async def initialize(self) -> None:
        """Open the HTTP session (idempotent)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=self._pool_size)
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": _USER_AGENT}, raise_for_status=False
            )

    async def shutdown(self) -> None:
        """Close the HTTP session (idempotent)."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: object = BaseRequest.DEFAULT_NONE,
        write_timeout: object = BaseRequest.DEFAULT_NONE,
        connect_timeout: object = BaseRequest.DEFAULT_NONE,
        pool_timeout: object = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Perform one request; returns (HTTP status, body). Network trouble raises PTB's
        `NetworkError` / `TimedOut`; a plain 400 raises `ExactBadRequest`."""
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("AiohttpRequest is not initialized")
        files = request_data.multipart_data if request_data is not None else None
        fields = request_data.json_parameters if request_data is not None else {}
        body: aiohttp.FormData | dict[str, str] | None = fields or None
        write_default = self._write_timeout
        if files:
            form = aiohttp.FormData()
            for name, value in fields.items():
                form.add_field(name, value)
            for name, (filename, content, mimetype) in files.items():
                form.add_field(name, content, filename=filename, content_type=mimetype)
            body = form
            write_default = self._media_write_timeout
        read = _seconds(read_timeout, self._read_timeout)
        write = _seconds(write_timeout, write_default)
        # aiohttp has no separate write time-out: the whole exchange is bounded by their sum
        total = None if read is None or write is None else read + write
        timeout = aiohttp.ClientTimeout(
            total=total,
            connect=_seconds(pool_timeout, self._pool_timeout),
            sock_connect=_seconds(connect_timeout, self._connect_timeout),
            sock_read=read,
        )
        try:
            async with session.request(method, url, data=body, timeout=timeout) as response:
                payload = await response.read()
                code = response.status
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc
        raise_exact_400(code, payload)
        return code, payload
