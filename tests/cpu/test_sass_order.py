"""scripts/sass_order.py on a hand-written cuobjdump listing (no cubin, no CUDA needed)."""
import importlib.util

from gen import paths

_spec = importlib.util.spec_from_file_location("sass_order", paths.REPO_ROOT / "scripts" / "sass_order.py")
sass_order = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sass_order)

LISTING = """
	code for sm_90a
		Function : _Z5otherv
        /*0000*/                   MUFU.EX2 R1, R1 ;                          /* 0x0000000101017308 */
        /*0010*/                   WARPGROUP.DEPBAR.LE gsb0, 0x0 ;            /* 0x00008000000079c5 */
		Function : _Z6kernelv
        /*0000*/                   HGMMA.64x64x16.F32.BF16 R24, gdesc[UR4], RZ, !UPT ;  /* 0x00e0000004187 */
                                                                              /* 0x000fe20008000818 */
        /*0010*/                   HGMMA.64x64x16.F32.BF16 R88, gdesc[UR8], RZ, !UPT, gsb0 ;  /* 0x00e0 */
        /*0020*/                   WARPGROUP.DEPBAR.LE gsb0, 0x1 ;            /* 0x00008000000079c5 */
        /*0030*/                   MUFU.EX2 R2, R2 ;                          /* 0x0000000202027308 */
        /*0040*/                   WARPGROUP.DEPBAR.LE gsb0, 0x0 ;            /* 0x00008000000079c5 */
        /*0050*/                   MUFU.EX2 R3, R3 ;                          /* 0x0000000303037308 */
        /*0060*/               @P0 MUFU.EX2 R4, R4 ;                          /* 0x0000000404047308 */
        /*0070*/                   WARPGROUP.DEPBAR.LE gsb0, 0x0 ;            /* 0x00008000000079c5 */
"""


def test_functions_split_the_listing_and_keep_only_instructions():
    found = sass_order.functions(LISTING)
    assert list(found) == ["_Z5otherv", "_Z6kernelv"]
    assert found["_Z6kernelv"][0] == "HGMMA.64x64x16.F32.BF16 R24, gdesc[UR4], RZ, !UPT"
    assert found["_Z6kernelv"][6] == "@P0 MUFU.EX2 R4, R4"
    assert len(found["_Z6kernelv"]) == 8


def test_each_wait_counts_the_exps_and_gemms_since_the_one_before():
    windows = sass_order.wait_windows(sass_order.functions(LISTING)["_Z6kernelv"])
    assert windows == [("0x1", 0, 2), ("0x0", 1, 0), ("0x0", 2, 0)]


def test_report_names_the_matching_functions_only():
    text = sass_order.report(LISTING, "kernel")
    assert text.splitlines() == ["_Z6kernelv:",
                                 "  wait<=1  after   0 ex2,   2 HGMMA issued",
                                 "  wait<=0  after   1 ex2,   0 HGMMA issued",
                                 "  wait<=0  after   2 ex2,   0 HGMMA issued"]
    assert sass_order.report(LISTING, "absent") == "no function matches 'absent'"
