"""scripts/unseen_steps.py's count against cases worked out by hand."""
import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "scripts" / "unseen_steps.py"
_spec = importlib.util.spec_from_file_location("unseen_steps", _PATH)
unseen_steps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(unseen_steps)


def test_keyless_second_block_is_unseen_every_step():
    # 512 keys in blocks of 80: 7 blocks, 4 pairs; the last pair's second block (keys 560-639)
    # has no keys, so its 8 steps (every query block of 64) are unseen; nothing else is.
    assert unseen_steps.unseen_fraction(512, causal=False) == (8, 4 * 2 * 8)
    # An even block count (2048 / 80 -> 26) leaves no keyless CTA.
    assert unseen_steps.unseen_fraction(2048, causal=False)[0] == 0


def test_causal_diagonal_steps():
    # 160 keys, 160 queries, causal: one pair (keys 0-79, 80-159), query blocks 0-63, 64-127,
    # 128-159. Block 0's rows see only keys <= 63: unseen for the second CTA; the others see both.
    assert unseen_steps.unseen_fraction(160, causal=True) == (1, 6)
    # One query block of 64 rows that sees both blocks when the blocks are 32 keys each.
    assert unseen_steps.unseen_fraction(64, causal=True, block_n=32) == (0, 2)
