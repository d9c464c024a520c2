"""kernels.yaml -> a typed, validated catalog.

Every error names the file, the line, the entry and the allowed values, e.g.
    kernels.yaml:14: kernels[0].tiles[128]: unknown key 'blok_m' (allowed: block_m, block_n, warps)
Parsing pops each key it knows; anything left over is an error, so a typo never passes silently.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

import yaml

from flashgen.naming import KernelKey
from gen import paths
from gen.axes import ARCHS, AXIS, DIRECTIONS, DTYPES, FEATURES, HEAD_DIMS
from gen.families import FAMILIES, TileError, optional_tile_fields, tile_field_names
from gen.yaml_loader import DuplicateKeyError, LineDict, load

REQUIRED_PRESETS = ("default", "all")


class CatalogError(ValueError):
    pass


def name_matches(name: str, pattern: str) -> bool:
    """Kernel-name globs match anywhere in the name: 'bwd*hdim256*' selects flash_bwd_hdim256_*."""
    return fnmatch.fnmatchcase(name, f"*{pattern}*")


@dataclass(frozen=True)
class KernelSpec:
    key: KernelKey
    tile: object          # the family's tile dataclass (gen.families)
    smem_bytes: int

    @property
    def name(self) -> str:
        return self.key.name

    @property
    def features(self) -> frozenset[str]:
        """The features this kernel is built with (empty: the plain kernel)."""
        return frozenset(self.key.features)


@dataclass(frozen=True)
class Catalog:
    kernels: tuple[KernelSpec, ...]          # sorted by (direction, hdim, dtype, arch, features)
    presets: dict[str, tuple[str, ...]]      # preset -> kernel-name globs

    def by_name(self) -> dict[str, KernelSpec]:
        return {k.name: k for k in self.kernels}

    def expand(self, globs) -> list[KernelSpec]:
        return [k for k in self.kernels if any(name_matches(k.name, g) for g in globs)]


class _Context:
    """Formats errors as file:line: where: message."""

    def __init__(self, filename: str) -> None:
        self.filename = filename

    def error(self, line: int, where: str, message: str) -> CatalogError:
        prefix = f"{self.filename}:{line}: " + (f"{where}: " if where else "")
        return CatalogError(prefix + message)

    def mapping(self, value, line: int, where: str) -> LineDict:
        if not isinstance(value, LineDict):
            raise self.error(line, where, f"expected a mapping, got {type(value).__name__}")
        return value

    def take(self, mapping: LineDict, key: str, where: str):
        if key not in mapping:
            raise self.error(mapping.line, where, f"missing key {key!r}")
        return mapping.pop(key)

    def no_leftovers(self, mapping: LineDict, where: str, allowed) -> None:
        for key in mapping:
            raise self.error(mapping.line_of(key), where,
                             f"unknown key {key!r} (allowed: {', '.join(allowed)})")

    def choice(self, value, line: int, where: str, allowed) -> str:
        if value not in list(allowed):  # a list: YAML may hand over an unhashable value
            raise self.error(line, where, f"unknown value {value!r} (allowed: {', '.join(allowed)})")
        return value


def load_catalog(path: Path = paths.CATALOG) -> Catalog:
    path = Path(path)
    return parse_catalog(path.read_text(), filename=path.name)


def parse_catalog(text: str, filename: str = "kernels.yaml") -> Catalog:
    ctx = _Context(filename)
    try:
        root = load(text)
    except DuplicateKeyError as exc:
        raise ctx.error(exc.line, "", str(exc)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ctx.error(mark.line + 1 if mark else 1, "", f"not valid YAML: {exc}") from None
    if root is None:
        raise ctx.error(1, "top level", "empty catalog")
    top = ctx.mapping(root, 1, "top level")
    kernels_yaml = ctx.take(top, "kernels", "top level")
    presets_yaml = ctx.take(top, "presets", "top level")
    ctx.no_leftovers(top, "top level", ("kernels", "presets"))

    if not isinstance(kernels_yaml, list):
        raise ctx.error(top.line, "kernels", "expected a list of kernel families")
    specs: dict[str, KernelSpec] = {}
    for index, entry in enumerate(kernels_yaml):
        for spec in _parse_family(ctx, entry, f"kernels[{index}]", top.line):
            if spec.name in specs:
                raise ctx.error(entry.line, f"kernels[{index}]", f"{spec.name} is defined twice")
            specs[spec.name] = spec
    kernels = tuple(sorted(specs.values(), key=lambda s: s.key))
    presets = _parse_presets(ctx, presets_yaml, kernels)
    return Catalog(kernels=kernels, presets=presets)


_FAMILY_KEYS = ("direction", "arch", "dtypes", "features", "tiles")


def _parse_family(ctx: _Context, entry, where: str, line: int) -> list[KernelSpec]:
    entry = ctx.mapping(entry, line, where)
    direction = ctx.choice(ctx.take(entry, "direction", where), entry.line_of("direction"), f"{where}.direction", DIRECTIONS)
    arch = ctx.choice(ctx.take(entry, "arch", where), entry.line_of("arch"), f"{where}.arch", ARCHS)
    dtypes = ctx.take(entry, "dtypes", where)
    variants = _parse_features(ctx, entry.pop("features", [[]]), entry.line_of("features"), f"{where}.features")
    tiles = ctx.take(entry, "tiles", where)
    ctx.no_leftovers(entry, where, _FAMILY_KEYS)

    family = FAMILIES.get((direction, arch))
    if family is None:
        available = ", ".join(f"{d}/{a}" for d, a in FAMILIES)
        raise ctx.error(entry.line, where, f"no kernel template for direction {direction!r} on {arch} "
                                           f"(available: {available})")
    if not isinstance(dtypes, list) or not dtypes:
        raise ctx.error(entry.line_of("dtypes"), f"{where}.dtypes", f"expected a non-empty list of {', '.join(DTYPES)}")
    for dtype in dtypes:
        ctx.choice(dtype, entry.line_of("dtypes"), f"{where}.dtypes", DTYPES)
    if len(set(dtypes)) != len(dtypes):
        raise ctx.error(entry.line_of("dtypes"), f"{where}.dtypes", "a dtype is listed twice")

    for index, variant in enumerate(variants):
        missing = [feature for feature in variant if feature not in family.features]
        if missing:
            raise ctx.error(entry.line_of("features"), f"{where}.features[{index}]",
                            f"the {direction}/{arch} kernels do not implement {', '.join(missing)} yet "
                            f"(they implement: {', '.join(sorted(family.features)) or 'no feature'})")
    tiles = ctx.mapping(tiles, entry.line_of("tiles"), f"{where}.tiles")
    allowed = tile_field_names(family)
    optional = optional_tile_fields(family)
    specs = []
    for hdim, tile_yaml in tiles.items():
        tile_where = f"{where}.tiles[{hdim}]"
        tile_line = tiles.line_of(hdim)
        if not isinstance(hdim, int) or isinstance(hdim, bool) or hdim not in HEAD_DIMS:
            raise ctx.error(tile_line, tile_where, f"head dim must be a positive multiple of {HEAD_DIMS.step} "
                                                   f"up to {HEAD_DIMS[-1]}, got {hdim!r}")
        tile_yaml = ctx.mapping(tile_yaml, tile_line, tile_where)
        values = {}
        for name in allowed:
            if name not in tile_yaml and name in optional:
                continue  # the family's default applies
            value = ctx.take(tile_yaml, name, tile_where)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ctx.error(tile_yaml.line_of(name), f"{tile_where}.{name}", f"expected an integer, got {value!r}")
            values[name] = value
        ctx.no_leftovers(tile_yaml, tile_where, allowed)
        tile = family(**values)
        try:
            tile.check(hdim)
        except TileError as exc:
            raise ctx.error(tile_line, tile_where, str(exc)) from None
        for index, variant in enumerate(variants):
            try:
                tile.check_features(hdim, frozenset(variant))
            except TileError as exc:
                raise ctx.error(tile_line, tile_where, f"features[{index}] [{', '.join(variant)}]: {exc}") from None
        for dtype in dtypes:
            smem = tile.smem_bytes(hdim, DTYPES[dtype].bytes)
            fallback = tile.fallback_smem_bytes(hdim, DTYPES[dtype].bytes)
            limits = ARCHS[arch]
            if fallback > limits.smem_limit_bytes:
                raise ctx.error(tile_line, tile_where, f"tile needs {fallback} bytes of shared memory, "
                                                       f"over {arch}'s limit of {limits.smem_limit_bytes}")
            if smem > limits.smem_max_bytes:
                raise ctx.error(tile_line, tile_where, f"tile needs {smem} bytes of shared memory, "
                                                       f"over the {limits.smem_max_bytes} any {arch} GPU has")
            # Every feature variant takes the family's tile plan for this head dim.
            specs += [KernelSpec(KernelKey(direction, hdim, dtype, arch, features), tile, smem) for features in variants]
    return specs


def _parse_features(ctx: _Context, variants, line: int, where: str) -> list[tuple[str, ...]]:
    """`features:` lists the variants a family is built with, each a list of feature names:
    [[], [softcap], [softcap, window]] builds the plain kernel and two variants. Left out: [[]]."""
    shape = "a non-empty list of feature lists, e.g. [[], [softcap]] ([] is the plain kernel)"
    if not isinstance(variants, list) or not variants or not all(isinstance(v, list) for v in variants):
        raise ctx.error(line, where, f"expected {shape}")
    parsed = []
    for index, variant in enumerate(variants):
        for feature in variant:
            ctx.choice(feature, line, f"{where}[{index}]", FEATURES)
        if len(set(variant)) != len(variant):
            raise ctx.error(line, f"{where}[{index}]", "a feature is listed twice")
        features = AXIS["features"].canonical(variant)
        if features in parsed:
            raise ctx.error(line, f"{where}[{index}]", f"the variant [{', '.join(features)}] is listed twice")
        parsed.append(features)
    return parsed


def _parse_presets(ctx: _Context, presets, kernels) -> dict[str, tuple[str, ...]]:
    presets = ctx.mapping(presets, 1, "presets")
    names = [k.name for k in kernels]
    result = {}
    for preset, globs in presets.items():
        where = f"presets.{preset}"
        line = presets.line_of(preset)
        if not isinstance(globs, list) or not globs or not all(isinstance(g, str) for g in globs):
            raise ctx.error(line, where, "expected a non-empty list of kernel-name globs")
        for glob in globs:
            if not any(name_matches(n, glob) for n in names):
                raise ctx.error(line, where, f"{glob!r} names no kernel in the catalog")
        result[preset] = tuple(globs)
    for required in REQUIRED_PRESETS:
        if required not in result:
            raise ctx.error(presets.line, "presets", f"missing preset {required!r}")
    return result
