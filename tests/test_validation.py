"""Input validation at the edges: every bad input ends in one clear error, nothing half-written.

Sampling options, examples.json entries, truncated or short wavs, corrupt feature
caches and the ``mars`` CLI.  Everything writes under ``tmp_path``.
"""

from __future__ import annotations

import math
import re

import pytest
import torch

from marslib.autoregressor import NextScaleTransformer, RasterTransformer, sample_tokens
from marslib.autoregressor.blocks import sample_logits
from marslib.cli import main
from marslib.config import ConfigError, get_config
from marslib.tokenizer import Tokenizer

PITCH, FAMILY = torch.tensor([60]), torch.tensor([4])


# ---------------------------------------------------------------------------
# Sampling options
# ---------------------------------------------------------------------------

BAD_SAMPLING = [  # (keyword, value, what the message says)
    ("temperature", 0.0, "temperature must be a number > 0, got 0.0"),
    ("temperature", -1.0, "temperature must be a number > 0, got -1.0"),
    ("temperature", math.nan, "temperature must be a number > 0, got nan"),
    ("top_k", -1, "top_k must be a whole number >= 0, got -1"),
    ("top_k", 2.5, "top_k must be a whole number >= 0, got 2.5"),
    ("top_p", 5.0, "top_p must be a probability mass in [0, 1], got 5.0"),
    ("top_p", -0.1, "top_p must be a probability mass in [0, 1], got -0.1"),
    ("cfg_scale", -1.0, "cfg_scale must be a finite number >= 0, got -1.0"),
    ("cfg_scale", math.inf, "cfg_scale must be a finite number >= 0, got inf"),
]


@pytest.fixture(scope="module")
def tiny_models():
    cfg = get_config("smoke")
    torch.manual_seed(0)
    return Tokenizer(cfg).eval(), NextScaleTransformer(cfg.ar, cfg.tokenizer).eval()


@pytest.mark.parametrize("key, value, message", BAD_SAMPLING)
def test_sample_tokens_refuses_bad_options(tiny_models, key, value, message):
    tok, ar = tiny_models
    with pytest.raises(ConfigError, match=re.escape(message)):
        sample_tokens(ar, tok, PITCH, FAMILY, **{key: value})


@pytest.mark.parametrize("key, value, message", BAD_SAMPLING)
def test_raster_sample_refuses_bad_options(key, value, message):
    cfg = get_config("smoke")
    raster = RasterTransformer(cfg.ar, (1, 2), 8)
    with pytest.raises(ConfigError, match=re.escape(message)):
        raster.sample(PITCH, FAMILY, **{key: value})


@pytest.mark.parametrize("key, value, message", [b for b in BAD_SAMPLING if b[0] != "cfg_scale"])
def test_sample_logits_refuses_bad_options(key, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        sample_logits(torch.zeros(1, 2, 8), **{key: value})


@pytest.mark.parametrize("key, value, message", [b for b in BAD_SAMPLING if b[1] != 2.5])  # 2.5: not an int
def test_config_refuses_bad_sampling_fields(key, value, message):
    with pytest.raises(ConfigError, match=re.escape("ar." + message)):
        get_config("smoke", {f"ar.{key}": value})


def test_edge_values_of_the_sampling_options_are_accepted(tiny_models):
    tok, ar = tiny_models
    get_config("smoke", {"ar.top_p": 1.0, "ar.top_k": 0, "ar.cfg_scale": 0.0, "ar.temperature": 0.5})
    sample_tokens(ar, tok, PITCH, FAMILY, top_p=1.0, top_k=0, cfg_scale=0.0, temperature=0.5)


def test_mars_sample_refuses_bad_options_before_loading(tmp_path, capsys):
    # No checkpoint exists: the options are checked first, so that is not what is reported.
    args = ["sample", "--checkpoint", str(tmp_path), "--pitch", "60", "--family", "flute",
            "--out", str(tmp_path / "o")]
    assert main(args + ["--temperature", "-1", "--top-p", "5"]) == 2
    assert capsys.readouterr().err == ("error: --temperature must be a number > 0, got -1.0 "
                                       "(1 = the model's own distribution, lower = safer, higher = wilder)\n")
    assert main(args + ["--top-p", "5"]) == 2
    assert capsys.readouterr().err == "error: --top-p must be a probability mass in [0, 1], got 5.0 (0 = off)\n"
    assert main(args + ["--top-k", "-3"]) == 2
    assert capsys.readouterr().err == "error: --top-k must be a whole number >= 0, got -3 (0 = off)\n"
    assert main(args + ["--cfg", "-2"]) == 2
    assert capsys.readouterr().err == "error: --cfg must be a finite number >= 0, got -2.0 (0 = no guidance)\n"
    assert not (tmp_path / "o").exists()
