"""The GPU install (``gpu`` extra, constraints-gpu.txt, ``make setup-gpu``), ``tsepipe doctor``.

No GPU is needed. The pins are checked two ways: offline, against the ``and-cuda``
requirements that the installed TensorFlow 2.21.0 declares (tensorflow-cpu declares the
same ones as the CUDA build), and by pip's own resolver over ``.[gpu]`` with both constraints
files, which needs the package index but not the CUDA wheels: a recent pip reads each
wheel's metadata with HTTP range requests (``--use-feature=fast-deps``) and, in a dry run,
downloads nothing else (the venv's pip 23.2 would fetch every wheel, some GB).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from typer.testing import CliRunner

from tsepipe.cli import app

ROOT = Path(__file__).resolve().parents[2]
GPU_CONSTRAINTS = ROOT / "constraints-gpu.txt"
TF_VERSION = "2.21.0"
# The pip that resolves without downloading the wheels (fetched into a temporary folder,
# run from its wheel: the project's venv is left as it is).
RESOLVER_PIP = "26.3"


def read_pins(path: Path) -> tuple[dict[str, str], list[str]]:
    """(canonical name -> exact version, included ``-c`` files) of a constraints file."""
    pins: dict[str, str] = {}
    included = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-c"):
            included.append(line[2:].strip())
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", \
            f"{path.name}: {line!r} is not an exact pin"
        pins[canonicalize_name(requirement.name)] = specifiers[0].version
    return pins, included


def cuda_requirements(requires: list[str]) -> list[Requirement]:
    """The requirements that TensorFlow's ``and-cuda`` extra adds."""
    found = []
    for text in requires:
        requirement = Requirement(text)
        marker = requirement.marker
        if marker and marker.evaluate({"extra": "and-cuda"}) and \
                not marker.evaluate({"extra": ""}):
            found.append(requirement)
    return found


def pin_problems(requirements: list[Requirement], pins: dict[str, str]) -> list[str]:
    """What is wrong with ``pins`` for ``requirements``: one line per problem, none if fine."""
    problems = []
    wanted = {canonicalize_name(r.name) for r in requirements}
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"{name}: not pinned (TensorFlow needs {requirement.specifier})")
        elif not requirement.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{name}=={pins[name]}: outside TensorFlow's {requirement.specifier}")
    problems += [f"{name}: pinned but not required by tensorflow[and-cuda]"
                 for name in sorted(pins) if name.startswith("nvidia-") and name not in wanted]
    return problems


def installed_tensorflow() -> importlib.metadata.Distribution:
    for package in ("tensorflow-cpu", "tensorflow"):
        try:
            return importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    pytest.fail("neither tensorflow-cpu nor tensorflow is installed")


# --- the pins, offline ------------------------------------------------------------------


def test_the_gpu_extra_is_the_cuda_build_of_the_pinned_tensorflow():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    base = {canonicalize_name(Requirement(r).name): Requirement(r)
            for r in project["dependencies"]}
    assert str(base["tensorflow-cpu"].specifier) == f"=={TF_VERSION}"  # the CPU default
    assert "tensorflow" not in base
    (gpu,) = project["optional-dependencies"]["gpu"]
    assert Requirement(gpu) == Requirement(f"tensorflow[and-cuda]=={TF_VERSION}")

    pins, included = read_pins(GPU_CONSTRAINTS)
    assert included == ["constraints.txt"]  # the CPU stack's pins hold too
    cpu_pins, _ = read_pins(ROOT / "constraints.txt")
    assert pins["tensorflow"] == cpu_pins["tensorflow-cpu"] == TF_VERSION
    assert not set(pins) & set(cpu_pins), "constraints-gpu.txt repeats a constraints.txt pin"


