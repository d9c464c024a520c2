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
