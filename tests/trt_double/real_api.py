"""The real TensorRT Python API, class by class, as the real bindings register it (tests only).

Read from tests/fixtures/tensorrt_api/tensorrt-<version>.json, which extract.py there dumped from the
real `tensorrt_bindings` wheels (8.6.1, 10.3.0, 11.4.0.106) imported against stand-in libraries: whole
member names per class, their kind, and each method's `__doc__` signature lines (pybind11's, one per
overload). `Signature.check(args, kwargs)` applies pybind11's rules to a call: positional and keyword
arguments bound to the real parameter names, no missing or unknown ones, and each value of a type the real
binding converts (int, str, bool, buffer, Dims from a tuple or list, TensorRT's own classes and enums).
"""

from __future__ import annotations

import json
import operator
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "tensorrt_api"
REAL_VERSIONS = ("8.6.1", "10.3.0", "11.4.0.106")
PREFIX = re.compile(r"\btensorrt_bindings\.tensorrt\.")


def real_version_for(version: str) -> str:
    """The real bindings a version of the double is checked against: the same, or the nearest older one."""
    wanted = _tuple(version)
    older = [v for v in REAL_VERSIONS if _tuple(v) <= wanted]
    return older[-1] if older else REAL_VERSIONS[0]


def _tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:3])


@dataclass(frozen=True)
class Param:
    name: str
    annotation: str
    has_default: bool


def _split_params(text: str) -> list[str]:
    """Split 'a: X, b: List[int] = <E.V: 0>' at top-level commas."""
    parts, depth, current = [], 0, []
    for char in text:
        if char in "[(<":
            depth += 1
        elif char in "])>":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


@dataclass(frozen=True)
class Signature:
    text: str
    params: tuple[Param, ...]  # without self

    @classmethod
    def parse(cls, text: str) -> "Signature":
        text = PREFIX.sub("", text)
        inside = text[text.index("(") + 1:text.rindex(") ->")]
        params = []
        for part in _split_params(inside):
            name, _, rest = part.partition(":")
            annotation, _, default = rest.partition("=")
            params.append(Param(name.strip(), annotation.strip(), bool(default.strip())))
        if params and params[0].name == "self":
            params = params[1:]
        return cls(text, tuple(params))

    def bind(self, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any] | str:
        """The arguments by parameter name, or why pybind11 would refuse the call."""
        if len(args) > len(self.params):
            return f"{len(args)} positional arguments, {len(self.params)} taken"
        bound = {param.name: value for param, value in zip(self.params, args)}
        for name, value in kwargs.items():
            if name not in {p.name for p in self.params}:
                return f"no parameter named {name!r}"
            if name in bound:
                return f"{name!r} given twice"
            bound[name] = value
        missing = [p.name for p in self.params if p.name not in bound and not p.has_default]
        return f"missing {', '.join(missing)}" if missing else bound

    def check(self, args: tuple, kwargs: dict[str, Any], classes: dict[str, type]) -> str | None:
        """None if the real binding takes this call, else why not."""
        bound = self.bind(args, kwargs)
        if isinstance(bound, str):
            return bound
        for param in self.params:
            if param.name in bound and not converts(param.annotation, bound[param.name], classes):
                return f"{param.name}: {type(bound[param.name]).__name__} is not {param.annotation}"
        return None


def _is_int(value: Any) -> bool:
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def _is_buffer(value: Any) -> bool:
    try:
        memoryview(value)
    except TypeError:
        return False
    return True


def _is_dims(value: Any, classes: dict[str, type]) -> bool:
    if "Dims" in classes and isinstance(value, classes["Dims"]):
        return True
    return isinstance(value, (tuple, list)) and all(_is_int(d) for d in value)  # implicitly convertible


SCALARS: dict[str, Callable[[Any], bool]] = {
    "int": _is_int, "typing.SupportsInt": _is_int,
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "typing.SupportsFloat": lambda v: isinstance(v, (int, float)),
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool) or type(v).__name__ == "bool_",
    "buffer": _is_buffer, "typing_extensions.Buffer": _is_buffer, "collections.abc.Buffer": _is_buffer,
    "tuple": lambda v: isinstance(v, tuple), "list": lambda v: isinstance(v, list),
}


def converts(annotation: str, value: Any, classes: dict[str, type]) -> bool:
    """Whether pybind11 converts `value` to a parameter annotated `annotation` (unknown annotations pass)."""
    if annotation in SCALARS:
        return SCALARS[annotation](value)
    if annotation == "Dims" or annotation.startswith("Dims"):
        return _is_dims(value, classes)
    if annotation.startswith(("List[", "list[", "collections.abc.Sequence[")):
        return isinstance(value, (list, tuple))
    if annotation.startswith("typing.Optional[") or annotation.endswith("| None"):
        return True
    head = annotation.split(".")[0]
    if head in classes:
        target = classes[head]
        for inner in annotation.split(".")[1:]:
            target = getattr(target, inner, target)
        return isinstance(value, target)
    return True


@dataclass(frozen=True)
class RealApi:
    version: str
    classes: dict[str, dict[str, Any]]
    functions: dict[str, list[str]]

    def has_class(self, name: str) -> bool:
        return name in self.classes

    def member(self, class_name: str, name: str) -> dict[str, Any] | None:
        """The member as the class has it, through its TensorRT bases too (whole names, not suffixes)."""
        cls = self.classes.get(class_name)
        if cls is None:
            return None
        if name in cls["members"]:
            return cls["members"][name]
        for base in cls["bases"]:
            found = self.member(base, name)
            if found is not None:
                return found
        return None

    def signatures(self, class_name: str, name: str) -> list[Signature]:
        """Overloads of a method, or of the constructor for name '__init__'."""
        if name == "__init__":
            return [Signature.parse(s) for s in self.classes[class_name]["init"]]
        member = self.member(class_name, name) or {}
        return [Signature.parse(s) for s in member.get("signatures", [])]


@lru_cache(maxsize=None)
def load(version: str) -> RealApi:
    """The real API of `version`, or of the nearest real bindings (8.5, served by no registry, as 8.6.1)."""
    data = json.loads((FIXTURES / f"tensorrt-{real_version_for(version)}.json").read_text())
    return RealApi(data["version"], data["classes"], data["functions"])
