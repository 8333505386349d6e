-- wrk: POST one job per request, authenticated when BENCH_API_KEY is set.
wrk.method = "POST"
wrk.body = '{"kind": "sleep", "params": {"ms": 0}}'
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("BENCH_API_KEY")
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
