#!/bin/bash
# A/B (stop 33): old build (ef6f8eb, built in /tmp/old) vs this build with --downtime-margin 0 (new0), its
# defaults (new), and its defaults with PPSIM_SEND_WAY=preadv (newp); 1 GiB, --prealloc guest, one JSON line a run.
# RUNS=3 WLS="examples/database.json examples/memory-scan.json" [MODE=hybrid] [VARIANTS="old new"] docs/data/s33-ab.sh OUT.jsonl
out=$1; shift
: > $out
for i in $(seq 1 $RUNS); do
  for wl in $WLS; do
    for v in ${VARIANTS:-old new0 new}; do
      case $v in
        old) bin=/tmp/old/dist/src/cli/bin.js; extra="";;
        new0) bin=/work/main/dist/src/cli/bin.js; extra="--downtime-margin 0";;
        new) bin=/work/main/dist/src/cli/bin.js; extra="";;
        newp) bin=/work/main/dist/src/cli/bin.js; extra=""; export PPSIM_SEND_WAY=preadv;;
      esac
      [ $v = newp ] || unset PPSIM_SEND_WAY
      s=$(date -u +%H:%M:%S)
      timeout 180 node $bin real --demo --trace $wl --memory ${MEM:-1GiB} --mode ${MODE:-precopy} --prealloc guest --json $extra > /tmp/ab-run.json 2>/dev/null
      python3 - "$v" "$wl" "$s" >> $out <<'PY'
import json,sys
v,wl,s=sys.argv[1:4]
try:
  r=json.load(open('/tmp/ab-run.json'))
except Exception as e:
  print(json.dumps({"v":v,"wl":wl,"at":s,"error":str(e)})); sys.exit()
p=r.get('precopy') or {}; t=r['real_switchover']['trace_us']
print(json.dumps({"v":v,"wl":wl,"at":s,"verified":r['verified'],"reason_end":r['reason'][:90],"rounds":len(r['rounds']),"throttle":r['throttle'],"reason":r['switchover_reason'],"downtime":r['downtime_ms'],"expected":p.get('expected_downtime_ms'),"remaining":p.get('remaining_pages'),"resent_last":r['pages_resent']-sum(0 for _ in []),"total":r['total_ms'],"ask_to_pause_ms":round((t['paused']-t['asked'])/1000,2),"engine_ms":round((t['engine_done']-t['paused'])/1000,2),"bw":round(p.get('bandwidth_bytes_s',0)/1e6)}))
PY
    done
  done
done
