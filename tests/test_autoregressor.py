import pytest
import torch

from marslib.autoregressor import NextScaleTransformer, RasterTransformer, block_causal_mask, sample_tokens
from marslib.autoregressor.blocks import sample_logits
from marslib.autoregressor.training import load_ar, parse_family, tokenizer_fingerprint
from marslib.checkpoint import CheckpointError, has_checkpoint, save_checkpoint
from marslib.config import get_config
from marslib.tokenizer import Tokenizer

PITCH, FAMILY = torch.tensor([60, 67, 72]), torch.tensor([4, 8, 0])


def _perturb(model, seed=0):
    """Untrained AdaLN gates are zero (identity blocks); wiggle every weight so tests see real attention."""
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.data += 0.05 * torch.randn(p.shape, generator=g)
    return model


@pytest.fixture(scope="module")
def models():
    cfg = get_config("smoke")
    torch.manual_seed(0)
    return cfg, Tokenizer(cfg).eval(), _perturb(NextScaleTransformer(cfg.ar, cfg.tokenizer)).eval()


def test_block_causal_mask():
    scales = [(1, 1), (1, 2), (2, 2)]
    m = block_causal_mask(scales)
    level = [0, 1, 1, 2, 2, 2, 2]
    for i in range(7):
        for j in range(7):
            assert m[i, j] == (level[j] <= level[i])
    assert m[1, 2] and m[2, 1]          # tokens of one scale see each other
    assert not m[0, 1] and not m[2, 3]  # never a finer scale


def test_token_counts_per_scale(models):
    cfg, _, ar = models
    assert ar.lengths == [h * w for h, w in cfg.tokenizer.scales] and ar.L == sum(ar.lengths) == 1 + 2 + 8 + 16 + 64
    assert [ar.scale_slice(k).stop - ar.scale_slice(k).start for k in range(5)] == ar.lengths
    assert get_config("paper").tokenizer.scales and NextScaleTransformer(
        get_config("smoke").ar, get_config("paper").tokenizer).L == 680


def test_teacher_forced_logits_respect_the_mask(models):
    """Changing scale k's inputs must not change the logits of any coarser scale."""
    cfg, tok, ar = models
    x = torch.rand(3, *cfg.input_shape) * 2 - 1
    tf = tok.teacher_forcing_inputs(tok.encode(x))
    logits = ar(PITCH, FAMILY, tf)
    assert logits.shape == (3, ar.L, cfg.tokenizer.codebook_size)
    tf2 = tf.clone()
    tf2[:, ar.scale_slice(3).start - 1:] += 1.0      # inputs of scales 3 and 4 (tf omits the start token)
    logits2 = ar(PITCH, FAMILY, tf2)
    assert torch.allclose(logits[:, :ar.scale_slice(3).start], logits2[:, :ar.scale_slice(3).start], atol=1e-6)
    assert not torch.allclose(logits[:, ar.scale_slice(3)], logits2[:, ar.scale_slice(3)])


def test_kv_cache_gives_the_same_logits(models):
    _, tok, ar = models
    a, logits_a = sample_tokens(ar, tok, PITCH, FAMILY, seed=3, return_logits=True)
    b, logits_b = sample_tokens(ar, tok, PITCH, FAMILY, seed=3, use_cache=False, return_logits=True)
    for la, lb in zip(logits_a, logits_b):
        assert torch.allclose(la, lb, atol=1e-4)
    assert all(torch.equal(i, j) for i, j in zip(a, b))


def test_sampling_is_seeded_and_valid(models):
    cfg, tok, ar = models
    a = sample_tokens(ar, tok, PITCH, FAMILY, seed=1, top_k=10, top_p=0.9)
    b = sample_tokens(ar, tok, PITCH, FAMILY, seed=1, top_k=10, top_p=0.9)
    c = sample_tokens(ar, tok, PITCH, FAMILY, seed=2, top_k=10, top_p=0.9)
    assert all(torch.equal(i, j) for i, j in zip(a, b))
    assert not all(torch.equal(i, j) for i, j in zip(a, c))
    for idx, (h, w) in zip(a, cfg.tokenizer.scales):
        assert idx.shape == (3, h, w) and idx.min() >= 0 and idx.max() < cfg.tokenizer.codebook_size


