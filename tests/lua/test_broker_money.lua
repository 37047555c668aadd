-- Money: cost from real start/stop times, the summary at close, max_price, and the budget
-- (refuse to start; drain and tear down before the projected spend passes it).
local t = require "testlib"
local fake = require "fakeprov"
local money = require "sky.broker.money"
local sky = require "sky"

local offer = fake.offer

local function last(events, type_)
  local found
  for _, ev in ipairs(events) do if ev.type == type_ then found = ev end end
  return found
end

t.test("cost per node from start/stop times x the attempt's price; on-demand comparison", function()
  local p = fake.new { offers = { offer("a", 72.0, 36.0), offer("b", 72.0, 36.0) },
    behave = function(_, _, call) return call == 1 and { partial = 1 } or "ok" end }
  local events = {}
  do
    local pool <close> = sky.compute { provider = p, nodes = 2, display = "quiet", allocation = "always-spot",
      selection = "first", on_event = function(ev) events[#events + 1] = ev end }
    sky.sleep(0.5)
    t.eq(pool.spot, true)
  end
  local s = last(events, "CostSummary")
  t.ok(s, "a CostSummary event at close")
  t.eq(#s.rows, 3, "two nodes and the instance of the failed attempt")
  t.eq({ s.rows[1].node, s.rows[2].node, s.rows[3].node }, { 0, 1, nil })
  for i = 1, 2 do
    local r = s.rows[i]
    t.eq(r.price, 36.0)
    t.ok(r.seconds >= 0.5 and r.seconds < 5, r.seconds)
    t.ok(math.abs(r.cost - 36.0 * r.seconds / 3600) < 1e-9)
    t.ok(math.abs(r.on_demand_cost - 2 * r.cost) < 1e-9)
  end
  local sum = s.rows[1].cost + s.rows[2].cost + s.rows[3].cost
  t.ok(math.abs(s.total - sum) < 1e-9)
  t.ok(math.abs(s.on_demand_total - 2 * s.total) < 1e-9)
  t.eq(s.currency, "USD")
end)

t.test("on-demand total is unknown when an offer has no on-demand price", function()
  local p = fake.new { offers = { offer("spot-only", nil, 1.0) } }
  local events = {}
  local pool = sky.compute { provider = p, display = "quiet", on_event = function(ev) events[#events + 1] = ev end }
  pool:close()
  t.eq(last(events, "CostSummary").on_demand_total, nil)
end)

t.test("max_price: attempts above it are not made", function()
  local p, l = fake.new { offers = { offer("dear", 10.0, 6.0), offer("ok", 4.0) } }
  local pool <close> = sky.compute { provider = p, selection = "first", max_price = 5, display = "quiet" }
  t.eq(l.provisions, { "ok:od" })
  local err = t.raises(function() sky.compute { provider = p, max_price = 1, display = "quiet" } end, "no attempt could be made")
  t.ok(tostring(err):find("not tried: 3 attempts over max_price", 1, true), tostring(err))
end)

t.test("budget: refuses to start when even the minimum run would pass it", function()
  local p, l = fake.new { offers = { offer("big", 100.0, 80.0) } }
  local err = t.raises(function() sky.compute { provider = p, nodes = 4, budget = 1, display = "quiet" } end,
    "budget $1.00 is too small")
  t.eq(err.code, "BudgetExceeded")
  t.ok(tostring(err):find("costs $5.33 for the minimum run (60 s on 4 nodes)", 1, true), tostring(err))
  t.ok(tostring(err):find("test_broker_money.lua:%d+:"), "blamed on the script's line")
  t.eq(#l.provisions, 0, "nothing was provisioned")
  t.eq(l.torn, 0)
  t.raises(function() sky.compute { provider = p, budget = -1 } end, "must be more than 0")
end)

t.test("budget: offers whose minimum run is too dear are skipped for affordable ones", function()
  local p, l = fake.new { offers = { offer("dear", 100.0), offer("cheap", 1.0) } }
  local pool <close> = sky.compute { provider = p, selection = "first", budget = 1, display = "quiet" }
  t.eq(pool.offer.instance_type, "cheap")
  t.eq(l.provisions, { "cheap:od" })
end)

t.test("budget: the pool is drained and torn down before the projected spend passes it", function()
  local saved = { money.TEARDOWN_ALLOWANCE, money.STOP_GRACE, money.MIN_RUN }
  money.TEARDOWN_ALLOWANCE, money.STOP_GRACE, money.MIN_RUN = 1.5, 0.2, 0.5
  -- $3600/h = $1 a second; budget $3: stopped after about 1.5 s of running
  local p, l = fake.new { offers = { offer("pricey", 3600.0) } }
  local events = {}
  local pool = sky.compute { provider = p, nodes = 1, budget = 3, display = "quiet",
    on_event = function(ev) events[#events + 1] = ev end }
  local pids = fake.pids(pool)
  local long = sky.fn(function() os.execute("sleep 30") return "finished" end)
  local err = t.raises(function() return long() >> pool end, "budget $3.00 would be passed")
  t.eq(err.code, "PoolClosed")
  t.eq(pool.state, "destroyed")
  local s = last(events, "CostSummary")
  t.ok(s.total < 3, ("spent %.3f, over the budget"):format(s.total))
  t.ok(s.total > 1, ("spent %.3f: stopped far too early"):format(s.total))
  t.eq(#fake.wait_gone(pids), 0, "worker gone")
  t.ok(fake.all_terminated(l))
  t.raises(function() return long() >> pool end, "budget")
  money.TEARDOWN_ALLOWANCE, money.STOP_GRACE, money.MIN_RUN = table.unpack(saved)
end)

t.test("min_run_cost and the ledger's arithmetic", function()
  t.eq(money.min_run_cost(36, 2), 36 * 2 * money.MIN_RUN / 3600)
  local ledger = money.ledger()
  ledger:launched("p", { "a", "b" }, { offer = { instance_type = "x", price = 7.2 }, spot = false, price = 7.2 })
  local spent, rate = ledger:spent()
  t.eq(rate, 14.4)
  t.ok(spent >= 0 and spent < 0.01)
  ledger:stopped("p", { "a" })
  t.eq(select(2, ledger:spent()), 7.2)
  t.eq(money.usd(0.004), "$0.0040")
  t.eq(money.usd(12.345), "$12.35")
end)

t.done()
