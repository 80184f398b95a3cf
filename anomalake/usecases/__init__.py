"""The registry of use cases: one declaration per use case (``<name>.yaml`` here).

:func:`names` lists them; ``Settings.use_case(name)`` gives one's spec (its settings
section, :class:`~anomalake.usecases.spec.UseCaseSpec`); the CLI resolves the code
it names (its generator, replay messages, stream, backtest): its
``generate|replay|stream|backtest|alerts`` verbs are built from this registry.
"""

from __future__ import annotations

from anomalake.usecases import spec as _spec
from anomalake.usecases.spec import UseCaseSpec

#: The use cases, in the order they are listed.
USE_CASES = ("markets", "infra", "hosts", "wearables")


def names() -> tuple[str, ...]:
    """Every declared use case (a YAML file in this package), the known ones first."""
    declared = {p.stem for p in _spec.SPEC_DIR.glob("*.yaml")}
    return tuple(n for n in USE_CASES if n in declared) + tuple(sorted(declared - set(USE_CASES)))


__all__ = ["USE_CASES", "UseCaseSpec", "names"]