def test_cfg_zero_equals_conditional_logits(models):
    cfg, tok, ar = models
    idx, guided = sample_tokens(ar, tok, PITCH, FAMILY, cfg_scale=0.0, seed=0, return_logits=True)
    x_hat_inputs = tok.teacher_forcing_inputs(idx)
    teacher = ar(PITCH, FAMILY, x_hat_inputs)
    assert torch.allclose(torch.cat(guided, 1), teacher, atol=1e-4)


def test_top_k_and_top_p_restrict_the_choice():
    logits = torch.tensor([[[5.0, 4.0, 0.0, -1.0]]]).expand(200, 1, 4)
    g = torch.Generator().manual_seed(0)
    assert set(sample_logits(logits, top_k=2, generator=g).flatten().tolist()) <= {0, 1}
    assert set(sample_logits(logits, top_p=0.5, generator=g).flatten().tolist()) == {0}


def test_raster_baseline_is_causal_and_samples():
    cfg = get_config("smoke")
    torch.manual_seed(0)
    r = _perturb(RasterTransformer(cfg.ar, (2, 4), 16)).eval()
    tokens = torch.randint(16, (2, 8))
    logits = r(PITCH[:2], FAMILY[:2], tokens)
    changed = tokens.clone()
    changed[:, 5] = (changed[:, 5] + 1) % 16
    logits2 = r(PITCH[:2], FAMILY[:2], changed)
    assert torch.allclose(logits[:, :6], logits2[:, :6], atol=1e-6)   # position i sees tokens < i only
    assert not torch.allclose(logits[:, 6:], logits2[:, 6:])
    out = r.sample(PITCH[:2], FAMILY[:2], seed=0)
    assert out.shape == (2, 2, 4) and torch.equal(out, r.sample(PITCH[:2], FAMILY[:2], seed=0))


@pytest.mark.parametrize("pitch, family, message", [
    (torch.tensor([200]), torch.tensor([0]), "MIDI number"),
    (torch.tensor([60]), torch.tensor([11]), "family index"),
    (torch.tensor([60, 61]), torch.tensor([0]), "equal size"),
])
def test_bad_labels(models, pitch, family, message):
    _, tok, ar = models
    with pytest.raises(ValueError, match=message):
        sample_tokens(ar, tok, pitch, family)


def test_unknown_family_name():
    assert parse_family("keyboard") == 4 and parse_family("10") == 10
    with pytest.raises(ValueError, match="unknown instrument family 'kazoo'.*keyboard"):
        parse_family("kazoo")


def test_tokenizer_and_ar_must_match(models, tmp_path):
    cfg, tok, ar = models
    other = Tokenizer(get_config("smoke", {"tokenizer.codebook_size": 32}))
    with pytest.raises(ValueError, match="do not match"):
        sample_tokens(ar, other, PITCH, FAMILY)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_ar(tmp_path)
    save_checkpoint(tmp_path / "tokenizer", other, get_config("smoke", {"tokenizer.codebook_size": 32}),
                    "tokenizer", 1)
    save_checkpoint(tmp_path / "ar", ar, cfg, "ar", 1, made_from=tokenizer_fingerprint(tmp_path / "tokenizer"))
    with pytest.raises(CheckpointError, match="different model config.*codebook_size"):
        load_ar(tmp_path)


def test_raster_baseline_trains_end_to_end(tmp_path):
    from marslib.autoregressor.training import fit_raster

    cfg = get_config("smoke", {"data.root": str(tmp_path / "data"), "data.cache_dir": str(tmp_path / "cache"),
                               "train_tokenizer.steps": 3, "train_ar.steps": 3})
    model, tokenizer, history = fit_raster(cfg, tmp_path / "run", progress=False)
    assert tokenizer.quantizer.scales == [cfg.latent_shape]          # a single-scale VQ-VAE
    assert model.L == cfg.latent_shape[0] * cfg.latent_shape[1] and len(history["train"]) == 3
    assert has_checkpoint(tmp_path / "run" / "raster")
    tokens = model.sample(PITCH[:1], FAMILY[:1])
    assert tokenizer.decode([tokens]).shape == (1, *cfg.input_shape)


