"""Device profiles: a device's memory, parser, DLA cores and targets (harness/data/profiles/*.yaml, or a user's
YAML). Read by the readiness checks, the on-device check, bundles and the fleet's device list."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.data import shipped_profiles
from harness.errors import UserError
from harness.units import parse_size

if TYPE_CHECKING:
    from harness.data import Traversable
    from harness.reports.data import Point


PROFILE_KINDS = ("jetson", "cuda", "cpu")  # a runtime declares which it is check --on-device's default for


class Targets(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch_size: int = Field(1, ge=1)
    min_fps: float | None = Field(None, gt=0)


class DeviceProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    kind: str = Field(pattern=f"^({'|'.join(PROFILE_KINDS)})$")
    device_match: list[str]
    part_numbers: list[str] = Field(default_factory=list)  # the Jetson modules it answers for ('p3448-0000')
    memory_total_bytes: int = Field(alias="memory_total")
    memory_budget_bytes: int = Field(alias="memory_budget")
    compute_capability: str | None = None
    jetpack: str | None = None
    tensorrt: str | None = None
    onnx_max_opset: int | None = None
    onnx_max_opset_source: str | None = None
    dla_cores: int = Field(0, ge=0)
    power_mode: str | None = None  # the nvpmodel mode the targets assume; check warns when the board's differs
    targets: Targets = Targets()

    @field_validator("memory_total_bytes", "memory_budget_bytes", mode="before")
    @classmethod
    def _size(cls, value: Any) -> int:
        return parse_size(value) if isinstance(value, str) else value

    @property
    def fast_int8(self) -> bool | None:
        """Whether the GPU has fast int8 (compute capability 6.1 or newer: TensorRT's support matrix, what its
        platformHasFastInt8 reports); None where the profile names no compute capability."""
        if not self.compute_capability:
            return None
        major, _, minor = self.compute_capability.partition(".")
        return (int(major), int(minor or 0)) >= (6, 1)

    def matches(self, point: "Point") -> bool:
        """Whether a measured point's device is this profile's (by `device_match`)."""
        return any(part.lower() in point.device.lower() for part in self.device_match)


def available_profiles() -> list[str]:
    """The names of the profiles the package ships (harness/data/profiles)."""
    return sorted(shipped_profiles())


def load_profile(name_or_path: str) -> DeviceProfile:
    """A profile by path, or by the name of a shipped one (harness/data/profiles/<name>.yaml)."""
    path: Path | Traversable = Path(name_or_path)
    if not path.is_file():
        shipped = shipped_profiles().get(name_or_path)
        if shipped is None:
            raise UserError(f"unknown profile '{name_or_path}': give a YAML file or one of "
                            f"{', '.join(available_profiles()) or '(none shipped: reinstall dnn-harness)'}")
        path = shipped
    try:
        return DeviceProfile.model_validate(yaml.safe_load(path.read_text()))
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not a YAML profile (byte {exc.start} is not UTF-8 text): give a profile's "
                        "YAML file") from None
    except OSError as exc:
        raise UserError(f"cannot read the profile {path}: {exc.strerror or exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise UserError(f"{path}: {where}: {first['msg']} ({exc.error_count()} problem(s) in all)") from None
