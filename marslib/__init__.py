"""marslib: a readable reproduction of MARS (arXiv 2509.26007).

MARS generates audio by next-scale autoregression over multi-channel, CMX-folded
magnitude spectrograms.  The package follows the data flow::

    audio.py  -> waveform <-> normalised log-magnitude (B, 1, F, T), Griffin-Lim
    cmx.py    -> (B, 1, F, T) <-> (B, r^2, F/r, T/r) (and the truncation baseline)
    data/     -> mini-NSynth renderer, NSynth reader, cached torch Dataset
    config.py -> one Config object, three profiles (smoke / course / paper)

Tensor letters used in names and docstrings throughout (as VAR does):

    B batch       C channels      F frequency bins    T frames
    r CMX factor  K scales        V vocabulary size   D code dimension
    L tokens      h, w  one scale's grid (lower case = per-scale sizes)
"""

from .config import Config, get_config

__all__ = ["Config", "get_config"]
__version__ = "0.1.0"
