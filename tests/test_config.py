import json

import pytest

from marslib.config import NSYNTH_FAMILIES, Config, ConfigError, family_vocabulary, get_config, parse_overrides
from marslib.profiles import PROFILES


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_profiles_are_valid_and_consistent(profile):
    cfg = get_config(profile)
    f, t = cfg.spec_shape
    c, fr, tr = cfg.input_shape
    assert (c, fr * cfg.cmx.factor, tr * cfg.cmx.factor) == (cfg.cmx.factor ** 2, f, t)
    assert tuple(cfg.tokenizer.scales[-1]) == cfg.latent_shape


def test_paper_profile_matches_paper_sizes():
    cfg = get_config("paper")
    assert cfg.spec_shape == (512, 512)          # the paper's 512 x 512 spectrogram
    assert cfg.input_shape == (16, 128, 128)     # CMX r = 4
    assert len(cfg.tokenizer.scales) == 10 and cfg.latent_shape == (16, 16)  # VAR's scales


def test_gpu_ci_profile_keeps_the_paper_shapes_on_cuda():
    # .github/workflows/gpu.yml runs every notebook with it: the paper's data shapes, bf16
    # on CUDA, and a rendered dataset of its own (the paper profile reads the real NSynth).
    gpu, paper = get_config("gpu_ci"), get_config("paper")
    assert gpu.device == "cuda"
    assert (gpu.audio, gpu.cmx) == (paper.audio, paper.cmx)
    assert gpu.spec_shape == (512, 512) and gpu.input_shape == (16, 128, 128)
    assert gpu.tokenizer.scales == paper.tokenizer.scales and gpu.latent_shape == (16, 16)
    assert (gpu.tokenizer.codebook_size, gpu.tokenizer.latent_dim) == (4096, 32)
    assert all(t.amp for t in (gpu.train_tokenizer, gpu.train_ar, gpu.train_classifier))
    assert gpu.data.root == "data/mini_nsynth_gpu" != paper.data.root
    assert (gpu.data.render_seconds, gpu.audio.sample_rate) == (4.0, 16000)
    # smaller than the paper where only cost changes
    assert gpu.tokenizer.channels < paper.tokenizer.channels and gpu.ar.width < paper.ar.width
    assert gpu.train_tokenizer.steps < paper.train_tokenizer.steps


def test_unknown_profile_names_the_choices():
    with pytest.raises(ConfigError, match="unknown profile 'laptop'.*course"):
        get_config("laptop")


def test_overrides_apply_and_coerce():
    cfg = get_config("smoke", {"audio.min_db": -60, "data.velocities": [25, 127], "seed": 3})
    assert cfg.audio.min_db == -60.0 and isinstance(cfg.audio.min_db, float)
    assert cfg.data.velocities == (25, 127) and cfg.seed == 3


def test_nested_dict_override():
    cfg = get_config("smoke", {"cmx": {"mode": "truncate"}})
    assert cfg.cmx.mode == "truncate" and cfg.input_shape[0] == 1


@pytest.mark.parametrize("overrides, message", [
    ({"audio.hop_length": 128}, "n_fft .* must be > audio.hop_length"),
    ({"audio.n_frames": 255}, "pad it by 1 to 256"),
    ({"cmx.factor": 3}, "CMX cannot fold"),
    ({"cmx.mode": "crop"}, "cmx.mode"),
    ({"audio.nfft": 512}, "unknown config field 'audio.nfft'"),
    ({"audio.n_fft": "big"}, "expects int"),
    ({"tokenizer.scales": [[1, 1], [4, 16], [2, 8]]}, "must increase"),
    ({"tokenizer.scales": [[1, 1], [2, 8]]}, "must equal the latent grid"),
    ({"data.families": []}, "data.families is empty"),
    ({"data.families": ["kick", ""]}, "must be names"),
    ({"data.families": ["kick", "kick"]}, "lists a value twice"),
    ({"data.velocities": [33]}, "NSynth"),
    ({"device": "tpu"}, "device"),
])
def test_bad_values_raise_clear_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        get_config("smoke", overrides)


def test_parse_overrides_literals_and_strings():
    assert parse_overrides(["audio.n_fft=512", "cmx.mode=truncate", "data.velocities=(25,127)"]) == {
        "audio.n_fft": 512, "cmx.mode": "truncate", "data.velocities": (25, 127)}
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["audio.n_fft"])


def test_json_round_trip():
    cfg = get_config("course", {"seed": 7})
    again = Config.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


def test_family_vocabulary_keeps_nsynth_indices_and_takes_any_class_names():
    assert get_config("smoke").data.family_vocabulary == NSYNTH_FAMILIES            # the default
    assert get_config("smoke", {"data.families": ["string", "keyboard"]}).data.family_vocabulary == NSYNTH_FAMILIES
    kit = get_config("smoke", {"data.families": ["snare", "kick", "hi hat"]}).data
    assert kit.family_vocabulary == ("snare", "kick", "hi hat")                      # labels index these
    assert family_vocabulary(["string", "kick"]) == ("string", "kick")                # not all NSynth's
