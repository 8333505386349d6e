"""`make up`: the whole stack on this machine.

Embedded Postgres and Redis (unless DATABASE_URL / REDIS_URL are set), then
the `release` process (migrations), an API key for tenant `dev`, and the
Procfile's `web`, `worker` (x WORKERS) and `scheduler` under supervisord,
which restarts any process that dies, the way a cluster restarts a pod.
Ctrl-C or SIGTERM stops everything gracefully, engines last.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lifecycle import dies_with_parent, ignore_stop_signals, stop_on_signals
from local_engines import LocalPostgres, LocalRedis
from procfile import ROOT, read_procfile

DATA = Path(os.environ.get("CONVEYOR_DATA_DIR", ROOT / ".data")).resolve()
RUN = DATA / "run"
VENV_BIN = Path(sys.executable).parent
# Local defaults that keep Ctrl-C under 10 s; the environment overrides them.
LOCAL_DEFAULTS = {
    "LOG_FORMAT": "json",
    "GRACEFUL_TIMEOUT_SECONDS": "5",
    "WORKER_SHUTDOWN_GRACE_SECONDS": "5",
    "PYTHONUNBUFFERED": "1",
}


def say(message: str) -> None:
    print(f"make up: {message}", flush=True)


def fail(message: str) -> None:
    print(f"make up: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    if not raw.isdigit() or int(raw) < 1:
        fail(f"{name} must be a positive integer, got {raw!r}")
    return int(raw)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


# Each worker process serves its metrics on its own port (9800, 9801, ...), the
# scheduler on 9790: supervisord_conf() sets METRICS_PORT to these.
WORKER_METRICS_PORT = 9800
SCHEDULER_METRICS_PORT = 9790


def scrape_targets(api_port: int, workers: int) -> dict[str, list[str]]:
    """{Prometheus job: [host:port]} of this stack's /metrics endpoints."""
    return {
        "conveyor-api": [f"127.0.0.1:{api_port}"],
        "conveyor-worker": [f"127.0.0.1:{WORKER_METRICS_PORT + n}" for n in range(workers)],
        "conveyor-scheduler": [f"127.0.0.1:{SCHEDULER_METRICS_PORT}"],
    }


def announce_metrics(api_port: int, workers: int) -> None:
    """Print where the metrics are, and leave the targets for `make observe`
    (scripts/observe.py) in Prometheus's file_sd format, which it watches."""
    targets = scrape_targets(api_port, workers)
    urls = {job: " ".join(f"http://{t}/metrics" for t in ts) for job, ts in targets.items()}
    print(
        f"Metrics: API {urls['conveyor-api']}, workers {urls['conveyor-worker']}, "
        f"scheduler {urls['conveyor-scheduler']}",
        flush=True,
    )
    sd = [{"targets": ts, "labels": {"job": job}} for job, ts in targets.items()]
    (RUN / "scrape-targets.json").write_text(json.dumps(sd, indent=2) + "\n")


def supervisord_conf(procs: dict[str, str], workers: int, stopwait: int) -> str:
    sections = [
        "[supervisord]\nnodaemon=true\nsilent=true\nlogfile=/dev/null\nlogfile_maxbytes=0\n"
        f"pidfile={RUN / 'supervisord.pid'}\nloglevel=warn\nuser={getpass.getuser()}\n",
        f"[unix_http_server]\nfile={RUN / 'supervisor.sock'}\n",
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
        f"[supervisorctl]\nserverurl=unix://{RUN / 'supervisor.sock'}\n",
        # One group: supervisord stops a group's processes all at once, but
        # separate programs one after another (Ctrl-C would wait out each).
        "[group:conveyor]\nprograms=web,worker,scheduler\n",
    ]
    for name, count in (("web", 1), ("worker", workers), ("scheduler", 1)):
        # Each worker process serves its metrics on its own port (98NN: WORKER_METRICS_PORT
        # + its number) and beats its own heartbeat file, inside .data/ rather than /tmp.
        extra = (
            f'environment=METRICS_PORT="{WORKER_METRICS_PORT // 100}%(process_num)02d",'
            f'HEARTBEAT_FILE="{RUN}/worker-%(process_num)d.heartbeat"\n'
            if name == "worker"
            else f'environment=METRICS_PORT="{SCHEDULER_METRICS_PORT}"\n'
            if name == "scheduler"
            else ""
        )
        command = shlex.join(dies_with_parent(shlex.split(procs[name])))
        sections.append(
            f"[program:{name}]\ncommand={command}\ndirectory={ROOT}\n{extra}"
            f"numprocs={count}\nprocess_name=%(program_name)s-%(process_num)d\n"
            "autorestart=true\nstartsecs=1\nstartretries=100\n"
            f"stopsignal=TERM\nstopwaitsecs={stopwait}\nstopasgroup=true\nkillasgroup=true\n"
            "redirect_stderr=true\nstdout_logfile=/dev/stdout\nstdout_logfile_maxbytes=0\n"
        )
    return "\n".join(sections)


