"""`python -m conveyor.worker`: a Celery worker consuming the queues in WORKER_QUEUES
(every queue when it is empty)."""

from __future__ import annotations

import os
import socket

# SIGTERM starts Celery's soft shutdown (wait, then requeue) instead of an
# unbounded warm shutdown. Billiard reads this at import, so set it first.
os.environ.setdefault("REMAP_SIGTERM", "SIGQUIT")

from conveyor.common.queues import worker_lists
from conveyor.common.settings import load_settings
from conveyor.worker.app import configure_worker_logging, create_celery_app, release_node_jobs
from conveyor.worker.settings import WorkerSettings


def main() -> None:
    settings = load_settings(WorkerSettings)
    configure_worker_logging(settings)
    app = create_celery_app(settings)
    # Unique per process, so several workers on one host never share a name.
    nodename = f"worker-{os.getpid()}@{socket.gethostname()}"
    try:
        app.worker_main(
            [
                "--quiet",  # no ASCII banner: stdout carries JSON lines only
                "worker",
                f"--loglevel={settings.log_level}",
                f"--concurrency={settings.worker_concurrency}",
                "--pool=prefork",
                f"--hostname={nodename}",
                f"--queues={','.join(worker_lists(settings.served_queues))}",
                "--without-gossip",
                "--without-mingle",
            ]
        )
    finally:
        # The pool is gone: hand back whatever this node still holds (the jobs
        # cut off at the end of the soft shutdown's grace time).
        release_node_jobs(app, nodename)


if __name__ == "__main__":
    main()
