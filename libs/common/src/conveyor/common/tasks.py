"""Task names, queue routes, and the Celery configuration shared by sender and worker.

The API never imports the worker: it sends `conveyor.run_job` by name with a
client app built here. The message itself is built in `run_job_message`, for
the API's own LPUSH and for `publish_run_job` (kombu) alike.
"""

from __future__ import annotations

import uuid
from typing import Any

from celery import Celery

from conveyor.common.queues import DEFAULT_QUEUE, list_name
from conveyor.common.run_job_message import ROUTES_CONF_KEY, job_queue, run_job_message
from conveyor.common.run_job_message import RUN_JOB_TASK as RUN_JOB_TASK
from conveyor.common.settings import Settings

# Each worker process keeps `<prefix><nodename>` alive in Redis while it runs.
WORKER_PRESENCE_PREFIX = "conveyor:worker:"
WORKER_PRESENCE_TTL_S = 15


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.broker_url,
        "task_default_queue": list_name(DEFAULT_QUEUE),
        # Each kind's queue (queues.py), read by run_job_message.job_queue.
        ROUTES_CONF_KEY: settings.queue_routes,
        "task_serializer": "json",
        "accept_content": ["json"],
        # Results live in Postgres; Celery's result backend would be a second truth.
        "task_ignore_result": True,
        "result_backend": None,
        # Ack after the job's outcome is committed; requeue if the child dies.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # One message per child at a time, so the backlog stays visible in Redis.
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        # A broker blip must not kill running jobs: they finish and record
        # their result in Postgres, which is the truth; see conveyor/worker/compat/kombu.py.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "broker_connection_timeout": 3,
        "broker_transport_options": {
            # A message whose worker vanished comes back after this; the
            # reconciler's lease usually re-publishes it sooner.
            "visibility_timeout": 3600,
            "socket_timeout": 3,
            "socket_connect_timeout": 3,
        },
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "worker_enable_remote_control": True,
    }


def make_celery_client(settings: Settings, name: str = "conveyor") -> Celery:
    app = Celery(name, set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


def publish_run_job(
    app: Celery,
    job_id: uuid.UUID,
    kind: str,
    params: dict[str, Any],
    *,
    countdown: float | None = None,
    producer: Any = None,
) -> None:
    """Send one `conveyor.run_job` through kombu. Blocking: call it off the event loop.

    The message is `run_job_message`'s, the one the API pushes itself; Celery's
    publish signals fire as for `send_task` (tracing, the publish-time stamp).
    It fails fast rather than retrying: a job whose publish is lost stays
    `queued`, and the reconciler publishes it again.
    """
    message = run_job_message(app, job_id, kind, params, countdown=countdown)
    with app.producer_or_acquire(producer) as pub:
        app.amqp.send_task_message(
            pub, RUN_JOB_TASK, message, queue=job_queue(app, kind), retry=False
        )
