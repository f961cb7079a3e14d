"""The machine a network trains on, and the global TensorFlow/Keras settings of a run.

TensorFlow is imported inside the functions, so importing this module is cheap. Importing
it quiets TensorFlow's C++ logs (``TF_CPP_MIN_LOG_LEVEL=2``, unless the environment already
says otherwise), the start-up lines its libraries print whatever that says (dropped while
TensorFlow is first imported: ``quiet_tensorflow_start``) and its Python logger's warnings
(errors still show); import it before anything that imports Keras.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import platform
import re
import sys
import tempfile
from collections.abc import Iterator
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any

# Lines TensorFlow's C++ libraries write to the stderr file descriptor while it is imported,
# each library its own copy, and some whatever TF_CPP_MIN_LOG_LEVEL says (TF 2.21: absl's
# notice, oneDNN's); on a GPU build the CUDA plugins' factory registrations and TF-TRT's.
STARTUP_NOISE = re.compile(
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\] "  # absl INFO/WARNING
    rb"|\d{4}-\d\d-\d\d [\d:.]+: [IW] "  # TensorFlow's older format
    rb"|(E\d{4} |\d{4}-\d\d-\d\d [\d:.]+: E ).*"  # errors that are not: the GPU build's
    rb"(Unable to register cu\w+ factory|computation placer already registered)"
    rb"|To enable the following instructions: .* rebuild TensorFlow"  # cpu_feature_guard's
    rb"|.*TF-TRT Warning: Could not find TensorRT")


@contextlib.contextmanager
def startup_lines_dropped() -> Iterator[None]:
    """Hold what is written to file descriptor 2 while the block runs; then write back the
    lines that are not ``STARTUP_NOISE`` (a real error or warning still shows). Where
    descriptor 2 cannot be redirected, the block runs as it is."""
    try:
        if sys.stderr is not None:
            sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        saved = None
    if saved is None:
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().splitlines(keepends=True)
                    if not STARTUP_NOISE.match(line)]
            with contextlib.suppress(OSError):  # a closed terminal: nothing to show them on
                os.write(2, b"".join(kept))


class _QuietTensorFlowStart:
    """A finder on ``sys.meta_path`` that finds nothing itself: at the first import of
    ``tensorflow`` it takes itself off and has the real spec's loader run the import
    inside ``startup_lines_dropped``."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if name != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        execute = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            with startup_lines_dropped():
                execute(module)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def quiet_tensorflow_start() -> None:
    """Quiet TensorFlow's start-up in this process and the processes it starts: its C++ log
    level (unless the environment sets one) and, if not imported yet, its first import."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules and not any(
            isinstance(finder, _QuietTensorFlowStart) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowStart())


quiet_tensorflow_start()
# and its Python warnings that are about TensorFlow, not the run (a predict function traced
# once per model: a network of several seeds is several models)
logging.getLogger("tensorflow").setLevel(logging.ERROR)

log = logging.getLogger(__name__)

CPUINFO = Path("/proc/cpuinfo")


def _gpus() -> list[Any]:
    """The physical GPUs TensorFlow sees, each with memory growth turned on."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            # Take GPU memory as needed rather than all of it at start-up.
            tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError) as exc:  # already initialised: keep its setting
            log.debug("memory growth left unchanged on %s: %s", gpu.name, exc)
    return gpus


def _gpu_name(gpu: Any) -> str:
    import tensorflow as tf

    try:
        details = tf.config.experimental.get_device_details(gpu)
    except (RuntimeError, ValueError):
        details = {}
    return str(details.get("device_name") or gpu.name)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        for line in CPUINFO.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def detect_device() -> dict[str, Any]:
    """Describe where Keras will run; turn on memory growth on every GPU found.

    Returns ``{"kind": "gpu" | "cpu", "name", "count", "tensorflow"}``: for a GPU, the
    first GPU's name and the number of GPUs; for a CPU, the CPU model and its logical cores.
    """
    import tensorflow as tf

    gpus = _gpus()
    if gpus:
        names = sorted({_gpu_name(gpu) for gpu in gpus})
        return {"kind": "gpu", "name": ", ".join(names), "count": len(gpus),
                "tensorflow": tf.__version__}
    return {"kind": "cpu", "name": cpu_model(), "count": os.cpu_count() or 1,
            "tensorflow": tf.__version__}


def configure(seed: int, *, deterministic: bool, mixed_precision: bool) -> None:
    """Seed Python, NumPy and TensorFlow; optionally deterministic ops and mixed precision.

    ``deterministic`` turns on TensorFlow op determinism for the rest of the process (it
    cannot be turned off again). ``mixed_precision`` sets the ``mixed_float16`` policy
    only where a GPU is present: on a CPU float16 is slower, so the policy stays float32
    and a warning says so. Without ``mixed_precision`` the policy is reset to float32.
    """
    import keras
    import tensorflow as tf

    # Every walk-forward refit is a new model, so tf.function retracing is expected.
    tf.get_logger().setLevel("ERROR")
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    policy = "float32"
    if mixed_precision:
        if _gpus():
            policy = "mixed_float16"
        else:
            log.warning("mixed precision asked for but no GPU found: training in float32")
    keras.mixed_precision.set_global_policy(policy)


# One intra-op and one inter-op TensorFlow thread per process, so n workers use n cores.
TF_THREAD_ENV = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


def limit_tensorflow_threads() -> dict[str, int]:
    """Hold TensorFlow to ``TF_NUM_INTRAOP_THREADS`` / ``TF_NUM_INTEROP_THREADS`` (default 1).

    TensorFlow reads those variables when its runtime starts; setting them through
    ``tf.config.threading`` too makes the limit visible and holds where the environment
    lacks them. Once the runtime has started the values cannot change (a later call in
    the same process keeps the first values). Returns the limits in force.
    """
    import tensorflow as tf

    wanted = {"intra_op": int(os.environ.get("TF_NUM_INTRAOP_THREADS", "1")),
              "inter_op": int(os.environ.get("TF_NUM_INTEROP_THREADS", "1"))}
    setters = {"intra_op": tf.config.threading.set_intra_op_parallelism_threads,
               "inter_op": tf.config.threading.set_inter_op_parallelism_threads}
    for key, setter in setters.items():
        try:
            setter(wanted[key])
        except RuntimeError:  # the runtime has started in this process: keep its values
            pass
    return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}
