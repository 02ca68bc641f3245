"""ipywidgets explorers for the notebooks (sliders, figures, audio players).

Each explorer has a ``.widget`` to display and an ``.update(...)`` that returns
what it computed and drew, so tests call it like any other function (no browser).

One module per explorer, in notebook order::

    explorer.py        what every explorer shares (layout, quiet updates, PNG bytes)
    stft_cmx.py        stft_cmx_explorer: n_fft, hop and CMX r sliders             01
    scale_scrubber.py  scale_scrubber: a clip rebuilt from its first k scales      02
    guidance.py        cfg_explorer: classifier-free guidance scale, pitch, family  03

Import from here (``from marslib.widgets import stft_cmx_explorer``).
"""

from .guidance import CFGExplorer, CFGView, cfg_explorer
from .scale_scrubber import ScaleScrubber, ScaleScrubView, scale_scrubber
from .stft_cmx import ExplorerView, STFTCMXExplorer, stft_cmx_explorer

__all__ = ["ExplorerView", "STFTCMXExplorer", "stft_cmx_explorer",
           "ScaleScrubView", "ScaleScrubber", "scale_scrubber",
           "CFGView", "CFGExplorer", "cfg_explorer"]
