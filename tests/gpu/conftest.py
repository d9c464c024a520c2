"""GPU tests run each numerics test once per kernel family the build holds (that this GPU can
run): with sm80 and sm90 kernels built, dispatch alone would only ever reach sm90 on a Hopper.
Those tests are marked `per_family`: on a partial build (a tuning catalog) `-m per_family`
runs just them, and a case whose kernel is not built skips."""


def built_families() -> list:
    try:
        import torch

        import flashgen
        from flashgen.dispatch import arch_runs_on
        from flashgen.naming import KernelKey
        if not torch.cuda.is_available():
            return [None]
        capability = torch.cuda.get_device_capability()
        archs = {KernelKey.parse(name).arch for name in flashgen.available_kernels()}
    except Exception:  # noqa: BLE001 - no extension here: the GPU tests skip or fail on their own
        return [None]
    return sorted(a for a in archs if arch_runs_on(a, capability)) or [None]


def pytest_generate_tests(metafunc):
    if "arch" in metafunc.fixturenames:
        metafunc.parametrize("arch", built_families(), ids=lambda a: a or "auto")


def pytest_collection_modifyitems(items):
    for item in items:
        if "arch" in getattr(item, "fixturenames", ()):
            item.add_marker("per_family")
