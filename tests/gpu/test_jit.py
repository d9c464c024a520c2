"""Compiling on first use on the GPU: a process with no build at all calls flash_attn_func,
which builds the torch binding and the one kernel it needs into a fresh cache and runs it (forward
and backward, checked against the fp32 reference); a second process finds both in the cache and
compiles nothing. Each runs in its own process, since a process loads one extension. Minutes:
marked `jit` as well, so a short GPU run can leave it out (-m "not jit")."""
import os
import subprocess
import sys

import pytest

from gen import paths

pytestmark = [pytest.mark.gpu, pytest.mark.jit]

# sm80 at head dim 64, fp16: the cheapest kernels to compile (the family is forced, so an H100/H200
# compiles it too; for its own GPU only, sm_90 there).
_CALL = """
import torch, flashgen
from flashgen.reference import attention_reference, attention_reference_grads, check_against_reference
torch.manual_seed(0)
q, k, v = (torch.randn(2, 300, 4, 64, device="cuda", dtype=torch.float16, requires_grad=True) for _ in range(3))
out = flashgen.flash_attn_func(q, k, v, causal=True, arch="sm80")
dout = torch.randn_like(out)
out.backward(dout)
torch.cuda.synchronize()
check_against_reference("out", out, attention_reference(q, k, v, True)[0],
                        attention_reference(q, k, v, True, upcast=False)[0])
for name, got, ref, same in zip(("dq", "dk", "dv"), (q.grad, k.grad, v.grad),
                                attention_reference_grads(q, k, v, dout, True),
                                attention_reference_grads(q, k, v, dout, True, upcast=False)):
    check_against_reference(name, got, ref, same)
print(sorted(flashgen.available_kernels()))
"""
KERNELS = "['flash_bwd_hdim64_fp16_sm80', 'flash_fwd_hdim64_fp16_sm80']"


def call(cache, build_dir):
    env = dict(os.environ, FLASHGEN_JIT="1", FLASHGEN_CACHE_DIR=str(cache), FLASHGEN_BUILD_DIR=str(build_dir))
    return subprocess.run([sys.executable, "-c", _CALL], cwd=paths.REPO_ROOT, capture_output=True, text=True,
                          env=env, timeout=900)


def test_first_call_compiles_runs_and_the_next_process_uses_the_cache(tmp_path):
    first = call(tmp_path / "cache", tmp_path / "no_build")
    assert first.returncode == 0, first.stdout + first.stderr
    for what in ("flashgen's torch binding", "flash_fwd_hdim64_fp16_sm80", "flash_bwd_hdim64_fp16_sm80"):
        assert f"flashgen: compiling {what}" in first.stderr, first.stderr
    assert first.stderr.count("flashgen: compiled ") == 3 and first.stdout.strip() == KERNELS
    second = call(tmp_path / "cache", tmp_path / "no_build")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "compiling" not in second.stderr and second.stdout.strip() == KERNELS
