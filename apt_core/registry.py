"""Building attacks, defenses, detectors and victims by name with clear errors for unknown names and hyper-parameters."""
from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, MutableMapping, Sequence

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


class NamesView(Sequence):
    """A registry's names, read each time they are used (a method registered later is a valid choice).

    Given as a :class:`~apt_core.params.Param`'s ``choices`` (e.g. APT's ``detector``), it
    keeps a declaration from freezing the registry as it was when the module was imported.
    """

    def __init__(self, registry: "Registry") -> None:
        self._registry = registry

    @property
    def registry(self) -> "Registry":
        """The registry whose names these are (a cache key adds the code of the entry a value names)."""
        return self._registry

    def _names(self) -> tuple[str, ...]:
        return tuple(self._registry.names())

    def __getitem__(self, index):
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __contains__(self, value) -> bool:
        return value in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __repr__(self) -> str:
        return f"NamesView({self._registry.kind}: {', '.join(self._names())})"


class Registry(MutableMapping):
    """Name -> class for one kind of method (attacks, defenses, detectors, victims): one mechanism for all.

    :meth:`register` refuses an empty name and a name already taken by another class (two
    methods under one name would silently replace each other, and share cache entries).
    Item assignment and deletion work as on a ``dict`` so tests can swap a class temporarily.

    ``derived`` (optional) returns entries computed from other registries *when read*, e.g.
    one ``remove-<detector>`` defense per registered detector: a detector registered after
    import gets its defense without anyone re-registering anything.  Registered entries win
    over derived ones of the same name.
    """

    def __init__(self, kind: str, reserved: tuple[str, ...] = (), derived: Callable[[], dict[str, type]] | None = None):
        self.kind = kind
        #: names handled outside the registry (e.g. attack ``none``) that no class may take
        self.reserved = tuple(reserved)
        self._own: dict[str, type] = {}
        self._derived = derived

    def _entries(self) -> dict[str, type]:
        if self._derived is None:
            return self._own
        return {**self._own, **{k: v for k, v in self._derived().items() if k not in self._own}}

    def __getitem__(self, name: str) -> type:
        return self._entries()[name]

    def __setitem__(self, name: str, cls: type) -> None:
        self._own[name] = cls

    def __delitem__(self, name: str) -> None:
        del self._own[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries())

    def __len__(self) -> int:
        return len(self._entries())

    def __repr__(self) -> str:
        return f"Registry({self.kind}: {', '.join(self)})"

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
        self._own[name] = cls
        return cls

    def names(self) -> list[str]:
        return [*self.reserved, *self]

    def live_names(self) -> NamesView:
        """The names as a sequence read at each use (for a parameter's ``choices``)."""
        return NamesView(self)

    def lookup(self, name: str) -> type:
        """The class registered as ``name`` (case-insensitive); an unknown name is a ConfigError listing the known ones."""
        key = name.strip().lower() if isinstance(name, str) else name
        entries = self._entries()
        if key not in entries:
            raise ConfigError(f"unknown {self.kind} {name!r}: choose one of {', '.join(self.names())}")
        return entries[key]

    def make(self, name: str, **params):
        """An instance of the class registered as ``name`` (case-insensitive), with ``params``."""
        cls = self.lookup(name)
        return instantiate(self.kind, name.strip().lower(), cls, params)
