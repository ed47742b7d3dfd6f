"""vbhc.drawing: vl-convert draws every chart with the fonts vbhc chooses, the same whatever fonts the host has."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fresh_process import run_json
from vbhc.drawing import _fontconfig
from vbhc.settings import package_data

pytest.importorskip("vl_convert")

#: Long category names on the y axis: Vega measures them, and the chart grows by their width.
SPEC = {
    "data": {"values": [{"unit": f"Universitair Medisch Centrum {name}", "n": n} for name, n in (("A", 3), ("B", 5))]},
    "mark": "bar",
    "encoding": {"y": {"field": "unit", "type": "nominal"}, "x": {"field": "n", "type": "quantitative"}},
}

#: One process's first drawing: vl-convert reads the fonts once per process, so each case runs in a fresh one.
DRAW = """
import json, os, sys
import vl_convert
from vbhc.drawing import vl_convert as configured
vlc = configured() if sys.argv[1] == "vbhc" else vl_convert
print(json.dumps({"svg": vlc.vegalite_to_svg(json.loads(sys.argv[2])), "env": os.environ.get("FONTCONFIG_FILE")}))
"""


def _host(folder: Path, fonts: Path) -> Path:
    """A host whose only fonts are those in `fonts` (a fontconfig file naming that folder)."""
    config = folder / f"{fonts.name}.conf"
    config.write_text(_fontconfig(fonts), encoding="utf-8")
    return config


def _draw(how: str, host: Path) -> dict:
    return run_json(DRAW, how, json.dumps(SPEC), env={"FONTCONFIG_FILE": str(host)})


def test_a_chart_is_drawn_the_same_whatever_fonts_the_host_has(tmp_path):
    """A host with a font of the family Vega's "sans-serif" resolves to (Liberation Sans) drew every chart with it,
    opening its file for every glyph measured, and another version of it drew other widths: vbhc's drawings use
    vl-convert's own copy (vbhc.drawing), on a host with a wider "Liberation Sans" as on one without any font, and
    the host's FONTCONFIG_FILE is put back for every program started afterwards."""
    from fontTools.ttLib import TTFont

    wide = tmp_path / "wide"  # DejaVu Sans (wider letters) named Liberation Sans, as a host might install it
    wide.mkdir()
    font = TTFont(package_data("reports", "fonts", "DejaVuSans.ttf"))
    for record in font["name"].names:
        if record.nameID in (1, 4, 16):
            record.string = "Liberation Sans"
        elif record.nameID == 6:
            record.string = "LiberationSans"
    font.save(wide / "LiberationSans-Regular.ttf")
    none = tmp_path / "none"
    none.mkdir()
    wide_host, bare_host = _host(tmp_path, wide), _host(tmp_path, none)

    as_the_host = _draw("vl-convert", wide_host)["svg"], _draw("vl-convert", bare_host)["svg"]
    assert as_the_host[0] != as_the_host[1], "expected the host's font to change vl-convert's own drawing"
    on_wide, on_bare = _draw("vbhc", wide_host), _draw("vbhc", bare_host)
    assert on_wide["svg"] == on_bare["svg"] == as_the_host[1]
    assert on_wide["env"] == str(wide_host) and on_bare["env"] == str(bare_host)
