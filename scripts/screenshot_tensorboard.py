"""Screenshots of TensorBoard's dashboards for a log dir, as a browser opens them: headless Chromium, fresh profile.

  python scripts/screenshot_tensorboard.py outputs/multirun/<sweep> --out shots [--size 1600,1000] [--query smoothing=0]

Starts `tensorboard --logdir DIR` on 127.0.0.1 (this Python's TensorBoard, a free port), waits until it has read the
runs, writes one PNG per dashboard to --out (timeseries.png, scalars.png, hparams.png: the table view, images.png,
text.png), then stops TensorBoard. Each page opens in a new, empty browser profile, so it shows TensorBoard's
defaults (no settings kept from earlier visits), and is shot --wait seconds after it loaded; --query adds URL
parameters (`smoothing=0`). Needs Chromium and its ChromeDriver (Debian: `apt-get install chromium chromium-driver`),
driven over the WebDriver protocol: Chromium's own `--screenshot` fires before Time Series has drawn its charts.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
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


def get_json(url: str, body: dict | None = None, method: str | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:  # WebDriver's errors carry their reason in the body
        raise RuntimeError(f"{url}: {e.read().decode(errors='replace')[:500]}") from e


def wait_for(name: str, process: subprocess.Popen, ready, timeout: float = 120):
    """Poll `ready()` until it returns something true (then that), while the server `process` runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with status {process.returncode}")
        try:
            if now := ready():
                return now
        except OSError:  # not serving yet
            pass
        time.sleep(1)
    raise RuntimeError(f"{name} was not ready within {timeout:.0f} s")


def tensorboard_loaded(base: str):
    """A check for `wait_for`: the runs, once TensorBoard lists some and its runs and scalar tags stayed the same
    over two polls (it reads the event files in the background)."""
    previous = None

    def ready():
        nonlocal previous
        now = (get_json(base + "/data/runs"), get_json(base + "/data/plugin/scalars/tags"))
        stable, previous = bool(now[0]) and now == previous, now
        return now[0] if stable else None
    return ready


def screenshot(driver: str, browser: str, url: str, png: Path, size: str, wait_s: float) -> None:
    """Open `url` in a new Chromium session of ChromeDriver (at `driver`), wait, save the page as PNG."""
    width, height = (int(n) for n in size.split(","))
    options = {"binary": browser, "args": [*CHROMIUM_FLAGS, f"--window-size={width},{height}"]}
    session = get_json(driver + "/session", {"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}})
    session = f"{driver}/session/{session['value']['sessionId']}"
    try:  # the page, not the window, is `size` (the window's frame would take 140 pixels of its height)
        get_json(session + "/goog/cdp/execute", {"cmd": "Emulation.setDeviceMetricsOverride", "params": {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}})
        get_json(session + "/url", {"url": url})  # returns once the page has loaded
        time.sleep(wait_s)  # TensorBoard's app then fetches the data and draws
        png.write_bytes(base64.b64decode(get_json(session + "/screenshot")["value"]))
    finally:
        get_json(session, method="DELETE")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdir", type=Path, help="what `tensorboard --logdir` gets: a sweep or run folder")
    parser.add_argument("--out", type=Path, default=Path("tensorboard_screenshots"), help="folder for the PNGs")
    parser.add_argument("--size", default="1600,1000", help="the page's WIDTH,HEIGHT in pixels")
    parser.add_argument("--query", default="", help="URL parameters, e.g. smoothing=0")
    parser.add_argument("--wait", type=float, default=10, help="seconds from page load to screenshot")
    parser.add_argument("--chromium", help="the browser binary (default: chromium on PATH)")
    parser.add_argument("--chromedriver", default="chromedriver", help="ChromeDriver (default: on PATH)")
    args = parser.parse_args()
    browser = args.chromium or next(filter(None, map(shutil.which, BROWSERS)), None)
    if browser is None or shutil.which(browser) is None or shutil.which(args.chromedriver) is None:
        print("error: Chromium or ChromeDriver not found; install them (Debian: apt-get install chromium "
              "chromium-driver) or pass --chromium PATH --chromedriver PATH", file=sys.stderr)
        return 2
    if not args.logdir.is_dir():
        print(f"error: {args.logdir} is not a folder; pass a sweep or run folder with TensorBoard events",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    tb_port, driver_port = free_port(), free_port()
    base, driver = f"http://127.0.0.1:{tb_port}", f"http://127.0.0.1:{driver_port}"
    with tempfile.TemporaryFile() as log:
        tb = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(args.logdir),
                               "--port", str(tb_port), "--host", "127.0.0.1"], stdout=log, stderr=subprocess.STDOUT)
        chromedriver = subprocess.Popen([args.chromedriver, f"--port={driver_port}"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        try:
            runs = wait_for("tensorboard", tb, tensorboard_loaded(base))
            wait_for("chromedriver", chromedriver, lambda: get_json(driver + "/status")["value"]["ready"])
            print(f"TensorBoard at {base}: {len(runs)} runs")
            query = f"?{args.query}" if args.query else ""
            for name in DASHBOARDS:
                png = args.out / f"{name}.png"
                screenshot(driver, browser, f"{base}/{query}#{name}", png, args.size, args.wait)
                print(png)
        except (RuntimeError, OSError) as e:
            log.seek(0)
            print(f"error: {e}; tensorboard's output:\n{log.read().decode(errors='replace')[-2000:]}",
                  file=sys.stderr)
            return 1
        finally:
            for process in (chromedriver, tb):
                process.terminate()
                process.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
