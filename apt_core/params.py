"""Declared hyper-parameters: each attack and defense lists its parameters once, as :class:`Param`.

From the declaration (``params = (Param(...), ...)`` on the class) come ``get_params`` /
``set_params`` / ``clone`` (:class:`Configurable`), validation with one kind of message, the
CLI's ``--param NAME.PARAM=VALUE`` and ``params NAME`` listing, the dashboard's advanced
controls, the conformance test's invalid values and the README's method table.

Why declare instead of reading ``vars(self)``: the parameters feed the cache keys, and a
hyper-parameter that is not in the key returns a stale cached result.  With a declaration,
``get_params`` is exactly the declared names (a test checks they equal ``__init__``'s
arguments), so nothing can drop out by being stored under another name.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from apt_core.errors import ConfigError

_TYPES = (int, float, bool, str)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def clamp_number(value: Any, default: Any, low: float | None = None, high: float | None = None) -> Any:
    """``value`` as a finite number of ``default``'s type, clamped into ``[low, high]``; ``default``
    when it is not a finite number.  For values that arrive unchecked (a URL, a kept setting)."""
    kind = type(default) if isinstance(default, (int, float)) and not isinstance(default, bool) else float
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    if not math.isfinite(number):
        return default
    if low is not None:
        number = max(number, low)
    if high is not None:
        number = min(number, high)
    return int(round(number)) if kind is int else number


@dataclass(frozen=True)
class Param:
    """One hyper-parameter: its type, default, allowed values, one-line help, and the paper's value.

    ``low``/``high`` bound numbers (``low_open``/``high_open`` exclude the bound itself);
    ``choices`` lists the allowed strings; ``optional=True`` also allows ``None`` (whose
    meaning the help says, e.g. "the preset's").  ``paper`` is the value the method's paper
    uses (or a short text where it depends on the data set); None when the paper gives none.
    """

    name: str
    type: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None
    optional: bool = False
    paper: Any = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name.startswith("_"):
            raise ValueError(f"parameter name {self.name!r} must be a public identifier")
        if self.type not in _TYPES:
            raise ValueError(f"parameter {self.name}: type must be one of int, float, bool, str")
        if self.default is None and not self.optional:
            raise ValueError(f"parameter {self.name}: default None needs optional=True")

    # ------------------------------------------------------------------ validation
    def range_text(self) -> str:
        """The allowed values in words: ``a number in [0, 1]``, ``an integer >= 1``, ``one of a, b``."""
        kind = {int: "an integer", float: "a number", bool: "True or False", str: "text"}[self.type]
        if self.choices is not None:
            text = "one of " + ", ".join(map(str, self.choices))
        elif self.type in (bool, str) or (self.low is None and self.high is None):
            text = kind
        elif self.high is None:
            text = f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        elif self.low is None:
            text = f"{kind} {'<' if self.high_open else '<='} {self.high:g}"
        else:
            text = f"{kind} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        return text + (" or None" if self.optional else "")

    def validate(self, value: Any, owner: str = "") -> Any:
        """``value`` converted to the declared type, or a :class:`ConfigError` naming parameter and range."""
        label = f"{owner}.{self.name}" if owner else self.name

        def bad() -> ConfigError:
            return ConfigError(f"{label} must be {self.range_text()}, got {value!r}")

        if value is None:
            if self.optional:
                return None
            raise bad()
        if self.type is bool:
            if not isinstance(value, (bool, np.bool_)):
                raise bad()
            return bool(value)
        if self.type is str:
            if not isinstance(value, str) or (self.choices is not None and value not in self.choices):
                raise bad()
            return value
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise bad()
        if self.type is int:
            if isinstance(value, (float, np.floating)) and not float(value).is_integer():
                raise bad()
            out: Any = int(value)
        else:
            out = float(value)
            if not math.isfinite(out):
                raise bad()
        if self.low is not None and (out <= self.low if self.low_open else out < self.low):
            raise bad()
        if self.high is not None and (out >= self.high if self.high_open else out > self.high):
            raise bad()
        if self.choices is not None and out not in self.choices:
            raise bad()
        return out

    def parse(self, text: str, owner: str = "") -> Any:
        """A value from command-line text (``none`` for an optional parameter), validated."""
        label = f"{owner}.{self.name}" if owner else self.name
        raw = text.strip()
        if self.optional and raw.lower() in ("none", "null", "default"):
            return None
        try:
            if self.type is bool:
                if raw.lower() in _TRUE:
                    value: Any = True
                elif raw.lower() in _FALSE:
                    value = False
                else:
                    raise ValueError(raw)
            elif self.type is int:
                value = int(raw)
            elif self.type is float:
                value = float(raw)
            else:
                value = raw
        except ValueError:
            raise ConfigError(f"{label} must be {self.range_text()}, got {raw!r}") from None
        return self.validate(value, owner)

    # ------------------------------------------------------------ generated values
    def invalid_values(self) -> list:
        """Values this parameter must refuse (the conformance test tries every one)."""
        out: list = [[self.name]]  # a list is never a valid hyper-parameter
        if self.type is bool:
            return out + ["yes", 2]
        if self.type is str:
            out.append(3)
            if self.choices is not None:
                out.append("not-a-valid-choice")
            if not self.optional:
                out.append(None)
            return out
        out += ["x", True]
        if not self.optional:
            out.append(None)
        if self.type is int:
            out.append(1.5)
        else:
            out.append(float("nan"))
        if self.low is not None:
            out.append(self.low if self.low_open else self.low - 1)
        if self.high is not None:
            out.append(self.high if self.high_open else self.high + 1)
        return out

    def other_value(self, current: Any = None) -> Any:
        """A valid value different from the default and from ``current`` (round-trip and cache-key test)."""
        if self.type is bool:
            return not (self.default if current is None else current)
        if self.choices is not None:
            return next(c for c in self.choices if c != self.default and c != current)
        if self.type is str:
            return (self.default or "") + "-other"
        base = self.default
        if base is None:
            base = self.low if self.low is not None else (self.high if self.high is not None else 0)
            if (self.low is not None and self.low_open) or (self.high is not None and self.high_open and self.low is None):
                base = base + (1 if self.low is not None else -1) * (1 if self.type is int else 0.5)
            return self.type(base)
        for step in (1, -1, 0.5, -0.5, 0.25, -0.25):
            if self.type is int and step != int(step):
                continue
            candidate = self.type(base + step)
            try:
                self.validate(candidate)
            except ConfigError:
                continue
            if candidate != self.default and candidate != current:
                return candidate
        raise ValueError(f"no other valid value for {self.name}")

    def describe(self) -> dict:
        """One row of ``params NAME`` / the README table."""
        return {"name": self.name, "type": self.type.__name__, "default": self.default, "range": self.range_text(),
                "help": self.help, "paper": self.paper}


class Configurable:
    """Mixin of attacks and defenses: parameters from the class's ``params`` declaration.

    A subclass declares ``params: ClassVar[tuple[Param, ...]]`` (a subclass may extend its
    parent's: ``params = Parent.params + (...)``) and, in ``__init__``, calls
    ``self._set_declared(locals())`` (or :meth:`set_params`).  Every declared value is
    validated there and stored under its own name.  ``check_params`` holds checks across
    parameters (e.g. "not both").
    """

    name: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()

    @classmethod
    def param_specs(cls) -> dict[str, Param]:
        return {p.name: p for p in cls.params}

    def _set_declared(self, values: dict) -> None:
        """Validate and store the declared parameters found in ``values`` (``locals()`` of ``__init__``)."""
        specs = self.param_specs()
        self.set_params(**{k: values[k] for k in specs if k in values})

    def set_params(self, **params) -> "Configurable":
        """Validate and set declared parameters (an unknown name is a ConfigError listing the valid ones)."""
        specs = self.param_specs()
        unknown = [k for k in params if k not in specs]
        if unknown:
            valid = ", ".join(specs) if specs else "none"
            raise ConfigError(f"{self.name or type(self).__name__!r} has no parameter {', '.join(map(repr, unknown))} (valid: {valid})")
        checked = {k: specs[k].validate(v, self.name) for k, v in params.items()}
        for k, v in checked.items():
            setattr(self, k, v)
        self.check_params()
        return self

    def check_params(self) -> None:
        """Checks across parameters; raise :class:`ConfigError`.  Default: none."""

    def get_params(self) -> dict:
        """Every declared parameter's current value (what the cache keys hold)."""
        return {p.name: getattr(self, p.name) for p in self.params}

    def clone(self) -> "Configurable":
        """A new unfitted instance with the same parameters."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


def describe_params(cls: type) -> list[dict]:
    return [p.describe() for p in getattr(cls, "params", ())]


def parse_assignment(text: str) -> tuple[str, str, str]:
    """``"apt.r_plus=0.3"`` -> ``("apt", "r_plus", "0.3")`` (a ConfigError says the expected form)."""
    target, sep, value = text.partition("=")
    method, dot, param = target.strip().rpartition(".")
    if not sep or not dot or not method or not param:
        raise ConfigError(f"--param expects NAME.PARAM=VALUE (e.g. apt.r_plus=0.3), got {text!r}")
    return method.strip().lower(), param.strip(), value