def run_once(cmd: str, env: dict[str, str]) -> str:
    done = subprocess.run(shlex.split(cmd), cwd=ROOT, env=env, capture_output=True, text=True)
    sys.stdout.write(done.stdout if not cmd.endswith("create_api_key.py --tenant dev") else "")
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        fail(f"`{cmd}` exited {done.returncode}")
    return done.stdout


def wait_ready(port: int, supervisor: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if supervisor.poll() is not None:
            fail("supervisord exited before the API was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    fail(f"the API was not ready on port {port} within {timeout:.0f}s")


def main() -> None:
    workers = _int_env("WORKERS", 1)
    port = _int_env("PORT", 8000)
    if not _port_free(port):
        fail(f"port {port} is in use; set PORT to another port")
    env = {**LOCAL_DEFAULTS, **os.environ, "PORT": str(port)}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    RUN.mkdir(parents=True, exist_ok=True)

    engines: list[LocalPostgres | LocalRedis] = []
    supervisor: subprocess.Popen[bytes] | None = None
    # Ctrl-C, SIGTERM or SIGHUP at any moment, starting up included, ends up in `finally`.
    stop_on_signals()
    try:
        if not env.get("DATABASE_URL"):
            pg = LocalPostgres(DATA / "postgres", _int_env("EMBEDDED_POSTGRES_PORT", 54329))
            engines.append(pg)
            pg.start()
            env["DATABASE_URL"] = pg.url
            say(f"embedded PostgreSQL at {pg.url}")
        if not env.get("REDIS_URL"):
            rd = LocalRedis(DATA / "redis", _int_env("EMBEDDED_REDIS_PORT", 63799))
            engines.append(rd)
            rd.start()
            env["REDIS_URL"] = rd.url
            say(f"embedded Redis at {rd.url}")
        procs = read_procfile()
        run_once(procs["release"], env)
        key = (
            run_once("python scripts/create_api_key.py --tenant dev", env).strip().splitlines()[-1]
        )
        stopwait = int(float(env["WORKER_SHUTDOWN_GRACE_SECONDS"])) + 3
        conf = RUN / "supervisord.conf"
        conf.write_text(supervisord_conf(procs, workers, stopwait))
        # Its own session: Ctrl-C reaches only us, and we stop it in order.
        supervisor = subprocess.Popen(
            dies_with_parent([str(VENV_BIN / "supervisord"), "-c", str(conf)]),
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        wait_ready(port, supervisor)
        # For `make loadtest` in another terminal; .data/ is local and ignored by git.
        (RUN / "api-url").write_text(f"http://127.0.0.1:{port}\n")
        (RUN / "api-key").touch(mode=0o600)
        (RUN / "api-key").write_text(f"{key}\n")
        print(f"API: http://127.0.0.1:{port}", flush=True)
        print(f"API key: {key}", flush=True)
        announce_metrics(port, workers)
        say(
            f"{workers} worker(s); `{VENV_BIN / 'supervisorctl'} -c {conf} status` lists them; "
            "Ctrl-C stops everything"
        )
        while supervisor.poll() is None:
            time.sleep(0.2)
        fail("supervisord exited unexpectedly")
    except KeyboardInterrupt:
        pass  # the signal that stops us; `finally` does the stopping
    finally:
        ignore_stop_signals()
        if supervisor is not None and supervisor.poll() is None:
            say("stopping processes")
            supervisor.terminate()
            try:
                supervisor.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(supervisor.pid, signal.SIGKILL)
        for engine in reversed(engines):
            engine.stop()
        say("stopped")


if __name__ == "__main__":
    main()
