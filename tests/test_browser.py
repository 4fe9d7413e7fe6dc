"""One real-browser run: the Streamlit server, Debian's Chromium and Playwright, end to end.

Open Train, shorten the run, Start, wait for the fixed-noise grid, switch pages and come
back to the same running job, open and close a second tab on it, then Stop, and open the
Latent space page on the stopped run. The server log must stay free of tracebacks
and of Streamlit's "missing ScriptRunContext" warning (a thread calling st.*).

Skipped where Chromium is not installed, unless DCGAN_STUDIO_REQUIRE_BROWSER=1 (CI sets
it), in which case a missing browser fails the test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.runs import RUNS_DIR_ENV

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_BROWSER_ENV = "DCGAN_STUDIO_REQUIRE_BROWSER"
SERVER_START_TIMEOUT_SEC = 90
GRID_TIMEOUT_MS = 240_000

if not CHROMIUM.exists() and os.environ.get(REQUIRE_BROWSER_ENV) != "1":
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(tmp_path, isolated_runs_dir):
    """A real `streamlit run dashboard.py` on a free port; yields (url, log path)."""
    port = free_port()
    log_path = tmp_path / "server.log"
    environment = {**os.environ, RUNS_DIR_ENV: str(isolated_runs_dir), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [
        sys.executable, "-m", "streamlit", "run", "dashboard.py",
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]  # fmt: skip
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=REPOSITORY_ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_SEC
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the server did not start:\n{log_path.read_text()}")
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}", log_path
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def set_number(page, label: str, value: int) -> None:
    field = page.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Enter")
    page.wait_for_timeout(500)


def test_a_user_starts_training_in_chromium_sees_faces_switches_pages_and_stops(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, log_path = server
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        main = page.get_by_test_id("stMainBlockContainer")  # not Streamlit's own header buttons
        expect(page.get_by_role("heading", name="DCGAN Studio")).to_be_visible(timeout=60_000)
        page.get_by_role("link", name="Train").first.click()
        expect(page.get_by_role("heading", name="Train")).to_be_visible(timeout=60_000)

        # A long run, so it is still going when we come back; grids every 5 steps.
        set_number(page, "Training steps", 100_000)
        set_number(page, "Save a sample grid every … steps", 5)
        main.get_by_role("button", name="Start training").click()
        expect(page.get_by_text("fixed noise · step")).to_be_visible(timeout=GRID_TIMEOUT_MS)
        expect(page.get_by_text("Running", exact=True)).to_be_visible()
        page.screenshot(path=str(tmp_path / "train.png"), full_page=True)

        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Runs").click()
        expect(page.get_by_role("heading", name="Runs")).to_be_visible(timeout=60_000)
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Train").click()
        expect(main.get_by_role("button", name="Stop")).to_be_visible(timeout=60_000)
        expect(main.get_by_role("button", name="Start training")).to_be_disabled()

        # A second tab finds the same running job, then is closed while it trains.
        second_tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        second_tab.goto(url)
        second_tab.get_by_test_id("stSidebarNav").get_by_role("link", name="Train").click()
        second_main = second_tab.get_by_test_id("stMainBlockContainer")
        expect(second_main.get_by_role("button", name="Stop")).to_be_visible(timeout=60_000)
        expect(second_main.get_by_role("button", name="Start training")).to_be_disabled()
        second_tab.close()
        page.wait_for_timeout(3000)  # the first tab keeps updating after the other went away

        main.get_by_role("button", name="Stop").click()
        expect(page.get_by_text("stopped at step")).to_be_visible(timeout=120_000)
        expect(main.get_by_role("button", name="Start training")).to_be_enabled()

        # The stopped run's generator in the Latent space page, reached from the home page.
        page.goto(url)
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Latent space").click()
        expect(page.get_by_role("heading", name="Latent space")).to_be_visible(timeout=60_000)
        expect(main.get_by_role("button", name="Find it")).to_be_visible(timeout=120_000)  # the last section
        expect(page.get_by_text("seed 15", exact=True)).to_be_visible()
        expect(page.get_by_test_id("stException")).to_have_count(0)
        page.screenshot(path=str(tmp_path / "latent.png"), full_page=True)
        browser.close()

    log = log_path.read_text()
    assert "Traceback" not in log, log
    assert "missing ScriptRunContext" not in log, log
