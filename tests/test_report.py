"""The committed report describes the code beside it.

``reports/REPORT.md`` is written by ``make reproduce`` (course profile, ~1 hour) and
committed.  It records the one commit every result came from; the code that decides
its numbers (``marslib/``, ``notebooks/``, the dependencies) must not have changed
since.  A change there means: run ``make reproduce`` on a fresh clone and commit
the new report (and the README's results section).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "reports" / "REPORT.md"
# What decides the report's numbers.  Tests, docs, benchmarks and CI files do not.
NUMBER_MAKERS = ("marslib", "notebooks", "pyproject.toml")


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)


def report_commit(text: str) -> str | None:
    """The commit a report says all of its results came from (None: several, dirty, or not recorded)."""
    found = re.findall(r"<!-- made-from-commit: ([0-9a-f]{40}) -->", text)
    return found[0] if len(found) == 1 else None


def test_report_commit_marker_is_parsed():
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert report_commit(f"... made from commit `{sha}` on a clean tree. <!-- made-from-commit: {sha} -->") == sha
    assert report_commit("These results come from 2 different commits") is None


def test_committed_report_was_made_from_this_code():
    if _git("rev-parse", "HEAD").returncode != 0:
        pytest.skip("not a git checkout")
    if _git("rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        pytest.skip("shallow clone: the report's commit may be missing from history")
    text = REPORT.read_text()
    if "## Provenance" not in text:
        # Reports written before provenance was recorded cannot say where they came from; the check
        # starts to hold as soon as the report is regenerated (and a regenerated one must carry the marker).
        pytest.skip(f"{REPORT.name} predates recorded provenance: regenerate it with `make reproduce`")
    commit = report_commit(text)
    assert commit, (f"{REPORT.name} does not say it was made from one clean commit: "
                    f"regenerate it with `make reproduce` on a fresh clone")
    assert _git("cat-file", "-e", f"{commit}^{{commit}}").returncode == 0, f"commit {commit} is not in this history"
    changed = _git("diff", "--name-only", commit, "HEAD", "--", *NUMBER_MAKERS).stdout.split()
    assert not changed, (f"{REPORT.name} was made from {commit[:12]}, but since then these files that decide its "
                         f"numbers changed: {', '.join(changed[:10])}; run `make reproduce` on a fresh clone and "
                         f"commit the new report")
