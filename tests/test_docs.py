"""docs/ is for users: it cites nothing outside the repository and its links resolve."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
USER_PAGES = [*DOCS, ROOT / "README.md", ROOT / "examples" / "README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for title in re.findall(r"^#+ (.+)$", page.read_text(), re.M):
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def test_the_pages_exist():
    names = {p.name for p in DOCS}
    for page in ("README.md", "numerics.md", "tables.md", "config.md", "import.md"):
        assert page in names
    assert {"manifest.md", "hardware.md"} <= names


@pytest.mark.parametrize("page", USER_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_file_users_do_not_have(page):
    text = page.read_text()
    for word in ("SPEC", "shared/", "STYLE.md"):
        assert word not in text, f"{page.name} cites {word!r}; point to docs/ instead"


@pytest.mark.parametrize("page", USER_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue  # a web address
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.name} links to {target}, which does not exist"
        if anchor and dest.suffix == ".md":
            assert anchor in anchors(dest), f"{page.name}: no heading #{anchor} in {dest.name}"


def test_readme_points_at_docs():
    text = (ROOT / "README.md").read_text()
    for page in ("numerics", "tables", "manifest", "hardware", "import", "config"):
        assert f"docs/{page}.md" in text
