"""Reading ``params.yaml``: every section checked against its schema, once, into ``Params``.

``load_params`` reads the file and returns the typed, validated parameters: every section
known, every key known, each value of the right type and range (a key left out takes the
schema's default). A wrong file gives one ``error:`` line per wrong key, e.g.
``params.yaml: validate.max_bad_row_share: Input should be less than or equal to 1 (got
2.0)``, and nothing runs. The CLI and the flows call it and hand each stage its sections.
"""

from __future__ import annotations

import reprlib
from pathlib import Path

import yaml
from pydantic import ConfigDict, Field, ValidationError, model_validator

from pipelines.core.errors import DataError, printable
from pipelines.core.fileio import AliasRefused, load_yaml
from pipelines.core.params.backtest import BacktestSection
from pipelines.core.params.base import Section
from pipelines.core.params.calendar import CalendarSection
from pipelines.core.params.data import DataSection
from pipelines.core.params.drift import DriftSection
from pipelines.core.params.evaluate import BASELINES, EvaluateSection
from pipelines.core.params.features import FeaturesSection
from pipelines.core.params.fetch import FetchSection
from pipelines.core.params.forecast import ForecastSection
from pipelines.core.params.ingest import IngestSection
from pipelines.core.params.merge import MergeSection
from pipelines.core.params.paths import Paths
from pipelines.core.params.remote import RemoteSection
from pipelines.core.params.sample import SampleSection
from pipelines.core.params.split import SplitSection
from pipelines.core.params.sweep import SweepSection
from pipelines.core.params.train import TrainSection
from pipelines.core.params.validate import ValidateSection

DEFAULT_PARAMS = Path("params.yaml")
PARAMS_MAX_BYTES = 1 << 20  # the project's is 13 KB; a larger file is not one

_SHORT = reprlib.Repr()  # a wrong value as shown: its start, not megabytes of it
_SHORT.maxstring = _SHORT.maxother = 80


class Params(Section):
    """The whole of params.yaml: one section per stage (and paths)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True,
                              validate_by_name=True, validate_by_alias=True)

    paths: Paths = Field(default_factory=Paths)
    data: DataSection = Field(default_factory=DataSection)
    remote: RemoteSection = Field(default_factory=RemoteSection)
    fetch: FetchSection = Field(default_factory=FetchSection)
    ingest: IngestSection = Field(default_factory=IngestSection)
    # `validate` is a method of pydantic's models: the section is `validation` in code
    validation: ValidateSection = Field(default_factory=ValidateSection, alias="validate")
    merge: MergeSection = Field(default_factory=MergeSection)
    features: FeaturesSection = Field(default_factory=FeaturesSection)
    split: SplitSection = Field(default_factory=SplitSection)
    evaluate: EvaluateSection = Field(default_factory=EvaluateSection)
    train: TrainSection = Field(default_factory=TrainSection)
    drift: DriftSection = Field(default_factory=DriftSection)
    sample: SampleSection = Field(default_factory=SampleSection)
    sweep: SweepSection = Field(default_factory=SweepSection)
    backtest: BacktestSection = Field(default_factory=BacktestSection)
    calendar: CalendarSection = Field(default_factory=CalendarSection)
    forecast: ForecastSection = Field(default_factory=ForecastSection)

    @model_validator(mode="after")
    def _model_feature_sets(self) -> Params:
        for name, config in self.train.models.items():
            if config.features and config.features not in self.features.sets:
                raise ValueError(f"train.models.{name}.features: {config.features!r} is not "
                                 f"one of features.sets ({', '.join(self.features.sets)})")
        return self

    @model_validator(mode="after")
    def _combination_members(self) -> Params:
        known = [*self.train.models, *BASELINES]
        for name, members in self.evaluate.combinations.items():
            unknown = [member for member in members if member not in known]
            if unknown:
                raise ValueError(f"evaluate.combinations.{name}: {', '.join(unknown)}: not a "
                                 f"network of train.models or a baseline (known: "
                                 f"{', '.join(known)})")
        return self


def _problem_lines(path: Path, error: ValidationError) -> list[str]:
    """One line per wrong key: ``FILE: section.key: what is wrong (got VALUE)``."""
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        kind = problem["type"]
        if kind == "extra_forbidden":
            message = ("unknown section" if len(problem["loc"]) == 1 else "unknown key")
        elif kind == "missing":
            message = "missing"
        elif kind == "value_error":  # our own checks name the key and the value
            key, _, message = message.partition(": ")
            where = f"{where}.{key}" if where else key
        else:
            message = f"{message} (got {_SHORT.repr(problem['input'])})"
        lines.append(f"{printable(path)}: {printable(where, 160)}: {message}")
    return lines


def _yaml_problem(path: Path, error: yaml.YAMLError) -> str:
    """One line: where the YAML breaks (line, column) and what PyYAML found there."""
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = " ".join(part for part in (getattr(error, "context", None),
                                      getattr(error, "problem", None)) if part)
    kind = "" if isinstance(error, AliasRefused) else "not valid YAML: "
    return f"{printable(path)}: {where}{kind}{what or str(error).splitlines()[0]}"


def _utf16(data: bytes) -> bool:
    """Whether ``data`` looks like UTF-16 text: a byte order mark, or a zero byte in every
    other place (the high bytes of Latin text)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    half = len(data) // 2
    return half > 0 and max(data[0::2].count(0), data[1::2].count(0)) > half * 0.6


