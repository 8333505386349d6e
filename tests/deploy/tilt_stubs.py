"""Evaluate the Tiltfile without Tilt: stubbed builtins that record every call.

The tilt binary cannot run here, but a Tiltfile is Starlark. `evaluate()` runs
it with starlark-pyo3 (`import starlark`) against stand-ins for the Tilt
builtins it uses, with Tilt's signatures, and returns a `TiltRun` that says
what Tilt would build, deploy, sync and forward:

    run = evaluate(args={"workers": "3", "flower": True})
    run.images            # docker_build calls, with their live_update steps
    run.helm_calls        # helm() calls, with the chart really rendered by `helm template`
    run.k8s_objects       # every object handed to k8s_yaml, after the Tiltfile's edits
    run.k8s_resources, run.local_resources, run.paths, run.error

The stubs are lenient where Tilt would stop (a missing file, a failing helm):
they record it and go on, so that one evaluation reports every broken
reference. test_tiltfile.py turns the record into a list of problems.

Also here: a Dockerfile reader (stages, COPY lines) and .dockerignore matching,
which the contract checks use to follow a sync to where the image keeps the code.
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_render
import yaml

REPO = helm_render.REPO

# libyaml when present: the stubs parse and re-emit every rendered object several times.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def load_all(text: str) -> list[Any]:
    return [d for d in yaml.load_all(text, Loader=_Loader) if d]


def dump_all(docs: list[Any]) -> str:
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False)


# --- Recorded values -----------------------------------------------------------


@dataclass
class Blob:
    """Tilt's Blob: text produced by helm(), local(), encode_yaml_stream()..."""

    text: str
    source: str = ""


@dataclass
class TriggerMode:
    name: str


TRIGGER_MODE_AUTO = TriggerMode("TRIGGER_MODE_AUTO")
TRIGGER_MODE_MANUAL = TriggerMode("TRIGGER_MODE_MANUAL")


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
    trigger: list[str]


@dataclass
class PortForward:
    local_port: int
    container_port: int | None = None
    name: str | None = None
    link_path: str | None = None
    host: str | None = None


@dataclass
class Link:
    url: str
    name: str | None = None


@dataclass
class ImageBuild:
    ref: str
    context: str
    dockerfile: str
    dockerfile_contents: str | None
    target: str
    live_update: list[Any]
    entrypoint: Any
    build_args: dict[str, str]
    only: list[str]
    ignore: list[str]
    root: Path = REPO  # the Tiltfile's directory

    @property
    def dockerfile_text(self) -> str | None:
        """The Dockerfile Tilt would build: the given contents, or the file."""
        if self.dockerfile_contents is not None:
            return self.dockerfile_contents
        path = self.root / self.dockerfile
        return path.read_text() if path.is_file() else None

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
    namespace: str
    values: list[str]
    set: list[str]
    argv: list[str]
    objects: list[dict]  # as rendered, before the Tiltfile touches them
    error: str | None = None


@dataclass
class K8sObject:
    obj: dict
    source: str  # "helm:<chart>" or the YAML file's path

    @property
    def kind(self) -> str:
        return self.obj.get("kind", "")

    @property
    def name(self) -> str:
        return self.obj.get("metadata", {}).get("name", "")

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass
class K8sResource:
    workload: str
    new_name: str
    port_forwards: list[PortForward]
    resource_deps: list[str]
    objects: list[str]
    labels: list[str]
    trigger_mode: TriggerMode
    auto_init: bool
    links: list[Link]

    @property
    def name(self) -> str:
        return self.new_name or self.workload


@dataclass
class LocalResource:
    name: str
    cmd: Any
    deps: list[str]
    resource_deps: list[str]
    labels: list[str]
    trigger_mode: TriggerMode
    auto_init: bool
    serve_cmd: Any
    env: dict[str, str]


@dataclass
class ConfigDef:
    name: str
    type: str  # "string", "bool", "string_list"
    args: bool
    usage: str


