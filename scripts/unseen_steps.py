#!/usr/bin/env python3
"""How many of the 256 backward's CTA steps see none of the CTA's keys (skip_unseen_keys).

A cluster pair (key blocks 2p, 2p + 1 of block_n keys) walks the union of the query blocks
(block_m rows) that see either block; a step whose query block sees none of one CTA's keys is
unseen for that CTA. Equal seqlens, causal or not, no window (docs/perf.md, session 16).

    python scripts/unseen_steps.py            # the benchmark of record's shapes
    python scripts/unseen_steps.py --seqlen 512 1000 --block-n 80
"""
import argparse
import math


def sees(m: int, n: int, seqlen: int, block_m: int, block_n: int, causal: bool) -> bool:
    """Some real row of query block m sees a key of key block n (causal: row i sees keys <= i)."""
    first_key, end_key = n * block_n, min((n + 1) * block_n, seqlen)
    last_row = min((m + 1) * block_m, seqlen) - 1
    return first_key < end_key and (not causal or first_key <= last_row)


def unseen_fraction(seqlen: int, causal: bool, block_m: int = 64, block_n: int = 80) -> tuple[int, int]:
    """(unseen CTA steps, all CTA steps) over one head's pairs."""
    key_blocks, query_blocks = math.ceil(seqlen / block_n), math.ceil(seqlen / block_m)
    unseen = total = 0
    for first in range(0, key_blocks, 2):
        pair = (first, first + 1)
        for m in range(query_blocks):
            seen = [sees(m, n, seqlen, block_m, block_n, causal) for n in pair]
            if any(seen):  # a step of the pair's union: each CTA of the pair takes it
                total += 2
                unseen += seen.count(False)
    return unseen, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seqlen", type=int, nargs="+", default=[512, 2048, 8192])
    parser.add_argument("--block-m", type=int, default=64)
    parser.add_argument("--block-n", type=int, default=80)
    args = parser.parse_args()
    for seqlen in args.seqlen:
        for causal in (False, True):
            unseen, total = unseen_fraction(seqlen, causal, args.block_m, args.block_n)
            print(f"seqlen {seqlen:6d} {'causal    ' if causal else 'non-causal'}: {unseen:5d} of {total:6d} CTA steps "
                  f"unseen ({unseen / total:.1%})")


if __name__ == "__main__":
    main()
