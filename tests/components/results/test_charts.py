"""The report's charts: real PNG files, of the realistic run."""

from __future__ import annotations

import struct

from report_inputs import CHARTS, PNG_MAGIC


def test_every_chart_is_a_real_png(report):
    _, out = report
    for name in CHARTS:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, name
    width, height = struct.unpack(">II", (out / "accuracy.png").read_bytes()[16:24])
    assert (width, height) == (770, 495)
