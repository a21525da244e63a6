"""Run reports: figures from hand-made records, rich tables, the self-contained HTML page, the CLI."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

from agentclinic.cli import app
from agentclinic.runs.record import DiagnosisScores, EpisodeRecord, Event, Scores
from agentclinic.runs.report import (
    ReportError, bias_keys, group_rows, load_run, load_runs, print_report, run_stats, summary_rows, top_k_hits,
    wilson)
from agentclinic.runs.report_html import render_html, write_html
from agentclinic.runs.writer import RunWriter

runner = CliRunner()


def record(episode: int, *, specialty: str = "cardiology", outcome: str = "correct", turns: int = 10,
           tests: int = 2, cost: float = 10.0, tool_calls: int = 0, level: str | None = None,
           scores: dict | None = None, biases: dict | None = None, events: list[Event] | None = None,
           error: str | None = None, run_id: str = "run") -> EpisodeRecord:
    correct = outcome == "correct"
    level = level or ("exact" if correct else "wrong")
    return EpisodeRecord(
        run_id=run_id, episode=episode, scenario_id=f"{specialty}-case-{episode}", specialty=specialty,
        doctor="scripted", outcome=outcome, correct=correct, diagnosis=None if outcome == "error" else "Gout",
        verdict=None if outcome == "error" else {"level": level, "correct": correct, "rationale": "test"},
        turns=turns, tests=tests, cost=cost, tool_calls=tool_calls, scores=scores or {},
        extra={"biases": biases} if biases else {}, events=events or [], error=error)


def write_run(folder: Path, records: list[EpisodeRecord], config: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(json.dumps({"config": config or {"doctor": "scripted", "seed": 0}}))
    writer = RunWriter(folder)
    for r in records:
        writer.append(r)
    return folder


def standard_records(run_id: str = "run") -> list[EpisodeRecord]:
    """Cardiology 3 of 4 correct, neurology 1 of 5 correct, one neurology error: 4 of 9 overall."""
    rs = [record(i, specialty="cardiology", outcome="correct" if i < 3 else "incorrect", turns=10 + i, cost=10.0 * i,
                 run_id=run_id) for i in range(4)]
    rs += [record(4 + i, specialty="neurology", outcome="correct" if i == 0 else "incorrect", turns=20, cost=5.0,
                  level="broader" if i == 1 else None, run_id=run_id) for i in range(5)]
    rs.append(record(9, specialty="neurology", outcome="error", turns=99, cost=999.0, run_id=run_id,
                     error="RuntimeError: model server went away\nTraceback (most recent call last): ..."))
    return rs


# --------------------------------------------------------------------------------------------- figures

def test_wilson_interval_on_known_cases():
    lo, hi = wilson(8, 10)  # the textbook example: 0.490 to 0.943
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson(10, 10)
    assert lo == pytest.approx(0.7225, abs=1e-4) and hi == pytest.approx(1.0)
    assert wilson(0, 0) is None


def test_run_stats_counts_accuracy_specialties_and_errors(tmp_path):
    stats = run_stats(load_run(write_run(tmp_path / "a", standard_records())))
    assert stats.episodes == 10
    assert (stats.accuracy.k, stats.accuracy.n) == (4, 10)  # the error counts as a miss
    assert (stats.accuracy_excluding_errors.k, stats.accuracy_excluding_errors.n) == (4, 9)  # beside it, named so
    lo, hi = stats.accuracy.ci
    assert lo == pytest.approx(0.1682, abs=1e-4) and hi == pytest.approx(0.6873, abs=1e-4)
    assert {k: (v.k, v.n) for k, v in stats.by_specialty.items()} == {"cardiology": (3, 4), "neurology": (1, 6)}
    assert stats.mean_turns == pytest.approx((10 + 11 + 12 + 13 + 20 * 5 + 99) / 10)
    assert stats.mean_cost == pytest.approx((0 + 10 + 20 + 30 + 5 * 5 + 999) / 10)
    assert stats.match_levels == {"exact": 4, "broader": 1, "wrong": 4, "none": 1}
    assert stats.outcomes == {"correct": 4, "incorrect": 5, "error": 1}
    assert [(e.episode, e.message) for e in stats.errors] == [(9, "RuntimeError: model server went away")]
    assert stats.axes == {} and stats.top_k == {}  # an older run without scores


def test_axes_are_the_union_across_records_and_none_is_skipped(tmp_path):
    records = [
        record(0, scores={"axes": {"information_coverage": 0.5, "safety": 1.0}, "composite": 0.6,
                          "diagnosis": {"top_k": {"top1": True, "top3": True}}}),
        record(1, outcome="incorrect", scores={"axes": {"information_coverage": 1.0, "empathy": None},
                                               "composite": 0.2, "diagnosis": {"top_k": {"top1": False, "top3": True}}}),
        record(2, outcome="incorrect"),  # not scored (as an older version left a failed episode): a miss, 0
    ]
    stats = run_stats(load_run(write_run(tmp_path / "a", records)))
    assert list(stats.axes) == ["information_coverage", "safety", "empathy"]
    assert stats.axes["information_coverage"].mean == pytest.approx(0.75) and stats.axes["information_coverage"].n == 2
    assert stats.axes["safety"].n == 1 and stats.axes["empathy"].mean is None
    assert stats.composite.mean == pytest.approx(0.8 / 3) and stats.composite.n == 3
    assert {k: (v.k, v.n) for k, v in stats.top_k.items()} == {1: (1, 3), 3: (2, 3)}
    labels = [label for label, _ in summary_rows([stats])]
    assert "axis: empathy" in labels and "top-3 [95% CI]" in labels and "composite" in labels


def test_top_k_and_bias_keys():
    scored = Scores(diagnosis=DiagnosisScores(level="wrong", top_k={"top1": False, "top3": True, "top5": True}))
    assert top_k_hits(scored) == {1: False, 3: True, 5: True}
    assert top_k_hits(None) == {}
    biased = record(0, biases={"patient": {"role": "patient", "names": ["recency"], "applied": False},
                               "doctor": {"role": "doctor", "names": ["confirmation", "recency"]}})
    assert bias_keys(biased) == ["doctor:confirmation", "doctor:recency", "patient:recency (ignored)"]
    assert bias_keys(record(1)) == ["none"]


def test_tables_print_the_numbers_for_two_runs_side_by_side(tmp_path):
    a = write_run(tmp_path / "alpha", standard_records("alpha"))
    b = write_run(tmp_path / "beta", [record(0, run_id="beta"), record(1, outcome="incorrect", run_id="beta")],
                  config={"doctor": "random"})
    stats = [run_stats(r) for r in load_runs([a, b])]
    rows = dict(summary_rows(stats))
    assert rows["accuracy [95% CI]"] == ["0.400 [0.17, 0.69] (4/10)", "0.500 [0.09, 0.91] (1/2)"]
    assert rows["accuracy excluding errors [95% CI]"] == ["0.444 [0.19, 0.73] (4/9)", "0.500 [0.09, 0.91] (1/2)"]
    assert rows["doctor"] == ["scripted", "random"]
    specialty = dict(group_rows(stats, "by_specialty"))
    assert specialty["neurology"] == ["0.167 [0.03, 0.56] (1/6)", "-"]  # the error counts
    console = Console(record=True, width=200)
    print_report(stats, console)
    text = console.export_text()
    for expected in ("alpha", "beta", "0.400 [0.17, 0.69] (4/10)", "0.444 [0.19, 0.73] (4/9)",
                     "accuracy excluding errors", "0.750 [0.30, 0.95] (3/4)",
                     "RuntimeError: model server went away", "broader"):
        assert expected in text


def test_runs_with_the_same_folder_name_get_distinct_names(tmp_path):
    a = write_run(tmp_path / "x" / "run", [record(0)])
    b = write_run(tmp_path / "y" / "run", [record(0)])
    assert [r.name for r in load_runs([a, b])] == ["x/run", "y/run"]


def test_bad_inputs_raise_errors_naming_the_path(tmp_path):
    with pytest.raises(ReportError, match="no such run folder"):
        load_run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match=re.escape(str(tmp_path / "empty" / "episodes.jsonl"))):
        load_run(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "episodes.jsonl").write_text('{"not": "a record"}\n')
    with pytest.raises(ReportError, match="unreadable"):
        load_run(tmp_path / "bad")


# --------------------------------------------------------------------------------------------- HTML

def _png(path: Path, size=(40, 30), colour=(200, 30, 30)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


def _dicom(path: Path) -> Path:
    import numpy as np
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    pixels = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 7) % 4096
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


def _data_url_images(html: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(m)))
            for m in re.findall(r'src="data:image/(?:png|jpeg);base64,([A-Za-z0-9+/=]+)"', html)]


def transcript_run(tmp_path: Path, name: str = "imaging") -> Path:
    """One episode with hostile text, a big PNG, a DICOM, a tool overlay and a missing image."""
    big = _png(tmp_path / "big.png", size=(2000, 1000))
    dicom = _dicom(tmp_path / "scan.dcm")
    overlay = _png(tmp_path / "overlay.png", colour=(30, 200, 30))
    events = [
        Event(turn=1, doctor={"type": "ask", "text": "<script>alert('doctor')</script> any pain?"},
              action={"type": "ask", "text": "<script>alert('doctor')</script> any pain?"},
              observation="Patient: <script>alert('patient')</script> yes & it hurts"),
        Event(turn=2, doctor={"type": "request_image"}, action={"type": "request_image"}, observation="Images: ...",
              images=[{"id": "img1", "modality": "X-ray", "path": str(big), "available": True},
                      {"id": "img2", "modality": "CT", "path": str(dicom), "available": True},
                      {"id": "img3", "modality": "MR", "path": str(tmp_path / "gone.png"), "available": True}]),
        Event(turn=3, doctor={"type": "call_tool"}, action={"type": "call_tool", "name": "segment"},
              observation="Tool segment: done",
              tool={"name": "segment", "arguments": {"image": "img1", "note": "<b>bold</b>"},
                    "text": "<img src=x onerror=alert(1)> lesion 3 cm", "data": {"area_mm2": 12.5},
                    "images": [str(overlay)], "error": None}),
    ]
    rec = record(0, events=events, scores={"axes": {"information_coverage": 0.5}}, run_id=name)
    return write_run(tmp_path / name, [rec, record(1, outcome="incorrect", run_id=name)])


def test_html_is_self_contained_escaped_and_has_plots_and_images(tmp_path):
    run = transcript_run(tmp_path)
    other = write_run(tmp_path / "other", standard_records("other"))
    runs = load_runs([run, other])
    html = render_html(runs, [run_stats(r) for r in runs])
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert "<link" not in html and "@import" not in html and "<script" not in html
    assert "&lt;script&gt;alert(&#x27;doctor&#x27;)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(&#x27;patient&#x27;)&lt;/script&gt; yes &amp; it hurts" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    plots = re.search(r'<section id="plots">(.*?)</section>', html, re.S).group(1)
    assert len(re.findall(r'<img src="data:image/png;base64,', plots)) >= 4  # specialty, cost, coverage, turns, axes
    for title in ("Accuracy by specialty", "Accuracy against cost", "Distribution of information_coverage",
                  "Turns per episode", "Scoring axes per run"):
        assert title in plots
    episodes = re.search(r'<section id="episodes">(.*)</section>', html, re.S).group(1)
    images = _data_url_images(episodes)
    assert len(images) == 3  # the big PNG, the DICOM, the overlay; the missing one is a note
    assert max(images[0].size) <= 480 and images[0].size == (480, 240)
    assert images[1].size == (64, 64) and images[1].mode == "L"
    assert images[2].getpixel((5, 5))[:3] == (30, 200, 30)
    assert "missing file" in episodes and "gone.png" in episodes
    assert episodes.count('<details class="episode"') == 2 + 10
    summary = re.search(r'<section id="runs">(.*?)</section>', html, re.S).group(1)
    assert "<th>imaging</th>" in summary and "<th>other</th>" in summary
    assert "0.400 [0.17, 0.69] (4/10)" in summary and "accuracy excluding errors" in summary
    assert "0.444 [0.19, 0.73] (4/9)" in summary


def test_cli_report_writes_html_and_fails_cleanly(tmp_path):
    a = write_run(tmp_path / "a", standard_records("a"))
    b = write_run(tmp_path / "b", standard_records("b")[:3])
    out = tmp_path / "out" / "page.html"
    result = runner.invoke(app, ["report", str(a), str(b), "--html", str(out)])
    assert result.exit_code == 0, result.output
    assert "0.444 [0.19, 0.73] (4/9)" in result.output and out.is_file()
    assert "<th>a</th><th>b</th>" in out.read_text()
    result = runner.invoke(app, ["report", str(a)])
    assert result.exit_code == 0 and (a / "report.html").is_file()
    result = runner.invoke(app, ["report", str(b), "--no-html"])
    assert result.exit_code == 0 and not (b / "report.html").exists()
    missing = tmp_path / "nope"
    result = runner.invoke(app, ["report", str(a), str(missing)])
    assert result.exit_code == 1 and str(missing) in result.output


def _chromium() -> str | None:
    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="no headless Chromium on this machine (apt-get install chromium)")
def test_page_renders_in_headless_chromium(tmp_path):
    run = transcript_run(tmp_path)
    runs = load_runs([run])
    page = write_html(runs, [run_stats(r) for r in runs], tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    subprocess.run([_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 1600)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, tables and plots, not a blank page
    background = max(colours)[0] / (image.width * image.height)
    assert background < 0.9
