"""Run bundles (marslib.runpack, `mars run`): what is exported comes back bit for bit, and a bundle that is
damaged, foreign, made for another profile or trying to write outside the run is refused with nothing written."""

import io
import json
import os
import tarfile

import pytest
import torch
from safetensors.torch import load_file

from marslib.autoregressor import NextScaleTransformer
from marslib.autoregressor.training import load_ar, tokenizer_fingerprint
from marslib.checkpoint import find_checkpoint, has_checkpoint, save_checkpoint
from marslib.cli import main
from marslib.config import get_config
from marslib.metrics import SpectrogramClassifier
from marslib.runpack import MANIFEST, RunBundleError, export_run, import_run, notebook_readiness, read_manifest
from marslib.tokenizer import Tokenizer
from marslib.train import make_optimizer

MODELS = ("ar", "classifier", "tokenizer")


def _save(cfg, run, folder, model, kind, tcfg, **kw):
    """A *finished* checkpoint (step = the schedule's steps, optimiser state saved), as training leaves it."""
    return save_checkpoint(run / folder, model, cfg, kind, tcfg.steps, optimizer=make_optimizer(model, tcfg), **kw)


def _make_run(run, seed=0):
    """A smoke run with untrained but complete checkpoints (seconds): tokenizer (with a fall-back), ar,
    classifier, an evaluation and one notebook's outputs."""
    cfg = get_config("smoke", {"seed": seed})
    torch.manual_seed(seed)
    save_checkpoint(run / "tokenizer", Tokenizer(cfg), cfg, "tokenizer", 1)          # the fall-back
    _save(cfg, run, "tokenizer", Tokenizer(cfg), "tokenizer", cfg.train_tokenizer)
    (run / "tokenizer" / "history.json").write_text('{"train": [], "valid": []}')  # as train() writes it
    _save(cfg, run, "ar", NextScaleTransformer(cfg.ar, cfg.tokenizer), "ar", cfg.train_ar,
          made_from=tokenizer_fingerprint(run / "tokenizer"))
    _save(cfg, run, "classifier", SpectrogramClassifier(cfg), "classifier", cfg.train_classifier)
    (run / "evaluation").mkdir()
    (run / "evaluation" / "metrics.json").write_text(json.dumps({"rows": {"mars": {"fad": 1.0 + seed}}}))
    (run / "02_tokenizer").mkdir()
    (run / "02_tokenizer" / "results.json").write_text("{}")
    (run / "notebooks").mkdir()
    (run / "notebooks" / "02_tokenizer.ipynb").write_text("{}")
    return cfg


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """``(cfg, run, bundle)``: a smoke run and its exported bundle (read-only: copy to change)."""
    root = tmp_path_factory.mktemp("runpack")
    cfg = _make_run(root / "run")
    export_run(root / "run", root / "run.tar.gz")
    return cfg, root / "run", root / "run.tar.gz"


def _members(bundle):
    """``[(TarInfo, bytes or None)]`` of a bundle, in order."""
    with tarfile.open(bundle, "r:gz") as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]


def _rewrite(bundle, out, edit=None, manifest_edit=None, extra=()):
    """A copy of ``bundle`` with member data changed (``edit(name, data) -> data``), the manifest
    changed (``manifest_edit(manifest)``) or ``extra`` TarInfo/data pairs appended: a tampered bundle."""
    with tarfile.open(out, "w:gz") as tar:
        for info, data in _members(bundle):
            if info.name == MANIFEST and manifest_edit:
                manifest = json.loads(data)
                manifest_edit(manifest)
                data = json.dumps(manifest).encode()
            elif edit:
                data = edit(info.name, data)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out


