import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from marslib.audio import (AudioError, denormalise, griffin_lim, input_to_waveform, load_audio,
                           magnitude_spectrogram, normalise, stft, waveform_to_input, write_wav)
from marslib.config import get_config
from marslib.metrics import spectral_convergence

STFT_TOLERANCE = 1e-5  # max |difference| relative to the largest magnitude
GL_FACTOR = 1.5        # our spectral convergence may be at most this times librosa's


@pytest.mark.parametrize("n_fft, hop", [(128, 32), (256, 64), (1024, 128), (512, 100)])
def test_stft_matches_librosa(note, n_fft, hop):
    ours = stft(note, n_fft, hop)[0].numpy()
    ref = librosa.stft(note, n_fft=n_fft, hop_length=hop)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() / np.abs(ref).max() < STFT_TOLERANCE


def test_stft_is_batched(note):
    batch = torch.stack([torch.from_numpy(note), torch.from_numpy(note[::-1].copy())])
    out = stft(batch, 256, 64)
    assert torch.allclose(out[1], stft(note[::-1].copy(), 256, 64)[0])


def test_magnitude_shape_and_full_scale_sine():
    cfg = get_config("course").audio
    t = np.arange(cfg.clip_samples) / cfg.sample_rate
    # a bin-centred full-scale sine peaks at exactly 1.0 (0 dB)
    sine = np.sin(2 * np.pi * (20 * cfg.sample_rate / cfg.n_fft) * t).astype(np.float32)
    mag = magnitude_spectrogram(sine, cfg)
    assert mag.shape == (1, cfg.n_bins, cfg.n_frames)
    assert mag[0, :, 4:-4].max().item() == pytest.approx(1.0, abs=1e-3)


def test_normalise_range_and_exact_inverse(note):
    cfg = get_config("course").audio
    mag = magnitude_spectrogram(note, cfg)
    x = normalise(mag, cfg)
    assert x.min() >= -1 and x.max() <= 1
    inside = mag > 10 ** (cfg.min_db / 20)
    back = denormalise(x, cfg)
    assert torch.allclose(back[inside], mag[inside], rtol=1e-5)
    assert torch.allclose(normalise(back, cfg), x, atol=1e-6)


def test_waveform_to_input_shape(note):
    cfg = get_config("smoke").audio
    x = waveform_to_input(torch.from_numpy(note[: cfg.clip_samples])[None], cfg)
    assert x.shape == (1, 1, cfg.n_bins, cfg.n_frames)


def test_griffin_lim_matches_librosa_on_a_real_note():
    from marslib.data.render import render_note
    y = render_note(program=0, pitch=60, velocity=100, sample_rate=16000, seconds=1.0, note_seconds=0.8)
    n_fft, hop, iters = 256, 64, 32
    target = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop))

    def sc(wave):
        est = np.abs(librosa.stft(wave, n_fft=n_fft, hop_length=hop))
        return spectral_convergence(torch.from_numpy(target)[None], torch.from_numpy(est)[None]).item()

    ref = np.mean([sc(librosa.griffinlim(target, n_iter=iters, hop_length=hop, n_fft=n_fft,
                                         length=len(y), random_state=s)) for s in range(3)])
    ours = np.mean([sc(griffin_lim(torch.from_numpy(target)[None], n_fft, hop, n_iter=iters,
                                   length=len(y), seed=s)[0].numpy()) for s in range(3)])
    print(f"spectral convergence after {iters} iterations: ours {ours:.4f}, librosa {ref:.4f}")
    assert ours < GL_FACTOR * ref
    assert ours < 0.2


def test_griffin_lim_is_batched_and_seeded(note):
    spec = stft(np.stack([note, note * 0.5]), 256, 64).abs()
    a = griffin_lim(spec, 256, 64, n_iter=4, seed=1)
    b = griffin_lim(spec, 256, 64, n_iter=4, seed=1)
    assert a.shape == (2, 64 * (spec.shape[-1] - 1)) and torch.equal(a, b)


def test_input_to_waveform_round_trip(note):
    cfg = get_config("smoke").audio
    clip = torch.from_numpy(note[: cfg.clip_samples])[None]
    wave = input_to_waveform(waveform_to_input(clip, cfg), cfg, n_iter=32)
    assert wave.shape == clip.shape
    sc = spectral_convergence(magnitude_spectrogram(clip, cfg), magnitude_spectrogram(wave, cfg))
    assert sc.item() < 0.3


def test_griffin_lim_rejects_bad_input():
    with pytest.raises(AudioError, match="expects"):
        griffin_lim(torch.ones(1, 10, 5), 256, 64)
    with pytest.raises(AudioError, match="NaN"):
        griffin_lim(torch.full((1, 129, 5), float("nan")), 256, 64)


# --- loading and writing -------------------------------------------------------------

def test_load_resamples_and_mixes_to_mono(tmp_path, note):
    path = tmp_path / "stereo_22k.wav"
    sf.write(path, np.stack([note, note], axis=1), 22050)
    y = load_audio(path, 16000)
    assert y.ndim == 1 and y.dtype == np.float32
    assert abs(len(y) - round(len(note) * 16000 / 22050)) <= 1


def test_wrong_rate_without_resampling_is_an_error(tmp_path, note):
    path = tmp_path / "n.wav"
    sf.write(path, note, 22050)
    with pytest.raises(AudioError, match="22050 Hz but 16000 Hz"):
        load_audio(path, 16000, resample=False)


@pytest.mark.parametrize("content, message", [
    (np.zeros(0, np.float32), "empty"),
    (np.zeros(1000, np.float32), "silent"),
    (np.full(1000, 1e-6, np.float32), "silent"),
])
def test_bad_audio_files(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    sf.write(path, content, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=message):
        load_audio(path, 16000)


def test_nan_audio_file(tmp_path):
    path = tmp_path / "nan.wav"
    y = np.full(1000, 0.1, np.float32)
    y[10] = np.nan
    sf.write(path, y, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(path, 16000)


def test_corrupt_and_missing_files(tmp_path):
    path = tmp_path / "corrupt.wav"
    path.write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(AudioError, match="could not decode"):
        load_audio(path, 16000)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_audio(tmp_path / "nope.wav", 16000)


def test_write_wav_refuses_bad_audio_and_leaves_nothing(tmp_path, note):
    with pytest.raises(AudioError, match="NaN"):
        write_wav(tmp_path / "x.wav", np.full(100, np.nan), 16000)
    with pytest.raises(AudioError, match="mono"):
        write_wav(tmp_path / "x.wav", np.ones((2, 2, 100)), 16000)
    assert list(tmp_path.iterdir()) == []
    out = write_wav(tmp_path / "sub" / "ok.wav", note, 16000)
    back, sr = sf.read(out)
    assert sr == 16000 and np.abs(back - note).max() < 1e-4
