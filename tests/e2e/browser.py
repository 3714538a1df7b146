"""A real browser for pages we write: Debian's Chromium, headless (`make test` installs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def chromium() -> str:
    """The browser, or a skip (a failure under `make test`, which installs it)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("TOUCHSTREAM_REQUIRE_BROWSER"):
        pytest.fail("chromium is not installed (make test installs Debian's package)")
    pytest.skip("chromium is not installed: apt-get install chromium")


def render(page: Path, out: Path) -> tuple[str, Path, str]:
    """The DOM as the browser built it, a screenshot, and the browser's log."""
    browser = chromium()
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    url = page.resolve().as_uri()
    dom = subprocess.run(
        [*flags, "--enable-logging=stderr", "--v=0", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    shot = out / "page.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1000,4000", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return dom.stdout, shot, dom.stderr