@dataclass
class TiltRun:
    tiltfile: str
    root: Path  # the Tiltfile's directory: relative paths start here
    images: list[ImageBuild] = field(default_factory=list)
    helm_calls: list[HelmCall] = field(default_factory=list)
    k8s_objects: list[K8sObject] = field(default_factory=list)
    k8s_resources: list[K8sResource] = field(default_factory=list)
    local_resources: list[LocalResource] = field(default_factory=list)
    paths: list[tuple[str, str]] = field(default_factory=list)  # (builtin, path as given)
    config_defs: dict[str, ConfigDef] = field(default_factory=dict)
    enabled_resources: list[str] = field(default_factory=list)
    prints: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failure: str | None = None  # the Tiltfile's own fail(msg)
    error: str | None = None  # anything that stopped the evaluation


class TiltfileFail(Exception):
    """The Tiltfile called fail()."""


# --- Helpers -------------------------------------------------------------------


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _text(value: Any) -> str:
    return value.text if isinstance(value, Blob) else str(value)


def _opaque(value: Any) -> Any:
    import starlark

    return starlark.OpaquePythonObject(value)


_RENDERED: dict[tuple[str, ...], tuple[str, str | None]] = {}


def render_chart(argv: list[str], cwd: Path) -> tuple[list[dict], str | None]:
    """Run the `helm template` command Tilt's helm() would run (once per
    command line and directory in a test session)."""
    key = (str(cwd), *argv)
    if key not in _RENDERED:
        _RENDERED[key] = _helm_template(argv, cwd)
    text, error = _RENDERED[key]
    return load_all(text), error


