"""vl-convert, the drawer of every chart outside the browser (the PDF report's charts, a chart's PNG download, the
layout tests), with its fonts chosen by vbhc rather than by whatever the host has installed.

vl-convert ships Liberation Sans (the Arial-metric font Vega's "sans-serif" resolves to) in memory, but it loads the
host's fonts first, and a host font of the same family wins: on a machine with fonts-liberation every text Vega
measures and every glyph drawn opened, mapped and unmapped /usr/share/fonts/.../LiberationSans-Regular.ttf again
(~6,000 times for one value-quadrant chart; two thirds of a drawing's CPU went to those system calls, issue 13
item 7), and the charts were drawn with whichever version of the font the host had (1.07 on Debian, 2.00 in
vl-convert). Here vl-convert's font database is built, on first use in the process, from its own Liberation Sans
and DejaVu Sans of vbhc/reports/fonts (the PDF report's font, for any character Liberation Sans lacks): the same
charts on every machine, a third of the CPU.

How: vl-convert builds its font database once per process, at its first drawing, from the fontconfig file that
FONTCONFIG_FILE names (a documented fontconfig variable, which vl-convert's font database reads). `vl_convert()`
names a file that lists only DejaVu's folder for that first drawing and puts the variable back at once, so no other
program started later (a browser under test, a child process) sees it. A process whose vl-convert drew before
(another library called it first) keeps the host's fonts: its charts are the same as before, only slower.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from types import ModuleType
from xml.sax.saxutils import escape

from vbhc.settings import package_data

_LOCK = threading.Lock()
_ready = False

#: A drawing with a text: vl-convert measures it, so its font database is built (from FONTCONFIG_FILE) here.
_FIRST_DRAWING = {"data": {"values": [{}]}, "mark": "text", "encoding": {"text": {"value": "0"}}}


def _fontconfig(folder: Path) -> str:
    """A fontconfig file whose only font folder is `folder`."""
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">\n'
        f"<fontconfig><dir>{escape(str(folder))}</dir></fontconfig>\n"
    )


def vl_convert() -> ModuleType:
    """The vl_convert module, its fonts set (see the module's docstring) before its first drawing in the process.

    Every drawing of vbhc goes through here (imported when first needed: a server's first page draws nothing)."""
    global _ready
    import vl_convert as vlc

    if _ready:
        return vlc
    with _LOCK:
        if _ready:
            return vlc
        try:
            with tempfile.TemporaryDirectory(prefix="vbhc-fonts-") as folder:
                config = Path(folder) / "fonts.conf"
                config.write_text(_fontconfig(package_data("reports", "fonts")), encoding="utf-8")
                _first_drawing(vlc, config)
        except OSError:  # no temporary folder to write in: the host's fonts, as before (slower)
            pass
        _ready = True
    return vlc


def _first_drawing(vlc: ModuleType, config: Path) -> None:
    """vl-convert's first drawing in the process with FONTCONFIG_FILE naming `config`, put back right after."""
    previous = os.environ.get("FONTCONFIG_FILE")
    os.environ["FONTCONFIG_FILE"] = str(config)
    try:
        vlc.vegalite_to_svg(_FIRST_DRAWING)
    finally:
        if previous is None:
            os.environ.pop("FONTCONFIG_FILE", None)
        else:
            os.environ["FONTCONFIG_FILE"] = previous
