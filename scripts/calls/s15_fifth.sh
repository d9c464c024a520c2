# Session 15, fifth GPU call (~250 s on a cold nvidia-h200; carry the whole .whl as for
# s15_second.sh): the record's rows at head dims 64 and 128 in fp16 (bench's fp16 grid) with FA4
# and cuDNN in one process; call 2's record had fp16 at 256 only (the default grid's rows).
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
call_start res5
step build 300 python3 build.py -j 16 --hdim 64,128 --dtype fp16 --arch sm90 --features none || { save; exit 1; }
save
step record-fp16 200 python3 -m bench --out $R --no-sweep --grid fp16 --impl flashgen,fa4,sdpa_cudnn --tag s15-fp16-64-128
save
