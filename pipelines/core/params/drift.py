"""``drift:``: Evidently, the champion's training window against the latest days."""

from __future__ import annotations

from pydantic import Field

from pipelines.core.params.base import Positive, Section, Share


class DriftSection(Section):
    current_days: Positive = Field(60, description=(
        "the most recent trading days compared with the reference"))
    threshold: Share = Field(0.5, description=(
        "share of drifted features that counts as dataset drift; the monitoring flow "
        "triggers retraining at or above it"))
    method: str | None = Field("ks", description=(
        "per-feature test (Evidently stattest name); null: Evidently's default"))
    method_threshold: Share = Field(0.01, description="the per-feature test's threshold")
