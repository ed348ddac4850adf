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


class Registry(dict):
    """Name -> class for one kind of method (attacks, defenses, detectors): one mechanism for all.

    :meth:`register` refuses an empty name and a name already taken by another class (two
    methods under one name would silently replace each other, and share cache entries).
    Item assignment stays a plain ``dict`` operation so tests can swap a class temporarily.
    """

    def __init__(self, kind: str, reserved: tuple[str, ...] = ()):
        super().__init__()
        self.kind = kind
        #: names handled outside the registry (e.g. attack ``none``) that no class may take
        self.reserved = tuple(reserved)

    def register(self, cls: type) -> type:
        name = getattr(cls, "name", "")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"cannot register {self.kind} class {cls.__name__}: its `name` is empty")
        if name != name.strip().lower():
            raise ConfigError(f"cannot register {self.kind} {name!r}: names are lower case without surrounding spaces")
        if name in self.reserved:
            raise ConfigError(f"cannot register {self.kind} {name!r}: the name is reserved")
        if name in self and self[name] is not cls:
            raise ConfigError(f"a {self.kind} named {name!r} is already registered ({self[name].__name__}); choose another name")
        self[name] = cls
        return cls

    def names(self) -> list[str]:
        return [*self.reserved, *self]

    def make(self, name: str, **params):
        """An instance of the class registered as ``name`` (case-insensitive), with ``params``."""
        key = name.strip().lower()
        if key not in self:
            raise ConfigError(f"unknown {self.kind} {name!r}: choose one of {', '.join(self.names())}")
        return instantiate(self.kind, key, self[key], params)
