"""The web app inside `posthouse serve`'s own event loop: uvicorn's Server,
driven step by step (startup, main loop, shutdown) instead of Server.serve(),
whose signal capture would take SIGTERM and SIGINT away from posthouse's
handlers. The listening sockets are bound here, so a port in use is an
OSError worded as asyncio words it, and app._listen says so in one line."""
from __future__ import annotations

import asyncio
import logging
import socket

log = logging.getLogger("posthouse.web")


def bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for host:port (every address host names), as asyncio's
    create_server makes them."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            address = (address[0], port) + tuple(address[2:])
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as e:
                raise OSError(e.errno, f"error while attempting to bind on address {address[:2]!r}: "
                                       f"{e.strerror}") from None
            sock.listen(511)
            sock.setblocking(False)
            port = sock.getsockname()[1]    # (port 0: every address on the one port the first was given)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def tls_context(config):
    """The web server's TLS: the certificate IMAP uses (tls_cert/tls_key, else
    the one made in data_dir), HTTP/1.1 offered by ALPN."""
    from ..tls import ensure_self_signed, server_context, server_name
    cert, key = config.tls_cert, config.tls_key
    if not cert:
        cert, key = config.path("tls/cert.pem"), config.path("tls/key.pem")
        ensure_self_signed(cert, key, server_name(config.hostname))
    context = server_context(cert, key)
    context.set_alpn_protocols(["http/1.1"])
    return context


class WebServer:
    """start() binds and serves; close() stops taking connections, lets the
    requests under way finish (a few seconds at most) and returns."""

    def __init__(self, app, host: str, port: int, *, graceful: float = 5.0, ssl=None):
        self.app, self.host, self.port = app, host, port
        self.ssl = ssl      # an ssl.SSLContext: https
        self.graceful = graceful
        self.ports: list[int] = []
        self._server = None
        self._task: asyncio.Task | None = None
        self._sockets: list[socket.socket] = []

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.ssl else 'http'}://{host}:{self.ports[0] if self.ports else self.port}"

    async def start(self) -> None:
        import uvicorn
        self._sockets = bind(self.host, self.port)
        self.ports = sorted({s.getsockname()[1] for s in self._sockets})
        config = uvicorn.Config(self.app, log_config=None, lifespan="off", access_log=False,
                                server_header=False, proxy_headers=False,
                                timeout_graceful_shutdown=self.graceful, timeout_keep_alive=30)
        config.load()
        config.ssl = self.ssl       # (uvicorn serves TLS with this context; requests then say https)
        self._server = server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        try:
            await server.startup(sockets=self._sockets)
        except BaseException:
            for sock in self._sockets:
                sock.close()
            raise
        self._task = asyncio.get_running_loop().create_task(self._run(), name="web")

    async def _run(self) -> None:
        try:
            await self._server.main_loop()      # (its once-a-second tick keeps the Date header fresh)
        finally:
            await self._server.shutdown(sockets=self._sockets)

    async def close(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        try:
            await self._task
        except Exception as e:      # stopping goes on whatever the web part's trouble
            log.warning("web server stopped with an error: %r", e)
        self._task = None
        from .imap_pool import close_pool
        await close_pool(self.app)      # (lifespan is off: no shutdown event does it)
