-- scripts/bench.d/report.lua: wrk script that adds one machine-readable line to wrk's report.
--
--   wrk -s scripts/bench.d/report.lua ... URL
--
-- The line starts with "WRKJSON " and holds the totals and the latency percentiles (in
-- microseconds) that scripts/bench records; wrk's own human-readable report is unchanged.

done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,"status_errors":%d,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.timeout, e.status,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
