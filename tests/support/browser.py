"""Headless Chromium for the console's browser tests: Debian's `chromium` (installed by the
Makefile), driven by Playwright. Playwright never downloads a browser of its own here."""

from __future__ import annotations

import contextlib
import shutil
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import async_playwright

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from playwright.async_api import Browser, ViewportSize

CHROMIUM = "/usr/bin/chromium"
# No sandbox: the tests run as root. The rest keeps Chromium off the network it cannot reach.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
FAKE_MICROPHONE = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
PHONE: ViewportSize = {"width": 360, "height": 740}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}


def chromium() -> str:
    found = shutil.which("chromium") or CHROMIUM
    if not shutil.which(found):
        # Never skip: a browser test that silently does not run proves nothing.
        pytest.fail("chromium is not installed (apt-get install chromium); make test installs it")
    return found


@contextlib.asynccontextmanager
async def launched(
    *, microphone: bool = False, speech: Path | None = None
) -> AsyncIterator[Browser]:
    """Chromium; with `microphone`, its fake microphone (a tone, or the WAV file `speech`)
    granted without asking."""
    args = [*ARGS, *(FAKE_MICROPHONE if microphone else [])]
    if microphone and speech is not None:
        args.append(f"--use-file-for-fake-audio-capture={speech}")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium(), args=args)
        try:
            yield browser
        finally:
            await browser.close()
