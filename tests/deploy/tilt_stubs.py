"""Evaluate the Tiltfile without Tilt: the builtins it uses, recording every call.

A Tiltfile is Starlark: `evaluate()` runs it with starlark-pyo3 in go-starlark's
dialect, against stand-ins for the Tilt builtins the repo's Tiltfile calls (with
Tilt's parameter names), and returns what Tilt would build, deploy and run:

    run = evaluate(args={"workers": "3", "flower": True})
    run.images            # docker_build calls, with their live_update steps
    run.helm_calls        # helm() calls; the chart really rendered by `helm template`
    run.k8s_objects       # every object handed to k8s_yaml, after the Tiltfile's edits
    run.k8s_resources, run.local_resources, run.paths, run.error
    run.extensions        # what load_dynamic() loaded: 'ext://helm_resource'

Like Tilt, the load stops (run.error) at a missing file, a chart helm cannot
render or a builtin the stubs lack. tilt_contract.py checks the rest.
"""

from __future__ import annotations

import functools
import itertools
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_render
import yaml
from tilt_build import instructions as _instructions  # noqa: F401  (tests/twelve_factor use it)

REPO = helm_render.REPO
TRIGGER_MODE_AUTO = "TRIGGER_MODE_AUTO"
TRIGGER_MODE_MANUAL = "TRIGGER_MODE_MANUAL"
# libyaml when present: every rendered object is parsed and re-emitted several times.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def load_all(text: str) -> list[Any]:
    return [d for d in yaml.load_all(text, Loader=_Loader) if d]


def dump_all(docs: list[Any]) -> str:
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False)


# --- What a run records ----------------------------------------------------------------


@dataclass
class Blob:
    text: str
    source: str


@dataclass
class Sync:
    local_path: str  # as written in the Tiltfile (relative to its directory)
    remote_path: str


@dataclass
class FallBackOn:
    paths: list[str]


@dataclass
class Run:
    cmd: Any


@dataclass
class PortForward:
    local_port: int
    container_port: int | None = None
    name: str | None = None
    link_path: str | None = None


@dataclass
class ImageBuild:
    ref: str
    context: str
    dockerfile: str
    dockerfile_text: str | None  # what Tilt would build: the contents, or the file
    target: str
    live_update: list[Any]

    @property
    def syncs(self) -> list[Sync]:
        return [s for s in self.live_update if isinstance(s, Sync)]

    @property
    def fall_back_on(self) -> list[str]:
        return [p for s in self.live_update if isinstance(s, FallBackOn) for p in s.paths]


@dataclass
class HelmCall:
    chart: str
    name: str
    values: list[str]
    argv: list[str]
    objects: list[dict]  # as rendered, before the Tiltfile touches them
    error: str | None = None  # helm's stderr; the load stops there too


@dataclass
class K8sObject:
    obj: dict
    source: str  # "helm:<chart>" or the YAML file's path

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def name(self) -> str:
        return str(self.obj.get("metadata", {}).get("name", ""))

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass
class Resource:
    """A k8s_resource (workload set, or new_name + objects) or a local_resource (cmd set)."""

    name: str
    workload: str = ""
    objects: list[str] = field(default_factory=list)
    port_forwards: list[PortForward] = field(default_factory=list)
    resource_deps: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    trigger_mode: str = TRIGGER_MODE_AUTO
    auto_init: bool = True
    cmd: Any = None
    links: list[str] = field(default_factory=list)
    # A helm_resource (Tilt's extension): a chart from a repository, `helm upgrade --install`.
    chart: str = ""
    namespace: str = ""
    flags: list[str] = field(default_factory=list)
    deps: list[str] = field(default_factory=list)


