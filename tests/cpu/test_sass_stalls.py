"""scripts/sass_stalls.py on a small csv shaped like ncu's source page (no GPU)."""
import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "sass_stalls.py"
spec = importlib.util.spec_from_file_location("sass_stalls", SCRIPT)
sass_stalls = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sass_stalls)

CSV = '''"Kernel Name","fwd_kernel"
"Address","Source","Warp Stall Sampling (All Samples)","Warp Stall Sampling (Not-issued Samples)"
"0x100","HGMMA.64x256x16.F32.BF16 R24, R192, gdesc[UR16].tnspB, R24, gsb0 ;","50","40"
"0x110","HGMMA.64x256x16.F32.BF16 R24, R196, gdesc[UR16].tnspB, R24, gsb0 ;","10","5"
"0x120","WARPGROUP.DEPBAR.LE gsb0, 0x1 ;","300","290"
"0x130","FMNMX.FTZ R1, R2, R3, !PT ;","5","1"
"0x140","WARPGROUP.DEPBAR.LE gsb0, 0x0 ;","1,200","1,100"
"0x150","MUFU.EX2 R4, R4 ;","20","10"
"0x160","@P0 MUFU.EX2 R5, R5 ;","15","5"
'''


def test_report_shares_hot_instructions_and_the_event_order(tmp_path):
    path = tmp_path / "k.csv"
    path.write_text(CSV)
    rows = sass_stalls.read_rows(path)
    assert [r["samples"] for r in rows] == [50, 10, 300, 5, 1200, 20, 15]
    text = sass_stalls.report(path, top=2)
    assert "WARPGROUP.DEPBAR" in text and "1600 stall samples" in text
    hottest = text.split("hottest 2:")[1].splitlines()[1]
    assert "0x140" in hottest and "75.0%" in hottest
    assert ("HGMMA x2, WARPGROUP.DEPBAR.LE 0x1, other, WARPGROUP.DEPBAR.LE 0x0, MUFU.EX2 x2"
            in sass_stalls.event_stream(rows))


def test_report_sums_stall_reasons_when_exported(tmp_path):
    header = '"Address","Source","Warp Stall Sampling (All Samples)","stall_barrier","stall_wait","stall_barrier (Not Issued)"'
    rows = ['"0x100","WARPGROUP.DEPBAR.LE gsb0, 0x0 ;","90","80","10","70"',
            '"0x110","MUFU.EX2 R4, R4 ;","30","0","30","0"',
            '"0x120","FMNMX.FTZ R1, R2, R3, !PT ;","10","5","5","0"']
    path = tmp_path / "k.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    text = sass_stalls.report(path)
    reasons = text.split("by reason:")[1].split("hottest")[0].splitlines()[1:]
    assert reasons[0].split()[:3] == ["barrier", "85", "65.4%"] and "0x100" in reasons[0]
    assert reasons[1].split()[:3] == ["wait", "45", "34.6%"] and "0x110" in reasons[1]
    # Without per-reason columns (the first test's csv) the section is left out.
    plain = tmp_path / "plain.csv"
    plain.write_text(CSV)
    assert "by reason:" not in sass_stalls.report(plain)
