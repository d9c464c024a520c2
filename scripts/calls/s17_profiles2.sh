# Session 17 (~250 s): the 96 and 192 backward beside FA4 (issue 11's rows never profiled), bf16,
# 2 x 8192, by kernel name as s17_profiles.sh.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
call_start s17q
mkdir -p /tmp/reps
export PYTHONPATH=$PWD:$PYTHONPATH
step build 300 python3 build.py -j 12 --hdim 96,192 --dtype bf16 --arch sm90 --features none; save
prof() {
  local name=$1 limit=$2; shift 2
  step ncu-$name $limit ncu --clock-control none -k 'regex:[Bb]wd|[Bb]ackward' -c 8 --section SpeedOfLight \
    --section WarpStateStats --section LaunchStats --section Occupancy \
    -f -o /tmp/reps/$name python3 scripts/profile_bwd.py --calls 2 "$@" &&
    step details-$name 30 bash -c "ncu --import /tmp/reps/$name.ncu-rep --page details > $R/ncu-$name.txt"
  save
}
for impl in flashgen fa4; do
  for d in 96 192; do prof bwd$d-$impl 90 --impl $impl --hdim $d --batch 2 --seqlen 8192; done
done