def _nothing_written(parent, name):
    """``parent`` has no ``name`` and no staging folder left behind."""
    return not (parent / name).exists() and not [p for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def test_export_carries_the_newest_checkpoints_and_the_evaluation(bundle):
    cfg, run, path = bundle
    manifest = read_manifest(path)
    assert manifest["profile"] == "smoke" and set(manifest["checkpoints"]) == set(MODELS)
    newest, meta = find_checkpoint(run / "tokenizer")
    assert manifest["checkpoints"]["tokenizer"]["checkpoint"] == newest.name == "ckpt-000002"
    assert manifest["checkpoints"]["tokenizer"]["weights_sha"] == meta["weights_sha"]
    assert manifest["checkpoints"]["tokenizer"]["config_sha256"] == meta["provenance"]["config_sha256"]
    assert not [f for f in manifest["files"] if f.startswith("tokenizer/ckpt-000001")]  # no fall-back
    assert "evaluation/metrics.json" in manifest["files"] and "tokenizer/history.json" in manifest["files"]
    assert not [f for f in manifest["files"] if f.startswith(("02_tokenizer/", "notebooks/"))]
    assert manifest["marslib"]["version"] and "commit" in manifest["marslib"]["git"]
    names = [m.name for m, _ in _members(path)]
    assert names[0] == MANIFEST and sorted(names[1:]) == sorted(manifest["files"])
    for info, data in _members(path)[1:]:
        assert len(data) == manifest["files"][info.name]["bytes"] == (run / info.name).stat().st_size


def test_with_notebooks_carries_their_outputs(bundle, tmp_path):
    _, run, _ = bundle
    manifest = export_run(run, tmp_path / "nb.tar.gz", with_notebooks=True)
    assert {"02_tokenizer/results.json", "notebooks/02_tokenizer.ipynb"} <= set(manifest["files"])


def test_import_gives_the_same_models_and_the_notebooks_load_them(bundle, tmp_path):
    cfg, run, path = bundle
    (tmp_path / ".imported.import-x1y2" / "ar").mkdir(parents=True)   # what an import killed midway leaves
    result = import_run(path, tmp_path / "imported", profile="smoke")
    assert result.status == "imported"
    imported = tmp_path / "imported"
    assert all(has_checkpoint(imported / m) for m in MODELS)
    for m in MODELS:
        ours, theirs = find_checkpoint(run / m)[0], find_checkpoint(imported / m)[0]
        for name in ("model", "state"):
            a, b = load_file(ours / f"{name}.safetensors"), load_file(theirs / f"{name}.safetensors")
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    model, tokenizer = load_ar(imported)              # checks the ar was made from this tokenizer
    original, _ = load_ar(run)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), original.state_dict().values()))
    ready = notebook_readiness(imported, cfg)
    assert all(ready[m] is None for m in MODELS), ready
    assert ready["raster"].startswith("missing")
    other = get_config("smoke", {"seed": 1})          # another training setup: the notebooks would refuse
    assert notebook_readiness(imported, other)["tokenizer"].startswith("refused: ")
    assert [p.name for p in tmp_path.iterdir()] == ["imported"]  # no staging folder left, nor a stale one


