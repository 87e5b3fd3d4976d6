"""The documentation holds: every relative link resolves, the generated tables match the code, every troubleshooting
row names a test that exists, the guides' examples run, and no page speaks of how the project is developed."""

import ast
import glob
import importlib.util
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "benchmarks", "README.md"),
         *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]
LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def _read(path: str) -> str:
    return open(path, encoding="utf-8").read()


def _without_code(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _anchors(path: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#{1,6} (.+)$", _without_code(_read(path)), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def _generator():
    spec = importlib.util.spec_from_file_location("generate_docs", os.path.join(ROOT, "scripts", "dev", "generate_docs.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_relative_link_resolves(page):
    checked = 0
    for match in LINK.finditer(_without_code(_read(page))):
        target = match.group(1) or match.group(2)
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        assert os.path.exists(resolved), f"{os.path.relpath(page, ROOT)}: {target} does not exist"
        if anchor:
            assert resolved.endswith(".md") and anchor in _anchors(resolved), f"{os.path.relpath(page, ROOT)}: no heading for #{anchor}"
        checked += 1
    if page.endswith("README.md") or page.endswith("benchmarks.md"):
        assert checked, "the front pages link onwards"


def test_the_pages_link_to_each_other():
    readme = _read(os.path.join(ROOT, "README.md"))
    for guide in glob.glob(os.path.join(ROOT, "docs", "*.md")):
        assert f"(docs/{os.path.basename(guide)})" in readme, f"the README's documentation index misses {guide}"


def test_the_generated_tables_match_the_code():
    generator = _generator()
    for path in glob.glob(os.path.join(ROOT, "docs", "*.md")):
        text = _read(path)
        assert generator.render(text) == text, f"{os.path.relpath(path, ROOT)} is out of date: run scripts/dev/generate_docs.py"
    # and they are there: the reference points and every field of the three sections
    reference = _read(os.path.join(ROOT, "docs", "reference_fidelity.md"))
    from r2kd_hf.reference import REFERENCE_POINTS

    assert all(f"| `{point.field}` |" in reference for point in REFERENCE_POINTS)
    configuration = _read(os.path.join(ROOT, "docs", "configuration.md"))
    assert "| `teacher_arch` |" in configuration and "| `small_image_path` |" in configuration and "| `second_view` |" in configuration


def test_every_troubleshooting_row_is_pinned_by_a_test_that_exists():
    text = _read(os.path.join(ROOT, "docs", "troubleshooting.md"))
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| bad input")]
    assert len(rows) >= 40
    functions: dict[str, set[str]] = {}
    for row in rows:
        found = re.search(r"\[`(test_\w+)`\]\(\.\./(tests/test_\w+\.py)\)\s*\|$", row)
        assert found, f"a row without its test: {row[:100]}"
        name, path = found.groups()
        if path not in functions:
            tree = ast.parse(_read(os.path.join(ROOT, path)))
            functions[path] = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert name in functions[path], f"{path} has no {name} (row: {row[:80]})"


def test_the_methods_guide_examples_run():
    text = _read(os.path.join(ROOT, "docs", "methods.md"))
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/methods.md", "exec"), {})
    from r2kd_hf import available_losses

    assert "logit_mse" in available_losses()


DEVELOPMENT_WORDS = re.compile(r"\bsession\b|\blent\b|our CI|CI box|this box|dev box|can_start_another|device status|"
                               r"\b20\d\d-\d\d-\d\d\b|\bwe\b|\bour\b", re.I)


@pytest.mark.parametrize("page", [p for p in PAGES if "benchmarks" not in os.path.relpath(p, ROOT).split(os.sep)[0]],
                         ids=lambda p: os.path.relpath(p, ROOT))
def test_no_page_speaks_of_how_the_project_is_developed(page):
    found = [match.group(0) for match in DEVELOPMENT_WORDS.finditer(_read(page))]
    assert not found, f"{os.path.relpath(page, ROOT)}: {found}"


def test_the_readme_is_a_front_page():
    assert len(_read(os.path.join(ROOT, "README.md")).encode()) <= 12_500
