"""Choosing which catalog kernels a build takes: a preset, filters, or name globs."""
from __future__ import annotations

from dataclasses import dataclass

from gen.spec import Catalog, KernelSpec, name_matches


class SelectionError(ValueError):
    pass


@dataclass(frozen=True)
class Selection:
    """Criteria; None means "any". With no criteria at all, the `default` preset applies."""

    preset: str | None = None
    hdims: tuple[int, ...] | None = None
    dtypes: tuple[str, ...] | None = None
    archs: tuple[str, ...] | None = None
    directions: tuple[str, ...] | None = None
    kernel_globs: tuple[str, ...] | None = None

    def is_empty(self) -> bool:
        return all(v is None for v in (self.preset, self.hdims, self.dtypes, self.archs,
                                       self.directions, self.kernel_globs))


def select(catalog: Catalog, selection: Selection) -> list[KernelSpec]:
    preset = "default" if selection.is_empty() else selection.preset
    chosen = list(catalog.kernels)
    if preset is not None:
        if preset not in catalog.presets:
            raise SelectionError(f"unknown preset {preset!r} (presets: {', '.join(sorted(catalog.presets))})")
        chosen = catalog.expand(catalog.presets[preset])
    for attr, values, label in (
        ("hdim", selection.hdims, "head dim"),
        ("dtype", selection.dtypes, "dtype"),
        ("arch", selection.archs, "arch"),
        ("direction", selection.directions, "direction"),
    ):
        if values is None:
            continue
        known = sorted({getattr(k.key, attr) for k in catalog.kernels})
        for value in values:
            if value not in known:
                raise SelectionError(f"no kernel in the catalog has {label} {value!r} "
                                     f"(catalog has: {', '.join(map(str, known))})")
        chosen = [k for k in chosen if getattr(k.key, attr) in values]
    if selection.kernel_globs is not None:
        for glob in selection.kernel_globs:
            if not any(name_matches(k.name, glob) for k in catalog.kernels):
                raise SelectionError(f"--kernels {glob!r} matches no kernel in the catalog "
                                     "(see `python build.py --list`)")
        chosen = [k for k in chosen if any(name_matches(k.name, g) for g in selection.kernel_globs)]
    if not chosen:
        raise SelectionError("the selection is empty: no catalog kernel meets all of the criteria")
    return chosen
