"""Choosing which catalog kernels a build takes: a preset, filters on the axes, or name globs."""
from __future__ import annotations

from dataclasses import dataclass, field

from gen.axes import AXES, AXIS
from gen.spec import Catalog, KernelSpec, name_matches


class SelectionError(ValueError):
    pass


@dataclass(frozen=True)
class Selection:
    """Criteria; None means "any". With no criteria at all, the `default` preset applies.

    filters: axis name (gen.axes) -> the values to keep, e.g. {"dtype": ("bf16",)}; a features
    value is one feature set, so {"features": ((), ("softcap",))} keeps the plain kernels and
    the softcap variants, not softcap_window."""

    preset: str | None = None
    filters: dict[str, tuple] = field(default_factory=dict)
    kernel_globs: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        unknown = set(self.filters) - set(AXIS)
        if unknown:
            raise ValueError(f"no axis {sorted(unknown)[0]!r} (axes: {', '.join(AXIS)})")

    def is_empty(self) -> bool:
        return self.preset is None and not self.filters and self.kernel_globs is None


def _check_filter_values(catalog: Catalog, axis, values) -> None:
    known = sorted({getattr(k.key, axis.name) for k in catalog.kernels})
    for value in values:
        try:
            axis.check(value)
        except ValueError as exc:
            raise SelectionError(str(exc)) from None
        if axis.canonical(value) not in known:
            what = f"features {axis.text(axis.canonical(value))!r}" if axis.many else f"{axis.label} {value!r}"
            raise SelectionError(f"no kernel in the catalog has {what} "
                                 f"(catalog has: {', '.join(axis.text(v) for v in known)})")


def select(catalog: Catalog, selection: Selection) -> list[KernelSpec]:
    preset = "default" if selection.is_empty() else selection.preset
    chosen = list(catalog.kernels)
    if preset is not None:
        if preset not in catalog.presets:
            raise SelectionError(f"unknown preset {preset!r} (presets: {', '.join(sorted(catalog.presets))})")
        chosen = catalog.expand(catalog.presets[preset])
    for axis in AXES:
        values = selection.filters.get(axis.name)
        if values is None:
            continue
        _check_filter_values(catalog, axis, values)
        keep = {axis.canonical(v) for v in values}
        chosen = [k for k in chosen if getattr(k.key, axis.name) in keep]
    if selection.kernel_globs is not None:
        for glob in selection.kernel_globs:
            if not any(name_matches(k.name, glob) for k in catalog.kernels):
                raise SelectionError(f"--kernels {glob!r} matches no kernel in the catalog "
                                     "(see `python build.py --list`)")
        chosen = [k for k in chosen if any(name_matches(k.name, g) for g in selection.kernel_globs)]
    if not chosen:
        raise SelectionError("the selection is empty: no catalog kernel meets all of the criteria")
    return chosen


def add_to(catalog: Catalog, previous: tuple[str, ...], selection: Selection) -> list[KernelSpec]:
    """A build dir's previous kernels plus the selection's (build.py --add): the selection's
    filters narrow what is added, never what was built. Previous names are exact, not globs: a
    plain kernel's name is a prefix of its variants' names."""
    by_name = catalog.by_name()
    for name in previous:
        if name not in by_name:
            raise SelectionError(f"the build dir's last selection has {name}, which the catalog does not "
                                 "define: select afresh (--kernels, --preset) instead of --add")
    names = set(previous) | {k.name for k in select(catalog, selection)}
    return [k for k in catalog.kernels if k.name in names]
