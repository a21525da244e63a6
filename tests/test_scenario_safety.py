"""Bad scenario input cannot reach outside the scenario, run code, exhaust memory or crash a loader."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from PIL import Image as PILImage
from PIL import ImageFile
from typer.testing import CliRunner

from agentclinic.cli import app
from agentclinic.env.clinic import image_info, tool_context
from agentclinic.scenario import load_scenarios
from agentclinic.scenario.assets import MAX_IMAGE_PIXELS, check_asset
from agentclinic.scenario.quality import validate_paths
from agentclinic.scenario.reading import MAX_FILE_BYTES, MAX_JSON_DEPTH, MAX_RECORD_BYTES
from conftest import MEDQA_ROWS

CT = "package:pydicom/data/test_files/CT_small.dcm"
runner = CliRunner()


def png(path, size=(8, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.new("L", size, 128).save(path)
    return path


def with_images(scenario_data, write_yaml, images, name="case/case.yaml"):
    scenario_data["images"] = [{"modality": "CT", **image} for image in images]
    return write_yaml(scenario_data, name)


def asset_errors(path):
    _, report = validate_paths([path])
    return {i.field: i for i in report.errors if i.code == "bad-asset"}


# ------------------------------------------------------------------ validating runs no code


def test_package_assets_are_found_without_importing_anything(tmp_path, scenario_data, write_yaml):
    package = tmp_path / "site" / "noisy"  # a package whose import leaves a mark
    png(package / "img.png")
    (package / "__init__.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w').write('yes')\n")
    path = with_images(scenario_data, write_yaml, [{"asset": "package:this.x/x.png"}, {"asset": "package:this/x.png"},
                                                   {"asset": CT}, {"asset": "package:noisy/img.png"}])
    script = ("import sys; from agentclinic.scenario.quality import validate_paths; "
              f"_, report = validate_paths([{str(path)!r}]); "
              "print('IMPORTED' if {'this', 'noisy'} & set(sys.modules) else 'CLEAN'); "
              "print('\\n'.join(f'{i.field}: {i.message}' for i in report.errors))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(tmp_path / "site")})
    assert done.returncode == 0, done.stderr
    assert "Beautiful is better than ugly" not in done.stdout and "CLEAN" in done.stdout
    assert not (tmp_path / "imported").exists()
    assert "images.0.asset: asset 'package:this.x/x.png': 'this.x' is not a top-level package name" in done.stdout
    assert "images.1.asset: asset 'package:this/x.png': 'this' is a module, not a package" in done.stdout
    assert "images.2" not in done.stdout and "images.3" not in done.stdout  # package resources still resolve


# ------------------------------------------------------------------ confinement


def test_assets_cannot_reach_outside_the_scenario_folder_or_package(tmp_path, scenario_data, write_yaml):
    png(tmp_path / "outside.png")
    png(tmp_path / "case" / "sub" / "inside.png")
    (tmp_path / "case" / "link.png").symlink_to(tmp_path / "outside.png")
    refs = ["/etc/passwd", "../../../../../../etc/passwd", "package:pydicom/" + "../" * 30 + "etc/passwd",
            "package:pydicom//etc/passwd", "link.png", "../outside.png", "sub/../sub/inside.png"]
    path = with_images(scenario_data, write_yaml, [{"asset": ref} for ref in refs]
                       + [{"asset": CT, "mask": "/etc/passwd"}])
    errors = asset_errors(path)
    assert sorted(errors) == [f"images.{i}.asset" for i in range(6)] + ["images.7.mask"]
    lines = path.read_text().splitlines()
    for field, issue in errors.items():
        assert issue.path == str(path) and issue.scenario == "test-case"
        assert lines[issue.line - 1].strip().startswith(field.rsplit(".", 1)[1])  # the line of that very key
    assert "not a relative path inside the scenario file's folder" in errors["images.0.asset"].message
    assert "leads outside the scenario file's folder" in errors["images.1.asset"].message
    assert "leads outside package 'pydicom'" in errors["images.2.asset"].message
    assert "not a relative path inside package 'pydicom'" in errors["images.3.asset"].message
    assert "leads outside" in errors["images.4.asset"].message  # the symbolic link is followed first
    assert "not a relative path" in errors["images.7.mask"].message


def test_a_run_records_an_escaping_image_as_unavailable(tmp_path, scenario_data, write_yaml):
    png(tmp_path / "case" / "mask.png")
    path = with_images(scenario_data, write_yaml, [{"id": "a", "asset": "/etc/passwd"},
                                                   {"id": "b", "asset": "../../../../../../etc/passwd"},
                                                   {"id": "c", "asset": CT, "mask": "/etc/passwd"},
                                                   {"id": "d", "asset": CT, "mask": "mask.png"}])
    scenario = load_scenarios(path).scenarios[0]
    infos = [image_info(image, path.parent) for image in scenario.images]
    assert [info["available"] for info in infos] == [False, False, True, True]
    assert [info["path"] for info in infos[:2]] == [None, None]
    assert "not a relative path" in infos[0]["reason"] and "leads outside" in infos[1]["reason"]
    images = tool_context(scenario, {}).images
    assert "mask" not in images["c"] and images["d"]["mask"] == str(path.parent / "mask.png")


# ------------------------------------------------------------------ file signatures


def test_the_file_signature_is_checked_whatever_the_suffix(tmp_path):
    (tmp_path / "notes").write_text("just some text\n")
    (tmp_path / "notes.png").write_text("just some text\n")
    png(tmp_path / "real.png").rename(tmp_path / "real.jpg")
    png(tmp_path / "scan.png").rename(tmp_path / "scan")
    (tmp_path / "empty.dcm").write_bytes(b"")
    assert "is not an image" in check_asset("notes", tmp_path)
    assert "is not an image" in check_asset("notes.png", tmp_path)
    assert "not a valid JPEG file (its content is PNG)" in check_asset("real.jpg", tmp_path)
    assert "is a PNG file: assets must be PNG, JPEG, GIF, TIFF or DICOM files named" in check_asset("scan", tmp_path)
    assert "is not an image" in check_asset("empty.dcm", tmp_path)
    assert check_asset("package:skimage/data/retina.jpg") is None and check_asset(CT) is None


# ------------------------------------------------------------------ limits


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(tmp_path, monkeypatch):
    PILImage.new("1", (9000, 9000)).save(tmp_path / "huge.png")  # 81 megapixels, a few KB on disk

    def no_decoding(self, *args):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    problem = check_asset("huge.png", tmp_path)
    assert "81,000,000 pixels, over the limit of 50,000,000 per image (MAX_IMAGE_PIXELS)" in problem
    assert MAX_IMAGE_PIXELS == 50_000_000
    PILImage.new("1", (20000, 20000)).save(tmp_path / "bomb.png")  # over Pillow's own limit too
    assert "too many pixels" in check_asset("bomb.png", tmp_path)


def test_a_dicom_over_the_pixel_limit_is_refused_from_its_header(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    header = pydicom.dcmread(pydicom.data.get_testdata_file("CT_small.dcm"))
    header.Rows = header.Columns = 512  # the header claims 1000 frames of 512 x 512; no pixel data is read
    header.NumberOfFrames = 1000
    header.save_as(tmp_path / "tall.dcm")
    assert "262,144,000 pixels, over the limit" in check_asset("tall.dcm", tmp_path)


def test_an_asset_over_the_byte_limit_is_refused_unread(tmp_path):
    with (tmp_path / "big.png").open("wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n")
        handle.truncate(101 * 2**20)  # sparse: nothing is really written
    assert "101.0 MiB, over the limit of 100 MiB per asset (MAX_ASSET_BYTES)" in check_asset("big.png", tmp_path)


def test_an_oversized_scenario_file_is_refused_naming_the_limit(tmp_path):
    path = tmp_path / "big.yaml"
    with path.open("wb") as handle:
        handle.write(b"id: big\n")
        handle.truncate(50 * 2**20)
    _, report = validate_paths([path])
    [issue] = report.errors
    assert issue.code == "too-large" and issue.path == str(path)
    assert "50.0 MiB, over the limit of 5 MiB for a YAML or JSON scenario file (MAX_FILE_BYTES)" in issue.message
    assert MAX_FILE_BYTES == 5 * 2**20


def test_repeated_yaml_aliases_are_validated_in_linear_time(tmp_path, scenario_data):
    """567 KB of ``- *f`` (113,000 facts): quadratic in the fact-id check before, linear now."""
    text = yaml.safe_dump(scenario_data, sort_keys=False)
    head = "facts:\n- &f {category: hpi, text: I cough at night.}\n"
    count = (567_000 - len(text)) // 5
    path = tmp_path / "aliases.yaml"
    path.write_text(text.replace("facts:\n", head + "- *f\n" * count, 1))
    [scenario] = load_scenarios(path).scenarios
    assert len(scenario.facts) == count + 4 and scenario.facts[-1].id == f"f{count + 4}"


def test_aliases_that_multiply_or_loop_are_refused_before_validation(tmp_path, scenario_data):
    text = yaml.safe_dump(scenario_data, sort_keys=False)
    words = "[" + ", ".join(["cough"] * 1000) + "]"
    fact = f"- &f {{category: hpi, text: I cough., keywords: &k {words}}}\n"
    (tmp_path / "bomb.yaml").write_text(text.replace("facts:\n", "facts:\n" + fact + "- *f\n" * 20_000, 1))
    (tmp_path / "loop.yaml").write_text(text.replace("facts:\n", "facts: &a\n- *a\n", 1))
    bomb, loop = load_scenarios(tmp_path, skip_errors=True).errors
    assert bomb.code == "too-large" and bomb.path.endswith("bomb.yaml")
    assert "aliases expand the file to 20,141,096 values, over the limit of 1,000,000 (MAX_YAML_VALUES)" in bomb.message
    assert loop.path.endswith("loop.yaml") and "alias refers to the mapping or list that holds it" in loop.message


# ------------------------------------------------------------------ per-record errors


def test_a_medqa_record_with_a_list_of_test_results_is_one_error(tmp_path):
    bad = json.loads(json.dumps(MEDQA_ROWS[0]))
    bad["OSCE_Examination"]["Test_Results"] = [1, [2, {}]]
    path = tmp_path / "medqa.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [MEDQA_ROWS[0], bad, MEDQA_ROWS[1]]) + "\n")
    loaded = load_scenarios(path, skip_errors=True)
    assert loaded.ids() == ["medqa-001", "medqa-003"]
    [error] = loaded.errors
    assert (error.path, error.line, error.field) == (str(path), 2, "OSCE_Examination.Test_Results")
    assert "Test_Results must be a mapping of names to findings, not a list" in error.message


def test_deep_long_and_repeated_jsonl_lines_are_errors_by_line(tmp_path, scenario_data):
    deep = "[" * 100_000 + "]" * 100_000
    shallow = json.dumps({"a": "[" * 100, "b": [[["ok"]]]})  # brackets inside strings do not count
    long = json.dumps({**scenario_data, "id": "long", "title": "x" * MAX_RECORD_BYTES})
    repeated = json.dumps({**scenario_data, "id": "twice"})[:-1] + ', "id": "again"}'
    rows = [deep, json.dumps(scenario_data), shallow, long, repeated, json.dumps({**scenario_data, "id": "last"})]
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(rows) + "\n")
    loaded = load_scenarios(path, skip_errors=True)
    assert loaded.ids() == ["test-case", "last"]
    errors = {e.line: e for e in loaded.errors}
    assert sorted(errors) == [1, 3, 4, 5] and all(e.path == str(path) for e in errors.values())
    assert f"nested more than {MAX_JSON_DEPTH} deep" in errors[1].message
    assert errors[3].code == "schema"  # read, then refused as a scenario
    assert errors[4].code == "too-large" and "(MAX_RECORD_BYTES)" in errors[4].message
    assert errors[5].code == "duplicate-key" and "'id' is given twice" in errors[5].message


def test_a_key_given_twice_in_yaml_is_an_error_of_that_record(tmp_path, scenario_data):
    text = yaml.safe_dump([scenario_data, {**scenario_data, "id": "other"}], sort_keys=False)
    text = text.replace("    age: 40\n", "    age: 40\n    age: 41\n", 1)  # in the first record only
    path = tmp_path / "cases.yaml"
    path.write_text(text)
    loaded = load_scenarios(path, skip_errors=True)
    assert loaded.ids() == ["other"]
    [error] = loaded.errors
    assert error.code == "duplicate-key" and error.field == "patient" and error.path == str(path)
    assert text.splitlines()[error.line - 1].strip() == "age: 41" and "first on line" in error.message


def test_keys_brought_in_by_a_yaml_merge_may_be_overridden(tmp_path, scenario_data):
    text = yaml.safe_dump(scenario_data, sort_keys=False)
    text = text.replace("patient:\n", "patient:\n  <<: {age: 30, sex: male}\n")
    path = tmp_path / "merge.yaml"
    path.write_text(text)
    [scenario] = load_scenarios(path).scenarios
    assert (scenario.patient.age, scenario.patient.sex) == (40, "female")


def test_deeply_nested_yaml_is_an_error_not_a_crash(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("[" * 5000 + "]" * 5000)
    [error] = load_scenarios(path, skip_errors=True).errors
    assert error.code == "syntax" and error.line in (1, None)
    assert "nesting depth" in error.message or "nested too deeply" in error.message  # libyaml's words, or ours


# ------------------------------------------------------------------ rich markup in user text


@pytest.fixture
def markup_folder(tmp_path, scenario_data):
    folder = tmp_path / "x[/bold]y"  # the folder "x[" holds "bold]y"
    folder.mkdir(parents=True)
    (folder / "good.yaml").write_text(yaml.safe_dump(scenario_data))
    bad = {**scenario_data, "id": "bad", "patient": {"age": -1, "sex": "female"}}
    (folder / "bad.yaml").write_text(yaml.safe_dump(bad))
    return folder


def test_validate_and_list_print_paths_and_fields_as_text(markup_folder):
    result = runner.invoke(app, ["scenarios", "validate", str(markup_folder)])
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "1 scenarios (1 diagnostic cases) in 1 specialties: 1 errors" in text
    assert f"{markup_folder}/bad.yaml" in text and "[patient.age]" in text
    listed = runner.invoke(app, ["scenarios", "list", str(markup_folder)])
    assert listed.exit_code == 0, listed.output
    assert "[patient.age]" in " ".join(listed.output.split()) and "x[/bold]y" in listed.output


def test_run_and_import_print_paths_as_text(markup_folder, tmp_path):
    out = tmp_path / "runs[/red]"
    result = runner.invoke(app, ["run", "--scenarios", str(markup_folder), "--doctor", "random", "--max-turns", "2",
                                 "--out", str(out), "--run-id", "r1"])
    assert result.exit_code == 0, result.output
    text = "".join(result.output.split())
    assert "[patient.age]" in text and "runs[/red]/r1/episodes.jsonl" in text
    imported = runner.invoke(app, ["scenarios", "import", str(markup_folder / "bad.yaml"), "--out", str(out)])
    assert imported.exit_code == 0 and "[patient.age]" in " ".join(imported.output.split())


# ------------------------------------------------------------------ hostile variations (second pass)


def test_package_lookup_consults_no_import_hook(tmp_path, scenario_data, write_yaml):
    """Only the file-system finders look for a package: an installed meta path finder may run code when
    asked (setuptools' distutils hack imports setuptools when asked for ``distutils``)."""
    site = tmp_path / "site"
    png(site / "plain" / "img.png")
    (site / "plain" / "__init__.py").write_text("")
    (site / "sitecustomize.py").write_text(
        "import sys\n"
        "class Hook:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'hooked':\n"
        f"            open({str(tmp_path / 'asked')!r}, 'w').write(name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Hook())\n")
    path = with_images(scenario_data, write_yaml, [{"asset": "package:hooked/x.png"},
                                                   {"asset": "package:plain/img.png"}])
    script = ("from agentclinic.scenario.assets import resolve_asset; "
              "from agentclinic.scenario.quality import validate_paths; "
              f"_, report = validate_paths([{str(path)!r}]); "
              "print('\\n'.join(f'{i.field}: {i.message}' for i in report.errors)); "
              "print(resolve_asset('package:agentclinic/scenario/schema.py'))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(site)})
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "asked").exists()
    assert "images.0.asset: asset 'package:hooked/x.png': package 'hooked' is not installed" in done.stdout
    assert "images.1" not in done.stdout
    assert done.stdout.strip().endswith(os.path.join("agentclinic", "scenario", "schema.py"))  # editable installs too


def test_a_nul_byte_or_a_symlink_loop_in_an_asset_path_is_an_error(tmp_path, scenario_data, write_yaml):
    path = with_images(scenario_data, write_yaml, [{"asset": "x.png\x00/../../etc/passwd"}, {"asset": "a/x.png"},
                                                   {"asset": CT, "mask": "package:pydicom/m\x00.png"}])
    (path.parent / "a").symlink_to("b")
    (path.parent / "b").symlink_to("a")
    errors = asset_errors(path)
    assert sorted(errors) == ["images.0.asset", "images.1.asset", "images.2.mask"]
    assert "NUL" in errors["images.0.asset"].message and "NUL" in errors["images.2.mask"].message
    assert "symbolic link" in errors["images.1.asset"].message
    result = runner.invoke(app, ["scenarios", "validate", str(path)])
    assert result.exit_code == 1 and result.exception.__class__ is SystemExit


def test_a_dicom_header_without_a_real_size_is_refused(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    header = pydicom.dcmread(pydicom.data.get_testdata_file("CT_small.dcm"))
    header.Rows = header.Columns = 65535  # 4.3 gigapixels, hidden behind a negative frame count
    header.NumberOfFrames = "-1"
    header.save_as(tmp_path / "negative.dcm")
    header = pydicom.dcmread(pydicom.data.get_testdata_file("CT_small.dcm"))
    del header.Rows
    header.save_as(tmp_path / "no-rows.dcm")
    assert "NumberOfFrames" in check_asset("negative.dcm", tmp_path)
    assert "Rows" in check_asset("no-rows.dcm", tmp_path)


def test_aliases_of_long_strings_cannot_multiply_the_text(tmp_path, scenario_data):
    """1 MiB of text named once and repeated by 12 aliases is 13 MiB to validate: over the limit, refused
    before any of it is copied (a hundred such aliases took 31 s and 2 GB)."""
    from agentclinic.scenario.reading import MAX_YAML_TEXT

    text = yaml.safe_dump(scenario_data, sort_keys=False)
    long = "cough " * (2**20 // 6)
    facts = f"facts:\n- &f {{category: hpi, text: &s \"{long}\"}}\n" + "- *f\n" * 12
    path = tmp_path / "strings.yaml"
    path.write_text(text.replace("facts:\n", facts, 1))
    [error] = load_scenarios(path, skip_errors=True).errors
    assert error.code == "too-large" and error.path == str(path)
    assert f"over the limit of {MAX_YAML_TEXT // 2**20} MiB of text (MAX_YAML_TEXT)" in error.message
    path.write_text(text.replace("facts:\n", f"facts:\n- &f {{category: hpi, text: \"{long}\"}}\n- *f\n", 1))
    assert len(load_scenarios(path).scenarios[0].facts) == 5  # a few aliases of long text are fine


def test_a_scenario_has_at_most_max_images(tmp_path, scenario_data, write_yaml):
    """A few bytes per aliased image; 2,000 of them cost 215 s per episode with images up front."""
    from agentclinic.scenario.schema import MAX_IMAGES

    png(tmp_path / "case" / "x.png")
    path = with_images(scenario_data, write_yaml, [{"asset": "x.png"}] * (MAX_IMAGES + 1))
    [error] = load_scenarios(path, skip_errors=True).errors
    assert error.field == "images" and error.path == str(path) and error.line is not None
    assert f"{MAX_IMAGES + 1} images, over the limit of {MAX_IMAGES} per scenario (MAX_IMAGES)" in error.message
    with_images(scenario_data, write_yaml, [{"asset": "x.png"}] * MAX_IMAGES)
    assert len(load_scenarios(path).scenarios[0].images) == MAX_IMAGES


def test_nan_and_infinite_values_are_errors_of_their_record(tmp_path, scenario_data):
    rows = []
    for number in ("NaN", "Infinity", "1e400", "4.5"):
        data = json.loads(json.dumps(scenario_data))
        data["id"] = f"v-{len(rows)}"
        data["tests"][0] |= {"value": "@", "unit": "mg/L"}
        rows.append(json.dumps(data).replace('"@"', number))
    path = tmp_path / "values.jsonl"
    path.write_text("\n".join(rows) + "\n")
    loaded = load_scenarios(path, skip_errors=True)
    assert loaded.ids() == ["v-3"]
    assert [(e.line, e.field) for e in loaded.errors] == [(n, "tests.0.value") for n in (1, 2, 3)]
    assert all("finite" in e.message for e in loaded.errors)


def test_report_prints_user_text_as_text(tmp_path, scenario_data, write_yaml):
    """Folder names, specialties and error messages in a run are text, never rich markup."""
    cases = write_yaml({**scenario_data, "specialty": "[/] [red]chest"}, "cases/case.yaml").parent
    out = tmp_path / "runs[/red]"
    assert runner.invoke(app, ["run", "--scenarios", str(cases), "--doctor", "random", "--max-turns", "2",
                               "--out", str(out), "--run-id", "r"]).exit_code == 0
    episodes = out / "r" / "episodes.jsonl"
    row = json.loads(episodes.read_text())
    episodes.write_text(json.dumps(row) + "\n" + json.dumps(row | {"episode": 1, "outcome": "error",
                                                                   "error": "ValueError: [/] [bold]x"}) + "\n")
    result = runner.invoke(app, ["report", str(out / "r"), "--html", str(tmp_path / "report.html")])
    assert result.exit_code == 0, result.output
    text = "".join(result.output.split())
    assert "[/]-[red]chest" in text and "ValueError:[/][bold]x" in text and "report:" in text
    episodes.write_text("{broken\n" + json.dumps(row) + "\n")
    broken = runner.invoke(app, ["report", str(out / "r"), "--no-html"])
    assert broken.exit_code == 1 and broken.exception.__class__ is SystemExit
    assert "runs[/red]/r/episodes.jsonl:1:" in "".join(broken.output.split())


def test_kb_search_and_tool_errors_print_text_as_text(monkeypatch, tmp_path):
    from agentclinic.tools import retrieval

    hit = retrieval.Hit(disease="[/] Pneumonia", source="kb", score=1.0, text="cough [bold]x[/]", passage_id="p")
    monkeypatch.setattr(retrieval, "search", lambda query, k, sources: [hit])
    found = runner.invoke(app, ["kb", "search", "[/red] cough"])
    assert found.exit_code == 0, found.output
    text = "".join(found.output.split())
    assert "'[/red]cough'" in text and "[/]Pneumonia" in text and "cough[bold]x[/]" in text
    missing = runner.invoke(app, ["tool", "segment", "--image", str(tmp_path / "x[/]y.png")])
    assert missing.exit_code != 0 and missing.exception.__class__ is SystemExit, missing.output
    assert "x[/]y.png" in missing.output
