# Session 17 (~300 s on a cold nvidia-h200; carry the whole .whl): the backward profiles that
# s16_second.sh meant to take and did not. Its NVTX filter matched no backward kernel: the
# `profiled` range is pushed on the main thread, and autograd launches the backward's kernels
# from its own worker thread (push/pop ranges are per thread). Here ncu selects by kernel name
# instead (`bwd` or `Backward`, flashgen's and FA4's), all the kernels of the two calls
# (warm-up and profiled); the last main kernel of each report is the one to read.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
call_start s17p
mkdir -p /tmp/reps
export PYTHONPATH=$PWD:$PYTHONPATH
step build 300 python3 build.py -j 12 --hdim 64,128,256 --dtype bf16 --arch sm90 --features none; save
prof() {
  local name=$1 limit=$2; shift 2
  step ncu-$name $limit ncu --clock-control none -k 'regex:[Bb]wd|[Bb]ackward' -c 8 --section SpeedOfLight \
    --section WarpStateStats --section MemoryWorkloadAnalysis --section LaunchStats --section Occupancy \
    -f -o /tmp/reps/$name python3 scripts/profile_bwd.py --calls 2 "$@" &&
    step details-$name 30 bash -c "ncu --import /tmp/reps/$name.ncu-rep --page details > $R/ncu-$name.txt"
  save
}
prof bwd256-causal-2x8192 90 --impl flashgen --hdim 256 --batch 2 --seqlen 8192 --causal
prof bwd256-causal-32x512 60 --impl flashgen --hdim 256 --batch 32 --seqlen 512 --causal
for impl in flashgen fa4; do
  for d in 64 128; do prof bwd$d-$impl 90 --impl $impl --hdim $d --batch 2 --seqlen 8192; done
done
