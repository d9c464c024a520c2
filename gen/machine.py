"""The default selection for this machine: with no selection flags, build.py builds the default
preset's kernels of the families the visible GPUs run (sm90 and sm80 on compute capability 9.0,
sm80 on 8.x), and the whole default preset when no GPU is visible."""
from __future__ import annotations

from functools import lru_cache

from gen.axes import ARCH_PREFERENCE, ARCHS, OLDEST_CAPABILITY
from gen.select import Selection


@lru_cache(maxsize=1)
def visible_gpus() -> tuple[tuple[str, tuple[int, int]], ...]:
    """(name, compute capability) of each GPU torch sees; empty without one. Asked once per
    process: build.py reads it for the default selection and again for the targets to compile."""
    import torch

    if not torch.cuda.is_available():
        return ()
    return tuple((torch.cuda.get_device_name(i), torch.cuda.get_device_capability(i))
                 for i in range(torch.cuda.device_count()))


def machine_selection(gpus: list[tuple[str, tuple[int, int]]],
                      catalog_archs: frozenset[str] | None = None) -> tuple[Selection, str]:
    """The selection for these GPUs, and a line saying what it is and why. catalog_archs: the
    families the catalog has (a tuning catalog may have sm90 kernels only); None: all of them."""
    override = "(a selection flag, e.g. --preset all or --arch, overrides)"
    if not gpus:
        return Selection(preset="default"), f"no GPU visible: building the default preset {override}"
    runnable = tuple(a for a in ARCH_PREFERENCE if any(ARCHS[a].runs_on(cap) for _, cap in gpus))
    archs = tuple(a for a in runnable if catalog_archs is None or a in catalog_archs)
    seen = ", ".join(f"{name} (compute capability {cap[0]}.{cap[1]})" for name, cap in dict.fromkeys(gpus))
    if not runnable:
        oldest = ".".join(map(str, OLDEST_CAPABILITY))
        return Selection(preset="default"), (f"{seen} runs no flashgen kernel family ({oldest} or newer needed): "
                                             f"building the default preset {override}")
    if not archs:
        return Selection(preset="default"), (f"{seen} runs none of the catalog's families "
                                             f"({', '.join(sorted(catalog_archs))}): building the default preset {override}")
    return (Selection(preset="default", filters={"arch": archs}),
            f"{seen}: building the default preset's {' and '.join(archs)} kernels {override}")