@pytest.mark.parametrize("cfg_scale", [1.5, 4.0])
def test_cfg_guided_logits_follow_the_formula(models, cfg_scale):
    """Guided logits at scale k are ``(1 + t_k) * cond - t_k * uncond``, ``t_k = cfg_scale * k / (K - 1)``.

    The conditional and unconditional logits are recomputed here by teacher
    forcing the tokens that sampling chose, once with the labels and once with
    the null class, so a flipped formula or a wrong ramp changes the comparison.
    """
    cfg, tok, ar = models
    idx, guided = sample_tokens(ar, tok, PITCH, FAMILY, cfg_scale=cfg_scale, seed=0, return_logits=True)
    tf = tok.teacher_forcing_inputs(idx)
    with torch.no_grad():
        cond = ar(PITCH, FAMILY, tf)
        uncond = ar(*ar.condition.null(len(PITCH), PITCH.device), tf)
    K = len(ar.scales)
    for k in range(K):
        sl = ar.scale_slice(k)
        c, u = cond[:, sl], uncond[:, sl]
        assert (c - u).abs().max() > 0.1           # the null class really differs, or the check is vacuous
        t = cfg_scale * k / (K - 1)
        assert torch.allclose(guided[k], (1 + t) * c - t * u, atol=1e-4), f"scale {k}, t = {t}"


def test_family_guidance_keeps_the_pitch_in_its_negative_branch(models):
    """``guidance="family"``: guided logits are ``(1 + t) * cond - t * l(pitch, no family)``."""
    cfg, tok, ar = models
    idx, guided = sample_tokens(ar, tok, PITCH, FAMILY, cfg_scale=3.0, seed=0, return_logits=True,
                                guidance="family")
    tf = tok.teacher_forcing_inputs(idx)
    null_family = torch.full_like(FAMILY, ar.condition.null_family)
    with torch.no_grad():
        cond, pitch_only = ar(PITCH, FAMILY, tf), ar(PITCH, null_family, tf)
        joint_null = ar(*ar.condition.null(len(PITCH), PITCH.device), tf)
    K = len(ar.scales)
    for k in range(1, K):
        sl, t = ar.scale_slice(k), 3.0 * k / (K - 1)
        assert torch.allclose(guided[k], (1 + t) * cond[:, sl] - t * pitch_only[:, sl], atol=1e-4)
        assert not torch.allclose(guided[k], (1 + t) * cond[:, sl] - t * joint_null[:, sl], atol=1e-4)


def test_family_dropout_drops_the_family_alone():
    cfg = get_config("smoke", {"ar.cond_dropout": 0.0, "ar.family_dropout": 0.5})
    condition = NextScaleTransformer(cfg.ar, cfg.tokenizer).condition.train()
    pitch, family = torch.full((4000,), 60), torch.full((4000,), 3)
    torch.manual_seed(0)
    kept = condition(pitch, family)
    with torch.no_grad():
        only_pitch = condition.eval()(pitch[:1], torch.tensor([condition.null_family]))
        full = condition(pitch[:1], family[:1])
    dropped = (kept - only_pitch).abs().amax(1) < 1e-6
    assert 0.45 < dropped.float().mean() < 0.55                    # the family alone, half the time
    assert ((kept[~dropped] - full).abs().amax(1) < 1e-6).all()     # otherwise both labels are kept


@pytest.mark.parametrize("overrides, message", [({"ar.guidance": "pitch"}, "ar.guidance must be one of"),
                                                ({"ar.family_dropout": 1.0}, "ar.family_dropout must be"),
                                                ({"ar.dropout": -0.1}, "ar.dropout must be"),
                                                ({"ar.scale_balance": 1.5}, "ar.scale_balance must be in")])
def test_bad_guidance_settings_are_refused(overrides, message):
    from marslib.config import ConfigError
    with pytest.raises(ConfigError, match=message):
        get_config("smoke", overrides)


