#!/usr/bin/env bash
# Run the same tests N times in a row and count: per run its wall time and outcome, per test its
# passes, failures and durations. For flaky-test hunting (fault tests must pass every time); CI
# runs each file once.
#
#   scripts/repeat-tests.sh N <test files and vitest options…>
#   scripts/repeat-tests.sh 3 test/workflows/stream-faults.test.ts
#   scripts/repeat-tests.sh 5 test/workflows/stream.test.ts -t 'kill -9 of the bridge'
#
# Config: vitest.workflows.config.mts unless VITEST_CONFIG names another. Each run's output and
# JSON report go to .data/repeat/<UTC time>/ (the path is printed). Exit status: 0 only when
# every run passed.
set -uo pipefail

if [[ $# -lt 2 || ! "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 N <test files and vitest options…>" >&2
  exit 2
fi
runs=$1
shift
config=${VITEST_CONFIG:-vitest.workflows.config.mts}
cd "$(dirname "$0")/.."
out=.data/repeat/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
echo "$runs runs of $* (config $config); logs in $out"

passed=0
for ((i = 1; i <= runs; i++)); do
  start=$(date +%s)
  npx vitest run --config "$config" "$@" --reporter=default --reporter=json --outputFile.json="$out/run-$i.json" >"$out/run-$i.log" 2>&1
  status=$?
  secs=$(($(date +%s) - start))
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  if [[ $status -eq 0 ]]; then
    passed=$((passed + 1))
    echo "run $i: passed in ${secs} s (load $load)"
  else
    echo "run $i: FAILED (exit $status) in ${secs} s (load $load); see $out/run-$i.log"
  fi
done

# Per test that ran (not skipped or filtered out): passes / runs and durations, from the JSON reports.
node - "$out" <<'EOF'
const fs = require('node:fs');
const path = require('node:path');
const dir = process.argv[2];
const tests = new Map();
for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
  const report = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
  for (const file of report.testResults ?? []) {
    for (const t of file.assertionResults ?? []) {
      const name = t.fullName ?? t.title;
      const e = tests.get(name) ?? { passed: 0, failed: 0, seconds: [] };
      if (t.status === 'passed') e.passed++;
      else if (t.status === 'failed') e.failed++;
      if (typeof t.duration === 'number') e.seconds.push(Math.round(t.duration / 100) / 10);
      tests.set(name, e);
    }
  }
}
for (const [name, e] of tests) if (e.passed + e.failed > 0) console.log(`${e.failed === 0 ? 'ok  ' : 'FAIL'} ${e.passed}/${e.passed + e.failed} ${name} (s: ${e.seconds.join(', ')})`);
EOF
echo "$passed of $runs runs passed"
[[ $passed -eq $runs ]]
