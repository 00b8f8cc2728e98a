"""The HTML report: its content, and that headless Chromium renders it with no console message.

The pages come from ten days of an in-memory policy history (tests/report/history.py); screenshots
go to .local/artifacts/ (and the test's tmp dir) for people to look at.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from shared.report.gather import Reports
from shared.report.page import policy_page, session_page
from shared.report.prices import load_prices
from tests.report import browser
from tests.report.history import NOW, POLICY_ID, FixedClock, History, build_history

ARTIFACTS = Path(__file__).resolve().parents[2] / ".local" / "artifacts"


@pytest.fixture(scope="module")
def history() -> History:
    return build_history()


@pytest.fixture(scope="module")
def reports(history: History) -> Reports:
    return Reports(history.catalog, history.policies, load_prices(), FixedClock(NOW))


class _Text(HTMLParser):
    """The page's visible text, its tags and every URL-bearing attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [value or "" for name, value in attrs if name in ("src", "href", "action", "srcset")]

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.text.append(data.strip())


def _parsed(page: str) -> _Text:
    parser = _Text()
    parser.feed(page)
    return parser


def test_the_session_report_shows_results_charts_rpo_and_cost(reports: Reports, history: History) -> None:
    session = history.sessions[-1]
    page = session_page(reports.session_report(session.session_id))
    parsed = _parsed(page)
    text = " | ".join(parsed.text)
    assert f"Session {session.session_id}" in text
    for expected in ("prod/web-1", "prod/web-2", "prod/sales", "Failed", "quota exceeded", "3.0 GiB", "120.0 MiB"):
        assert expected in text, expected
    assert "6.4 MiB/s" in text  # the database: 3 GiB in 8 minutes
    assert parsed.tags.count("svg") == 2 and parsed.tags.count("rect") >= 2 * len(history.sessions)
    assert "RPO compliance" in text and page.count(">missed</span>") == 1 and page.count(">within</span>") == 4
    assert "Estimated monthly cost" in text and "USD" in text and "2026-11-25" in text
    assert all(url.startswith("data:") for url in parsed.urls), parsed.urls  # nothing to fetch
    assert "script" not in parsed.tags


def test_the_policy_report_lists_its_sessions(reports: Reports, history: History) -> None:
    page = policy_page(reports.policy_report(POLICY_ID))
    text = " | ".join(_parsed(page).text)
    assert "Policy prod-vms" in text and "production web tier and its database" in text
    assert all(session.session_id in text for session in history.sessions)
    assert "4 of 5" in text  # RPO compliant


def test_catalog_text_is_escaped() -> None:
    history = build_history(days=2)
    hostile = replace(history.sessions[-1], reason="<script>alert(1)</script>", session_id="prod-vms@evil")
    history.catalog.save_session(hostile)
    reports = Reports(history.catalog, history.policies, load_prices(), FixedClock(NOW))
    page = session_page(reports.session_report("prod-vms@evil"))
    assert "<script>" not in page and "&lt;script&gt;" in page


@pytest.mark.skipif(not browser.available(), reason="no /usr/bin/chromium: `make setup` installs it as root")
def test_chromium_renders_the_reports_with_an_empty_console(reports: Reports, history: History, tmp_path: Path) -> None:
    pages = {
        "report-session": session_page(reports.session_report(history.sessions[-1].session_id)),
        "report-policy": policy_page(reports.policy_report(POLICY_ID)),
    }
    for name, html in pages.items():
        path = tmp_path / f"{name}.html"
        path.write_text(html, encoding="utf-8")
        rendered = browser.render(path)
        assert rendered.console == [], rendered.console
        assert "RPO compliance" in rendered.dom and "Estimated monthly cost" in rendered.dom
        assert len(re.findall(r"<rect ", rendered.dom)) >= len(history.sessions)
        shot = tmp_path / f"{name}.png"
        assert browser.screenshot(path, shot) == []
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, ARTIFACTS / shot.name)


@pytest.mark.skipif(not browser.available(), reason="no /usr/bin/chromium: `make setup` installs it as root")
def test_the_console_check_sees_what_a_broken_page_does(tmp_path: Path) -> None:
    """The control: an external image and a script are refused, and the console says so."""
    page = session_page_like_with(tmp_path, "<img src='http://127.0.0.1:9/x.png'><script>console.error('x')</script>")
    console = browser.render(page).console
    assert len(console) == 2 and any("Content Security Policy" in line for line in console), console


def session_page_like_with(tmp_path: Path, extra: str) -> Path:
    history = build_history(days=2)
    reports = Reports(history.catalog, history.policies, load_prices(), FixedClock(NOW))
    html = session_page(reports.session_report(history.sessions[-1].session_id)).replace("</main>", extra + "</main>")
    path = tmp_path / "broken.html"
    path.write_text(html, encoding="utf-8")
    return path
