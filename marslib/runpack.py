"""Hand out a trained run: one ``.tar.gz`` an instructor exports and a student imports.

Training the course run takes hours; a student who only wants to *read* the
notebooks with trained models should not have to.  ``export_run`` packs what the
notebooks load, and ``import_run`` unpacks it so that every ``fit_*(cfg, folder,
resume=True)`` call finds a finished checkpoint and loads it instead of training::

    course.tar.gz
        MANIFEST.json                         first member: what the bundle holds (below)
        tokenizer/ckpt-000006/meta.json       the newest complete checkpoint of each model,
        tokenizer/ckpt-000006/model.safetensors   whole (the optimiser state too: the
        tokenizer/ckpt-000006/state.safetensors   notebooks resume, which reads it)
        tokenizer/history.json
        ar/...  raster/...  classifier/...    every checkpoint folder of the run
        evaluation/metrics.json               what `mars evaluate` scored
        02_tokenizer/results.json ...         with ``with_notebooks``: each notebook's outputs
        notebooks/02_tokenizer.ipynb ...      and its executed copy

``MANIFEST.json`` records the profile, each checkpoint's fingerprints (weights
sha, config sha, kind, step), the size and sha256 of every file, the marslib
version and git commit that exported it, and when.  The fall-back checkpoints are
left out: a fresh copy has nothing to fall back from.

Importing trusts nothing: it reads the manifest first, refuses a bundle made for
another profile, member paths that could escape the run folder (absolute, ``..``,
links), files whose sha256 differs from the manifest, and checkpoints whose meta
does not match their recorded fingerprints, each with one line naming what is
wrong.  It extracts into a hidden folder beside the target and only then moves it
into place, so a refused or interrupted import leaves the target as it was.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO

from .checkpoint import PREFIX, CheckpointError, file_sha256, find_checkpoint
from .provenance import config_dict_sha

MANIFEST = "MANIFEST.json"
FORMAT = "marslib-run-bundle"
FORMAT_VERSION = 1
EVALUATION_DIR = "evaluation"
NOTEBOOK_COPIES = "notebooks"                          # executed copies: <run>/notebooks/NN_name.ipynb
NOTEBOOK_OUTPUTS = re.compile(r"^\d\d_[A-Za-z0-9_]+$")  # a notebook's own folder: <run>/NN_name/
_CHECKPOINT_DIR = re.compile(rf"^{PREFIX}\d+$")
_BLOCK = 1 << 20


class RunBundleError(ValueError):
    """A bundle cannot be exported or imported; the message says which file or check failed."""


@dataclasses.dataclass(frozen=True)
class ImportResult:
    """What :func:`import_run` did: ``status`` is "imported", "unchanged" (re-import: nothing
    written) or "replaced" (``force`` overwrote ``replaced``, the checkpoints that differed)."""
    run_dir: Path
    manifest: dict
    status: str
    replaced: tuple[str, ...] = ()


# ---------------------------------------------------------------------------
# Fingerprints
# ---------------------------------------------------------------------------

def _checkpoint_record(checkpoint: Path, meta: dict) -> dict:
    """What the manifest records about a checkpoint: which one, and its fingerprints.

    The config is hashed from the recorded dict, not a rebuilt ``Config``: a later marslib
    that adds a config field must not change the fingerprint of an old checkpoint.
    """
    return {"checkpoint": checkpoint.name, "kind": meta.get("kind"), "step": meta.get("step"),
            "weights_sha": meta.get("weights_sha"), "config_sha256": config_dict_sha(meta["config"]),
            "made_from": meta.get("made_from", {})}


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------

def checkpoint_folders(run_dir: Path) -> list[str]:
    """Folders of ``run_dir`` that hold ``ckpt-N`` checkpoints, as relative posix paths, sorted
    (``["ar", "classifier", "raster", "raster_tokenizer", "tokenizer", "truncate/tokenizer", ...]``)."""
    found = []
    for here, dirs, _ in os.walk(run_dir):
        if any(_CHECKPOINT_DIR.match(d) for d in dirs):
            found.append(Path(here).relative_to(run_dir).as_posix())
        # never look inside a checkpoint, a half-written one (.tmp-*) or a hidden folder
        dirs[:] = [d for d in dirs if not _CHECKPOINT_DIR.match(d) and not d.startswith(".")]
    return sorted(found)


def _files_under(run_dir: Path, folder: str) -> list[str]:
    """Every regular file under ``run_dir/folder`` (hidden ones and links skipped), relative, sorted."""
    root = run_dir / folder
    if not root.is_dir():
        return []
    return sorted(p.relative_to(run_dir).as_posix() for p in root.rglob("*")
                  if p.is_file() and not p.is_symlink() and not any(part.startswith(".") for part in
                                                                    p.relative_to(run_dir).parts))


def _bundle_contents(run_dir: Path, with_notebooks: bool) -> tuple[dict[str, dict], list[str]]:
    """``(checkpoints, files)``: a record per checkpoint folder and every file the bundle carries."""
    checkpoints, files = {}, []
    for folder in checkpoint_folders(run_dir):
        try:
            path, meta = find_checkpoint(run_dir / folder, verify=True)
        except CheckpointError as err:
            raise RunBundleError(f"cannot export {run_dir}: {folder}/ has no complete checkpoint ({err})") from err
        checkpoints[folder] = _checkpoint_record(path, meta)
        files += [f"{folder}/{path.name}/{f.name}" for f in sorted(path.iterdir()) if f.is_file()]
        if (run_dir / folder / "history.json").is_file():
            files.append(f"{folder}/history.json")
    files += _files_under(run_dir, EVALUATION_DIR)
    if with_notebooks:
        tops = sorted(p.name for p in run_dir.iterdir() if p.is_dir() and NOTEBOOK_OUTPUTS.match(p.name))
        for top in [*tops, NOTEBOOK_COPIES]:
            files += _files_under(run_dir, top)
    return checkpoints, files


def _run_profile(run_dir: Path, checkpoints: dict[str, dict]) -> str:
    """The one profile every checkpoint was trained with (refuses a run that mixes profiles)."""
    profiles = {}
    for folder in checkpoints:
        meta = json.loads((run_dir / folder / checkpoints[folder]["checkpoint"] / "meta.json").read_text())
        profiles.setdefault(meta["config"].get("profile"), []).append(folder)
    if len(profiles) != 1:
        mixed = "; ".join(f"{p!r}: {', '.join(f)}" for p, f in profiles.items())
        raise RunBundleError(f"cannot export {run_dir}: its checkpoints come from several profiles ({mixed})")
    return next(iter(profiles))


class _HashingReader(io.RawIOBase):
    """A file read through once by ``tarfile.addfile``, hashed on the way: what went into the
    archive is what the manifest says, even if the file changed after it was fingerprinted."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f, self.digest = f, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.f.read(len(buffer))
        buffer[:len(data)] = data
        self.digest.update(data)
        return len(data)


