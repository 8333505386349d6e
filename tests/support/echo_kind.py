"""A job kind added from outside the code base: one registry entry plus one handler,
as docs/develop/job-kinds.md adds one, and nothing else edited.

`python -m tests.support.echo_kind web|worker` registers it, then runs the
Procfile's process of that name; tests/integration/test_job_kinds.py runs a
stack of those.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from pydantic import Field

from conveyor.common.kinds import Example, KindParams, KindSpec, register_kind


class EchoParams(KindParams):
    text: str = Field(max_length=100, description="What to send back.")
    times: int = Field(default=1, ge=1, le=10, description="How often to repeat it.")


def run_echo(params: EchoParams, attempt: int) -> dict[str, Any]:
    return {"echo": params.text * params.times, "attempt": attempt}


ECHO = KindSpec(
    name="echo",
    params_model=EchoParams,
    handler=f"{__name__}:run_echo",
    description="Test kind: sends `text` back `times` times; result `{echo, attempt}`.",
    profile="io",
    time_limit_s=lambda params: 10 + 2 * params.get("times", 1),
    example=Example("Echo a word three times", {"text": "hi", "times": 3}),
)


def main() -> None:
    register_kind(ECHO)
    process = sys.argv[1]
    if process == "web":
        from conveyor.api.__main__ import main as run
    elif process == "worker":
        os.environ.setdefault("REMAP_SIGTERM", "SIGQUIT")  # as conveyor.worker.__main__ does
        from conveyor.worker.__main__ import main as run
    else:
        raise SystemExit(f"usage: python -m {__name__} web|worker")
    run()


if __name__ == "__main__":
    main()
