#!/bin/bash
# Stop 33: the send ways A/B'd on one build, 1 GiB database pre-copy, --prealloc guest --downtime-margin 0; one JSON line a run.
# docs/data/s33-way.sh OUT.jsonl
out=$1; : > $out
for i in 1 2 3; do for way in preadv writev; do
  s=$(date -u +%H:%M:%S)
  PPSIM_SEND_WAY=$way timeout 180 node dist/src/cli/bin.js real --demo --trace examples/database.json --memory 1GiB --mode precopy --prealloc guest --downtime-margin 0 --json > /tmp/way-run.json 2>/dev/null
  python3 - $way $s >> $out <<'PY'
import json,sys
r=json.load(open('/tmp/way-run.json')); p=r['precopy']; t=r['real_switchover']['trace_us']
last=r['pages_resent'] if len(r['rounds'])==1 else None
tl=(t['sent']-t['engine_done'])
print(json.dumps({"way":sys.argv[1],"at":sys.argv[2],"verified":r['verified'],"rounds":len(r['rounds']),"downtime":r['downtime_ms'],"expected":p['expected_downtime_ms'],"ratio":round(r['downtime_ms']/p['expected_downtime_ms'],2),"us_per_page_stopcopy":round(tl/last,2) if last else None,"est_us_per_page":round(4104/(p['bandwidth_bytes_s']/1e6),2),"r1_us_per_page":round(r['rounds'][0]['ms']*1000/r['rounds'][0]['pages'],2)}))
PY
done; done