def export_run(run_dir: str | Path, bundle_path: str | Path, with_notebooks: bool = False,
               compresslevel: int = 6) -> dict:
    """Pack ``run_dir``'s trained models and evaluation into ``bundle_path`` (a ``.tar.gz``).

    Args:
        with_notebooks: also carry every notebook's output folder (``NN_name/``:
            results.json, figures) and the executed notebooks (``notebooks/``).
        compresslevel: gzip level; weights barely compress, so a higher level buys little.

    Returns:
        the manifest written as the bundle's first member.  The bundle is written to a
        temporary file beside ``bundle_path`` and renamed into place: never half a bundle.
    """
    from . import __version__
    from .provenance import git_state

    run_dir, bundle_path = Path(run_dir), Path(bundle_path)
    if not run_dir.is_dir():
        raise RunBundleError(f"run folder {run_dir} does not exist")
    checkpoints, files = _bundle_contents(run_dir, with_notebooks)
    if not checkpoints:
        raise RunBundleError(f"{run_dir} holds no checkpoint to export (train first: mars reproduce)")
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "profile": _run_profile(run_dir, checkpoints),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "marslib": {"version": __version__, "git": git_state()},
        "with_notebooks": with_notebooks,
        "checkpoints": checkpoints,
        "files": {name: {"bytes": (run_dir / name).stat().st_size, "sha256": file_sha256(run_dir / name)}
                  for name in files},
    }
    bundle_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=bundle_path.parent, prefix=f".{bundle_path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with tarfile.open(tmp, "w:gz", compresslevel=compresslevel, format=tarfile.PAX_FORMAT) as tar:
            data = json.dumps(manifest, indent=1).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime = len(data), int(datetime.datetime.now().timestamp())
            tar.addfile(info, io.BytesIO(data))
            for name, record in manifest["files"].items():
                info = tar.gettarinfo(run_dir / name, arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(run_dir / name, "rb") as f:
                    reader = _HashingReader(f)
                    tar.addfile(info, reader)
                if info.size != record["bytes"] or reader.digest.hexdigest() != record["sha256"]:
                    raise RunBundleError(f"{run_dir / name} changed while it was being exported "
                                         f"(is a training run still writing to {run_dir}?); export again")
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files
        os.replace(tmp, bundle_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return manifest


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------

def _safe_name(name: object) -> str:
    """``name`` if it is a plain relative path inside the run (no absolute path, ``..``, ``.``
    or empty part, nothing hidden), else :class:`RunBundleError`."""
    if not isinstance(name, str) or not name:
        raise RunBundleError(f"bundle member name {name!r} is not a path")
    path = PurePosixPath(name)
    if path.is_absolute() or "\\" in name or re.match(r"^[A-Za-z]:", name):
        raise RunBundleError(f"bundle member {name!r} is an absolute path; refusing to write outside the run")
    if ".." in path.parts:
        raise RunBundleError(f"bundle member {name!r} climbs out of the run folder ('..'); refusing it")
    if str(path) != name or any(part.startswith(".") for part in path.parts):
        raise RunBundleError(f"bundle member {name!r} is not a plain path inside the run folder; refusing it")
    return name


def _check_member(member: tarfile.TarInfo) -> None:
    _safe_name(member.name)
    if member.issym() or member.islnk():
        raise RunBundleError(f"bundle member {member.name!r} is a link (to {member.linkname!r}); "
                             f"a run bundle holds plain files only")
    if not member.isfile():
        raise RunBundleError(f"bundle member {member.name!r} is not a regular file; "
                             f"a run bundle holds plain files only")


def _read_manifest(tar: tarfile.TarFile, bundle: Path) -> dict:
    first = tar.next()
    if first is None or first.name != MANIFEST:
        raise RunBundleError(f"{bundle} is not a run bundle: its first member is "
                             f"{first.name if first else 'missing'!r}, not {MANIFEST} (made with `mars run export`?)")
    _check_member(first)
    try:
        manifest = json.loads(tar.extractfile(first).read())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunBundleError(f"{bundle}: {MANIFEST} is corrupt ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RunBundleError(f"{bundle}: {MANIFEST} is not a marslib run manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise RunBundleError(f"{bundle} has bundle format {manifest.get('format_version')}, this marslib reads "
                             f"{FORMAT_VERSION}; export it again with this version")
    for key in ("profile", "checkpoints", "files"):
        if key not in manifest:
            raise RunBundleError(f"{bundle}: {MANIFEST} has no {key!r}")
    for name in manifest["files"]:
        _safe_name(name)
    for folder in manifest["checkpoints"]:
        _safe_name(folder)
    return manifest


def read_manifest(bundle_path: str | Path) -> dict:
    """The manifest of a bundle (its first member; the rest is not read)."""
    bundle = Path(bundle_path)
    with _open_bundle(bundle) as tar:
        try:
            return _read_manifest(tar, bundle)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
            raise RunBundleError(f"cannot read bundle {bundle}: {err}") from err


def _open_bundle(bundle: Path) -> tarfile.TarFile:
    if not bundle.is_file():
        raise RunBundleError(f"bundle {bundle} does not exist (or is not a file)")
    try:
        return tarfile.open(bundle, "r|gz")  # a stream: one pass, members in the order written
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise RunBundleError(f"cannot read bundle {bundle}: it is not a readable .tar.gz ({err})") from err


def _newest_fingerprint(folder: Path) -> str | None:
    """The weights sha of ``folder``'s newest complete checkpoint, None if it holds none."""
    try:
        return find_checkpoint(folder)[1].get("weights_sha")
    except CheckpointError:
        return None


def _differences(manifest: dict, run_dir: Path) -> tuple[list[str], bool]:
    """``(what in run_dir differs from the bundle, whether run_dir already holds all of it)``."""
    differ, complete = [], True
    for folder, record in manifest["checkpoints"].items():
        held = _newest_fingerprint(run_dir / folder)
        if held is None:
            complete = False
        elif held != record["weights_sha"]:
            differ.append(f"a different {folder} checkpoint (weights {held}, the bundle's {record['weights_sha']})")
    for name, record in manifest["files"].items():
        path = run_dir / name
        if not path.is_file():
            complete = False
        elif path.stat().st_size != record["bytes"] or file_sha256(path) != record["sha256"]:
            complete = False
            # A checkpoint folder's files (its history too) are judged by its weights above: the same
            # weights with another history.json are the same model, rewritten without --force.
            if not any(name.startswith(f + "/") for f in manifest["checkpoints"]):
                differ.append(f"a different {name}")
    return differ, complete and not differ


def _extract(tar: tarfile.TarFile, manifest: dict, into: Path, bundle: Path) -> None:
    """Write every member into ``into``, checking each against the manifest as it streams."""
    seen = set()
    for index, member in enumerate(tar):
        if index == 0 and member.name == MANIFEST:  # already read (iterating yields it again)
            continue
        _check_member(member)
        record = manifest["files"].get(member.name)
        if record is None:
            raise RunBundleError(f"{bundle}: {member.name} is in the archive but not in its manifest")
        if member.name in seen:
            raise RunBundleError(f"{bundle}: {member.name} appears twice in the archive")
        seen.add(member.name)
        target = into / member.name
        target.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        source = tar.extractfile(member)
        with open(target, "wb") as out:
            for block in iter(lambda: source.read(_BLOCK), b""):
                digest.update(block)
                size += len(block)
                out.write(block)
        if size != record["bytes"] or digest.hexdigest() != record["sha256"]:
            raise RunBundleError(f"{bundle}: {member.name} is corrupted (its sha256 or size differs from "
                                 f"the manifest); get a fresh copy of the bundle")
    missing = sorted(set(manifest["files"]) - seen)
    if missing:
        raise RunBundleError(f"{bundle} is incomplete: {len(missing)} file(s) of its manifest are missing, "
                             f"e.g. {missing[0]}")


def _check_checkpoints(manifest: dict, root: Path, bundle: Path) -> None:
    """Each extracted checkpoint is the one the manifest names: its meta loads, its files match
    their own fingerprints, and kind, step, weights and config agree with the manifest."""
    for folder, record in manifest["checkpoints"].items():
        try:
            path, meta = find_checkpoint(root / folder, verify=True)
        except CheckpointError as err:
            raise RunBundleError(f"{bundle}: checkpoint {folder} does not load ({err})") from err
        found = _checkpoint_record(path, meta)
        wrong = [f"{k} {found[k]!r} vs manifest {record.get(k)!r}"
                 for k in ("checkpoint", "kind", "step", "weights_sha", "config_sha256") if found[k] != record.get(k)]
        if wrong:
            raise RunBundleError(f"{bundle}: checkpoint {folder} does not match its manifest ({'; '.join(wrong)})")


def _link_or_copy(src: str, dst: str) -> None:
    """Hard-link (instant, no extra space) where the filesystem allows, else copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _keep_existing(run_dir: Path, staged: Path, manifest: dict) -> None:
    """Link into ``staged`` what ``run_dir`` holds besides the bundle's files and checkpoint folders
    (a notebook's outputs, a dataset, models the bundle lacks), so the swap loses nothing."""
    replaced = {run_dir / folder for folder in manifest["checkpoints"]} | {run_dir / n for n in manifest["files"]}

    def ignore(here: str, names: list[str]) -> list[str]:
        return [n for n in names if Path(here, n) in replaced]

    shutil.copytree(run_dir, staged, symlinks=True, ignore=ignore, copy_function=_link_or_copy,
                    dirs_exist_ok=True)


def _move_into_place(staged: Path, run_dir: Path) -> None:
    """Make ``staged`` the run folder: one rename if ``run_dir`` is absent or empty; else rename the
    old folder aside, rename ``staged`` in, and delete the old one (put back if the second rename fails)."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    if run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()
    if not run_dir.exists():
        os.rename(staged, run_dir)
        return
    old = Path(tempfile.mkdtemp(dir=run_dir.parent, prefix=f".{run_dir.name}.replaced-"))
    os.rmdir(old)
    os.rename(run_dir, old)
    try:
        os.rename(staged, run_dir)
    except OSError:
        os.rename(old, run_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _staging_parent(run_dir: Path) -> Path:
    """The nearest existing folder at or above ``run_dir``'s parent: the staging folder goes there,
    on the same filesystem, so the final step is a rename, and a refusal creates no folder."""
    parent = run_dir.absolute().parent
    while not parent.exists():
        parent = parent.parent
    return parent


def import_run(bundle_path: str | Path, run_dir: str | Path, profile: str | None = None,
               force: bool = False) -> ImportResult:
    """Unpack a bundle from :func:`export_run` into ``run_dir``, after checking all of it.

    Args:
        profile: refuse a bundle trained for another profile (the one the student
            will open the notebooks with).
        force: replace checkpoints (and files) in ``run_dir`` that differ from the bundle's;
            without it such a run folder is refused.  What ``run_dir`` holds besides the
            bundle's own files is kept either way.

    Refuses (:class:`RunBundleError`, one line) an unreadable archive, a missing or
    foreign manifest, another profile, a member that is a link or whose path leaves the
    run, a file whose size or sha256 differs from the manifest, or a checkpoint whose
    meta does not load or disagrees with the manifest's fingerprints; nothing is
    written to ``run_dir`` then.  Importing a bundle that ``run_dir`` already holds
    writes nothing ("unchanged").
    """
    bundle, run_dir = Path(bundle_path), Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunBundleError(f"{run_dir} is a file, not a run folder")
    with _open_bundle(bundle) as tar:
        try:
            manifest = _read_manifest(tar, bundle)
            if profile is not None and manifest["profile"] != profile:
                raise RunBundleError(f"{bundle} was made for profile {manifest['profile']!r}, not {profile!r}; "
                                     f"get the {profile} bundle, or open the notebooks with profile "
                                     f"{manifest['profile']!r}")
            differ, complete = _differences(manifest, run_dir) if run_dir.is_dir() else ([], False)
            if complete:
                return ImportResult(run_dir, manifest, "unchanged")
            if differ and not force:
                raise RunBundleError(f"{run_dir} already has {differ[0]}"
                                     f"{f' (and {len(differ) - 1} more)' if len(differ) > 1 else ''}; "
                                     f"add --force to replace them with the bundle's, or import elsewhere")
            parent = _staging_parent(run_dir)
            for stale in parent.glob(f".{run_dir.name}.import-*"):  # left by an import that was killed
                shutil.rmtree(stale, ignore_errors=True)
            staged = Path(tempfile.mkdtemp(dir=parent, prefix=f".{run_dir.name}.import-"))
            try:
                _extract(tar, manifest, staged, bundle)
                _check_checkpoints(manifest, staged, bundle)
                if run_dir.is_dir():
                    _keep_existing(run_dir, staged, manifest)
                os.chmod(staged, 0o777 & ~_umask())  # mkdtemp makes 0700 folders
                _move_into_place(staged, run_dir)
            finally:
                if staged.exists():
                    shutil.rmtree(staged, ignore_errors=True)
        except (tarfile.TarError, EOFError, zlib.error) as err:
            raise RunBundleError(f"cannot read bundle {bundle}: the archive is damaged ({err})") from err
    return ImportResult(run_dir, manifest, "replaced" if differ else "imported", tuple(differ))


# ---------------------------------------------------------------------------
# Will the notebooks load these models, or train them?
# ---------------------------------------------------------------------------

def notebook_readiness(run_dir: str | Path, cfg) -> dict[str, str | None]:
    """For each model the notebooks fit, ``None`` if ``fit_*(cfg, ..., resume=True)`` would just load
    its checkpoint in ``run_dir``, else why it would train (missing, unfinished) or refuse (trained
    with another setup: the difference).

    The same test training applies (:func:`marslib.train.check_start` with ``resume=True``, each
    model under the config its ``fit_*`` derives from ``cfg``, and the tokenizer it was made from),
    plus: the checkpoint has reached the schedule's last step (else the notebook resumes training).
    """
    from .ablation import TRUNCATE_DIR, baseline_config, truncation_config
    from .autoregressor.training import raster_config
    from .baselines import BASELINES
    from .checkpoint import TRAIN_SECTION, has_checkpoint, read_meta
    from .train import check_start

    run_dir = Path(run_dir)
    raster, truncate = raster_config(baseline_config(cfg)), truncation_config(cfg)
    # folder: (kind, the config its fit_* trains it with, the tokenizer folder it is made from)
    models = {"tokenizer": ("tokenizer", cfg, None), "ar": ("ar", cfg, "tokenizer"),
              "classifier": ("classifier", cfg, None),
              "raster_tokenizer": ("tokenizer", raster, None), "raster": ("raster", raster, "raster_tokenizer"),
              f"{TRUNCATE_DIR}/tokenizer": ("tokenizer", truncate, None),
              f"{TRUNCATE_DIR}/ar": ("ar", truncate, f"{TRUNCATE_DIR}/tokenizer"),
              **{name: (name, cfg, None) for name in BASELINES}}
    ready: dict[str, str | None] = {}
    for folder, (kind, model_cfg, tokenizer) in models.items():
        if not has_checkpoint(run_dir / folder):
            ready[folder] = "missing: a notebook that needs it trains it"
            continue
        tcfg = model_cfg
        for part in TRAIN_SECTION[kind].split("."):
            tcfg = getattr(tcfg, part)
        made_from = ({"tokenizer": read_meta(run_dir / tokenizer)["weights_sha"]}
                     if tokenizer and has_checkpoint(run_dir / tokenizer) else None)
        try:
            check_start(run_dir / folder, kind, model_cfg, tcfg, resume=True, made_from=made_from)
        except CheckpointError as err:
            ready[folder] = f"refused: {err}"
            continue
        meta = read_meta(run_dir / folder)
        if "optimizer" not in meta:  # training resumes even a finished run: it loads the optimiser too
            ready[folder] = "refused: saved without its optimiser state, so training cannot resume from it"
        elif meta["step"] < tcfg.steps:
            ready[folder] = f"unfinished: step {meta['step']} of {tcfg.steps}, training resumes"
        else:
            ready[folder] = None
    return ready
