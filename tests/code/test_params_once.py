"""Each setting is declared once: in params.yaml and in its section's schema.

The stage code receives the typed sections (``pipelines.core.params``); it declares no
setting again. These tests read the code: a stage function or dataclass that gives a
schema key a literal default of its own (``window: int = 10``), or a ``from_params``
mapping that copies keys out of the file, fails them.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import yaml

from pipelines.core.params.load import Params, load_params
from pipelines.core.params.train import ModelConfig

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "pipelines" / "core" / "params"
# Arguments that share a schema key's name but are another quantity, and why.
ANOTHER_QUANTITY = {
    "classification_metrics(threshold=...)": "the probability above which a day is up, "
                                              "not drift.threshold",
    "block_bootstrap_ci(seed=...)": "the bootstrap's random seed, not the sample's",
}


def schema_keys() -> set[str]:
    keys = {field.name for field in dataclasses.fields(ModelConfig)}
    for section in Params.model_fields.values():
        keys |= set(section.annotation.model_fields)
    return keys


def _literal(node: ast.AST | None) -> bool:
    if isinstance(node, ast.Constant):
        return node.value is not None
    if isinstance(node, ast.Tuple | ast.List):
        return bool(node.elts) and all(_literal(item) for item in node.elts)
    if isinstance(node, ast.UnaryOp):
        return _literal(node.operand)
    return False


def second_declarations(source: str, keys: set[str]) -> list[str]:
    """``name:line what`` for each literal default of a schema key, and each
    ``from_params``, in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if node.name == "from_params":
                found.append(f"{node.lineno} from_params")
            arguments = node.args.args + node.args.kwonlyargs
            defaults = ([None] * (len(node.args.args) - len(node.args.defaults))
                        + node.args.defaults + node.args.kw_defaults)
            found += [f"{node.lineno} {node.name}({argument.arg}=...)"
                      for argument, default in zip(arguments, defaults, strict=True)
                      if argument.arg in keys and _literal(default)]
        elif isinstance(node, ast.ClassDef):
            found += [f"{item.lineno} {node.name}.{item.target.id}"
                      for item in node.body
                      if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
                      and item.target.id in keys and _literal(item.value)]
    return sorted(found, key=lambda where: int(where.split(" ", 1)[0]))


def test_no_stage_module_declares_a_setting_again():
    keys = schema_keys()
    found = [f"{path.relative_to(ROOT)}:{where}"
             for path in sorted((ROOT / "pipelines").rglob("*.py"))
             if not path.is_relative_to(SCHEMA)
             for where in second_declarations(path.read_text(encoding="utf-8"), keys)
             if where.split(" ", 1)[1] not in ANOTHER_QUANTITY]
    found += [f"{path.relative_to(ROOT)}:{where}"
              for folder in ("flows", "tsepipe")
              for path in sorted((ROOT / folder).rglob("*.py"))
              for where in second_declarations(path.read_text(encoding="utf-8"), keys)]
    assert found == []


def test_the_check_finds_what_it_looks_for():
    keys = {"window", "max_fill_days", "seeds"}
    source = '''
from dataclasses import dataclass

@dataclass
class MergePolicy:
    max_fill_days: int = 5
    other: int = 3

    @classmethod
    def from_params(cls, params): ...

def evaluate(table, window=10, *, seeds=(1, 2, 3), gap=1): ...
def fine(window=None, seeds=DEFAULTS.seeds): ...
'''
    assert second_declarations(source, keys) == [
        "6 MergePolicy.max_fill_days", "10 from_params", "12 evaluate(window=...)",
        "12 evaluate(seeds=...)"]


def test_params_yaml_holds_the_schema_defaults_and_every_key_has_help():
    """The shipped params.yaml is the schema's defaults, key for key; each key has help."""
    shipped = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    assert load_params(ROOT / "params.yaml") == Params()
    defaults = Params().model_dump(mode="json", by_alias=True)
    assert set(shipped) == set(defaults)
    for section, values in shipped.items():
        assert set(values) == set(defaults[section]), section
    missing_help = [f"{name}.{key}" for name, section in Params.model_fields.items()
                    for key, field in section.annotation.model_fields.items()
                    if not field.description]
    assert missing_help == []