def test_a_prefix_is_kept_and_the_rest_is_sampled_after_it(models):
    """``prefix`` fixes the first j scales; the later ones are drawn given them (so they change with the prefix)."""
    cfg, tok, ar = models
    real = tok.encode(torch.rand(3, *cfg.input_shape) * 2 - 1)
    free = sample_tokens(ar, tok, PITCH, FAMILY, seed=5)
    for j in (1, 3):
        cont = sample_tokens(ar, tok, PITCH, FAMILY, seed=5, prefix=real[:j])
        assert all(torch.equal(c, r) for c, r in zip(cont[:j], real[:j]))
        assert [c.shape for c in cont] == [f.shape for f in free]
        assert not all(torch.equal(c, f) for c, f in zip(cont[j:], free[j:]))
    _, logits = sample_tokens(ar, tok, PITCH, FAMILY, cfg_scale=0.0, seed=5, prefix=real[:2], return_logits=True)
    cont = sample_tokens(ar, tok, PITCH, FAMILY, cfg_scale=0.0, seed=5, prefix=real[:2])
    teacher = ar(PITCH, FAMILY, tok.teacher_forcing_inputs(cont))  # the logits are those of the kept tokens' prefix
    assert torch.allclose(torch.cat(logits, 1), teacher, atol=1e-4)


@pytest.mark.parametrize("bad", ["all", "shape"])
def test_a_bad_prefix_is_refused(models, bad):
    cfg, tok, ar = models
    real = tok.encode(torch.rand(3, *cfg.input_shape) * 2 - 1)
    prefix = real if bad == "all" else [real[0], real[1][:2]]
    with pytest.raises(ValueError, match="prefix must be token maps of the first j"):
        sample_tokens(ar, tok, PITCH, FAMILY, prefix=prefix)


def test_scale_balance_mixes_the_token_and_the_scale_mean():
    """0: the plain mean over L tokens; 1: the mean of the per-scale means; 0.25: a quarter of the way."""
    cfg, batch = None, None
    losses = {}
    for mode in (0.0, 1.0, 0.25):
        cfg = get_config("smoke", {"ar.scale_balance": mode})
        torch.manual_seed(0)
        tok, ar = Tokenizer(cfg).eval(), _perturb(NextScaleTransformer(cfg.ar, cfg.tokenizer)).eval()
        if batch is None:
            tokens = tok.encode(torch.rand(3, *cfg.input_shape) * 2 - 1)
            batch = (tok.teacher_forcing_inputs(tokens), {"tokens": torch.cat([t.flatten(1) for t in tokens], 1),
                                                          "pitch": PITCH, "family": FAMILY})
        losses[mode] = ar.training_losses(batch)
    t, s, q = losses[0.0], losses[1.0], losses[0.25]
    lengths = torch.tensor([h * w for h, w in cfg.tokenizer.scales], dtype=torch.float)
    per_scale = torch.stack([t[f"ce_{k}"] for k in range(len(lengths))])
    assert torch.allclose(t["loss"], (per_scale * lengths).sum() / lengths.sum(), atol=1e-5)
    assert torch.allclose(s["loss"], per_scale.mean(), atol=1e-5)
    assert not torch.allclose(s["loss"], t["loss"])
    assert torch.allclose(q["loss"], 0.75 * t["loss"] + 0.25 * s["loss"], atol=1e-5)
    assert all(torch.equal(t[f"ce_{k}"], s[f"ce_{k}"]) for k in range(len(lengths)))  # same model, same CE


def test_dropout_acts_in_training_only():
    cfg = get_config("smoke", {"ar.dropout": 0.5})
    torch.manual_seed(0)
    tok, ar = Tokenizer(cfg).eval(), _perturb(NextScaleTransformer(cfg.ar, cfg.tokenizer))
    tf = tok.teacher_forcing_inputs(tok.encode(torch.rand(3, *cfg.input_shape) * 2 - 1))
    ar.condition.dropout = 0.0  # only the blocks' dropout is random here
    ar.eval()
    assert torch.equal(ar(PITCH, FAMILY, tf), ar(PITCH, FAMILY, tf))
    ar.train()
    assert not torch.allclose(ar(PITCH, FAMILY, tf), ar(PITCH, FAMILY, tf))
