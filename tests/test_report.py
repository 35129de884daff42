"""The HTML report rendered by headless Chromium: every image loads, the table holds every run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_figures import fake_study, write_run

from imae.cli import main
from imae.results import find_runs

ERROR = "NumericalError: <b>nan</b> & more"
# Appended to a copy of the page, beside it so relative links resolve the same: after loading,
# write what the browser saw into the DOM, which --dump-dom prints.
PROBE = """<pre id="probe"></pre><script>
window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({src: i.getAttribute("src"), width: i.naturalWidth}));
  const rows = [...document.querySelectorAll("#runs tr")].slice(1).map(r => [...r.cells].map(c => c.textContent));
  document.getElementById("probe").textContent = JSON.stringify({images, rows});
});
</script></body>"""


def browse(index: Path) -> dict:
    """Open the report (through a probing copy) in headless Chromium; what it loaded and shows."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (`make test` installs it)")
    probe = index.with_name("probe.html")
    probe.write_text(index.read_text().replace("</body>", PROBE))
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--dump-dom", probe.as_uri()], check=True, capture_output=True, text=True, timeout=120).stdout
    probe.unlink()
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.DOTALL)
    assert found, f"chromium printed no probe result: {dom[:300]!r}"
    return json.loads(found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    study = fake_study(tmp_path_factory.mktemp("study"))
    write_run(study / "mnist" / "escaped", error=ERROR)
    assert main(["report", str(study), "--out", str(study / "report")]) == 0
    return study, study / "report" / "index.html"


def test_every_image_loads_and_the_table_holds_every_run(report):
    study, index = report
    seen = browse(index)
    assert len(seen["images"]) == 11 + 2  # the figures, and two runs' confusion matrices
    assert all(image["width"] > 0 for image in seen["images"]), seen["images"]
    runs = sorted(str(path.relative_to(study)) for path in find_runs(study))
    assert sorted(row[0] for row in seen["rows"]) == runs
    statuses = {row[0]: row[1] for row in seen["rows"]}
    assert statuses["mnist/failed"] == "failed" and statuses["mnist/running"] == "incomplete"
    assert any(row[-1] == ERROR for row in seen["rows"])  # shown as text, escaped, not as markup


def test_a_missing_image_is_detected(report, tmp_path):
    """The check above can fail: the same folder with one figure removed shows an unloaded image."""
    _, index = report
    copy = shutil.copytree(index.parent, tmp_path / "report")
    (copy / "figures" / "fig3_mnist.png").unlink()
    widths = {image["src"]: image["width"] for image in browse(copy / "index.html")["images"]}
    assert widths["figures/fig3_mnist.png"] == 0
    assert widths["figures/fig5_dsprites.png"] > 0


def test_the_folder_is_self_contained(report, tmp_path):
    """Moved elsewhere, the page still finds its images: every link is relative and inside the folder."""
    _, index = report
    page = index.read_text()
    links = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert links and all(not link.startswith(("/", "file:", "http")) and ".." not in link for link in links)
    assert all((index.parent / link).is_file() for link in links)
    assert "<script" not in page
    for name in ("config.json", "metrics.json", "error.json"):
        assert f"<h4>{name}</h4>" in page


def test_a_directory_without_runs_is_a_one_line_error_and_nothing_is_written(tmp_path, capsys):
    study = tmp_path / "study"
    study.mkdir()
    assert main(["report", str(study)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"imae: error: {study}: no runs") and err.count("\n") == 1
    assert list(study.iterdir()) == []
