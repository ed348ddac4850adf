#!/usr/bin/env bash
# Rerun the fault and hostile-input probe of issue 15 against this checkout.
#   bash scripts/reliability_probe.sh [python]
# Prints one line per case: the exit status, whether a traceback appeared, whether the
# result reached stdout, and the first stderr line.  Read-only cases need root (they use a
# read-only bind mount in a private mount namespace); they are skipped otherwise.
set -u
PY=${1:-python}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=$(mktemp -d /tmp/apt-probe-XXXXXX)
export PYTHONPATH=$ROOT OMP_WAIT_POLICY=PASSIVE APT_NUM_THREADS=1 APT_CACHE_DIR=$W/cache APT_HISTORY_DB=$W/history.sqlite
RUN="$PY -m apt_core run --dataset sample --epochs 2 --json"
cd "$W"

report() {  # name rc out err
  local tb=no res=no
  grep -q Traceback "$4" && tb=YES
  grep -q '"rows"' "$3" && res=yes
  grep -q '"rows"\|"n_users"' "$3" && res=yes
  printf '%-44s rc=%-3s traceback=%-3s result=%-3s %s\n' "$1" "$2" "$tb" "$res" "$(grep -v '^\s*$' "$4" | grep -v ScriptRunContext | tail -1 | cut -c1-160)"
}
case_() {  # name, command...
  local name=$1; shift
  "$@" >"$W/out" 2>"$W/err"; report "$name" $? "$W/out" "$W/err"
}

$RUN --no-history >/dev/null 2>&1   # fill the cache once: the cases below are fast

echo "== history trouble"
printf 'garbage%.0s' {1..200} > garbage.sqlite; mkdir -p dir.sqlite
case_ "run, garbage history" $RUN --history-db garbage.sqlite
case_ "run, history path is a folder" $RUN --history-db dir.sqlite
case_ "history, garbage file" $PY -m apt_core history --history-db garbage.sqlite
$RUN --history-db locked.sqlite >/dev/null 2>&1
$PY -c "import sqlite3,time; c=sqlite3.connect('locked.sqlite',isolation_level=None); c.execute('BEGIN EXCLUSIVE'); open('locked.flag','w'); time.sleep(100)" &
LOCKER=$!
while [ ! -f locked.flag ]; do sleep 0.1; done
t0=$(date +%s.%N); case_ "run, history locked for 100 s" $RUN --history-db locked.sqlite
echo "   ... took $(echo "$(date +%s.%N) - $t0" | bc) s"
case_ "history, while locked" $PY -m apt_core history --history-db locked.sqlite
kill $LOCKER; wait $LOCKER 2>/dev/null
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
  mkdir -p ro; $RUN --history-db ro/history.sqlite --cache-dir ro/cache >/dev/null 2>&1
  RO="unshare -m sh -c"
  MNT="mount --bind $W/ro $W/ro && mount -o remount,ro,bind $W/ro"
  case_ "run, read-only history" $RO "$MNT && $RUN --history-db $W/ro/history.sqlite"
  case_ "history, read-only history" $RO "$MNT && $PY -m apt_core history --history-db $W/ro/history.sqlite"
  case_ "run, read-only cache folder (new entries)" $RO "$MNT && $RUN --epochs 3 --no-history --cache-dir $W/ro/cache"
else
  echo "(read-only cases skipped: need root for a read-only bind mount)"
fi

echo "== cache --clear during 6 runs"
pids=()
for e in 3 4 5 6 7 8; do $RUN --epochs $e --no-history >"run$e.out" 2>"run$e.err" & pids+=($!); done
for i in $(seq 1 40); do $PY -m apt_core cache --clear >/dev/null 2>&1; sleep 0.2; done
fails=0; for p in "${pids[@]}"; do wait "$p" || fails=$((fails+1)); done
echo "   runs failed: $fails of 6; tracebacks: $(cat run*.err | grep -c Traceback)"

echo "== crafted inputs"
printf 'user,item,rating\n0,1e20,5\n' > big.csv
case_ "poison CSV item 1e20" $RUN --no-history --attack average --poison-file big.csv
$PY - <<'EOF'
import numpy as np
with open("forged.npy", "wb") as fh:
    np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (100_000_000, 996)})
    fh.write(b"\0" * 800)
EOF
case_ "npy header claims (1e8, 996)" $RUN --no-history --attack average --poison-file forged.npy
case_ "upload with a 300-character name" $PY -c "
import sys; sys.path.insert(0, '$ROOT')
from pages._shared.uploads import save_upload
import inspect
kw = {'folder': '$W/up'} if 'folder' in inspect.signature(save_upload).parameters else {}
p = save_upload('x' * 300 + '.csv', open('$ROOT/sample_data/ratings.csv', 'rb').read(), **kw)
print('\"rows\" stored as', p)"

