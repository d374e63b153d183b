"""The documents hold together.

The docs the code cites live in the repository: every `docs/<name>.md` (and its `section N`) cited in a
docstring or comment exists, and no code file cites the out-of-tree THEORY / METHODS notes any more. The
README is a front door (at most 250 lines, no commit SHAs or dates, the install CI runs); every relative link
and anchor in the README, docs/ and benchmarks/README.md resolves, every command they name exists, and
docs/flags.md is what the parsers print."""
import re
import subprocess
import sys
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


# ---------------------------------------------------------------------------------------- the front door
MANUAL = ("README.md", "benchmarks/README.md", *sorted(p.relative_to(ROOT).as_posix()
                                                       for p in (ROOT / "docs").glob("*.md")))
LINK = re.compile(r"\]\(([^)\s]+)\)")
SHA = re.compile(r"`[0-9a-f]{7,40}`")
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
PYTHON_M = re.compile(r"python -m ([\w.]+)")


def _slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _prose(text: str) -> str:
    """Markdown without its code blocks and code spans (where `[a](t)` is an equation, not a link)."""
    return re.sub(r"`[^`\n]*`", "", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S))


def _anchors(doc: Path) -> set:
    text = re.sub(r"^```.*?^```", "", doc.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def test_the_readme_is_a_front_door_without_shas_dates_or_history():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = text.count("\n")
    assert lines <= 250, f"README.md has {lines} lines; allowed: 250 (the manual lives in docs/)"
    assert not SHA.findall(text), f"README.md cites commits {SHA.findall(text)}; history lives in git"
    assert not DATE.findall(text), f"README.md holds dates {DATE.findall(text)}; current numbers only"
    for needed in ("3.11", 'python -m pip install -e ".[test]" -c constraints.txt', "python -m pytest",
                   "python -m dynamics.simulate --wd 5e-4", "figures/simulate_default.png"):
        assert needed in text, f"README.md lost {needed!r}"


def test_the_readme_installs_exactly_as_ci_does():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for command in ('python -m pip install -q -e ".[test]" -c constraints.txt', "python -m pytest"):
        assert command in ci, f".ci/run no longer runs {command!r}: update this test and the README"
        assert command.replace(" -q", "") in readme


@pytest.mark.parametrize("page", MANUAL)
def test_every_relative_link_and_anchor_resolves(page):
    doc = ROOT / page
    bad = []
    for target in LINK.findall(_prose(doc.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            bad.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            bad.append(f"{target} (no such heading)")
    assert not bad, f"{page}: broken links: {bad}"


@pytest.mark.parametrize("page", MANUAL)
def test_every_command_the_manual_names_exists(page):
    """Each `python -m X` is a CLI of the packages (one that `docs/gen_flags.py` runs with --help) or a
    figure script; each `python benchmarks/x.py` or `docs/x.py` is a file."""
    import importlib.util
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import gen_flags
    finally:
        sys.path.pop(0)
    clis = set(gen_flags.cli_modules())
    text = (ROOT / page).read_text(encoding="utf-8")
    missing = [m for m in sorted(set(PYTHON_M.findall(text)))
               if m not in clis and not (m.startswith("figures.") and importlib.util.find_spec(m))
               and m not in ("pip", "pytest", "venv") and not m.endswith((".", "_"))]  # figures.<name>
    missing += [f for f in sorted(set(re.findall(r"python ((?:benchmarks|docs)/\w+\.py)", text)))
                if not (ROOT / f).exists()]
    assert not missing, f"{page} names commands that do not exist: {missing}"


def test_the_flags_reference_is_generated_from_the_parsers():
    """docs/flags.md is what `python docs/gen_flags.py` writes from every CLI's parser (one process, a few
    seconds); after a flag change, run that command."""
    proc = subprocess.run([sys.executable, "docs/gen_flags.py", "--check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_every_flag_the_manual_names_exists():
    """A `--flag` in the README or the guides is a flag of a CLI (docs/flags.md) or of a benchmark or figure
    script, so a renamed or removed flag cannot linger in the prose."""
    flag = re.compile(r"(?<![\w-])(--[a-z][\w-]*)")
    known = set(flag.findall((ROOT / "docs" / "flags.md").read_text(encoding="utf-8")))
    for script in [*(ROOT / "benchmarks").glob("*.py"), *(ROOT / "figures").glob("*.py")]:
        known |= set(re.findall(r'add_argument\(\s*"(--[\w-]+)"', script.read_text(encoding="utf-8")))
    for page in MANUAL:
        if page != "docs/flags.md":
            unknown = sorted(set(flag.findall((ROOT / page).read_text(encoding="utf-8"))) - known)
            assert not unknown, f"{page} names flags no CLI or script has: {unknown}"