def test_every_cuda_wheel_tensorflow_needs_is_pinned_within_its_range():
    dist = installed_tensorflow()
    assert dist.version == TF_VERSION
    requirements = cuda_requirements(dist.requires or [])
    assert len(requirements) >= 10  # cuBLAS, cuDNN, cuFFT, NCCL, ...
    pins, _ = read_pins(GPU_CONSTRAINTS)
    assert pin_problems(requirements, pins) == []


def test_a_wrong_or_missing_pin_is_reported():
    requirements = cuda_requirements(installed_tensorflow().requires or [])
    pins, _ = read_pins(GPU_CONSTRAINTS)
    wrong = pins | {"nvidia-cudnn-cu12": "8.9.7.29"}  # cuDNN 8: TensorFlow needs 9
    del wrong["nvidia-nccl-cu12"]
    wrong["nvidia-cusparselt-cu12"] = "0.6.3"
    assert pin_problems(requirements, wrong) == [
        "nvidia-cudnn-cu12==8.9.7.29: outside TensorFlow's <10.0,>=9.3.0.75",
        "nvidia-nccl-cu12: not pinned (TensorFlow needs <3.0,>=2.27.7)",
        "nvidia-cusparselt-cu12: pinned but not required by tensorflow[and-cuda]",
    ]


# --- the pins, through pip's resolver (the package index, no CUDA wheel downloaded) --------


def _pip_env() -> dict[str, str]:
    return os.environ | {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1",
                         "PIP_PROGRESS_BAR": "off"}


@pytest.fixture(scope="module")
def resolver_pip(tmp_path_factory) -> list[str]:
    """The command that runs a pip able to resolve from metadata alone."""
    folder = tmp_path_factory.mktemp("pip")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "--dest", str(folder), f"pip=={RESOLVER_PIP}"],
        capture_output=True, text=True, env=_pip_env(), timeout=300)
    if done.returncode != 0:
        pytest.skip(f"the package index is out of reach (pip {RESOLVER_PIP} not fetched): "
                    f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    (wheel,) = folder.glob("pip-*.whl")
    return [sys.executable, str(wheel / "pip")]


def _dry_run(pip: list[str], args: list[str], report: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*pip, "install", "--dry-run", "--ignore-installed", "--use-feature=fast-deps",
         "--report", str(report), *args],
        cwd=ROOT, capture_output=True, text=True, env=_pip_env(), timeout=900)


def _downloads(output: str) -> list[str]:
    """Whole wheels pip downloaded (its metadata reads print no such line)."""
    return re.findall(r"Downloading (\S+\.whl)", output)


