"""Render a leaderboard's HTML page in headless Chromium and save a screenshot (PNG) to look at.

apt-get install -y chromium      # Debian's package
.venv/bin/python bench/screenshot_leaderboard.py leaderboards/kk/index.html /tmp/leaderboard.png
"""

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    page = Path(sys.argv[1] if len(sys.argv) > 1 else "leaderboards/kk/index.html").resolve()
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/leaderboard.png").resolve()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        sys.exit("chromium not found: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as profile:
        t0 = time.perf_counter()
        # No background networking: this machine's network is closed, and the page is a local file.
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--window-size=1600,1100",
                "--hide-scrollbars",
                f"--screenshot={out}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    print(f"screenshot of {page} -> {out} ({out.stat().st_size} bytes) in {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
