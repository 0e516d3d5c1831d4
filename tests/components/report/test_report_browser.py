"""report.html of a 3-seed run, opened in a real headless browser (Debian's chromium, driven by Playwright).

Playwright's own browser builds cannot be downloaded here, so it drives the
system's chromium. A missing chromium or Playwright fails the test with the
command that installs it: a report nobody checked in a browser is not done.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import CHROMIUM_FLAGS, chromium_path, open_in_chromium
from report_inputs import CHARTS, SETTINGS, STEP_COST, VARIANTS, make_run, realistic_run

from optbench.components.report.report import build_report


@pytest.fixture(scope="module")
def report_html(tmp_path_factory, real_digits) -> Path:
    out = tmp_path_factory.mktemp("browser") / "report"
    histories, summary, stats, predictions = realistic_run(real_digits[1])
    build_report(histories, summary, stats, SETTINGS, str(out), predictions=predictions, step_cost=STEP_COST)
    return out / "report.html"


def test_report_loads_without_errors_and_every_image_renders(report_html, tmp_path):
    page = open_in_chromium(report_html, screenshot=tmp_path / "report.png")
    assert page["ok"] and page["problems"] == [] and page["outside_requests"] == []
    assert len(page["images"]) == len(CHARTS)
    for image in page["images"]:
        assert image["complete"] and image["width"] > 0 and image["decoded"], image
    assert {i["alt"] for i in page["images"]} >= {
        "Validation accuracy",
        "Validation loss",
        "Validation accuracy against training cost",
        "Training cost and optimizer memory",
        "Confusion matrices of the best and the worst optimizer",
        "Test accuracy per class",
    }
    assert page["title"] == "Optimizer comparison: cnn (1,387,594 parameters) on MNIST (suite seed-004)"
    assert "no significant difference between adam and rmsprop" in page["verdict"]
    assert (tmp_path / "report.png").stat().st_size > 100_000  # a full page was drawn


def test_the_check_catches_a_broken_image(report_html, tmp_path):
    """The same check on a copy whose first chart is not a PNG at all (as a wrong encoder would leave it)."""
    html = report_html.read_text()
    broken = re.sub(r'src="data:image/png;base64,[^"]*"', 'src="data:image/png;base64,bm90IGEgcG5n"', html, count=1)
    assert broken != html
    (tmp_path / "broken.html").write_text(broken)
    images = open_in_chromium(tmp_path / "broken.html")["images"]
    assert [i["width"] > 0 and i["decoded"] for i in images] == [False] + [True] * (len(CHARTS) - 1)


# Variant names as a shared bucket or a colleague's run folder could carry them: markup that would run.
HOSTILE = {"adam": "<img src=x onerror=window.__pwned=1>", "rmsprop": "<script>window.__pwned=2</script>"}


def rendered_in_chromium(page_path: Path) -> dict:
    """What a reader of `page_path` gets: whether any injected script ran, the visible text, requests made."""
    from playwright.sync_api import sync_playwright

    requests = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            return {
                "pwned": page.evaluate("window.__pwned === undefined ? null : window.__pwned"),
                "text": page.inner_text("body"),
                "elements": page.evaluate("document.querySelectorAll('script, img:not([src^=\"data:\"])').length"),
                "outside_requests": [u for u in requests if not u.startswith("data:") and u != page.url],
            }
        finally:
            browser.close()


def test_markup_in_variant_names_and_settings_renders_as_text(tmp_path, real_digits):
    """In the run report and in a trend across runs, names a user chose are shown, never run."""
    from optbench.components.history.trends import build_trend_report
    from optbench.layout import read_run

    variants = {HOSTILE.get(name, name): spec for name, spec in VARIANTS.items()}
    config = {"suite": "<b>bold</b>", "epochs": 6}
    first = make_run(tmp_path, "20261101-060000-aaaaaa", real_digits[1], 0.0, 1.0, variants, config)
    second = make_run(tmp_path, "20261108-060000-bbbbbb", real_digits[1], 0.001, 0.8, variants, config)
    build_trend_report([read_run(first), read_run(second)], str(tmp_path / "trend"))
    for page_path in (first / "report" / "report.html", tmp_path / "trend" / "trend.html"):
        page = rendered_in_chromium(page_path)
        assert page["pwned"] is None and page["elements"] == 0 and page["outside_requests"] == [], page_path
        for name in HOSTILE.values():
            assert name in page["text"], f"{name} is not shown as text in {page_path}"
