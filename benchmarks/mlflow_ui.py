"""A picture of the MLflow UI after one pipeline run: docs/mlflow_ui.png (shown in docs/experiments.md).

    python benchmarks/mlflow_ui.py [--project .] [--out docs/mlflow_ui.png]

Starts ``mlflow server`` on 127.0.0.1 (a free port) over the project's store (``.mlflow/``, as ``make ui``),
and takes four screenshots with headless Chromium from the system's packages (Debian: ``apt-get install
chromium``): the runs table (one parent run, its stage runs, the Dataset column), the experiment's Models tab
(the LoggedModels), the registered ``lad-student`` version with its description, and the student's
LoggedModel page (its metrics and dataset). They are put side by side, two by two, in one PNG.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image, ImageDraw

WIDTH, HEIGHT = 1600, 1000  # pixels of one browser window
RENDER_MS = 20000  # the UI's JavaScript gets this much virtual time to fetch and draw


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    sys.exit("error: no Chromium on PATH (Debian: apt-get install chromium)")


def shoot(browser: str, url: str, out: Path, profile: Path) -> None:
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars",
                    f"--virtual-time-budget={RENDER_MS}", f"--screenshot={out}", url],
                   check=True, capture_output=True, timeout=180)


def capture(browser: str, url: str, tmp: Path, i: int) -> Image.Image:
    png = tmp / f"{i}.png"
    shoot(browser, url, png, tmp / "profile")
    return Image.open(png).convert("RGB")


def contact_sheet(shots: list[tuple[str, Image.Image]]) -> Image.Image:
    """The screenshots two by two, each under its title, at half size."""
    sheet = Image.new("RGB", (2 * WIDTH, 2 * (HEIGHT + 40)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (title, image) in enumerate(shots):
        x, y = (i % 2) * WIDTH, (i // 2) * (HEIGHT + 40)
        draw.text((x + 12, y + 10), title, fill="black", font_size=26)
        sheet.paste(image, (x, y + 40))
    return sheet.resize((sheet.width // 2, sheet.height // 2), Image.LANCZOS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, default=Path("."), help="the project whose .mlflow/ to show")
    parser.add_argument("--out", type=Path, default=Path("docs/mlflow_ui.png"))
    args = parser.parse_args()
    store = args.project.resolve() / ".mlflow"
    if not (store / "mlflow.db").is_file():
        sys.exit(f"error: {store / 'mlflow.db'}: no MLflow store; run `make run` first")
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    exp = client.get_experiment_by_name("lad").experiment_id
    version = client.get_model_version_by_alias("lad-student", "candidate")
    model_id = version.source.removeprefix("models:/")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
                               "--port", str(port), "--workers", "1",
                               "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
                               "--default-artifact-root", str(store / "artifacts")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        pages = {"runs: one parent, its stages, the Dataset column": f"{base}/#/experiments/{exp}/runs",
                 "Models tab: every trained network a LoggedModel": f"{base}/#/experiments/{exp}/models",
                 "the registered version and its description":
                     f"{base}/#/models/lad-student/versions/{version.version}",
                 "the student's LoggedModel: metrics on its dataset": f"{base}/#/experiments/{exp}/models/{model_id}"}
        browser = chromium()
        with tempfile.TemporaryDirectory() as tmp:
            shots = [(title, capture(browser, url, Path(tmp), i)) for i, (title, url) in enumerate(pages.items())]
            sheet = contact_sheet(shots)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            sheet.save(args.out, optimize=True)
        print(f"wrote {args.out} ({sheet.width}x{sheet.height}) from {base}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
