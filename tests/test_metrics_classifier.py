"""The pitch/family classifier of the evaluation (smoke profile, dataset rendered into tmp)."""


import numpy as np
import pytest
import torch

from marslib.audio import fit_length, load_audio, waveform_to_input
from marslib.checkpoint import CheckpointError, read_meta
from marslib.config import NSYNTH_FAMILIES, get_config
from marslib.data import render_dataset, split_examples
from marslib.metrics import (SpectrogramClassifier, classifier_accuracy, classifier_dataset,
                             classify_spectrograms, classify_waveforms, fit_classifier, load_classifier)

STEPS = {"train_classifier.steps": 6, "train_classifier.eval_every": 3, "train_classifier.checkpoint_every": 3}


def _cfg(tmp, **overrides):
    return get_config("smoke", {"data.root": str(tmp / "data"), "data.cache_dir": str(tmp / "cache"),
                                **STEPS, **overrides})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A smoke dataset and a classifier fitted on it for a few steps: ``(cfg, run_dir, model, history)``."""
    tmp = tmp_path_factory.mktemp("clf")
    cfg = _cfg(tmp)
    render_dataset(cfg)
    model, history = fit_classifier(cfg, tmp / "run", progress=False)
    return cfg, tmp / "run", model, history


def test_forward_and_feature_shapes(smoke_cfg):
    torch.manual_seed(0)
    model = SpectrogramClassifier(smoke_cfg).eval()
    x = torch.rand(3, 1, *smoke_cfg.spec_shape) * 2 - 1
    out = model(x)
    assert out["pitch_logits"].shape == (3, 128) and out["family_logits"].shape == (3, len(NSYNTH_FAMILIES))
    feats = model.features(x)
    e = smoke_cfg.eval.classifier_embed
    assert {k: tuple(v.shape) for k, v in feats.items()} == {
        "trunk": (3, model.trunk_dim), "pitch_embedding": (3, e), "family_embedding": (3, e),
        "pitch_probs": (3, 128), "family_probs": (3, 11)}
    assert torch.allclose(feats["pitch_probs"].sum(1), torch.ones(3))
    assert torch.allclose(feats["family_probs"], out["family_logits"].softmax(-1), atol=1e-6)


def test_a_few_steps_lower_the_loss(smoke_cfg):
    torch.manual_seed(0)
    model = SpectrogramClassifier(smoke_cfg)
    x = torch.rand(8, 1, *smoke_cfg.spec_shape) * 2 - 1
    batch = (x, {"pitch": torch.arange(60, 68), "family": torch.arange(8)})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        terms = model.training_losses(batch)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        losses.append(terms["loss"].item())
    assert losses[-1] < losses[0]
    assert {"pitch_acc", "family_acc"} <= set(terms) and 0 <= float(terms["pitch_acc"]) <= 1


def test_augmentation_keeps_shape_and_range_and_is_seeded(smoke_cfg):
    model = SpectrogramClassifier(smoke_cfg)
    x = torch.rand(4, 1, *smoke_cfg.spec_shape) * 2 - 1
    torch.manual_seed(0)
    y = model.augment(x)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    torch.manual_seed(0)
    assert torch.equal(model.augment(x), y)  # seeded by torch's global RNG


def test_fit_writes_a_checkpoint_that_loads_identically(trained):
    cfg, run, model, history = trained
    assert len(history["train"]) == 6 and [r["step"] for r in history["valid"]] == [3, 6]
    assert {"pitch_acc", "family_acc"} <= set(history["valid"][-1])
    assert read_meta(run)["kind"] == "classifier"
    loaded = load_classifier(run, cfg)
    x, _ = classifier_dataset(cfg, "test")
    a, b = classify_spectrograms(model, x), classify_spectrograms(loaded, x)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    # the saved config suffices, and a truncation config is judged by the same classifier
    assert load_classifier(run).trunk_dim == model.trunk_dim
    load_classifier(run, get_config("smoke", {"cmx.mode": "truncate", "tokenizer.codebook_size": 32}))


def test_checkpoint_errors_are_clear(trained, tmp_path):
    cfg, run, _, _ = trained
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_classifier(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="eval.classifier_channels"):
        load_classifier(run, get_config("smoke", {"eval.classifier_channels": 16}))
    with pytest.raises(CheckpointError, match="different model config.*audio.min_db"):
        load_classifier(run, get_config("smoke", {"audio.min_db": -60.0}))


def test_accuracy_report(trained):
    cfg, _, model, _ = trained
    x, labels = classifier_dataset(cfg, "test")
    acc = classifier_accuracy(model, x, labels, batch_size=4)
    assert acc["n"] == len(x) and 0 <= acc["pitch_acc"] <= acc["pitch_within_1"] <= 1
    conf = np.array(acc["confusion_family"])
    assert conf.shape == (11, 11) and conf.sum() == len(x)
    assert np.trace(conf) / len(x) == pytest.approx(acc["family_acc"])
    assert conf.sum(1).tolist() == np.bincount(labels["family"].numpy(), minlength=11).tolist()


def test_waveforms_and_their_spectrograms_get_the_same_features(trained):
    cfg, _, model, _ = trained
    examples = split_examples(cfg, "test")[:5]
    # full-length 4 s clips: classify_waveforms crops them as the dataset does
    waves = np.stack([load_audio(ex.path, cfg.audio.sample_rate) for ex in examples])
    from_audio = classify_waveforms(model, waves, cfg, batch_size=2)
    spec = waveform_to_input(torch.from_numpy(fit_length(waves, cfg.audio.clip_samples)), cfg.audio)
    from_spec = classify_spectrograms(model, spec, batch_size=3)
    for k in from_spec:
        np.testing.assert_allclose(from_audio[k], from_spec[k], atol=1e-5, err_msg=k)
    # ... and the cached dataset holds exactly those spectrograms
    x, _ = classifier_dataset(cfg, "test")
    torch.testing.assert_close(x[:5], spec)


def test_truncation_config_still_gets_full_spectrograms(trained):
    cfg, _, _, _ = trained
    trunc = get_config("smoke", {"data.root": cfg.data.root, "data.cache_dir": cfg.data.cache_dir,
                                 "cmx.mode": "truncate"})
    x, labels = classifier_dataset(trunc, "valid")
    full, _ = classifier_dataset(cfg, "valid")
    assert x.shape == (len(labels["pitch"]), 1, *cfg.spec_shape)
    assert torch.equal(x, full)


def test_bad_inputs_raise_value_error(trained):
    cfg, _, model, _ = trained
    f, t = cfg.spec_shape
    with pytest.raises(ValueError, match="full spectrograms"):
        model(torch.zeros(2, 4, f // 2, t // 2))  # a CMX tensor, not unfolded
    with pytest.raises(ValueError, match="full spectrograms"):
        classify_spectrograms(model, torch.zeros(1, f, t))
    bad = torch.zeros(2, 1, f, t)
    bad[1, 0, 3, 4] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        classify_spectrograms(model, bad)
    waves = np.zeros((2, cfg.audio.clip_samples), dtype=np.float32)
    with pytest.raises(ValueError, match=r"\(B, S\)"):
        classify_waveforms(model, waves[0], cfg)
    with pytest.raises(ValueError, match="min_db"):
        classify_waveforms(model, waves, get_config("smoke", {"audio.min_db": -60.0}))
    waves[0, 10] = np.inf
    with pytest.raises(ValueError, match="NaN"):
        classify_waveforms(model, waves, cfg)
    # silence is a legitimate (bad) generated clip, not an error
    assert classify_waveforms(model, np.zeros((1, 100)), cfg)["family_probs"].shape == (1, 11)


def test_confusion_matrix_plot(trained):
    import matplotlib.pyplot as plt

    from marslib.plotting import plot_confusion_matrix

    cfg, _, model, _ = trained
    acc = classifier_accuracy(model, *classifier_dataset(cfg, "valid"))
    fig, ax = plt.subplots()
    plot_confusion_matrix(ax, acc["confusion_family"], NSYNTH_FAMILIES, "family")
    assert "accuracy" in ax.get_title() and len(ax.get_xticklabels()) == 11
    with pytest.raises(ValueError, match="11 labels"):
        plot_confusion_matrix(ax, np.zeros((3, 3)), NSYNTH_FAMILIES)
    plt.close(fig)
