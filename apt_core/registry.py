"""Building attacks and defenses by name with clear errors for unknown hyper-parameters."""
from __future__ import annotations

import inspect

from apt_core.errors import ConfigError


def parameter_names(cls: type) -> tuple[list[str], bool]:
    """Hyper-parameter names of ``cls.__init__`` and whether it accepts ``**kwargs``."""
    if cls.__init__ is object.__init__:
        return [], False
    signature = inspect.signature(cls.__init__)
    accepted = [p for p in signature.parameters if p != "self"]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    return accepted, takes_any


def instantiate(kind: str, name: str, cls: type, params: dict):
    """``cls(**params)``, but an unknown parameter name is a ConfigError listing the valid ones."""
    accepted, takes_any = parameter_names(cls)
    unknown = [k for k in params if k not in accepted]
    if unknown and not takes_any:
        valid = ", ".join(accepted) if accepted else "none"
        raise ConfigError(f"{kind} {name!r} has no parameter {', '.join(map(repr, unknown))} (valid: {valid})")
    return cls(**params)