def _params_text(path: Path) -> str:
    """The text of the parameters file ``path``; a DataError that says what is wrong with it
    and the way back (missing, a folder, too large, UTF-16, not text)."""
    name = printable(path)
    restore = "git checkout -- params.yaml restores the project's"
    try:
        if path.is_dir():
            raise DataError(f"{name}: a folder, not the parameters file ({restore})")
        size = path.stat().st_size
        if size > PARAMS_MAX_BYTES:
            raise DataError(f"{name}: {size:,} bytes, not a parameters file (at most "
                            f"{PARAMS_MAX_BYTES:,}; {restore})")
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{name}: parameters file not found (run tsepipe from the project "
                        "root, or pass --params)") from None
    except OSError as exc:
        raise DataError(f"{name}: cannot read it ({exc.strerror or exc})") from None
    if _utf16(data):
        raise DataError(f"{name}: saved as UTF-16; save it as UTF-8 (an editor's encoding "
                        f"setting, or iconv -f UTF-16 -t UTF-8)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{name}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                        f"{exc.start}); save it as UTF-8 text ({restore})") from None
    if "\x00" in text:
        raise DataError(f"{name}: not text (it holds NUL bytes); save it as UTF-8 text "
                        f"({restore})")
    return text


def load_params(path: Path | str = DEFAULT_PARAMS) -> Params:
    """Read and check params.yaml; a missing, unreadable, malformed or wrong file is a
    DataError of one line per problem."""
    path = Path(path)
    text = _params_text(path)
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        raise DataError(_yaml_problem(path, exc)) from None
    except RecursionError:
        raise DataError(f"{printable(path)}: nested too deeply to be a parameters "
                        "file") from None
    if not isinstance(raw, dict):
        raise DataError(f"{printable(path)}: expected a mapping of sections (each "
                        f"`section:` then its `key: value` lines), got "
                        f"{type(raw).__name__ if raw is not None else 'an empty file'}")
    try:
        return Params.model_validate(raw, context={"project": path.parent.resolve()})
    except ValidationError as exc:
        raise DataError(_problem_lines(path, exc)) from None


def describe(params: Params, only: str | None = None) -> list[str]:
    """Lines ``section.key: value  (default ...)  help`` for every setting (or ``only``'s
    section); a value is shown as JSON, the default only where it differs."""
    import json

    lines = []
    values = params.model_dump(mode="json", by_alias=True)
    fields = {field.alias or name: field for name, field in Params.model_fields.items()}
    if only is not None and only not in fields:
        raise DataError(f"{only}: not a section of params.yaml (one of {', '.join(fields)})")
    for section, field in fields.items():
        if only is not None and section != only:
            continue
        defaults = field.annotation().model_dump(mode="json")
        for key, setting in field.annotation.model_fields.items():
            value = values[section][key]
            default = "" if value == defaults[key] else \
                f"  (default {json.dumps(defaults[key])})"
            lines.append(f"{section}.{key}: {json.dumps(value)}{default}  "
                         f"# {setting.description}")
    return lines
