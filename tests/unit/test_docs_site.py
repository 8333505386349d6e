"""The docs people read: the site builds with --strict (so a broken link or
anchor fails), the README stays short with every relative link resolving, and
every file path the docs name exists."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MAX_README_LINES = 250
# [text](target) and ![alt](target); an optional "title" after the target.
MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def test_docs_site_builds_strict(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    done = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        # Material prints a banner about MkDocs 2.0 on every build otherwise.
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    assert (tmp_path / "site" / "design" / "index.html").is_file()


def test_readme_is_short() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, (
        f"README.md has {lines} lines (at most {MAX_README_LINES}): move detail into docs/"
    )


def relative_links(markdown: str) -> list[str]:
    """Link targets outside code blocks that point into the repository."""
    text = FENCE.sub("", markdown)
    targets = [m.group(1) for m in MARKDOWN_LINK.finditer(text)]
    return [t for t in targets if not urlsplit(t).scheme and not t.startswith(("#", "//"))]


def test_readme_relative_links_point_to_existing_files() -> None:
    links = relative_links(README.read_text())
    assert links, "README.md links to no docs page"
    missing = [link for link in links if not (ROOT / unquote(urlsplit(link).path)).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_relative_links_finds_links_and_skips_code_and_urls() -> None:
    sample = (
        "See [a](docs/a.md), ![b](docs/img/b.png) and [c](docs/c.md#part).\n"
        "[web](https://example.com/x.md) [anchor](#top)\n"
        "```bash\n[not a link](nowhere.md)\n```\n"
    )
    assert relative_links(sample) == ["docs/a.md", "docs/img/b.png", "docs/c.md#part"]


# A file path in backticks: a/b.py, conveyor/worker/app.py (a suffix of a repo path is enough).
CODE_PATH = re.compile(r"`([\w.-]+(?:/[\w.-]+)+\.(?:py|md|ya?ml|json|txt|toml|png|ini|in))`")
SKIPPED_DIRS = {".git", ".venv", "site", "node_modules", "__pycache__", ".data"}


def repo_files() -> set[str]:
    found = set()
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.endswith("_cache")]
        rel = Path(folder).relative_to(ROOT)
        found |= {(rel / name).as_posix() for name in files}
    return found


def dangling_code_paths(markdown: str, files: set[str]) -> list[str]:
    refs = {m.group(1) for m in CODE_PATH.finditer(markdown)}
    return sorted(
        ref for ref in refs if ref not in files and not any(f.endswith("/" + ref) for f in files)
    )


def test_docs_name_only_files_that_exist() -> None:
    files = repo_files()
    pages = [README, *sorted((ROOT / "docs").rglob("*.md"))]
    dangling = {
        page.relative_to(ROOT).as_posix(): found
        for page in pages
        if (found := dangling_code_paths(page.read_text(), files))
    }
    assert not dangling, f"docs name files that do not exist (moved or deleted?): {dangling}"


def test_dangling_code_paths_matches_suffixes_and_reports_the_rest() -> None:
    files = {"services/worker/src/conveyor/worker/app.py", "README.md"}
    text = "`conveyor/worker/app.py`, `README.md`, `conveyor/worker/gone.py`, `make up`"
    assert dangling_code_paths(text, files) == ["conveyor/worker/gone.py"]


DOCS_CITATION = re.compile(r"docs/[\w/.-]+?\.md")
DESIGN_SECTION = re.compile(r'docs/design\.md, "([^"]+)"')
CITING_SUFFIXES = {".py", ".yaml", ".yml", ".toml", ".cfg", ".sh", ".json"}


def citing_files() -> list[Path]:
    """Code and config that may cite a docs page (the docs themselves are checked by mkdocs)."""
    names = repo_files()
    return [
        ROOT / name
        for name in sorted(names)
        if (Path(name).suffix in CITING_SUFFIXES or Path(name).name in {"Makefile", "Tiltfile"})
        and ROOT / name != Path(__file__).resolve()  # its own samples cite made-up pages
    ]


def test_code_cites_docs_pages_and_design_sections_that_exist() -> None:
    headings = set(re.findall(r"^#+ (.+?)\s*$", (ROOT / "docs/design.md").read_text(), re.M))
    broken = []
    for path in citing_files():
        text = path.read_text(errors="replace")
        where = path.relative_to(ROOT).as_posix()
        broken += [
            f"{where}: {page}"
            for page in DOCS_CITATION.findall(text)
            if not (ROOT / page).is_file()
        ]
        broken += [
            f'{where}: design.md "{name}"'
            for name in DESIGN_SECTION.findall(text)
            if name not in headings
        ]
    assert not broken, "citations of docs that do not exist:\n" + "\n".join(broken)
