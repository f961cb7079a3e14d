"""``tsepipe doctor``: what TensorFlow was built with, the device it sees, and which of the
networks get the fused cuDNN kernel.

A machine without a GPU is reported, not an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.core import devices
from pipelines.core.params.train import ModelConfig
from pipelines.core.provenance import package_versions
from pipelines.modelling.models import cudnn_eligible


def _plain(value: Any) -> Any:
    """JSON-ready: lists of text, scalars as they are."""
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    return value if isinstance(value, bool | int | float | str | None) else str(value)


def diagnose(networks: dict[str, ModelConfig] | None, params_path: Path) -> dict[str, Any]:
    """TensorFlow's build, the device, each network's cuDNN eligibility, and notes."""
    import keras
    import tensorflow as tf

    build = {key: _plain(value) for key, value in tf.sysconfig.get_build_info().items()}
    packages = list(package_versions(("tensorflow", "tensorflow-cpu")))
    device = devices.detect_device()
    models = None
    if networks is not None:
        models = {}
        for name, config in networks.items():
            eligible, reason = cudnn_eligible(config)
            models[name] = {"cell": config.cell, "units": list(config.units),
                            "recurrent_dropout": config.recurrent_dropout,
                            "cudnn_eligible": eligible, "reason": reason}
    return {
        "tensorflow": {"version": tf.__version__, "packages": packages, "build": build},
        "keras": keras.__version__,
        "cuda": build.get("cuda_version"),
        "cudnn": build.get("cudnn_version"),
        "device": device,
        "params": str(params_path) if models is not None else None,
        "params_path": str(params_path),
        "models": models,
        "notes": _notes(packages, build, device, models),
    }


def _notes(packages: list[str], build: dict[str, Any], device: dict[str, Any],
           models: dict[str, dict[str, Any]] | None) -> list[str]:
    notes = []
    if len(packages) > 1:
        notes.append("both tensorflow and tensorflow-cpu are installed: the module is "
                     "whichever came last (run `make setup-gpu` again, or rm -r .venv and "
                     "`make setup`)")
    if device["kind"] == "cpu":
        if build.get("is_cuda_build"):
            notes.append("a CUDA build, but TensorFlow sees no GPU: check nvidia-smi, the "
                         "driver (CUDA 12.5 needs R555+, or R525+ with minor-version "
                         "compatibility) and CUDA_VISIBLE_DEVICES")
        else:
            notes.append("the CPU build of TensorFlow: GPU workers install the CUDA build "
                         "with `make setup-gpu`")
        if models and any(m["cudnn_eligible"] for m in models.values()):
            notes.append("cuDNN applies on a GPU only: on this machine every model runs "
                         "Keras's generic recurrent loop")
    return notes


def report_lines(result: dict[str, Any]) -> list[str]:
    """``diagnose``'s result as the lines ``tsepipe doctor`` prints."""
    build, device, models = result["tensorflow"]["build"], result["device"], result["models"]
    packages = result["tensorflow"]["packages"]
    lines = [f"TensorFlow {result['tensorflow']['version']} "
             f"({', '.join(packages) or 'package unknown'}), Keras {result['keras']}"]
    if build.get("is_cuda_build"):
        capabilities = ", ".join(build.get("cuda_compute_capabilities") or []) or "unknown"
        lines.append(f"built with CUDA {build.get('cuda_version') or 'unknown'}, cuDNN "
                     f"{build.get('cudnn_version') or 'unknown'} (compute capabilities: "
                     f"{capabilities})")
    else:
        lines.append("built with CUDA none, cuDNN none (the CPU-only build)")
    if device["kind"] == "gpu":
        lines.append(f"device: GPU x{device['count']}: {device['name']}")
    else:
        lines.append(f"device: CPU ({device['name']}, {device['count']} logical cores); "
                     "no GPU visible to TensorFlow")
    if models is None:
        lines.append(f"models: {result['params_path']} not found here (pass --params)")
    else:
        lines.append(f"models ({result['params']}, train.models):")
        width = max((len(name) for name in models), default=0)
        for name, model in models.items():
            verdict = "cuDNN-eligible" if model["cudnn_eligible"] else "not cuDNN-eligible"
            lines.append(f"  {name:<{width}}  {verdict}: {model['reason']}")
    return lines + [f"note: {note}" for note in result["notes"]]
