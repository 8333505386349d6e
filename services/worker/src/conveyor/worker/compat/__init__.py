"""The worker's uses of kombu's and Celery's internals, one module per library,
each checked against the versions it was verified with (conveyor.common.compat)."""
