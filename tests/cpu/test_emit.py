"""generated/: write-if-changed, stale removal, --check, and the committed folder is current."""
import subprocess
import sys

from gen import emit, paths
from gen.spec import load_catalog, parse_catalog


def test_committed_generated_folder_is_up_to_date():
    result = subprocess.run([sys.executable, "-m", "gen", "--check"], cwd=paths.REPO_ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_second_sync_writes_nothing_and_keeps_timestamps(tmp_path):
    catalog = load_catalog()
    written, removed = emit.sync(catalog, tmp_path)
    assert len(written) == len(catalog.kernels) + 1 and removed == []
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert emit.sync(catalog, tmp_path) == ([], [])
    assert stamps == {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}


def test_files_of_removed_configs_are_deleted_and_others_kept(tmp_path):
    emit.sync(load_catalog(), tmp_path)
    (tmp_path / "notes.txt").write_text("not ours")
    smaller = parse_catalog(paths.CATALOG.read_text().replace(
        "      96:  {block_m: 128, block_n: 64, warps: 4}\n", ""))
    written, removed = emit.sync(smaller, tmp_path)
    assert removed == ["flash_fwd_hdim96_bf16_sm80.cu", "flash_fwd_hdim96_fp16_sm80.cu"]
    assert written == ["dispatch_table.cpp"]
    assert (tmp_path / "notes.txt").exists()


def test_check_names_each_difference(tmp_path):
    catalog = load_catalog()
    emit.sync(catalog, tmp_path)
    assert emit.check(catalog, tmp_path) == []
    victim = tmp_path / f"{catalog.kernels[0].name}.cu"
    victim.write_text(victim.read_text() + "// edited\n")
    (tmp_path / f"{catalog.kernels[1].name}.cu").unlink()
    (tmp_path / "flash_fwd_hdim8_fp16_sm80.cu").write_text("")
    assert emit.check(catalog, tmp_path) == [
        f"differs: {victim}",
        f"missing: {tmp_path / (catalog.kernels[1].name + '.cu')}",
        f"stale (not in the catalog): {tmp_path / 'flash_fwd_hdim8_fp16_sm80.cu'}",
    ]
    result = subprocess.run([sys.executable, "-m", "gen", "--check", "--out", str(tmp_path)],
                            cwd=paths.REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 1 and "differs:" in result.stdout and "out of date" in result.stderr
