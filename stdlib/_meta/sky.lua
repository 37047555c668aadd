---@meta sky
-- LuaCATS annotations for the `sky` module, for editors running the Lua language server
-- (add stdlib/_meta to "workspace.library"). Not loaded by skyhost.

---@class sky.fn
---@field name string          where the function was defined
---@field timeout? number        seconds a task of it may run
---@field local_call fun(...): ...  runs the function here, in this process
---@overload fun(...): sky.pending

---A native function from a shared library (sky.plugin): calling it makes a pending task, as a
---sky.fn does; called inside a Lua function on a node, it runs there and returns its results.
---@class sky.plugin
---@field name string       the function's name (SKY_PLUGIN(name))
---@field path string       the library, as given
---@field hash string       content hash: the name of the library's copy on SSH nodes
---@field isolate boolean   false: runs in the worker itself (a crash takes the node down)
---@overload fun(...): sky.pending

---@class sky.pending
---@operator shr(sky.pool|sky): any    run on the pool (sky: the current pool); the first return value
---@operator band(sky.pending|sky.group): sky.group

---@class sky.group
---@operator shr(sky.pool|sky): any[]  run every task in parallel; each first return value, in order
---@operator band(sky.pending|sky.group): sky.group

---@class sky.event
---@field type string   "ClusterReady", "TaskCompleted", "Log", ...
---@field pool integer   the pool's id (pool.id), a number unique within this process
---@field time number   seconds on a monotonic clock: differences between events are durations
---@field node? integer
---@field task? integer
---@field duration? number
---@field ok? boolean
---@field text? string
---@field reason? string   InstanceLost: why; ClusterDraining, ClusterDestroyed: why it ended early
---@field phase? string
---@field seconds? number

---@class sky.image
---@field apt? string[]
---@field pip? string[]
---@field env? table<string, string|number|boolean>
---@field setup? string
---@field workdir? string

---@class sky.compute_options
---@field provider? string|table   "local" (default), sky.ssh{...}, sky.slurm{...}, a provider table, or a list
---@field nodes? integer
---@field concurrency? integer     tasks at once per node (default: one per core of the node)
---@field retries? integer         re-runs of a task whose node was lost (default 1)
---@field task_timeout? number     seconds any task may run (default: no limit)
---@field ttl? number              dead-man lease, seconds (default 600)
---@field timeout? number          the pool's maximum lifetime, seconds; then PoolTimeout (default: none)
---@field image? sky.image
---@field name? string
---@field on_event? fun(ev: sky.event)
---@field display? "auto"|"spinner"|"log"|"quiet"
---@field accelerator? string|table
---@field selection? "first"|"cheapest"|"available"|fun(offers: table[], spec: table): table[]
---@field allocation? "spot-if-available"|"always-spot"|"on-demand"|"cheapest"|fun(offer: sky.offer, spec: table): {spot: boolean, price: number}[]
---@field budget? number           USD
---@field region? string|string[]
---@field zone? string|string[]
---@field spot? boolean            true: always-spot, false: on-demand
---@field max_price? number        USD/h per node
---@field provision_timeout? number seconds per attempt (default 600)
---@field replace? boolean         a lost or preempted node gets a new instance of the same offer (default false)

---@class sky.offer
---@field provider string
---@field instance_type string
---@field accelerator? string
---@field count? number
---@field gpu_memory? number       GiB per accelerator
---@field vcpus? number
---@field memory? number           host RAM, GiB
---@field region? string
---@field zone? string
---@field price? number            on-demand USD/h for the instance
---@field spot_price? number       spot USD/h for the instance
---@field available? boolean
---@field capacity? integer

---@class sky.provider_def
---@field name string
---@field offers fun(self: table, spec: table): sky.offer[]
---@field prepare? fun(self: table, cluster: table)
---@field provision fun(self: table, cluster: table, n: integer, offer: sky.offer): (string|integer)[]
---@field get_instance fun(self: table, cluster: table, id: string|integer): {id: any, state: "pending"|"running"|"terminated", ip?: string, port?: integer, user?: string, transport?: "local"}
---@field terminate fun(self: table, cluster: table, ids: (string|integer)[])
---@field teardown? fun(self: table, cluster: table)
---@field offers_ttl? number       seconds to cache offers() in the state database

---@class sky.pool
local pool = {}
---@param p sky.pending|sky.group
---@param opts? {timeout?: number}
---@return ...
function pool:run(p, opts) end
---@param p sky.pending
---@param opts? {timeout?: number}
---@return any[] results, results[i] from node i - 1
function pool:broadcast(p, opts) end
---@param fn sky.fn|sky.plugin|function
---@param items any[]
---@param opts? {concurrency?: integer, timeout?: number, errors?: "raise"|"return"}
---@return any[] results
---@return {index: integer, error: table}[]? failures  with errors = "return"
function pool:map(fn, items, opts) end
---@param name string  "*", "TaskCompleted", "task_completed", ...
---@param fn fun(ev: sky.event)
---@return sky.pool
function pool:on(name, fn) end
---@param local_path string
---@param remote_path string
---@param opts? {node?: integer}
function pool:put(local_path, remote_path, opts) end
---@param remote_path string
---@param local_path string
---@param opts? {node?: integer}
---@return string[] paths written
function pool:get(remote_path, local_path, opts) end
---@return {node: integer, hostname: string, pid: integer, alive: boolean, executors: integer, lost?: string}[]
function pool:nodes_info() end
function pool:close() end

