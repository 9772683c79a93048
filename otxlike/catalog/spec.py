"""Plain data describing a backbone and its constructor arguments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MISSING: Any = object()
"""Marks an argument without a default (a required argument)."""


@dataclass(frozen=True)
class ArgSpec:
    """One constructor argument of a backbone.

    Attributes:
        name: Parameter name, e.g. ``depth``.
        default: Default value, or :data:`MISSING` if the argument is required.
        options: Valid values where the class declares them (e.g. ResNet's ``arch_settings`` keys
            ``(18, 34, 50, 101, 152)`` for ``depth``); empty if unknown.
        inherited: True if the parameter comes from a parent class through ``**kwargs``.
        annotation: The parameter's type annotation as written, or ``''``.
        doc: Its line from the class docstring's ``Args:`` section, or ``''``.
    """

    name: str
    default: Any = MISSING
    options: tuple = ()
    inherited: bool = False
    annotation: str = ""
    doc: str = ""

    @property
    def required(self) -> bool:
        """True if the argument has no default."""
        return self.default is MISSING


@dataclass(frozen=True)
class BackboneSpec:
    """A backbone that a library provides.

    Attributes:
        name: Full name ``<library>.<Name>``, e.g. ``mmdet.RegNet`` or ``torchvision.resnet18``.
        library: Provider name, e.g. ``mmdet``.
        source: Source file of the class or builder function (for the user to read).
        args: Constructor arguments in signature order, own parameters first.
        accepts_kwargs: True if the constructor takes ``**kwargs`` beyond ``args``.
        weights: The published pretrained checkpoint for the default arguments (an mmengine
            checkpoint name such as ``torchvision://resnet18``), or None if the library has none.
    """

    name: str
    library: str
    source: str
    args: tuple[ArgSpec, ...] = field(default_factory=tuple)
    accepts_kwargs: bool = False
    weights: str | None = None

    @property
    def short_name(self) -> str:
        """The name inside its library, e.g. ``RegNet``."""
        return self.name.split(".", 1)[1]

    @property
    def required(self) -> tuple[ArgSpec, ...]:
        """The arguments without a default."""
        return tuple(a for a in self.args if a.required)

    def arg(self, name: str) -> ArgSpec | None:
        """The argument called ``name``, or None."""
        return next((a for a in self.args if a.name == name), None)
