"""Kernel choice and input checks, without a GPU (the extension's lists are stubbed)."""
import pytest
import torch

from flashgen import dispatch
from flashgen.errors import KernelNotBuiltError
from flashgen.inputs import check_attention_inputs

CATALOG = [f"flash_fwd_hdim{d}_{t}_{a}" for d in (64, 96, 128, 256) for t in ("fp16", "bf16") for a in ("sm80", "sm90")]


@pytest.fixture
def build(monkeypatch):
    def set_built(*names):
        monkeypatch.setattr(dispatch, "available_kernels", lambda: list(names))
        monkeypatch.setattr(dispatch, "catalog_kernels", lambda: CATALOG)
        clear_caches()
    yield set_built
    clear_caches()


def clear_caches():
    dispatch._kernel_sets.cache_clear()
    dispatch._choose.cache_clear()


def test_exact_head_dim_on_the_newest_family_the_gpu_runs(build):
    build("flash_fwd_hdim128_bf16_sm80", "flash_fwd_hdim128_bf16_sm90")
    assert dispatch.choose_kernel("fwd", 128, torch.bfloat16, (9, 0)).name == "flash_fwd_hdim128_bf16_sm90"
    assert dispatch.choose_kernel("fwd", 128, torch.bfloat16, (8, 0)).name == "flash_fwd_hdim128_bf16_sm80"
    assert dispatch.choose_kernel("fwd", 128, torch.bfloat16, (10, 0)).name == "flash_fwd_hdim128_bf16_sm80"


def test_head_dim_rounds_up_to_the_next_catalog_one(build):
    build("flash_fwd_hdim96_fp16_sm80", "flash_fwd_hdim256_fp16_sm80")
    assert dispatch.choose_kernel("fwd", 72, torch.float16, (9, 0)).hdim == 96
    assert dispatch.choose_kernel("fwd", 200, torch.float16, (9, 0)).hdim == 256


def test_falls_back_to_an_older_family_that_is_built(build):
    build("flash_fwd_hdim64_fp16_sm80")
    assert dispatch.choose_kernel("fwd", 64, torch.float16, (9, 0)).arch == "sm80"


def test_least_padding_beats_the_newer_family(build, monkeypatch):
    # kernels.yaml lists the sm90 backward at head dim 256 only: below that, sm80's exact head
    # dim must win on a Hopper GPU rather than sm90's 256 with the input zero-padded.
    catalog = CATALOG + [f"flash_bwd_hdim{d}_bf16_sm80" for d in (64, 128, 192, 256)] + ["flash_bwd_hdim256_bf16_sm90"]
    monkeypatch.setattr(dispatch, "catalog_kernels", lambda: catalog)
    monkeypatch.setattr(dispatch, "available_kernels", lambda: catalog)
    clear_caches()
    assert dispatch.choose_kernel("bwd", 128, torch.bfloat16, (9, 0)).name == "flash_bwd_hdim128_bf16_sm80"
    assert dispatch.choose_kernel("bwd", 160, torch.bfloat16, (9, 0)).name == "flash_bwd_hdim192_bf16_sm80"
    assert dispatch.choose_kernel("bwd", 256, torch.bfloat16, (9, 0)).name == "flash_bwd_hdim256_bf16_sm90"
    assert dispatch.choose_kernel("bwd", 256, torch.bfloat16, (8, 0)).name == "flash_bwd_hdim256_bf16_sm80"
    # Forced to sm90, the family's own head dims round up as before.
    assert dispatch.choose_kernel("bwd", 128, torch.bfloat16, (9, 0), arch="sm90").name == "flash_bwd_hdim256_bf16_sm90"


def test_forced_arch(build, monkeypatch):
    build("flash_fwd_hdim64_fp16_sm80", "flash_fwd_hdim64_fp16_sm90")
    assert dispatch.choose_kernel("fwd", 64, torch.float16, (9, 0), arch="sm80").arch == "sm80"
    monkeypatch.setenv("FLASHGEN_ARCH", "sm80")
    assert dispatch.choose_kernel("fwd", 64, torch.float16, (9, 0)).arch == "sm80"
    with pytest.raises(ValueError, match="arch='sm90' kernels cannot run on this GPU"):
        dispatch.choose_kernel("fwd", 64, torch.float16, (8, 6), arch="sm90")
    with pytest.raises(ValueError, match="not an arch family"):
        dispatch.choose_kernel("fwd", 64, torch.float16, (9, 0), arch="sm75")


def test_missing_kernel_names_it_lists_the_build_and_gives_the_command(build):
    build("flash_fwd_hdim64_fp16_sm80")
    with pytest.raises(KernelNotBuiltError) as info:
        dispatch.choose_kernel("fwd", 256, torch.bfloat16, (8, 0))
    assert str(info.value) == (
        "flash_fwd_hdim256_bf16_sm80 is needed (head_dim=256, bf16, fwd) but this build does not hold it. "
        "Built: flash_fwd_hdim64_fp16_sm80. Add it with: python build.py --add flash_fwd_hdim256_bf16_sm80 "
        "(compiling on first use is off: FLASHGEN_JIT=0)")


