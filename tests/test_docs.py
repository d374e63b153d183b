"""The documents the code cites live in the repository: every `docs/<name>.md` (and its `section N`) cited
in a docstring or comment exists, and no code file cites the out-of-tree THEORY / METHODS notes any more."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CODE_DIRS = ("dynamics", "selfsup", "figures", "tests", "benchmarks", "notebooks")
CITE = re.compile(r"docs/(\w+\.md)((?:,)? sections? (\d+))?")
DOC_CITE = re.compile(r"\b(theory|methods)\.md,? sections? (\d+)")
BARE = re.compile(r"\b(?:" + "THEORY" + "|" + "METHODS" + r")\.md")  # also in /work/shared/ paths
# Files another change is editing right now; they still cite the bare notes and are pointed at docs/ when it
# lands. Remove a file from here once it no longer does (the stale-entry check below insists).
PENDING: set = set()


def _code_files():
    for d in CODE_DIRS:
        for path in sorted((ROOT / d).rglob("*")):
            if path.suffix in (".py", ".ipynb") and ".ipynb_checkpoints" not in path.parts:
                yield path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8")


def _sections(doc: Path) -> set:
    """Numbers N of the doc's `## N. Title` headings."""
    return {int(m) for m in re.findall(r"^## (\d+)\. ", doc.read_text(encoding="utf-8"), flags=re.M)}


def test_the_code_cites_docs_that_exist():
    cited = {}
    for name, text in _code_files():
        for m in CITE.finditer(text):
            cited.setdefault((m.group(1), m.group(3)), []).append(name)
    assert cited, "no docs/ citation found: the pattern or the code changed"
    missing = []
    for (doc, section), files in sorted(cited.items(), key=str):
        path = ROOT / "docs" / doc
        if not path.exists():
            missing.append(f"docs/{doc} (cited in {', '.join(sorted(set(files)))})")
        elif section is not None and int(section) not in _sections(path):
            missing.append(f"docs/{doc} section {section} (cited in {', '.join(sorted(set(files)))})")
    assert not missing, "cited but absent: " + "; ".join(missing)


@pytest.mark.parametrize("doc", ["theory.md", "methods.md"])
def test_cross_references_between_the_docs_name_existing_sections(doc):
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    assert _sections(ROOT / "docs" / doc), f"docs/{doc} has no numbered sections"
    for target, section in DOC_CITE.findall(text):
        assert int(section) in _sections(ROOT / "docs" / f"{target}.md"), f"{doc} cites {target}.md {section}"


def test_no_code_file_cites_the_out_of_tree_notes():
    offenders = {name for name, text in _code_files() if BARE.search(text)}
    offenders.discard(Path(__file__).relative_to(ROOT).as_posix())
    new, stale = sorted(offenders - PENDING), sorted(PENDING - offenders)
    assert not new, f"cite docs/theory.md or docs/methods.md instead: {new}"
    assert not stale, f"no longer citing the bare notes, drop from PENDING: {stale}"
