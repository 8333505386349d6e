"""The one `conveyor.run_job` message, built here for every sender.

The API pushes it onto Redis itself (`redis_envelope`, then LPUSH: see
the API's publisher.py), while the worker's retries, its shutdown and the
reconciler send it through kombu (`tasks.publish_run_job`). Both start from
`run_job_message`, so the task's headers (time limits included) and body are
the same whoever sends them; tests/unit/test_run_job_message.py checks that,
and that a Celery worker runs what each path sends.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from typing import Any, NamedTuple

from celery import Celery
from celery.utils.nodenames import anon_nodename

from conveyor.common.kinds import KINDS
from conveyor.common.queues import DEFAULT_QUEUE, kind_routes, list_name

# The task's name (re-exported by `tasks`, which most code imports).
RUN_JOB_TASK = "conveyor.run_job"
# Where a sender's Celery app keeps its kind -> queue routes (tasks.celery_config).
ROUTES_CONF_KEY = "conveyor_queue_routes"


class RunJobMessage(NamedTuple):
    """Celery's task protocol 2 (what `app.amqp.create_task_message` returns)."""

    headers: dict[str, Any]
    properties: dict[str, Any]
    body: tuple[Any, ...]
    sent_event: dict[str, Any] | None


# Celery's default origin, computed once per process instead of per message
# (a hostname lookup); a forked child (a Celery pool process) takes its own.
_origin = anon_nodename()


def _reset_origin() -> None:
    global _origin
    _origin = anon_nodename()


os.register_at_fork(after_in_child=_reset_origin)


def run_job_message(
    app: Celery,
    job_id: uuid.UUID,
    kind: str,
    params: dict[str, Any],
    *,
    countdown: float | None = None,
) -> RunJobMessage:
    """The message that runs `job_id` once, with the kind's time limits.

    `countdown` delays it (a retry's backoff): Celery sends it as the `eta`
    header, and the worker holds the message until then. No parent task is
    recorded: every delivery of a job is a root of its own, whoever sends it.
    """
    spec = KINDS.get(kind)
    # A kind this sender does not know (an older reconciler during a rollout)
    # goes without limits rather than blocking the publish; a worker that does
    # not know it either fails the job at once (run_job).
    soft, hard = spec.time_limits(params) if spec else (None, None)
    args = [str(job_id)]
    headers, properties, body, sent_event = app.amqp.create_task_message(
        str(uuid.uuid4()),
        RUN_JOB_TASK,
        args,
        {},
        countdown=countdown,
        argsrepr=repr(args),  # what Celery's saferepr would give, cheaper
        kwargsrepr="{}",
        reply_to=app.thread_oid,
        time_limit=None if hard is None else int(hard),
        soft_time_limit=None if soft is None else int(soft),
        origin=_origin,
        ignore_result=True,  # results live in Postgres (tasks.celery_config)
    )
    return RunJobMessage(headers, properties, body, sent_event)


def app_routes(app: Celery) -> dict[str, str]:
    """The app's kind -> queue routes (KIND_QUEUES applied), else the registry's."""
    routes = app.conf.get(ROUTES_CONF_KEY)
    return dict(routes) if routes else kind_routes()


def job_queue(app: Celery, kind: str) -> str:
    """The Redis list (Celery queue) a job of `kind` goes to: its kind's queue
    in the app's routes, `default` for a kind unknown here."""
    return list_name(app_routes(app).get(kind, DEFAULT_QUEUE))


def redis_envelope(message: RunJobMessage, queue: str) -> dict[str, Any]:
    """The message as kombu's Redis transport stores it in `queue`'s list
    (JSON-encoded, then LPUSH): what `Producer.publish` would have written.
    A direct queue at priority 0 is the list named after it."""
    return {
        "body": base64.b64encode(json.dumps(message.body).encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": message.headers,
        "properties": {
            **message.properties,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
