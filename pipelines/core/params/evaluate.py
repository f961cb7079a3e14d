"""``evaluate:``: the walk-forward, the baselines, the champion rule, the intervals."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from pipelines.core.params.base import NonNegative, Positive, Section

BASELINES = ("majority", "always_up", "persistence", "logistic", "logistic_window")
Baseline = Literal["majority", "always_up", "persistence", "logistic", "logistic_window"]
Metric = Literal["mcc", "balanced_accuracy", "accuracy", "f1", "roc_auc"]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]


class EvaluateSection(Section):
    refit_every: Positive = Field(60, description=(
        "walk-forward, validation and test: refit every k days on all the labelled days "
        "before the block (an expanding window)"))
    gap: NonNegative = Field(1, description=(
        "labelled days left out between training and each block (and between drift's "
        "reference and current days)"))
    warm_start: bool = Field(True, description=(
        "refits after the first continue from the previous block's weights for warm_epochs "
        "(false: every refit from scratch)"))
    warm_epochs: Positive = Field(4, description=(
        "epochs of a warm-started refit (4 scored as 8 did on the pooled validation days of "
        "TEDPIX 2008-2019, at two thirds of the walk-forward's time)"))
    workers: NonNegative = Field(0, description=(
        "worker processes of the local Dask cluster that runs the (network, seed) "
        "walk-forwards; 0: one per core"))
    scheduler: str = Field("", description=(
        "the address of a Dask scheduler (tcp://host:8786) whose workers run the "
        "walk-forwards instead (they need this project installed; GPU workers can take "
        "them); empty: a local cluster"))
    champion_metric: Metric = Field("mcc", description=(
        "on the pooled walk-forward validation days"))
    promotion_margin: Annotated[float, Field(ge=0, le=1)] = Field(0.02, description=(
        "the champion rule's noise band: the candidates within this of the best validation "
        "score are tied, and a tie goes to a combination, else to a baseline, else to the "
        "best network (so a network must beat every baseline and combination by this)"))
    combinations: dict[Name, Annotated[list[Name], Field(min_length=2)]] = Field(
        default_factory=lambda: {"mean_forecast": ["lstm", "gru", "logistic_window"]},
        description=(
            "candidate forecasts that average their members' probabilities of up (networks "
            "of train.models, each already a mean over seeds, and baselines), on the same "
            "walk-forward days; a combination whose members are not all evaluated is "
            "left out"))
    baselines: Annotated[list[Baseline], Field(min_length=1)] = Field(
        default_factory=lambda: list(BASELINES), description=(
            "logistic: on the last 5 log returns of the target; logistic_window: on the "
            "window of features.set the networks read (standardised on training rows, C = 1)"))
    bootstrap_block: Positive = Field(10, description=(
        "moving-block bootstrap for the confidence intervals: block length in days"))
    bootstrap_samples: Positive = Field(1000, description="bootstrap resamples")
    p_adjustment: Literal["holm", "bh"] = Field("holm", description=(
        "with several targets, each champion's Pesaran-Timmermann p-value is adjusted for "
        "their number: holm (the chance of any false finding) or bh (Benjamini-Hochberg: "
        "the expected share of false findings)"))
    rolling_window: Positive = Field(40, description=(
        "trading days of the rolling accuracy drawn per model (plots and accuracy page)"))
