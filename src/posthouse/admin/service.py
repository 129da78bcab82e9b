"""What the server runs for its administrators: the admin socket (status,
backups) and, if configured, the metrics endpoint."""
from __future__ import annotations

import logging
import time

from .status import AdminSocket

log = logging.getLogger("posthouse.admin")


class Admin:
    def __init__(self, ctx):
        self.ctx = ctx
        self.started = time.time()
        self.socket = AdminSocket(ctx, self.started)
        self.metrics = None

    async def start(self) -> None:
        config = self.ctx.config
        await self.socket.start()
        if config.metrics_port is not None:
            from .metrics import Metrics
            metrics = Metrics(self.ctx, self.started)
            try:
                port = metrics.start(config.metrics_host, config.metrics_port)
            except OSError as e:
                # The mail goes on; the monitoring will notice the missing endpoint.
                log.error("metrics not served: %s port %s: %s", config.metrics_host, config.metrics_port, e)
                return
            metrics.install()
            self.metrics = metrics
            log.info("metrics on http://%s:%s/metrics", config.metrics_host, port)

    async def close(self) -> None:
        await self.socket.close()
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None


async def start_admin(ctx) -> Admin:
    admin = Admin(ctx)
    await admin.start()
    return admin
