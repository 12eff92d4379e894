-- wrk script: POST /api/orders, one random product of 1..N (wrk ... -- N),
-- quantity 1; counts the answers by kind and prints them at the end.
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  products = tonumber(args[1] or "50")
  created, conflict, other = 0, 0, 0
  math.randomseed(os.time() + id * 7919)
end

function request()
  local body = string.format('{"items":[{"product_id":%d,"quantity":1}]}', math.random(1, products))
  return wrk.format("POST", "/api/orders", { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  if status == 201 then
    created = created + 1
  elseif status == 409 then
    conflict = conflict + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local c, k, o = 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("created")
    k = k + t:get("conflict")
    o = o + t:get("other")
  end
  io.write(string.format("checkout answers: created=%d conflict=%d other=%d\n", c, k, o))
end
