"""`python -m conveyor.worker.flower`: Celery Flower, the optional monitoring UI.

The Procfile's `flower` entry and the chart's optional Flower run this. It
builds the same client app as the API (broker from `CELERY_BROKER_URL` or
`REDIS_URL`, no shell expansion needed) and starts Flower through Celery's own
command line, exactly like `celery --broker=... flower`.

Flower's own settings are its standard `FLOWER_*` variables, e.g. `FLOWER_PORT`
(default 5555), `FLOWER_URL_PREFIX` or `FLOWER_BASIC_AUTH`. It has no login
unless you set one: reach it through `kubectl port-forward`, never a public
Ingress. Its logs are our JSON lines on stdout like every other process's.

Flower needs the `flower` package (a dependency of the worker image).
"""

from __future__ import annotations

from pydantic import SecretStr

from conveyor.common.logging import configure_logging
from conveyor.common.settings import Settings, load_settings
from conveyor.common.tasks import make_celery_client


class FlowerSettings(Settings):
    # Flower talks to the broker and the workers only.
    database_url: SecretStr | None = None  # type: ignore[assignment]


def main() -> None:
    settings = load_settings(FlowerSettings)
    configure_logging(settings.log_level, settings.log_format)
    app = make_celery_client(settings, "conveyor-flower")
    # Tornado's --logging sets the root level; keep it ours. Our handler is
    # already on the root logger, so Tornado adds no stderr handler of its own.
    raise SystemExit(app.start(["flower", f"--logging={settings.log_level.lower()}"]))


if __name__ == "__main__":
    main()
