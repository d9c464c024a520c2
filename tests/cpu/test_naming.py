import pytest

from flashgen.naming import KernelKey
from gen.spec import load_catalog


def test_every_catalog_name_round_trips():
    for spec in load_catalog().kernels:
        assert KernelKey.parse(spec.name) == spec.key
        assert KernelKey.parse(spec.name).name == spec.name


def test_name_and_launcher():
    key = KernelKey("bwd", 256, "fp16", "sm90")
    assert key.name == "flash_bwd_hdim256_fp16_sm90"
    assert key.launcher == "run_flash_bwd_hdim256_fp16_sm90"


@pytest.mark.parametrize("bad", ["flash_fwd_hdim128_bf16", "flash_fwd_hdimX_bf16_sm80", "fwd_hdim128_bf16_sm80",
                                 "flash_fwd_hdim128_bf16_sm80.cu"])
def test_malformed_names_are_rejected(bad):
    with pytest.raises(ValueError, match="not a flashgen kernel name"):
        KernelKey.parse(bad)


@pytest.mark.parametrize("bad,field", [("flash_xyz_hdim128_bf16_sm80", "direction"),
                                       ("flash_fwd_hdim128_fp8_sm80", "dtype"),
                                       ("flash_fwd_hdim128_bf16_sm75", "arch")])
def test_unknown_vocabulary_is_rejected(bad, field):
    with pytest.raises(ValueError, match=f"unknown {field}"):
        KernelKey.parse(bad)


def test_features_follow_the_plain_name_in_vocabulary_order():
    key = KernelKey("fwd", 128, "bf16", "sm90", frozenset({"window", "softcap"}))
    assert key.features == ("softcap", "window")
    assert key.name == "flash_fwd_hdim128_bf16_sm90_softcap_window"
    assert key.launcher == "run_flash_fwd_hdim128_bf16_sm90_softcap_window"
    assert key.plain() == KernelKey("fwd", 128, "bf16", "sm90")
    assert key.plain().name == "flash_fwd_hdim128_bf16_sm90"   # the plain kernel keeps its name
    assert KernelKey.parse(key.name) == key
    assert KernelKey.parse("flash_bwd_hdim64_fp16_sm80_varlen").features == ("varlen",)


def test_plain_kernels_sort_before_their_variants():
    keys = [KernelKey("fwd", 64, "bf16", "sm80", f) for f in (("window",), (), ("softcap",), ("softcap", "window"))]
    assert [k.features for k in sorted(keys)] == [(), ("softcap",), ("softcap", "window"), ("window",)]


@pytest.mark.parametrize("bad,message", [
    ("flash_fwd_hdim128_bf16_sm90_window_softcap", "the kernel it means is flash_fwd_hdim128_bf16_sm90_softcap_window"),
    ("flash_fwd_hdim128_bf16_sm90_softcap_softcap", "the kernel it means is flash_fwd_hdim128_bf16_sm90_softcap"),
    ("flash_fwd_hdim0128_bf16_sm90", "the kernel it means is flash_fwd_hdim128_bf16_sm90"),
    ("flash_fwd_hdim128_bf16_sm90_", "expected flash_{fwd|bwd}_hdim{D}_{fp16|bf16}_{sm80|sm90}[_{softcap|window|varlen}...]"),
    ("flash_fwd_hdim128_bf16_sm90_tanh", "unknown feature 'tanh' (allowed: softcap, window, varlen)"),
    ("flash_fwd_hdim100_bf16_sm90", "unknown head dim 100 (allowed: multiples of 8 from 8 to 256)"),
])
def test_a_name_has_one_spelling(bad, message):
    with pytest.raises(ValueError) as info:
        KernelKey.parse(bad)
    assert message in str(info.value)


def test_features_are_a_collection_of_names():
    with pytest.raises(TypeError, match="features takes a collection of names, got the string 'softcap'"):
        KernelKey("fwd", 128, "bf16", "sm90", "softcap")