---@class sky.task
---@field wait fun(self: sky.task): ...
---@field done fun(self: sky.task): boolean

---@class sky
sky = {}
---@param f function
---@param opts? {timeout?: number}
---@return sky.fn
function sky.fn(f, opts) end
---@param opts sky.compute_options
---@return sky.pool
function sky.compute(opts) end
---The scoped form: sky.pool{...}(main) returns a function that provisions a pool, runs main with
---it as the current pool (`task >> sky`, sky.run, sky.broadcast, sky.map), tears it down when
---main returns or raises, and returns main's results.
---@param opts? sky.compute_options
---@return fun(main: function): fun(...): ...
function sky.pool(opts) end
---The current pool of this coroutine (inside sky.pool{...}(main), or spawned from there), or nil.
---@return sky.pool?
function sky.current_pool() end
---pool:run on the current pool.
---@param p sky.pending|sky.group
---@return ...
function sky.run(p) end
---pool:broadcast on the current pool.
---@param p sky.pending
---@return any[]
function sky.broadcast(p) end
---pool:map on the current pool.
---@param fn sky.fn|function
---@param items any[]
---@param opts? {concurrency?: integer}
---@return any[]
function sky.map(fn, items, opts) end
---The function `name` of the plugin library at `path` (docs/plugins.md). The file is hashed now;
---SSH nodes get a copy (once per content) before the pool's next tasks; it loads at first use.
---@param path string|{path: string, name: string, isolate?: boolean}
---@param name? string
---@param opts? {isolate?: boolean}  isolate = false: no plugin host (faster calls; a crash takes the node)
---@return sky.plugin
function sky.plugin(path, name, opts) end
---@param ... sky.pending|sky.pending[]
---@return sky.group
function sky.gather(...) end
---@param fn function
---@return sky.task
function sky.spawn(fn, ...) end
---@param handles sky.task[]
---@return any[]
function sky.wait_all(handles) end
---@param seconds number
function sky.sleep(seconds) end
---@return {node: integer, total_nodes: integer, is_head: boolean, head_addr: string, hostname: string, pid: integer, provider: string}
function sky.instance_info() end
---@param ... any  lists, then optionally {shuffle?: boolean, seed?: integer, node?: integer, total_nodes?: integer}
---@return ...
function sky.shard(...) end
---@param opts {hosts: string[], user?: string, port?: integer, identity?: string, known_hosts?: string, host_keys?: "strict"|"accept-new", connect_timeout?: number}
---@return table provider
function sky.ssh(opts) end
---@param opts? {partition?: string, account?: string, qos?: string, time?: string|number, gpus_per_node?: integer, gres?: string, constraint?: string, reservation?: string, sbatch_args?: string[], price_per_gpu_hour?: number, price_per_node_hour?: number, worker?: string, command_timeout?: number}
---@return table provider  nodes of a Slurm cluster, workers as job steps (docs/slurm.md)
function sky.slurm(opts) end

---@param opts? {region?: string|string[], zone?: string|string[], profile?: string, image?: string, subnet?: string|string[], public_ip?: boolean, security_group?: string, ssh_cidr?: string, disk_gb?: integer, instance_profile?: string, user?: string, endpoint?: string, retries?: integer, poll_interval?: number, live_prices?: boolean, host_keys?: string, on_expiry?: string, spot_notice?: boolean}
---@return table provider  EC2 instances (docs/aws.md)
function sky.aws(opts) end
---@param opts? {project?: string, zone?: string|string[], region?: string|string[], credentials?: string, image?: string, disk_gb?: integer, network?: string, subnetwork?: string, public_ip?: boolean, service_account?: string, user?: string, endpoint?: string, retries?: integer, poll_interval?: number}
---@return table provider  Compute Engine instances (docs/gcp.md)
function sky.gcp(opts) end
---@param def sky.provider_def
---@return table provider  usable as sky.compute{provider = ...}, also by its name
function sky.provider(def) end
---@param path string  "providers.<name>.<method>", "selection.<name>" or "allocation.<name>"
---@param fn fun(base: function, ...): ...
---@return fun() undo
function sky.override(path, fn) end
---@param specs sky.compute_options[]
---@return sky.pool[] pools  in order; closing the list (or <close>) closes them all
function sky.multipool(specs) end
---Known accelerators: sky.accelerators.H100{count = 8, memory = 80}, resolve(name), list().
sky.accelerators = {}
---The offer catalog: snapshot(), query(offers, spec), load(path_or_text).
sky.catalog = {}
---Selection and allocation policies: selection.<name>, allocation.<name>, select, expand, plan.
sky.policy = {}

return sky
