"""Next-scale autoregressive transformer, its raster baseline and sampling (notebook 03)."""

from .model import NextScaleTransformer, block_causal_mask
from .raster import RasterTransformer
from .sample import sample_tokens, tokens_to_audio

__all__ = ["NextScaleTransformer", "RasterTransformer", "block_causal_mask", "sample_tokens", "tokens_to_audio"]