def test_a_damaged_bundle_is_refused_and_nothing_is_written(bundle, tmp_path):
    _, _, path = bundle
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF                     # one flipped byte in the compressed stream
    (tmp_path / "flipped.tar.gz").write_bytes(bytes(data))
    with pytest.raises(RunBundleError, match="damaged|corrupted"):
        import_run(tmp_path / "flipped.tar.gz", tmp_path / "run")
    assert _nothing_written(tmp_path, "run")

    def flip(name, data):                            # a bundle whose archive is fine but one file changed
        return data[:-1] + bytes([data[-1] ^ 1]) if name == "ar/ckpt-000001/model.safetensors" else data
    tampered = _rewrite(path, tmp_path / "tampered.tar.gz", edit=flip)
    with pytest.raises(RunBundleError, match=r"ar/ckpt-000001/model.safetensors is corrupted"):
        import_run(tampered, tmp_path / "run")
    assert _nothing_written(tmp_path, "run")

    (tmp_path / "half.tar.gz").write_bytes(path.read_bytes()[:len(data) // 2])   # a download cut short
    with pytest.raises(RunBundleError, match="damaged|corrupted|incomplete"):
        import_run(tmp_path / "half.tar.gz", tmp_path / "run")
    assert _nothing_written(tmp_path, "run")

    (tmp_path / "notgz.tar.gz").write_text("not an archive")
    with pytest.raises(RunBundleError, match="not a readable .tar.gz"):
        import_run(tmp_path / "notgz.tar.gz", tmp_path / "run")
    assert _nothing_written(tmp_path, "run")


def test_a_checkpoint_that_disagrees_with_the_manifest_is_refused(bundle, tmp_path):
    _, _, path = bundle

    def other_weights(manifest):
        manifest["checkpoints"]["tokenizer"]["weights_sha"] = "0123456789abcdef"
    with pytest.raises(RunBundleError, match="checkpoint tokenizer does not match its manifest.*weights_sha"):
        import_run(_rewrite(path, tmp_path / "b.tar.gz", manifest_edit=other_weights), tmp_path / "run")
    assert _nothing_written(tmp_path, "run")
    with pytest.raises(RunBundleError, match="first member is 'ar/"):   # no manifest
        with tarfile.open(tmp_path / "nomanifest.tar.gz", "w:gz") as tar:
            for info, data in _members(path)[1:]:
                tar.addfile(info, io.BytesIO(data))
        import_run(tmp_path / "nomanifest.tar.gz", tmp_path / "run")
    assert _nothing_written(tmp_path, "run")


def test_another_profile_is_refused(bundle, tmp_path):
    _, _, path = bundle
    with pytest.raises(RunBundleError, match="made for profile 'smoke', not 'course'"):
        import_run(path, tmp_path / "run", profile="course")
    assert _nothing_written(tmp_path, "run")


@pytest.mark.parametrize("name, kind, match", [
    ("../escape.txt", tarfile.REGTYPE, r"climbs out of the run folder"),
    ("/tmp/escape.txt", tarfile.REGTYPE, r"absolute path"),
    ("tokenizer/link", tarfile.SYMTYPE, r"is a link"),
    ("tokenizer/hard", tarfile.LNKTYPE, r"is a link"),
])
def test_members_that_could_escape_the_run_are_refused(bundle, tmp_path, name, kind, match):
    _, _, path = bundle
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, "../../escape.txt"
    data = b"x" if kind == tarfile.REGTYPE else None
    info.size = len(data or b"")

    def listed(manifest):                             # even a manifest that lists it does not help
        manifest["files"][name] = {"bytes": info.size, "sha256": "0" * 64}
    for bad in (_rewrite(path, tmp_path / "a.tar.gz", extra=[(info, data)]),
                _rewrite(path, tmp_path / "b.tar.gz", extra=[(info, data)], manifest_edit=listed)):
        with pytest.raises(RunBundleError, match=match):
            import_run(bad, tmp_path / "sub" / "run")
        assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "sub").exists()


def test_reimport_is_a_no_op_and_another_run_needs_force(bundle, tmp_path):
    _, _, path = bundle
    target = tmp_path / "run"
    import_run(path, target)
    (target / "01_stft_and_cmx").mkdir()                # the student ran notebook 01 meanwhile
    (target / "01_stft_and_cmx" / "results.json").write_text('{"mine": 1}')
    before = {p: p.stat().st_mtime_ns for p in target.rglob("*")}
    assert import_run(path, target).status == "unchanged"
    assert {p: p.stat().st_mtime_ns for p in target.rglob("*")} == before
    (target / "tokenizer" / "history.json").write_text("{}")   # same models, one file changed: rewritten
    assert import_run(path, target).status == "imported"
    assert (target / "tokenizer" / "history.json").read_text() == '{"train": [], "valid": []}'
    before = {p: p.stat().st_mtime_ns for p in target.rglob("*")}

    _make_run(tmp_path / "other", seed=1)               # another training run: other weights
    export_run(tmp_path / "other", tmp_path / "other.tar.gz")
    with pytest.raises(RunBundleError, match=r"already has a different ar checkpoint .*add --force"):
        import_run(tmp_path / "other.tar.gz", target)
    assert {p: p.stat().st_mtime_ns for p in target.rglob("*")} == before
    result = import_run(tmp_path / "other.tar.gz", target, force=True)
    assert result.status == "replaced" and len(result.replaced) == 4   # 3 models + metrics.json
    assert find_checkpoint(target / "ar")[1]["weights_sha"] == find_checkpoint(tmp_path / "other" / "ar")[1][
        "weights_sha"]
    assert len(list((target / "tokenizer").glob("ckpt-*"))) == 1        # the old run's checkpoints are gone
    assert (target / "01_stft_and_cmx" / "results.json").read_text() == '{"mine": 1}'   # kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "other.tar.gz", "run"]


def test_export_refuses_a_folder_without_checkpoints(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunBundleError, match="holds no checkpoint"):
        export_run(tmp_path / "empty", tmp_path / "b.tar.gz")
    assert not (tmp_path / "b.tar.gz").exists() and os.listdir(tmp_path) == ["empty"]


def test_cli_round_trip(bundle, tmp_path, capsys):
    _, run, _ = bundle
    out = tmp_path / "cli.tar.gz"
    assert main(["run", "export", str(run), str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "profile 'smoke'" in printed and "tokenizer" in printed
    assert main(["run", "import", str(out), str(tmp_path / "run"), "--profile", "course"]) == 2
    assert capsys.readouterr().err.startswith("error: ") and not (tmp_path / "run").exists()
    assert main(["run", "import", str(out), str(tmp_path / "run"), "--profile", "smoke"]) == 0
    printed = capsys.readouterr().out
    assert "imported" in printed and "will load: tokenizer, ar, classifier" in printed
    assert main(["run", "import", str(out), str(tmp_path / "run")]) == 0
    assert "nothing written" in capsys.readouterr().out


def test_lab_list_names_every_exercise_and_its_notebook(capsys, monkeypatch):
    import marslib.lab as lab

    assert main(["lab", "list"]) == 0
    table = lab.exercises()
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == (f"{len(table)} exercises" if table else "no exercises yet")
    assert all(ex.id in out and ex.title in out for ex in table.values())
    fake = lab.Exercise(id="02.1", title="Cosine lookup", expects="a float", check=lambda answer: "ok")
    monkeypatch.setattr(lab, "exercises", lambda: {"02.1": fake})
    assert main(["lab", "list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["02.1", "Cosine", "lookup", "02_tokenizer"] and lines[-1] == "1 exercises"


def test_lab_student_writes_every_notebook_without_solutions(tmp_path, capsys):
    import nbformat

    from marslib.lab import SOLUTION_TAG, exercises
    from marslib.notebooks import notebook_sources

    assert main(["lab", "student", "--out", str(tmp_path / "student")]) == 0
    out = capsys.readouterr().out
    assert f"{len(notebook_sources())} notebooks" in out and f"{len(exercises())} exercises" in out
    for source in notebook_sources():
        assert (tmp_path / "student" / source.name).is_file()
        nb = nbformat.read(tmp_path / "student" / f"{source.stem}.ipynb", as_version=4)
        assert not [c for c in nb.cells if SOLUTION_TAG in c.metadata.get("tags", [])]