echo "== silently wrong"
case_ "--k 100000" $RUN --no-history --k 100000
printf '\xef\xbb\xbf' > bom.csv; cat "$ROOT/sample_data/ratings.csv" | tail -n +2 >> bom.csv
case_ "headerless CSV with a BOM (users)" $PY -c "
from apt_core.data import load_csv; d = load_csv('bom.csv')
print('\"n_users\"', d.n_users, 'first id', repr(d.user_ids[0]), d.user_ids.dtype, file=__import__('sys').stderr)"
printf '\xef\xbb\xbfuser,item,rating\n0,1,5\n' > bompoison.csv
case_ "poison CSV with a BOM" $RUN --no-history --attack average --poison-file bompoison.csv
$PY -c "
rows = 'user,item,rating\n' + ''.join(f'u{u},caf\u00e9,4\nu{u},caf\u00e8,2\n' for u in range(10))
open('latin.csv', 'wb').write(rows.encode('latin-1'))"
case_ "Latin-1 upload" $PY -c "
import sys; sys.path.insert(0, '$ROOT')
from pages._shared.uploads import save_upload
from apt_core.errors import AptError
import inspect
kw = {'folder': '$W/up'} if 'folder' in inspect.signature(save_upload).parameters else {}
try:
    p = save_upload('latin.csv', open('latin.csv', 'rb').read(), **kw)
    from apt_core.data import load_csv
    print('\"n_users\"', 'accepted: items', list(load_csv(p).item_ids), file=sys.stderr)
except AptError as exc:
    print('error:', exc, file=sys.stderr); sys.exit(2)"
$PY -c "import numpy as np; np.save('zero.npy', np.zeros((18, 996)))"
case_ "all-zero poison .npy" $RUN --no-history --attack average --poison-file zero.npy
(cat "$ROOT/sample_data/ratings.csv"; tail -n +2 "$ROOT/sample_data/ratings.csv") > dups.csv
case_ "rating file with duplicate rows" $PY -m apt_core data --dataset dups.csv
$PY -c "
import numpy as np; rng = np.random.default_rng(0)
open('single.csv', 'w').write(''.join(f'{u},{rng.integers(1, 300)},{rng.integers(1, 6)}\n' for u in range(200_000)))"
case_ "200,000 users, one rating each" $RUN --no-history --dataset single.csv --targets unpopular
case_ "--seed -1" $RUN --no-history --seed -1
case_ "--seed 1e20" $RUN --no-history --seed 1e20
case_ "--seed 100000000000000000000" $RUN --no-history --seed 100000000000000000000

echo "== orphans and double records"
for sig in TERM KILL; do
  $PY -m apt_core reproduce --quick --jobs 2 --epochs 20 --no-progress --out rep --history-db rep.sqlite >/dev/null 2>&1 &
  parent=$!
  for i in $(seq 1 600); do [ "$(pgrep -P $parent -f spawn_main | wc -l)" -ge 2 ] && break; sleep 0.1; done
  sleep 1
  kids=$(pgrep -P $parent | tr '\n' ' ')
  kill -$sig $parent; wait $parent 2>/dev/null
  sleep 5
  left=0; for k in $kids; do kill -0 "$k" 2>/dev/null && [ "$(cut -d' ' -f3 /proc/$k/stat 2>/dev/null)" != Z ] && left=$((left+1)); done
  echo "   SIG$sig to reproduce --jobs 2: children before: $(echo $kids | wc -w), alive 5 s later: $left"
  for k in $kids; do kill -9 "$k" 2>/dev/null; done  # (only ours) so an old build's orphans do not linger
done
$PY -m apt_core reproduce --quick --jobs 2 --no-progress --out rep --history-db rep2.sqlite >/dev/null 2>&1
n1=$($PY -m apt_core history --history-db rep2.sqlite --json --limit 1000 | $PY -c "import json,sys; print(len(json.load(sys.stdin)))")
$PY -m apt_core reproduce --quick --jobs 2 --no-progress --out rep --history-db rep2.sqlite >/dev/null 2>&1
n2=$($PY -m apt_core history --history-db rep2.sqlite --json --limit 1000 | $PY -c "import json,sys; print(len(json.load(sys.stdin)))")
echo "   reproduce twice: history rows after the first $n1, after the rerun $n2"
rm -rf "$W"
