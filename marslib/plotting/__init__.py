"""Figures for the notebooks and the report (matplotlib; nothing here calls ``plt.show``).

Conventions: spectrograms with frequency upward, axes in Hz and seconds, colour
bars in dB or normalised units.  Every function draws on an ``Axes`` it is given,
or returns a new ``Figure``; :func:`save_figure` writes it.

One module per topic, in notebook order::

    common.py          save_figure, FigureSaver, the colour map      every notebook
    spectrogram.py     spectrogram, waveform, CMX channels, chessboard    01
    tokenizer.py       token pyramid, training curves, codebook usage     02
    autoregression.py  attention mask, transformer training curves        03
    timbre.py          family grid, timbre stages (marslib.study)     02, 03
    evaluation.py      confusion matrix, evaluation bars              04, report

Import from here (``from marslib.plotting import plot_spectrogram``); the modules
are where to read the code.
"""

from .autoregression import plot_ar_history, plot_attention_mask
from .common import SPEC_CMAP, FigureSaver, save_figure
from .evaluation import EVALUATION_PANELS, plot_confusion_matrix, plot_evaluation_bars
from .spectrogram import chessboard_colors, plot_chessboard, plot_cmx_channels, plot_spectrogram, plot_waveform
from .timbre import plot_family_grid, plot_timbre_stages
from .tokenizer import plot_codebook_usage, plot_scale_pyramid, plot_training_curves

__all__ = ["SPEC_CMAP", "FigureSaver", "save_figure",
           "plot_spectrogram", "plot_waveform", "chessboard_colors", "plot_cmx_channels", "plot_chessboard",
           "plot_scale_pyramid", "plot_training_curves", "plot_codebook_usage",
           "plot_attention_mask", "plot_ar_history",
           "plot_family_grid", "plot_timbre_stages",
           "plot_confusion_matrix", "EVALUATION_PANELS", "plot_evaluation_bars"]
