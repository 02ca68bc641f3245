"""What every explorer shares: controls on top, then text, an audio player and a figure.

Each explorer is an object with a ``.widget`` to display and an ``.update(...)``
method that the sliders call and that tests (or a notebook cell) can call
directly; ``update`` returns the numbers and the figure it drew, so an explorer
is checked like any other function.  Nothing here needs a browser.

Figures go into an ``Image`` widget (PNG bytes) and audio into an ``HTML`` widget,
not into ``Output`` widgets: headless runners (nbclient/papermill) mimic
``Output`` widgets by sending messages back to the kernel, which can hang
a run (jupyter/nbclient#312), and plain widget values also work outside a kernel.
"""

from __future__ import annotations

import contextlib
import io

from matplotlib.figure import Figure


def _png_bytes(fig: Figure, dpi: int = 80) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


class _Explorer:
    """What every explorer shares: controls on top, then text, an <audio> player and a figure.

    Moving a control calls ``update()``.  ``update`` also moves the controls itself
    when called from code; it does so inside :meth:`_quietly`, so that those moves
    do not trigger a second update.
    """

    def _build(self, controls: list, *rows) -> None:
        """Lay out ``controls`` (one row), extra ``rows``, the info text, player and image; draw once."""
        import ipywidgets as W

        self.info, self.image, self.player = W.HTML(), W.Image(format="png"), W.HTML()  # player: <audio>
        self.widget = W.VBox([W.HBox(controls), *rows, self.info, self.player, self.image])
        self._busy = False
        for control in controls:
            control.observe(self._on_change, names="value")
        self.view = self.update()

    def _on_change(self, _change) -> None:
        if not self._busy:
            self.update()

    @contextlib.contextmanager
    def _quietly(self):
        self._busy = True
        try:
            yield
        finally:
            self._busy = False
