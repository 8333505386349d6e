"""Factor VII, Port binding: export services via port binding.

`python -m conveyor.api` (the Procfile's `web`) serves HTTP itself, on the
port $PORT names: a random free port answers /livez, the process listens on
that port and no other (not the default 8000), and no web server process
stands in front of it (the listener is the python process itself, with no
children). A PORT outside 1..65535 stops it with a config error.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import psutil

from tests.conftest import fresh_redis_url
from tests.support.engines import Engines, free_port
from tests.support.processes import PROCFILE, base_env
from tests.twelve_factor.conftest import spawn_in, wait_api


def listening_ports(pid: int) -> set[int]:
    return {
        conn.laddr.port
        for conn in psutil.Process(pid).net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    }


def test_port_from_the_environment_is_served_by_the_app_itself(
    engines: Engines, tmp_path: Path
) -> None:
    assert PROCFILE["web"] == "python -m conveyor.api"
    port = free_port()
    assert port != 8000
    env = base_env(
        DATABASE_URL=engines.database(f"port_{uuid.uuid4().hex[:8]}"),
        REDIS_URL=fresh_redis_url(engines),
        PORT=str(port),
    )
    proc = spawn_in("web", PROCFILE["web"], env, tmp_path, tmp_path / "logs")
    try:
        wait_api(proc, port, path="/livez")
        assert httpx.get(f"http://127.0.0.1:{port}/livez").status_code == 200
        process = psutil.Process(proc.popen.pid)
        assert process.cmdline()[1:] == ["-m", "conveyor.api"]
        assert process.children(recursive=True) == [], "something runs beside the app"
        assert listening_ports(proc.popen.pid) == {port}
    finally:
        proc.stop()


def test_an_invalid_port_stops_the_process(tmp_path: Path) -> None:
    env = base_env(
        DATABASE_URL="postgresql://u@127.0.0.1:1/db",
        REDIS_URL="redis://127.0.0.1:1/0",
        PORT="70000",
    )
    proc = spawn_in("web", PROCFILE["web"], env, tmp_path, tmp_path / "logs")
    assert proc.popen.wait(30) == 2
    assert "config error: PORT" in proc.output()
