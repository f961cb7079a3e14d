"""Final models: each network refitted on every labelled day, saved with a model card.

``models/<name>/model.keras`` (loads with Keras safe mode), ``scaler.json`` (the
training-rows-only standardisation), ``card.json`` (config, parameter count, cuDNN
eligibility, data version, git commit, device, training time, walk-forward metrics) and
``history.csv`` (loss and accuracy per epoch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines import devices
from pipelines.config import MODEL_CARD, MODEL_FILE, SCALER, TRAINING_HISTORY
from pipelines.features import FeatureTable, labelled_sample_days
from pipelines.fileio import file_md5, write_json, write_text
from pipelines.fitting import fit_network
from pipelines.leaderboard import Leaderboard
from pipelines.models import ModelConfig, count_params, cudnn_eligible, save_model
from pipelines.provenance import git_commit
from pipelines.settings import EvaluationSettings


def train_final(table: FeatureTable, configs: dict[str, ModelConfig], settings: EvaluationSettings,
                models_dir: Path | str, data_version: str,
                board: Leaderboard | None = None) -> dict[str, dict[str, Any]]:
    """Fit each network on all labelled days with the first seed; write its folder."""
    device = devices.detect_device()
    days = labelled_sample_days(table, settings.window)
    cards = {}
    for name, config in configs.items():
        view = table.view(config.features or None)
        model, scaler, run = fit_network(config, view, settings.window, days,
                                         settings.seeds[0], settings.deterministic,
                                         settings.mixed_precision)
        folder = Path(models_dir) / name
        save_model(model, folder / MODEL_FILE)
        scaler.save(folder / SCALER, view.names)
        eligible, reason = cudnn_eligible(config)
        row = board.models.get(name) if board else None
        evaluated = row.model_dump(mode="json", exclude_unset=True) if row else {}
        card = {
            "name": name,
            "config": config.to_dict(),
            "input_shape": [settings.window, len(view.names)],
            "feature_set": view.set_name,
            "features": list(view.names),  # per index, from the fields its file has
            "params": count_params(model),
            "cudnn_eligible": eligible,
            "cudnn_note": reason,
            "data_version": data_version,
            "git_commit": git_commit(),
            "device": device,
            "trained_on": {"days": len(days), "first": f"{table.dates[days[0]]:%Y-%m-%d}",
                           "last": f"{table.dates[days[-1]]:%Y-%m-%d}",
                           "seed": settings.seeds[0]},
            "training": {"epochs": run.epochs, "seconds": round(run.seconds, 3),
                         "seconds_per_epoch": round(run.seconds / max(run.epochs, 1), 4)},
            "walk_forward": {k: evaluated.get(k) for k in ("test", "test_by_seed", "training")},
            "model_md5": file_md5(folder / MODEL_FILE),
        }
        write_json(folder / MODEL_CARD, card)
        epochs = range(1, run.epochs + 1)
        keys = sorted(run.history)
        lines = ["epoch," + ",".join(keys)] + [
            f"{e}," + ",".join(f"{run.history[k][e - 1]:.6g}" for k in keys) for e in epochs]
        write_text(folder / TRAINING_HISTORY, "\n".join(lines) + "\n")
        cards[name] = card
    return cards