@dataclass
class TiltRun:
    root: Path  # the Tiltfile's directory: relative paths start here
    images: list[ImageBuild] = field(default_factory=list)
    helm_calls: list[HelmCall] = field(default_factory=list)
    k8s_objects: list[K8sObject] = field(default_factory=list)
    k8s_resources: list[Resource] = field(default_factory=list)
    local_resources: list[Resource] = field(default_factory=list)
    paths: list[tuple[str, str]] = field(default_factory=list)  # (builtin, path as given)
    config_defs: dict[str, str] = field(default_factory=dict)  # option -> type
    extensions: list[str] = field(default_factory=list)  # load_dynamic() paths
    failure: str | None = None  # the Tiltfile's own fail(msg)
    error: str | None = None  # whatever stopped the load


@functools.cache
def _helm_template(argv: tuple[str, ...], cwd: Path) -> tuple[str, str | None]:
    """(stdout, error) of the `helm template` that Tilt's helm() runs, once per session."""
    proc = subprocess.run(
        [helm_render.helm_binary(), *argv[1:]], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    return (
        (proc.stdout, None) if proc.returncode == 0 else ("", (proc.stderr or proc.stdout).strip())
    )


def _list(value: Any) -> list[Any]:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


# --- Evaluation ------------------------------------------------------------------------


def evaluate(
    text: str | None = None, *, args: dict[str, Any] | None = None, root: Path = REPO
) -> TiltRun:
    """Load the Tiltfile (or `text`, a modified copy) as Tilt would from `root`.
    `args` are the user's options, as `tilt up -- ...` sets them: {"workers": "3"}."""
    import starlark  # starlark-pyo3, in the dev lock: a missing module fails the test

    text = (root / "Tiltfile").read_text() if text is None else text
    run = TiltRun(root=root)
    opaque = starlark.OpaquePythonObject

    def path(builtin: str, value: Any) -> str:
        run.paths.append((builtin, str(value)))
        return str(value)

    def existing_file(builtin: str, value: Any) -> Path:
        file = root / path(builtin, value)
        if not file.is_file():  # Tilt stops the load here
            raise FileNotFoundError(f"{builtin}: no file {value!r}")
        return file

    def fail(msg):
        run.failure = str(msg)
        raise RuntimeError(f"fail(): {msg}")

    def read_file(file_path, default=None):
        if default is not None and not (root / str(file_path)).is_file():
            return default
        return existing_file("read_file", file_path).read_text()

    def docker_build(ref, context, build_args=None, dockerfile="Dockerfile", dockerfile_contents="",
                     live_update=None, match_in_env_vars=False, ignore=None, only=None,
                     entrypoint=None, target="", ssh="", network="", secret="", extra_tag="",
                     container_args=None, cache_from=None, pull=False, platform="",
                     extra_hosts=None):  # fmt: skip
        steps = _list(live_update)
        for step in steps:
            if not isinstance(step, (Sync, FallBackOn, Run)):
                raise TypeError(f"docker_build {ref!r}: {step!r} is not a live_update step")
        path("docker_build(context)", context)
        if dockerfile_contents:
            contents = str(dockerfile_contents)
        else:
            file = root / path("docker_build(dockerfile)", dockerfile)
            contents = file.read_text() if file.is_file() else None
        run.images.append(
            ImageBuild(str(ref), str(context), str(dockerfile), contents, str(target), steps)
        )

    def helm(paths, name="", namespace="", values=None, set=None, kube_version=""):
        chart = path("helm", paths)
        values = [path("helm(values)", v) for v in _list(values)]
        # The command Tilt runs for Helm >= 3.1 (internal/tiltfile/helm.go).
        argv = ["helm", "template", name or "chart", chart, "--include-crds"]
        argv += ["--namespace", namespace] if namespace else []
        argv += ["--kube-version", kube_version] if kube_version else []
        for v in values:
            argv += ["--values", v]
        for s in _list(set):
            argv += ["--set", str(s)]
        out, error = _helm_template(tuple(argv), root)
        run.helm_calls.append(HelmCall(chart, str(name), values, argv, load_all(out), error))
        if error:
            raise RuntimeError(f"helm failed: {shlex.join(argv)}: {error}")
        return opaque(Blob(out, f"helm:{chart}"))

    def k8s_yaml(yaml_value, allow_duplicates=False):
        for item in _list(yaml_value):
            if isinstance(item, Blob):
                docs, source = load_all(item.text), item.source
            else:
                docs, source = load_all(existing_file("k8s_yaml", item).read_text()), str(item)
            run.k8s_objects.extend(K8sObject(d, source) for d in docs)

    def k8s_resource(workload="", new_name="", port_forwards=None, extra_pod_selectors=None,
                     trigger_mode=TRIGGER_MODE_AUTO, resource_deps=None, objects=None,
                     auto_init=True, pod_readiness="", links=None, labels=None,
                     discovery_strategy=""):  # fmt: skip
        forwards = [
            pf if isinstance(pf, PortForward) else PortForward(int(pf))
            for pf in _list(port_forwards)
        ]
        release = [r for r in run.k8s_resources if r.chart and r.name == str(workload)]
        if release and not new_name:  # configures the helm_resource of that name, as in Tilt
            release[0].port_forwards += forwards
            release[0].resource_deps += [str(d) for d in _list(resource_deps)]
            release[0].labels += [str(x) for x in _list(labels)]
            release[0].links += [str(x) for x in _list(links)]
            return
        run.k8s_resources.append(
            Resource(
                str(new_name or workload),
                str(workload),
                [str(o) for o in _list(objects)],
                forwards,
                [str(d) for d in _list(resource_deps)],
                [str(x) for x in _list(labels)],
                str(trigger_mode),
                bool(auto_init),
                links=[str(x) for x in _list(links)],
            )
        )

    def local_resource(name, cmd="", deps=None, trigger_mode=TRIGGER_MODE_AUTO, resource_deps=None,
                       ignore=None, auto_init=True, serve_cmd="", cmd_bat="", serve_cmd_bat="",
                       allow_parallel=False, links=None, tags=None, env=None, serve_env=None,
                       readiness_probe=None, dir="", serve_dir="", labels=None):  # fmt: skip
        for d in _list(deps):
            path("local_resource(deps)", d)
        run.local_resources.append(
            Resource(
                str(name),
                resource_deps=[str(d) for d in _list(resource_deps)],
                labels=[str(x) for x in _list(labels)],
                trigger_mode=str(trigger_mode),
                auto_init=bool(auto_init),
                cmd=cmd,
                links=[str(x) for x in _list(links)],
            )
        )

    def port_forward(local_port, container_port=None, name=None, link_path=None, host=None):
        return opaque(PortForward(int(local_port), container_port, name, link_path))

    # The helm_resource extension (tilt-extensions/helm_resource), as it calls Tilt.
    def helm_resource(name, chart, deps=None, release_name="", namespace=None, image_deps=None,
                      image_keys=None, flags=None, image_selector="", container_selector="",
                      live_update=None, resource_deps=None, labels=None, port_forwards=None,
                      auto_init=True, pod_readiness="", update_dependencies=False):  # fmt: skip
        flags = [str(f) for f in _list(flags)]
        for flag, value in itertools.pairwise(flags):
            if flag in ("--values", "-f"):
                path("helm_resource(values)", value)
            elif flag == "--set-file":
                path("helm_resource(set-file)", value.split("=", 1)[-1])
        run.k8s_resources.append(
            Resource(
                str(name),
                port_forwards=[
                    pf if isinstance(pf, PortForward) else PortForward(int(pf))
                    for pf in _list(port_forwards)
                ],
                resource_deps=[str(d) for d in _list(resource_deps)],
                labels=[str(x) for x in _list(labels)],
                auto_init=bool(auto_init),
                chart=str(chart),
                namespace=str(namespace or ""),
                flags=flags,
                deps=[path("helm_resource(deps)", d) for d in _list(deps)],
            )
        )

    def helm_repo(name, url, resource_name="", username="", password="", **kwargs):
        args = ["helm", "repo", "add", str(name), str(url), "--force-update"]
        local_resource(resource_name or name, args, allow_parallel=True, **kwargs)

    def load_dynamic(ext_path):  # the prelude's load_dynamic() returns the extension's symbols
        if ext_path != "ext://helm_resource":
            raise ValueError(f"load_dynamic: no stub for {ext_path!r}")
        run.extensions.append(str(ext_path))

    def define(kind: str) -> Any:
        def define_setting(name, args=False, usage=""):
            if name in run.config_defs:
                raise ValueError(f"config: {name} defined twice")
            run.config_defs[str(name)] = kind

        return define_setting

    def config_parse():
        # Like Tilt: only the settings the user gave, each checked against its definition.
        types = {"string": str, "bool": bool}
        for name, value in (args or {}).items():
            if name not in run.config_defs:
                raise ValueError(f"args specified unknown setting name {name!r}")
            if not isinstance(value, types[run.config_defs[name]]):
                raise ValueError(f"setting {name}: expected {run.config_defs[name]}, got {value!r}")
        return dict(args or {})

    module = starlark.Module()
    callables = {
        "version_settings": lambda check_updates=True, constraint="": None,
        "k8s_context": lambda: "kind-conveyor",
        "k8s_namespace": lambda: "default",
        "fail": fail,
        "print": lambda *values, sep=" ": None,
        "read_file": read_file,
        "decode_yaml_stream": lambda yaml_text: load_all(getattr(yaml_text, "text", yaml_text)),
        "encode_yaml_stream": lambda objs: opaque(Blob(dump_all(list(objs)), "encode_yaml_stream")),
        "sync": lambda local_path, remote_path: opaque(
            Sync(path("sync", local_path), str(remote_path))
        ),
        "fall_back_on": lambda files: opaque(
            FallBackOn([path("fall_back_on", f) for f in _list(files)])
        ),
        "run": lambda cmd, trigger=None: opaque(Run(cmd)),
        "port_forward": port_forward,
        "link": lambda url, name=None: str(url),
        "docker_build": docker_build,
        "helm": helm,
        "k8s_yaml": k8s_yaml,
        "k8s_resource": k8s_resource,
        "local_resource": local_resource,
        "_define_string": define("string"),
        "_define_bool": define("bool"),
        "_config_parse": config_parse,
        "_shlex_quote": shlex.quote,
        "_load_dynamic": load_dynamic,
        "_helm_resource": helm_resource,
        "_helm_repo": helm_repo,
    }
    for name, fn in callables.items():
        module.add_callable(name, fn)
    module["TRIGGER_MODE_AUTO"] = TRIGGER_MODE_AUTO
    module["TRIGGER_MODE_MANUAL"] = TRIGGER_MODE_MANUAL

    # Tilt runs go-starlark: no f-strings, no type annotations, no load().
    dialect = starlark.Dialect.extended()
    dialect.enable_f_strings = False
    dialect.enable_types = starlark.DialectTypes.DISABLE
    dialect.enable_load = False
    globals_ = starlark.Globals.extended_by([starlark.LibraryExtension.StructType])
    prelude = (
        "config = struct(define_string=_define_string, define_bool=_define_bool,\n"
        "                parse=_config_parse)\n"
        "shlex = struct(quote=_shlex_quote)\n"
        "def load_dynamic(path):\n"
        "    _load_dynamic(path)\n"
        "    return {'helm_resource': _helm_resource, 'helm_repo': _helm_repo}\n"
    )
    starlark.eval(module, starlark.parse("<tilt builtins>", prelude, dialect), globals_)
    try:
        starlark.eval(module, starlark.parse("Tiltfile", text, dialect), globals_)
    except starlark.StarlarkError as exc:
        run.error = str(exc)
    return run
