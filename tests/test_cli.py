import json

import soundfile as sf
import torch

from marslib.autoregressor import NextScaleTransformer
from marslib.autoregressor.training import tokenizer_fingerprint
from marslib.checkpoint import save_checkpoint
from marslib.cli import main
from marslib.config import get_config
from marslib.tokenizer import Tokenizer


def test_help_and_profiles(capsys):
    assert main(["profiles"]) == 0
    assert "paper" in capsys.readouterr().out


def test_bad_input_is_one_clear_line_and_exit_2(tmp_path, capsys):
    assert main(["train", "tokenizer", "--profile", "laptop"]) == 2
    assert "unknown profile 'laptop'" in capsys.readouterr().err
    assert main(["sample", "--checkpoint", str(tmp_path), "--pitch", "60", "--family", "flute",
                 "--out", str(tmp_path / "o")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_sample_writes_wavs_and_the_request(tmp_path, capsys):
    cfg = get_config("smoke")
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "tokenizer", Tokenizer(cfg), cfg, "tokenizer", 1)
    save_checkpoint(tmp_path / "ar", NextScaleTransformer(cfg.ar, cfg.tokenizer), cfg, "ar", 1,
                    made_from=tokenizer_fingerprint(tmp_path / "tokenizer"))
    out = tmp_path / "samples"
    # The families are the ones the model was trained on (here NSynth's), checked before loading it.
    assert main(["sample", "--checkpoint", str(tmp_path), "--pitch", "60", "--family", "kazoo",
                 "--out", str(out)]) == 2
    assert "unknown instrument family 'kazoo'; choose one of bass, brass" in capsys.readouterr().err
    assert not out.exists()
    assert main(["sample", "--checkpoint", str(tmp_path), "--pitch", "62", "--family", "keyboard",
                 "--n", "2", "--out", str(out)]) == 0
    request = json.loads((out / "request.json").read_text())
    assert request["pitch"] == 62 and request["family"] == "keyboard" and len(request["files"]) == 2
    assert request["status"] == "complete" and request["written"] == request["files"]
    assert request["provenance"]["command"]["argv"] and request["provenance"]["versions"]["torch"]
    assert sorted(p.name for p in out.iterdir()) == sorted(request["files"] + ["request.json"])  # no temp files
    for name in request["files"]:
        info = sf.info(out / name)
        assert info.samplerate == 16000 and info.frames == cfg.audio.clip_samples
