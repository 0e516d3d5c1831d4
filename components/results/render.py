"""Jinja rendering shared by the run report and the trend report (templates/).

HTML is autoescaped; Markdown has no autoescape, so every free-text value
goes through the `md` filter, which keeps it from becoming raw HTML or
breaking a table row. Figures are data: URIs in HTML (the page is one
self-contained file) and file names in Markdown (the PNGs lie beside it).
"""

from __future__ import annotations

import base64

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

_ENV = Environment(
    loader=PackageLoader("optbench.components.results", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False, default=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_MD_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "\r": " ", "\n": " "})
_ENV.filters["md"] = lambda s: str(s).translate(_MD_ESCAPES)


def figure(file: str, title: str, caption: str, png: bytes) -> dict:
    """A chart as the templates show it: written as `file`, inlined in HTML as a data: URI."""
    return {
        "file": file,
        "title": title,
        "caption": caption,
        "png": png,
        "data_uri": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
    }


def render(template: str, context: dict, figures: dict[str, list[dict]], inline: bool) -> str:
    """Render `template` with `context` plus `figures` (section -> [{file, title, caption, data_uri}])."""
    shown = {
        section: [
            {"title": f["title"], "caption": f["caption"], "src": f["data_uri"] if inline else f["file"]} for f in items
        ]
        for section, items in figures.items()
    }
    return _ENV.get_template(template).render(**context, figures=shown)