def test_config_outside_the_catalog(build):
    build("flash_fwd_hdim64_fp16_sm80")
    with pytest.raises(KernelNotBuiltError, match="no bwd kernel in flashgen's catalog covers head_dim=64"):
        dispatch.choose_kernel("bwd", 64, torch.float16, (9, 0))


def test_old_gpu_is_refused(build):
    build("flash_fwd_hdim64_fp16_sm80")
    with pytest.raises(RuntimeError, match="compute capability 8.0 or newer; this one is 7.5"):
        dispatch.choose_kernel("fwd", 64, torch.float16, (7, 5))


# A catalog with feature variants at head dim 128 on sm90 (kernels.yaml's are at 256 only).
SM90_128 = "flash_fwd_hdim128_bf16_sm90"
VARIANTS = CATALOG + [f"{SM90_128}_softcap", f"{SM90_128}_softcap_window", f"{SM90_128}_varlen"]


@pytest.fixture
def variants_built(monkeypatch):
    def set_built(*names):
        monkeypatch.setattr(dispatch, "available_kernels", lambda: list(names))
        monkeypatch.setattr(dispatch, "catalog_kernels", lambda: VARIANTS)
        clear_caches()
    yield set_built
    clear_caches()


def choose(features=frozenset(), head_dim=128, capability=(9, 0), arch=None):
    return dispatch.choose_kernel("fwd", head_dim, torch.bfloat16, capability, arch, features=features).name


def test_a_call_takes_the_cheapest_built_kernel_with_its_features(variants_built):
    variants_built(SM90_128, f"{SM90_128}_softcap", f"{SM90_128}_softcap_window")
    assert choose() == SM90_128                      # no softcap kernel for a call without softcap
    assert choose({"softcap"}) == f"{SM90_128}_softcap"
    assert choose(frozenset({"window"})) == f"{SM90_128}_softcap_window"   # the one that covers it
    assert choose({"window", "softcap"}) == f"{SM90_128}_softcap_window"
    assert dispatch.choose_kernel("fwd", 128, torch.bfloat16, (9, 0), "sm90").name == SM90_128  # positional, as ops.py
    assert dispatch.choose_kernel("fwd", 128, torch.bfloat16, (9, 0)).name == SM90_128


def test_a_variant_covers_a_plain_call_when_the_plain_kernel_is_not_built(variants_built):
    variants_built(f"{SM90_128}_softcap", f"{SM90_128}_softcap_window", "flash_fwd_hdim128_bf16_sm80")
    assert choose() == f"{SM90_128}_softcap"   # the newer family first, softcap off; then fewest extra features
    assert choose(capability=(8, 0)) == "flash_fwd_hdim128_bf16_sm80"
    assert choose(arch="sm80") == "flash_fwd_hdim128_bf16_sm80"


def test_padding_costs_more_than_an_unneeded_feature(variants_built):
    variants_built(f"{SM90_128}_softcap", "flash_fwd_hdim256_bf16_sm90")
    assert choose(head_dim=96) == f"{SM90_128}_softcap"


def test_a_variant_not_built_names_the_command_with_its_features(variants_built):
    variants_built(SM90_128, f"{SM90_128}_softcap")
    with pytest.raises(KernelNotBuiltError) as info:
        choose({"window"})
    assert str(info.value) == (
        f"{SM90_128}_softcap_window is needed (head_dim=128, bf16, window, fwd) but this build does not hold it. "
        f"Built: {SM90_128}, {SM90_128}_softcap. Add it with: python build.py --add {SM90_128} "
        "--features softcap,window (compiling on first use is off: FLASHGEN_JIT=0)")
    # A plain kernel with variants in the catalog: the command pins the plain one.
    variants_built("flash_fwd_hdim64_fp16_sm80")
    with pytest.raises(KernelNotBuiltError, match=f"Add it with: python build.py --add {SM90_128} --features none "):
        choose(arch="sm90")


def test_features_no_catalog_kernel_has(variants_built):
    variants_built(SM90_128)
    with pytest.raises(KernelNotBuiltError, match="no fwd kernel in flashgen's catalog covers head_dim=128, bf16, "
                                                  "softcap, varlen, on this GPU"):
        choose({"varlen", "softcap"})


def test_unknown_features_are_refused(variants_built):
    variants_built(SM90_128)
    with pytest.raises(ValueError, match=r"unknown feature 'alibi' \(allowed: softcap, window, varlen\)"):
        choose({"alibi"})
    with pytest.raises(TypeError, match="a collection of names"):
        choose("softcap")