@pytest.mark.slow
def test_pip_resolves_the_gpu_extra_with_the_pinned_cuda_wheels(resolver_pip, tmp_path):
    report_path = tmp_path / "report.json"
    done = _dry_run(resolver_pip, ["-c", str(GPU_CONSTRAINTS), "-e", ".[gpu]"], report_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    heavy = [name for name in _downloads(done.stdout + done.stderr)
             if name.startswith(("tensorflow", "nvidia"))]
    assert heavy == [], f"the dry run downloaded {heavy}"

    report = json.loads(report_path.read_text(encoding="utf-8"))
    would_install = {canonicalize_name(item["metadata"]["name"]): item
                     for item in report["install"]}
    resolved = {name: item["metadata"]["version"] for name, item in would_install.items()}
    pins, _ = read_pins(GPU_CONSTRAINTS)
    assert {name: resolved.get(name) for name in pins} == pins
    # the CUDA wheels (not nvidia-ml-py, NVML's bindings that DVCLive brings on any machine)
    assert sorted(name for name in resolved if name.startswith("nvidia-")
                  and name.endswith("-cu12")) == \
        sorted(name for name in pins if name.startswith("nvidia-"))
    # Both builds resolve (the extra adds one, the base keeps the other); `make setup-gpu`
    # then removes tensorflow-cpu and lays the CUDA build's files again.
    assert resolved["tensorflow-cpu"] == resolved["tensorflow"] == TF_VERSION
    # The CUDA build declares the same and-cuda requirements as the installed wheel's
    # metadata (what the offline tests read).
    cuda_build = cuda_requirements(would_install["tensorflow"]["metadata"]["requires_dist"])
    assert sorted(map(str, cuda_build)) == \
        sorted(map(str, cuda_requirements(installed_tensorflow().requires or [])))


@pytest.mark.slow
def test_pip_refuses_a_cuda_pin_outside_tensorflows_range(resolver_pip, tmp_path):
    broken = tmp_path / "constraints-gpu.txt"
    text = GPU_CONSTRAINTS.read_text(encoding="utf-8")
    text = text.replace("-c constraints.txt", f"-c {ROOT / 'constraints.txt'}")
    text, count = re.subn(r"(?m)^nvidia-cudnn-cu12==.*$", "nvidia-cudnn-cu12==8.9.7.29", text)
    assert count == 1
    broken.write_text(text, encoding="utf-8")
    done = _dry_run(resolver_pip, ["-c", str(broken), f"tensorflow[and-cuda]=={TF_VERSION}"],
                    tmp_path / "report.json")
    assert done.returncode != 0
    assert "nvidia-cudnn-cu12" in done.stdout + done.stderr
    assert "ResolutionImpossible" in done.stdout + done.stderr


# --- tsepipe doctor ---------------------------------------------------------------------


@pytest.fixture
def params_with_recurrent_dropout(tmp_path) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["train"]["models"]["lstm_rd"] = {"cell": "lstm", "units": [16],
                                            "recurrent_dropout": 0.2}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def _gpus_seen() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def test_doctor_reports_versions_device_and_cudnn_eligibility(params_with_recurrent_dropout):
    import keras
    import tensorflow as tf

    result = CliRunner().invoke(app, ["doctor", "--params", str(params_with_recurrent_dropout)])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"TensorFlow {tf.__version__} (")
    assert lines[0].endswith(f"Keras {keras.__version__}")
    build = tf.sysconfig.get_build_info()
    if build.get("is_cuda_build"):
        assert lines[1].startswith(f"built with CUDA {build['cuda_version']}, "
                                   f"cuDNN {build['cudnn_version']}")
    else:
        assert lines[1] == "built with CUDA none, cuDNN none (the CPU-only build)"
    if not _gpus_seen():
        assert lines[2].startswith("device: CPU (") and "no GPU visible" in lines[2]
    else:
        assert lines[2].startswith("device: GPU x")
    assert re.search(r"^  lstm +cuDNN-eligible: ", result.stdout, re.MULTILINE)
    assert re.search(r"^  gru +cuDNN-eligible: ", result.stdout, re.MULTILINE)
    assert re.search(r"^  lstm_rd +not cuDNN-eligible: recurrent_dropout is 0.2 "
                     r"\(cuDNN needs 0\)$", result.stdout, re.MULTILINE)


def test_doctor_json(params_with_recurrent_dropout):
    import tensorflow as tf

    result = CliRunner().invoke(app, ["doctor", "--json", "--params",
                                      str(params_with_recurrent_dropout)])

    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["tensorflow"]["version"] == tf.__version__
    assert found["tensorflow"]["packages"] == \
        [canonicalize_name(installed_tensorflow().metadata["Name"])]
    assert found["device"]["kind"] == ("gpu" if _gpus_seen() else "cpu")
    if not found["tensorflow"]["build"]["is_cuda_build"]:
        assert found["cuda"] is None and found["cudnn"] is None
    assert found["models"]["lstm"]["cudnn_eligible"] is True
    assert found["models"]["lstm_rd"] == {
        "cell": "lstm", "units": [16], "recurrent_dropout": 0.2, "cudnn_eligible": False,
        "reason": "recurrent_dropout is 0.2 (cuDNN needs 0)"}


def test_doctor_outside_a_project_still_reports_the_machine(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "models: params.yaml not found here (pass --params)" in result.stdout
