"""The multi-scale residual VQ tokenizer (notebook 02)."""

from .model import Tokenizer
from .quantizer import MultiScaleQuantizer

__all__ = ["Tokenizer", "MultiScaleQuantizer"]