def qkv(q_shape=(2, 16, 4, 64), kv_shape=None, dtype=torch.float16):
    kv_shape = kv_shape or q_shape
    return torch.zeros(q_shape, dtype=dtype), torch.zeros(kv_shape, dtype=dtype), torch.zeros(kv_shape, dtype=dtype)


@pytest.mark.parametrize("args,error,message", [
    ((torch.zeros(2, 16, 4, 64, dtype=torch.float16).numpy(),) + qkv()[1:], TypeError, "q must be a torch.Tensor"),
    (qkv((2, 16, 64)), ValueError, "q must be 4-D (batch, seqlen_q, nheads, head_dim), got shape (2, 16, 64)"),
    ((*qkv()[:2], torch.zeros(2, 16, 4, 32, dtype=torch.float16)), ValueError, "k and v must have the same shape"),
    (qkv((2, 16, 4, 64), (3, 16, 4, 64)), ValueError, "q has batch 2 but k and v have batch 3"),
    (qkv((2, 16, 4, 64), (2, 16, 4, 32)), ValueError, "q has head_dim 64 but k and v have head_dim 32"),
    (qkv((2, 16, 6, 64), (2, 16, 4, 64)), ValueError, "nheads (6) must be a multiple of nheads_kv (4)"),
    (qkv((2, 0, 4, 64), (2, 16, 4, 64)), ValueError, "seqlen_q must be at least 1"),
    (qkv((2, 16, 4, 320)), ValueError, "head_dim 320 is not supported: flashgen kernels go up to 256"),
    (qkv(dtype=torch.float32), TypeError, "q has dtype torch.float32; flashgen supports torch.float16 and torch.bfloat16"),
    ((*qkv()[:2], torch.zeros(2, 16, 4, 64, dtype=torch.bfloat16)), TypeError, "q, k and v must share one dtype"),
    (qkv(), ValueError, "q is on cpu; flashgen runs on CUDA GPUs: move it with q.cuda()"),
])
def test_bad_inputs_name_the_problem(args, error, message):
    with pytest.raises(error) as info:
        check_attention_inputs(*args, causal=False, softmax_scale=None)
    assert message in str(info.value)


def test_bad_flags():
    q, k, v = qkv()
    with pytest.raises(TypeError, match="causal must be a bool"):
        check_attention_inputs(q.to("meta"), k.to("meta"), v.to("meta"), causal=1, softmax_scale=None)


def test_a_frozenset_of_features_is_checked_once_but_an_unknown_name_raises_every_time(variants_built):
    variants_built(SM90_128, f"{SM90_128}_softcap")
    for _ in range(2):   # the check's cache keeps results, never errors
        assert choose(frozenset({"softcap"})) == f"{SM90_128}_softcap"
        assert choose(frozenset()) == SM90_128
        with pytest.raises(ValueError, match=r"unknown feature 'alibi'"):
            choose(frozenset({"alibi"}))


def test_capability_is_remembered_per_cuda_device_only(monkeypatch):
    asked = []

    def get_device_capability(device=None):
        asked.append(device)
        return {0: (9, 0), 1: (8, 0)}.get(device.index, (7, 5))

    monkeypatch.setattr(torch.cuda, "get_device_capability", get_device_capability)
    monkeypatch.setattr(dispatch, "_CUDA_CAPABILITIES", {})
    cuda0, cuda1, cpu = torch.device("cuda", 0), torch.device("cuda", 1), torch.device("cpu")
    for _ in range(2):
        assert dispatch.device_capability(cuda0) == (9, 0)
        assert dispatch.device_capability(cuda1) == (8, 0)   # each GPU its own
        assert dispatch.device_capability(cpu) == (7, 5)
    assert asked == [cuda0, cuda1, cpu, cpu]   # a GPU asked once; a CPU stand-in every time


def test_valid_cuda_inputs_pass_and_what_is_wrong_is_named():
    from torch._subclasses.fake_tensor import FakeTensorMode

    def cuda(*shape, dtype=torch.bfloat16, device="cuda:0"):
        return torch.empty(shape, dtype=dtype, device=device)

    with FakeTensorMode():
        q, k, v = cuda(2, 16, 4, 64), cuda(2, 16, 2, 64), cuda(2, 16, 2, 64)
        check_attention_inputs(q, k, v, causal=False, softmax_scale=None)
        wrong = [((q, k, cuda(2, 16, 2, 64, dtype=torch.float16)), TypeError, "q, k and v must share one dtype"),
                 ((q, k, cuda(2, 16, 2, 64, device="cuda:1")), ValueError, "q, k and v must be on one device"),
                 ((q, cuda(2, 16, 64, 2).transpose(2, 3), v), ValueError,
                  "k must have a contiguous last dimension (stride 1), got strides (2048, 128, 1, 2)")]
        for args, error, message in wrong:
            with pytest.raises(error) as info:
                check_attention_inputs(*args, causal=False, softmax_scale=None)
            assert message in str(info.value)
