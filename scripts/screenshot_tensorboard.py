"""Screenshots of TensorBoard's dashboards for a log dir, as a browser opens them: headless Chromium, fresh profile.

  python scripts/screenshot_tensorboard.py outputs/multirun/<sweep> --out shots [--size 1600,1000] [--query smoothing=0]

Starts `tensorboard --logdir DIR` on 127.0.0.1 (this Python's TensorBoard, a free port), waits until it has read the
runs, writes one PNG per dashboard to --out (timeseries.png, scalars.png, hparams.png: the table view, images.png,
text.png), then stops TensorBoard. Each page gets a new, empty browser profile, so it shows TensorBoard's defaults
(no settings kept from earlier visits); --query adds URL parameters (`smoothing=0`). Needs Chromium
(Debian: `apt-get install chromium`), or pass --chromium PATH.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

DASHBOARDS = ("timeseries", "scalars", "hparams", "images", "text")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
# A closed network refuses the connections Chromium makes in the background; these flags keep it from trying.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def wait_until_loaded(base: str, tb: subprocess.Popen, timeout: float = 120) -> list[str]:
    """Poll until TensorBoard lists runs and its runs and scalar tags stay the same over two polls; the run names."""
    last, deadline = None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tb.poll() is not None:
            raise RuntimeError(f"tensorboard exited with status {tb.returncode}")
        try:
            now = (get_json(base + "/data/runs"), get_json(base + "/data/plugin/scalars/tags"))
        except OSError:  # not serving yet
            now = None
        if now and now[0] and now == last:
            return now[0]
        last = now
        time.sleep(2)
    raise RuntimeError(f"tensorboard listed no runs within {timeout:.0f} s")


def screenshot(browser: str, url: str, png: Path, size: str, wait_ms: int) -> None:
    with tempfile.TemporaryDirectory(prefix="tb-shot-profile-") as profile:
        subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
                        f"--window-size={size}", f"--virtual-time-budget={wait_ms}", url],
                       check=True, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdir", type=Path, help="what `tensorboard --logdir` gets: a sweep or run folder")
    parser.add_argument("--out", type=Path, default=Path("tensorboard_screenshots"), help="folder for the PNGs")
    parser.add_argument("--size", default="1600,1000", help="browser window WIDTH,HEIGHT in pixels")
    parser.add_argument("--query", default="", help="URL parameters, e.g. smoothing=0")
    parser.add_argument("--wait-ms", type=int, default=15000, help="page time (virtual) before each screenshot")
    parser.add_argument("--chromium", help="the browser binary (default: chromium on PATH)")
    args = parser.parse_args()
    browser = args.chromium or next(filter(None, map(shutil.which, BROWSERS)), None)
    if browser is None or shutil.which(browser) is None:
        print("error: Chromium not found; install it (Debian: apt-get install chromium) or pass --chromium PATH",
              file=sys.stderr)
        return 2
    if not args.logdir.is_dir():
        print(f"error: {args.logdir} is not a folder; pass a sweep or run folder with TensorBoard events",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        tb = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(args.logdir),
                               "--port", str(port), "--host", "127.0.0.1"], stdout=log, stderr=subprocess.STDOUT)
        try:
            runs = wait_until_loaded(base, tb)
            print(f"TensorBoard at {base}: {len(runs)} runs")
            query = f"?{args.query}" if args.query else ""
            for name in DASHBOARDS:
                png = args.out / f"{name}.png"
                screenshot(browser, f"{base}/{query}#{name}", png, args.size, args.wait_ms)
                print(png)
        except (RuntimeError, subprocess.SubprocessError) as e:
            log.seek(0)
            print(f"error: {e}; tensorboard's output:\n{log.read().decode(errors='replace')[-2000:]}",
                  file=sys.stderr)
            return 1
        finally:
            tb.terminate()
            tb.wait(timeout=30)
    return 0

if __name__ == "__main__":
    sys.exit(main())
