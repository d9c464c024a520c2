"""Jinja rendering: one Environment, StrictUndefined (a missing variable is an error)."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import jinja2

from gen import paths
from gen.spec import KernelSpec
from gen.axes import DTYPES, FEATURES

DISPATCH_TEMPLATE = "dispatch_table.cpp.j2"
JIT_ENTRY_TEMPLATE = "jit_kernel.cpp.j2"


def cpp_constant(field: str) -> str:
    """The C++ name of a kernels.yaml tile field in a generated tile struct: block_m -> kBlockM,
    dq_before_dk -> kDqBeforeDk (the one rule; the kernels' configs read these names)."""
    return "k" + "".join(part.capitalize() for part in field.split("_"))


def environment(template_dir: Path = paths.TEMPLATES) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["cpp_constant"] = cpp_constant
    return env


def render_kernel(spec: KernelSpec, env: jinja2.Environment | None = None) -> str:
    env = env or environment()
    template_name = spec.tile.template
    # A plan whose causal calls run another plan (the sm90 forward's causal_block_m) renders both.
    causal = spec.tile.causal_plan()
    return env.get_template(template_name).render(
        template_name=template_name,
        name=spec.name,
        launcher=spec.key.launcher,
        hdim=spec.key.hdim,
        element=DTYPES[spec.key.dtype].cpp,
        tile=asdict(spec.tile),
        derived=spec.tile.derived_constants(spec.key.hdim),
        smem_bytes=spec.smem_bytes,
        causal_tile=asdict(causal) if causal else None,
        causal_derived=causal.derived_constants(spec.key.hdim) if causal else None,
        causal_smem_bytes=causal.smem_bytes(spec.key.hdim, DTYPES[spec.key.dtype].bytes) if causal else None,
        # Every feature of the vocabulary, 1 where this kernel is built with it: a template turns
        # them into tile-struct constants (softcap -> kSoftcap) the way it does tile fields.
        features={feature: int(feature in spec.features) for feature in FEATURES},
    )


def render_dispatch_table(built: list[KernelSpec], catalog: list[KernelSpec],
                          env: jinja2.Environment | None = None) -> str:
    env = env or environment()
    return env.get_template(DISPATCH_TEMPLATE).render(
        template_name=DISPATCH_TEMPLATE,
        built=[_registry_entry(s) for s in built],
        catalog=[s.name for s in catalog],
    )


def render_jit_entry(spec: KernelSpec, env: jinja2.Environment | None = None) -> str:
    """The C entry point of a kernel's JIT library: the same registry entry as the table's."""
    env = env or environment()
    return env.get_template(JIT_ENTRY_TEMPLATE).render(template_name=JIT_ENTRY_TEMPLATE, k=_registry_entry(spec))


def _registry_entry(spec: KernelSpec) -> dict:
    """A kernel's KernelEntry fields (csrc/flashgen/registry.h); block sizes size the backward's
    workspaces in csrc/binding.cpp."""
    return {"name": spec.name, "launcher": spec.key.launcher, "direction": spec.key.direction,
            "block_m": spec.tile.block_m, "block_n": spec.tile.block_n}
