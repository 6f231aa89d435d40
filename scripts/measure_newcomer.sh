#!/usr/bin/env bash
# A newcomer's first hour, measured in one go on a fresh clone of this repository:
#
#   scripts/measure_newcomer.sh [PHASES...]      (default: setup test-cold test-warm selftest demo)
#
# Clones HEAD into a temporary folder and runs each phase there as a newcomer would
# (`make setup`, `make test` twice, `make selftest`, `make demo`), every phase's output
# captured with scripts/line_gaps.py: its wall time and the longest silence between two
# output lines. One CSV row per phase is appended to benchmarks/results/newcomer.csv of
# THIS checkout (date, machine, load, phase, wall time, longest gap, exit code) and the
# logs are kept under work_dirs/newcomer/. "test-cold" points SPP_TRITON_CACHE_DIR at an
# empty folder (no compile rows cached on this machine: the committed verified result is
# all a fresh clone has); "setup" uses pip's wheel cache as this machine has it, which
# the row records (mmcv built or taken from the cache); COLD_PIP=1 makes pip ignore its
# cache, as on a new machine (mmcv is then compiled again).
#
# Shared 2-core machines vary by 2x from day to day: compare rows of one sitting.
set -uo pipefail
cd "$(dirname "$0")/.."
HERE=$PWD
PHASES=("$@")
[ ${#PHASES[@]} -gt 0 ] || PHASES=(setup test-cold test-warm selftest demo)
CSV=$HERE/benchmarks/results/newcomer.csv
LOGS=$HERE/work_dirs/newcomer/$(date +%Y%m%d-%H%M%S)
CLONE=$(mktemp -d /tmp/spp-newcomer.XXXXXX)/repo
mkdir -p "$LOGS"
git clone -q "$HERE" "$CLONE"
COMMIT=$(git -C "$CLONE" rev-parse --short HEAD)
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//; s/,/;/g')
[ -f "$CSV" ] || echo "date,commit,machine,cores,load1_before,phase,command,wall_s,max_gap_s,lines,exit_code,note" > "$CSV"

run_phase() {
  local phase=$1 cmd=$2 note=$3
  local load
  load=$(cut -d' ' -f1 /proc/loadavg)
  echo "==> [$(date +%H:%M:%S)] $phase: $cmd (log: $LOGS/$phase.log)"
  (cd "$CLONE" && eval "$cmd") 2>&1 | python3 "$HERE/scripts/line_gaps.py" --log "$LOGS/$phase.log" \
      --json "$LOGS/$phase.json" > /dev/null
  local rc=${PIPESTATUS[0]}
  local wall gap lines
  read -r wall gap lines < <(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['wall_s'], d['max_gap_s'], d['lines'])" "$LOGS/$phase.json")
  if [ "$phase" = setup ]; then
    if grep -q "Building wheel for mmcv" "$LOGS/$phase.log"; then note="mmcv built from source"; else note="mmcv wheel from pip's cache"; fi
  fi
  echo "$(date +%F),$COMMIT,$CPU,$(nproc),$load,$phase,$cmd,$wall,$gap,$lines,$rc,$note" >> "$CSV"
  echo "    $phase: ${wall} s, longest silence ${gap} s, exit $rc"
}

for phase in "${PHASES[@]}"; do
  case $phase in
    setup) run_phase setup "${COLD_PIP:+PIP_NO_CACHE_DIR=1 }make setup" "" ;;
    test-cold) run_phase test-cold "SPP_TRITON_CACHE_DIR=$CLONE/.cold-cache make test" "no compile rows cached on this machine" ;;
    test-warm) run_phase test-warm "make test" "second run" ;;
    selftest) run_phase selftest "make selftest" "no GPU: interpreter smoke test" ;;
    demo) run_phase demo "make demo" "" ;;
    *) echo "unknown phase $phase (setup test-cold test-warm selftest demo)" >&2; exit 2 ;;
  esac
done
echo "rows appended to $CSV; logs in $LOGS; the clone is $CLONE (remove it when done)"