def _helm_template(argv: list[str], cwd: Path) -> tuple[str, str | None]:
    try:
        proc = subprocess.run(
            [helm_render.helm_binary(), *argv[1:]],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except RuntimeError as exc:  # helm not on PATH
        return "", str(exc)
    if proc.returncode != 0:
        return "", (proc.stderr or proc.stdout).strip()
    return proc.stdout, None


# --- Evaluation ----------------------------------------------------------------


def evaluate(
    text: str | None = None,
    *,
    args: dict[str, Any] | None = None,
    root: Path = REPO,
    k8s_context: str = "kind-conveyor",
    k8s_namespace: str = "default",
) -> TiltRun:
    """Evaluate the Tiltfile (or `text`, a modified copy) as Tilt would load it
    from `root`. `args` are the user's Tiltfile options, as `tilt up -- ...` or
    tilt_config.json would set them: {"workers": "3", "keda": True}."""
    try:
        import starlark
    except ImportError as exc:  # a missing test dependency fails, it never skips
        raise RuntimeError(
            "the starlark-pyo3 package is not installed in this interpreter "
            "(it is in the dev lock: `make install`)"
        ) from exc

    tiltfile = root / "Tiltfile"
    if text is None:
        text = tiltfile.read_text()
    run = TiltRun(tiltfile=str(tiltfile), root=root)
    args = dict(args or {})

    def path_arg(builtin: str, value: Any) -> str:
        value = str(value)
        run.paths.append((builtin, value))
        return value

    def resolve(path: str) -> Path:
        return root / path

    # Tiltfile API, with Tilt's parameter names and defaults --------------------

    def version_settings(check_updates=True, constraint=""):
        return None

    def update_settings(
        max_parallel_updates=3, k8s_upsert_timeout_secs=30, suppress_unused_image_warnings=None
    ):
        return None

    def allow_k8s_contexts(contexts):
        return None

    def ctx():
        return k8s_context

    def ns():
        return k8s_namespace

    def fail(msg):
        run.failure = str(msg)
        raise TiltfileFail(str(msg))

    def warn(msg):
        run.warnings.append(str(msg))

    def print_(*values, sep=" "):
        run.prints.append(sep.join(str(v) for v in values))

    def read_file(file_path, default=None):
        path = path_arg("read_file", file_path)
        if resolve(path).is_file():
            return resolve(path).read_text()
        return "" if default is None else default

    def watch_file(file_path):
        path_arg("watch_file", file_path)

    def listdir(directory, recursive=False):
        path = resolve(path_arg("listdir", directory))
        if not path.is_dir():
            return []
        found = path.rglob("*") if recursive else path.iterdir()
        return sorted(str(p) for p in found if p.is_file())

    def local(command, quiet=False, command_bat="", echo_off=False, env=None, dir="", stdin=None):
        raise RuntimeError("local() runs commands at load time; the Tiltfile contract forbids it")

    def blob(contents):
        return _opaque(Blob(str(contents)))

    def decode_yaml_stream(yaml_text):
        return load_all(_text(yaml_text))

    def decode_yaml(yaml_text):
        return yaml.load(_text(yaml_text), Loader=_Loader)

    def encode_yaml_stream(objs):
        return _opaque(Blob(dump_all(list(objs)), "encode_yaml_stream"))

    def encode_yaml(obj):
        return _opaque(Blob(dump_all([obj]), "encode_yaml"))

    def sync(local_path, remote_path):
        return _opaque(Sync(path_arg("sync", local_path), str(remote_path)))

    def fall_back_on(files):
        return _opaque(FallBackOn([path_arg("fall_back_on", f) for f in _as_list(files)]))

    def run_(cmd, trigger=None):
        return _opaque(Run(cmd, [path_arg("run(trigger)", t) for t in _as_list(trigger)]))

    def restart_container():
        raise RuntimeError(
            "restart_container() is for Docker Compose only; Tilt rejects it for Kubernetes"
        )

    def port_forward(local_port, container_port=None, name=None, link_path=None, host=None):
        return _opaque(PortForward(int(local_port), container_port, name, link_path, host))

    def link(url, name=None):
        return _opaque(Link(str(url), name))

    def docker_build(
        ref,
        context,
        build_args=None,
        dockerfile="Dockerfile",
        dockerfile_contents="",
        live_update=None,
        match_in_env_vars=False,
        ignore=None,
        only=None,
        entrypoint=None,
        target="",
        ssh="",
        network="",
        secret="",
        extra_tag="",
        container_args=None,
        cache_from=None,
        pull=False,
        platform="",
        extra_hosts=None,
    ):
        steps = _as_list(live_update)
        for step in steps:
            if not isinstance(step, (Sync, FallBackOn, Run)):
                raise TypeError(
                    f"docker_build {ref!r}: live_update step {step!r} is not a live update step"
                )
        context = path_arg("docker_build(context)", context)
        if dockerfile_contents:
            contents: str | None = _text(dockerfile_contents)
        else:
            contents = None
            path_arg("docker_build(dockerfile)", dockerfile)
        run.images.append(
            ImageBuild(
                ref=str(ref),
                context=context,
                dockerfile=str(dockerfile),
                dockerfile_contents=contents,
                target=str(target),
                live_update=steps,
                entrypoint=entrypoint,
                build_args=dict(build_args or {}),
                only=[path_arg("docker_build(only)", p) for p in _as_list(only)],
                ignore=_as_list(ignore),
                root=root,
            )
        )

    def helm(paths, name="", namespace="", values=None, set=None, kube_version=""):
        chart = path_arg("helm", paths)
        values = [path_arg("helm(values)", v) for v in _as_list(values)]
        sets = [str(s) for s in _as_list(set)]
        # The command Tilt runs for Helm >= 3.1 (internal/tiltfile/helm.go).
        argv = ["helm", "template", name or "chart", chart, "--include-crds"]
        if namespace:
            argv += ["--namespace", namespace]
        if kube_version:
            argv += ["--kube-version", kube_version]
        for v in values:
            argv += ["--values", v]
        for s in sets:
            argv += ["--set", s]
        call = HelmCall(chart, name, namespace, values, sets, argv, [])
        if resolve(chart).is_dir() and all(resolve(v).is_file() for v in values):
            call.objects, call.error = render_chart(argv, root)
        else:
            call.error = "chart directory or values file missing"
        run.helm_calls.append(call)
        text = dump_all(call.objects) if call.objects else ""
        return _opaque(Blob(text, f"helm:{chart}"))

    def k8s_yaml(yaml_value, allow_duplicates=False):
        for item in _as_list(yaml_value):
            if isinstance(item, Blob):
                docs, source = load_all(item.text), item.source
            else:
                path = path_arg("k8s_yaml", item)
                file = resolve(path)
                docs = load_all(file.read_text()) if file.is_file() else []
                source = path
            run.k8s_objects.extend(K8sObject(d, source) for d in docs)

    def k8s_resource(
        workload="",
        new_name="",
        port_forwards=None,
        extra_pod_selectors=None,
        trigger_mode=TRIGGER_MODE_AUTO,
        resource_deps=None,
        objects=None,
        auto_init=True,
        pod_readiness="",
        links=None,
        labels=None,
        discovery_strategy="",
    ):
        forwards = []
        for pf in _as_list(port_forwards):
            if isinstance(pf, PortForward):
                forwards.append(pf)
            else:  # 8000, '8000', '9000:8000' or 'host:9000:8000'
                parts = str(pf).split(":")
                local_port = int(parts[-2] if len(parts) > 1 else parts[-1])
                container = int(parts[-1]) if len(parts) > 1 else None
                forwards.append(PortForward(local_port, container))
        run.k8s_resources.append(
            K8sResource(
                workload=str(workload),
                new_name=str(new_name),
                port_forwards=forwards,
                resource_deps=[str(d) for d in _as_list(resource_deps)],
                objects=[str(o) for o in _as_list(objects)],
                labels=[str(lbl) for lbl in _as_list(labels)],
                trigger_mode=trigger_mode,
                auto_init=bool(auto_init),
                links=[lk if isinstance(lk, Link) else Link(str(lk)) for lk in _as_list(links)],
            )
        )

    def local_resource(
        name,
        cmd="",
        deps=None,
        trigger_mode=TRIGGER_MODE_AUTO,
        resource_deps=None,
        ignore=None,
        auto_init=True,
        serve_cmd="",
        cmd_bat="",
        serve_cmd_bat="",
        allow_parallel=False,
        links=None,
        tags=None,
        env=None,
        serve_env=None,
        readiness_probe=None,
        dir="",
        serve_dir="",
        labels=None,
    ):
        run.local_resources.append(
            LocalResource(
                name=str(name),
                cmd=cmd,
                deps=[path_arg("local_resource(deps)", d) for d in _as_list(deps)],
                resource_deps=[str(d) for d in _as_list(resource_deps)],
                labels=[str(lbl) for lbl in _as_list(labels)],
                trigger_mode=trigger_mode,
                auto_init=bool(auto_init),
                serve_cmd=serve_cmd,
                env=dict(env or {}),
            )
        )

    # config.* -------------------------------------------------------------------

    def define(kind: str):
        def define_setting(name, args=False, usage=""):
            if name in run.config_defs:
                raise ValueError(f"{name} defined multiple times")
            run.config_defs[name] = ConfigDef(str(name), kind, bool(args), str(usage))

        return define_setting

    def config_parse():
        # Like Tilt: only the settings the user gave, each checked against its definition.
        result = {}
        for name, value in args.items():
            setting = run.config_defs.get(name)
            if setting is None:
                raise ValueError(
                    f"tilt_config.json or args specified unknown setting name {name!r}"
                )
            expected = {"string": str, "bool": bool, "string_list": list}[setting.type]
            if not isinstance(value, expected):
                raise ValueError(f"setting {name}: expected {setting.type}, got {value!r}")
            result[name] = value
        return result

    def set_enabled_resources(resources):
        run.enabled_resources = [str(r) for r in _as_list(resources)]

    def clear_enabled_resources():
        run.enabled_resources = []

    # os.* and shlex.* -------------------------------------------------------------

    def os_getenv(key, default=None):
        return os.environ.get(key, default)

    def path_exists(path):
        return resolve(str(path)).exists()

    # Module assembly ----------------------------------------------------------------

    module = starlark.Module()
    callables = {
        "version_settings": version_settings,
        "update_settings": update_settings,
        "allow_k8s_contexts": allow_k8s_contexts,
        "k8s_context": ctx,
        "k8s_namespace": ns,
        "fail": fail,
        "warn": warn,
        "print": print_,
        "read_file": read_file,
        "watch_file": watch_file,
        "listdir": listdir,
        "local": local,
        "blob": blob,
        "decode_yaml_stream": decode_yaml_stream,
        "decode_yaml": decode_yaml,
        "encode_yaml_stream": encode_yaml_stream,
        "encode_yaml": encode_yaml,
        "sync": sync,
        "fall_back_on": fall_back_on,
        "run": run_,
        "restart_container": restart_container,
        "port_forward": port_forward,
        "link": link,
        "docker_build": docker_build,
        "helm": helm,
        "k8s_yaml": k8s_yaml,
        "k8s_resource": k8s_resource,
        "local_resource": local_resource,
        "_config_define_string": define("string"),
        "_config_define_bool": define("bool"),
        "_config_define_string_list": define("string_list"),
        "_config_parse": config_parse,
        "_config_set_enabled_resources": set_enabled_resources,
        "_config_clear_enabled_resources": clear_enabled_resources,
        "_os_getenv": os_getenv,
        "_os_path_join": posixpath.join,
        "_os_path_basename": posixpath.basename,
        "_os_path_dirname": posixpath.dirname,
        "_os_path_exists": path_exists,
        "_shlex_quote": shlex.quote,
    }
    for name, fn in callables.items():
        module.add_callable(name, fn)
    module["TRIGGER_MODE_AUTO"] = _opaque(TRIGGER_MODE_AUTO)
    module["TRIGGER_MODE_MANUAL"] = _opaque(TRIGGER_MODE_MANUAL)

    globals_ = starlark.Globals.extended_by([starlark.LibraryExtension.StructType])
    # Tilt runs go-starlark: no f-strings, no type annotations.
    dialect = starlark.Dialect.extended()
    dialect.enable_f_strings = False
    dialect.enable_types = starlark.DialectTypes.DISABLE
    dialect.enable_load = False

    prelude = f"""
config = struct(
    define_string = _config_define_string,
    define_bool = _config_define_bool,
    define_string_list = _config_define_string_list,
    parse = _config_parse,
    set_enabled_resources = _config_set_enabled_resources,
    clear_enabled_resources = _config_clear_enabled_resources,
    main_dir = {str(root)!r},
    main_path = {str(tiltfile)!r},
    tilt_subcommand = "up",
)
os = struct(
    getenv = _os_getenv,
    path = struct(join = _os_path_join, basename = _os_path_basename,
                  dirname = _os_path_dirname, exists = _os_path_exists),
)
shlex = struct(quote = _shlex_quote)
"""
    starlark.eval(module, starlark.parse("<tilt builtins>", prelude, dialect), globals_)
    try:
        starlark.eval(module, starlark.parse("Tiltfile", text, dialect), globals_)
    except starlark.StarlarkError as exc:
        run.error = str(exc)
    return run


# --- Dockerfile ------------------------------------------------------------------


@dataclass
class Copy:
    sources: list[str]
    dest: str
    from_stage: str | None  # --from=<stage or image>
    chown: str | None
    stage: str

    def placements(self, workdir: str) -> list[tuple[str, str]]:
        """(context path, image path) for each source, with Docker's rules: several
        sources (or a dest ending in /) go into the dest directory; one source
        directory's contents become the dest."""
        dest = self.dest if self.dest.startswith("/") else posixpath.join(workdir, self.dest)
        into_dir = len(self.sources) > 1 or self.dest.endswith("/")
        return [
            (
                src.rstrip("/"),
                posixpath.join(dest, posixpath.basename(src.rstrip("/")))
                if into_dir
                else dest.rstrip("/"),
            )
            for src in self.sources
        ]


@dataclass
class Stage:
    name: str
    base: str
    copies: list[Copy] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    workdir: str = "/"
    user: str | None = None


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, rest = current.strip().partition(" ")
        result.append((keyword.upper(), rest.strip()))
        current = ""
    return result


def parse_dockerfile(text: str) -> dict[str, Stage]:
    """Stages by name (unnamed stages by index), in order."""
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for keyword, rest in _instructions(text):
        if keyword == "FROM":
            words = rest.split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else str(len(stages))
            base = words[0]
            parent = stages.get(base)
            stage = Stage(
                name,
                base,
                workdir=parent.workdir if parent else "/",
                user=parent.user if parent else None,
            )
            stages[name] = stage
        elif stage is None:
            continue  # ARG before the first FROM
        elif keyword in ("COPY", "ADD"):
            words = shlex.split(rest)
            flags = {
                w.split("=", 1)[0]: w.split("=", 1)[1] if "=" in w else ""
                for w in words
                if w.startswith("--")
            }
            paths = [w for w in words if not w.startswith("--")]
            stage.copies.append(
                Copy(paths[:-1], paths[-1], flags.get("--from"), flags.get("--chown"), stage.name)
            )
        elif keyword == "RUN":
            stage.runs.append(rest)
        elif keyword == "WORKDIR":
            stage.workdir = posixpath.join(stage.workdir, rest)
        elif keyword == "USER":
            stage.user = rest
    return stages


def stage_chain(stages: dict[str, Stage], target: str) -> list[Stage]:
    """The target and the stages it is built FROM, base first."""
    chain: list[Stage] = []
    name: str | None = target
    while name in stages and all(s.name != name for s in chain):
        chain.insert(0, stages[name])
        name = stages[name].base
    return chain


def context_inputs(stages: dict[str, Stage], target: str) -> list[Copy]:
    """Every COPY from the build context that goes into the target, through its
    FROM chain and through the stages it copies --from."""
    seen: set[str] = set()
    copies: list[Copy] = []

    def visit(name: str) -> None:
        for stage in stage_chain(stages, name):
            if stage.name in seen:
                continue
            seen.add(stage.name)
            for copy in stage.copies:
                if copy.from_stage is None:
                    copies.append(copy)
                elif copy.from_stage in stages:
                    visit(copy.from_stage)

    visit(target)
    return copies


def image_placements(stages: dict[str, Stage], target: str) -> list[tuple[str, str, Copy]]:
    """(context path, image path, COPY) for the files the target itself carries:
    COPYs from the context in its FROM chain (not the build-only --from stages)."""
    return [
        (src, dest, copy)
        for stage in stage_chain(stages, target)
        for copy in stage.copies
        if copy.from_stage is None
        for src, dest in copy.placements(stage.workdir)
    ]


# --- .dockerignore -----------------------------------------------------------------


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def dockerignore_excludes(context: Path, path: str) -> bool:
    """Whether the context's .dockerignore keeps `path` (relative to the context)
    out of the build, and so out of Tilt's file watching and live_update syncs.
    Docker's rules: the last matching pattern wins, `!` re-includes, and a
    pattern that matches a parent directory matches everything under it."""
    ignore = context / ".dockerignore"
    if not ignore.is_file():
        return False
    patterns = [
        line.strip()
        for line in ignore.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    parts = posixpath.normpath(path).split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _ignore_regex(posixpath.normpath(pattern.lstrip("!").strip("/")))
        if any(regex.match(p) for p in prefixes):
            excluded = not negate
    return excluded
