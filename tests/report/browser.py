"""Headless Chromium (Debian's package) for report tests: render a page, collect its console, screenshot.

Console messages come from Chromium's own log (``--enable-logging=stderr``): every message a page
writes to the console, including the ones Chromium writes for a refused request or script, is a
``CONSOLE`` line there.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--disable-dev-shm-usage",  # containers often give /dev/shm only 64 MiB
    "--enable-logging=stderr",
    "--v=0",
)
_CONSOLE = re.compile(r":CONSOLE[^\]]*\]\s*(.*)")


@dataclass(frozen=True)
class Rendered:
    dom: str
    console: list[str]


def available() -> bool:
    return CHROMIUM.exists() or shutil.which("chromium") is not None


def _run(page: Path, *mode: str) -> tuple[str, list[str]]:
    program = str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium"))
    with tempfile.TemporaryDirectory(prefix="bulwark-chromium-") as profile:
        done = subprocess.run(
            [program, *_FLAGS, f"--user-data-dir={profile}", *mode, page.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    console = [m.group(1) for line in done.stderr.splitlines() if (m := _CONSOLE.search(line))]
    return done.stdout, console


def render(page: Path) -> Rendered:
    """The DOM after loading ``page``, and what it wrote to the console."""
    dom, console = _run(page, "--dump-dom")
    return Rendered(dom, console)


def screenshot(page: Path, out: Path, *, width: int = 1280, height: int = 2200) -> list[str]:
    """A PNG of ``page`` at ``out``; returns the console messages of that load too."""
    out.parent.mkdir(parents=True, exist_ok=True)
    _, console = _run(page, f"--window-size={width},{height}", f"--screenshot={out.resolve()}")
    assert out.exists() and out.stat().st_size > 10_000, out
    return console
