// An independent emulation of the MESG engine's service-facing API, generations G2 (v0.17-v0.20)
// and G3 (v0.21-v0.26), for the conformance checks in this folder.
//
// Why a second engine: the local engine (local-engine/) is written by the same project as the service,
// so a shared misreading of the protocol would pass there. This one is written in another language
// from the protocol reference and the engine's public source (v0.21 server/grpc/{orchestrator,runner}),
// with its own .proto text (./proto), and is driven by pytest against the service as installed.
//
// Model: one instance of one service, run by N engine nodes. Each node has its own gRPC endpoint,
// its own secp256k1 key and so its own runner of the instance (runner hash = sha256(node address +
// instance hash)). Executions are shared by every node (the chain); tokens live in each node's
// memory only and are lost on restart. G3's Register checks MESG_REGISTER_SIGNATURE as the engine
// does: secp256k1 over the key-sorted JSON of the request, hashes in base58, 64-byte r||s, low S.
//
// Usage: node engine.js --generation g2|g3 --nodes N --definition service.json
// It prints one JSON line {"ready": {...}} on stdout, then answers one JSON command per stdin line
// with one JSON line {"id", "ok"|"error"}. Commands: create, create_many, state, restart,
// restart_on_next_result, forget_on_next_result, authorize_rogue, register_as.
// Human-readable logs go to stderr.
'use strict'

const crypto = require('crypto')
const path = require('path')
const readline = require('readline')
const fs = require('fs')
const grpc = require('@grpc/grpc-js')
const protoLoader = require('@grpc/proto-loader')

// -- arguments ---------------------------------------------------------------------------------
function parseArgs (argv) {
  const args = { generation: 'g3', nodes: 1, definition: null }
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '')
    args[name] = argv[i + 1]
  }
  args.nodes = Number(args.nodes)
  if (!['g2', 'g3'].includes(args.generation)) throw new Error(`--generation must be g2 or g3, not ${args.generation}`)
  if (!(args.nodes >= 1)) throw new Error('--nodes must be at least 1')
  if (!args.definition) throw new Error('--definition service.json is required')
  return args
}
const args = parseArgs(process.argv.slice(2))
const definition = JSON.parse(fs.readFileSync(args.definition, 'utf8'))
const log = (...parts) => console.error(new Date().toISOString(), ...parts)

// -- protos ------------------------------------------------------------------------------------
const protoDir = path.join(__dirname, 'proto')
const loaded = protoLoader.loadSync(['api.proto', 'orchestrator.proto', 'runner.proto'], {
  includeDirs: [protoDir],
  keepCase: true,
  longs: String,
  enums: Number,
  defaults: false,
  oneofs: true
})
const pkg = grpc.loadPackageDefinition(loaded)
const STATUS = { Unknown: 0, Proposed: 1, InProgress: 2, Completed: 3, Failed: 4 }
const STATUS_NAME = Object.fromEntries(Object.entries(STATUS).map(([k, v]) => [v, k]))

// -- hashes: 32 raw bytes on the wire, base58 (Bitcoin alphabet) as text -----------------------
const ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
function b58 (buf) {
  if (!buf || buf.length === 0) return ''
  let n = BigInt('0x' + Buffer.from(buf).toString('hex'))
  let out = ''
  while (n > 0n) { out = ALPHABET[Number(n % 58n)] + out; n /= 58n }
  for (const byte of buf) { if (byte !== 0) break; out = '1' + out }
  return out
}
const sha256 = (...parts) => crypto.createHash('sha256').update(Buffer.concat(parts.map((p) => Buffer.from(p)))).digest()
const randomHash = () => crypto.randomBytes(32)

// -- mesg.protobuf.Struct <-> plain JSON -------------------------------------------------------
function fromValue (v) {
  switch (v && v.kind) {
    case 'null_value': return null
    case 'number_value': return v.number_value
    case 'string_value': return v.string_value
    case 'bool_value': return v.bool_value
    case 'struct_value': return fromStruct(v.struct_value)
    case 'list_value': return (v.list_value.values || []).map(fromValue)
    default: return null
  }
}
function fromStruct (s) {
  const out = {}
  for (const [k, v] of Object.entries((s && s.fields) || {})) out[k] = fromValue(v)
  return out
}
function toValue (x) {
  if (x === null || x === undefined) return { null_value: 0 }
  if (typeof x === 'number') return { number_value: x }
  if (typeof x === 'string') return { string_value: x }
  if (typeof x === 'boolean') return { bool_value: x }
  if (Array.isArray(x)) return { list_value: { values: x.map(toValue) } }
  return { struct_value: toStruct(x) }
}
function toStruct (obj) {
  const fields = {}
  for (const [k, v] of Object.entries(obj || {})) fields[k] = toValue(v)
  return { fields }
}

// -- parameter validation, as the engine validates inputs, outputs and event data --------------
function checkType (key, p, v) {
  switch (p.type) {
    case 'String': return typeof v === 'string' ? [] : [`value of "${key}" is not a string`]
    case 'Number': return typeof v === 'number' ? [] : [`value of "${key}" is not a number`]
    case 'Boolean': return typeof v === 'boolean' ? [] : [`value of "${key}" is not a boolean`]
    case 'Object':
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return [`value of "${key}" is not an object`]
      return p.object ? validate(p.object, v) : []
    default: return [] // Any
  }
}
function validate (params, data) {
  const reasons = []
  for (const [key, p] of Object.entries(params || {})) {
    const v = data[key]
    if (v === undefined || v === null) {
      if (!p.optional) reasons.push(`value of "${key}" is required`)
      continue
    }
    if (p.repeated) {
      if (!Array.isArray(v)) { reasons.push(`value of "${key}" is not an array`); continue }
      for (const item of v) reasons.push(...checkType(key, p, item))
    } else {
      reasons.push(...checkType(key, p, v))
    }
  }
  return reasons
}

// -- secp256k1 signatures as tendermint makes and checks them ----------------------------------
const CURVE_N = BigInt('0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141')
const HALF_N = CURVE_N >> 1n
const toBig = (buf) => BigInt('0x' + buf.toString('hex'))
const fromBig = (n) => Buffer.from(n.toString(16).padStart(64, '0'), 'hex')

// The signed bytes: the request's amino JSON with sorted keys; hashes as base58 strings, and
// empty ones left out (omitempty).
function registerPayload (serviceHash, envHash) {
  const fields = {}
  if (envHash && envHash.length) fields.envHash = b58(envHash)
  if (serviceHash && serviceHash.length) fields.serviceHash = b58(serviceHash)
  return Buffer.from(JSON.stringify(fields))
}
function sign (privateKey, payload) {
  const sig = crypto.sign('sha256', payload, { key: privateKey, dsaEncoding: 'ieee-p1363' })
  let s = toBig(sig.subarray(32))
  if (s > HALF_N) s = CURVE_N - s // tendermint only accepts the lower S
  return Buffer.concat([sig.subarray(0, 32), fromBig(s)]).toString('base64')
}
function verify (publicKey, payload, signature) {
  if (signature.length !== 64) return false
  if (toBig(signature.subarray(32)) > HALF_N) return false
  return crypto.verify('sha256', payload, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature)
}
const newKey = () => crypto.generateKeyPairSync('ec', { namedCurve: 'secp256k1' })
const addressOf = (publicKey) => sha256(publicKey.export({ type: 'spki', format: 'der' })).subarray(0, 20)

// -- the instance, its runners (one per node), and the shared executions -----------------------
const serviceHash = randomHash()
const envHash = randomHash()
const instanceHash = sha256(serviceHash, envHash)
const nodes = []
for (let i = 0; i < args.nodes; i++) {
  const key = newKey()
  const address = addressOf(key.publicKey)
  nodes.push({
    index: i,
    key,
    authorized: [key.publicKey],
    runnerHash: sha256(address, instanceHash),
    tokens: new Map(), // token -> runner hash (text); in memory only
    server: null,
    port: 0,
    down: false,
    streams: new Set()
  })
}
const rogue = newKey() // signs like an engine but is not authorized by any node: "wrong signature"

const executions = new Map() // hash text -> record
const order = []
const registers = []
const subscriptions = []
const events = []
const orphanAttempts = [] // result calls for executions the engine does not know
let onNextResult = null

function envFor (node, signature) {
  const common = { MESG_ENDPOINT: `127.0.0.1:${node.port}`, MESG_INSTANCE_HASH: b58(instanceHash), MESG_RUNNER_HASH: b58(node.runnerHash) }
  if (args.generation === 'g2') return common
  return {
    ...common,
    MESG_SERVICE_HASH: b58(serviceHash),
    MESG_ENV_HASH: b58(envHash),
    MESG_REGISTER_SIGNATURE: signature
  }
}

function wireExecution (rec) {
  return {
    hash: rec.hash,
    eventHash: rec.eventHash,
    status: rec.status,
    instanceHash,
    taskKey: rec.taskKey,
    inputs: toStruct(rec.inputs),
    executorHash: rec.executorHash,
    price: '1000atto',
    blockHeight: String(rec.blockHeight)
  }
}

// action: 'created' or 'updated'; G2 streams see both (filtered by status), G3 streams 'created' only.
function publish (rec, action) {
  for (const node of nodes) {
    for (const stream of node.streams) {
      if (stream.matches(rec, action)) stream.call.write(wireExecution(rec))
    }
  }
}

let blockHeight = 0
function createExecution ({ task, inputs, executor }) {
  const taskDef = (definition.tasks || {})[task]
  if (!taskDef) throw new Error(`service "${definition.name}" - task "${task}" not found`)
  const reasons = validate(taskDef.inputs, inputs || {})
  if (reasons.length) throw new Error(`service "${definition.name}" - inputs of task "${task}" are invalid: ${reasons.join('\n')}`)
  const index = executor === undefined || executor === null ? crypto.randomInt(nodes.length) : Number(executor)
  if (!nodes[index]) throw new Error(`no node ${index}`)
  const hash = randomHash()
  const rec = {
    hash,
    id: b58(hash),
    eventHash: randomHash(),
    taskKey: task,
    inputs: inputs || {},
    executor: index,
    executorHash: nodes[index].runnerHash,
    status: STATUS.InProgress,
    blockHeight: ++blockHeight,
    outputs: null,
    error: null,
    attempts: [] // every Update/Result call for this execution, accepted or refused
  }
  executions.set(rec.id, rec)
  order.push(rec.id)
  publish(rec, 'created')
  return rec.id
}

// One result, from Execution.Update (G2) or Runner.Result (G3) on `node` by runner `runner`.
function applyResult (node, via, hashBytes, req, runner) {
  const id = b58(hashBytes)
  const rec = executions.get(id)
  const attempt = { node: node.index, via, runner, at: Date.now() }
  const refuse = (message) => {
    attempt.error = message
    if (rec) rec.attempts.push(attempt)
    else orphanAttempts.push({ ...attempt, execution: id })
    return message
  }
  if (!rec) {
    return refuse(args.generation === 'g3'
      ? `execution "${id}" not found: invalid request`
      : `execution "${id}" doesn't exist`)
  }
  if (args.generation === 'g3' && runner !== b58(rec.executorHash)) {
    return refuse(`this runner ("${runner}") is not authorized to submit the result of this execution, the executor should be "${b58(rec.executorHash)}"`)
  }
  if (rec.status !== STATUS.InProgress) {
    const text = `Execution status error: "${STATUS_NAME[rec.status]}" instead of "InProgress"`
    return refuse(args.generation === 'g3' ? `${text}: invalid request` : text) // G3 wraps it as the chain does
  }
  if (req.result === 'outputs') {
    const outputs = fromStruct(req.outputs)
    const reasons = validate(definition.tasks[rec.taskKey].outputs, outputs)
    if (reasons.length) {
      rec.status = STATUS.Failed
      rec.error = `service "${definition.name}" - outputs of task "${rec.taskKey}" are invalid: ${reasons.join('\n')}`
    } else {
      rec.status = STATUS.Completed
      rec.outputs = outputs
    }
  } else if (req.result === 'error') {
    rec.status = STATUS.Failed
    rec.error = req.error
  } else {
    return refuse('no execution result supplied: invalid request')
  }
  attempt.ok = true
  rec.attempts.push(attempt)
  publish(rec, 'updated')
  return null
}

function recordEvent (node, via, key, data, instance) {
  if (!key) return 'create event: key missing'
  const eventDef = (definition.events || {})[key]
  if (!eventDef) return `create event: event "${key}" not found`
  const decoded = fromStruct(data)
  const reasons = validate(eventDef.data, decoded)
  if (reasons.length) return `create event: data service "${definition.name}" - data of event "${key}" are invalid: ${reasons.join('\n')}`
  events.push({ node: node.index, via, key, data: decoded, instance, at: Date.now() })
  return null
}

const fail = (callback, message) => callback({ code: grpc.status.UNKNOWN, details: message })
const header = (call) => {
  const md = new grpc.Metadata()
  md.set('status', 'ready')
  call.sendMetadata(md)
}

// An execution stream: recorded as `sub`, fed by publish() while open, then `status: ready`.
function openStream (node, call, sub, matches) {
  subscriptions.push(sub)
  const stream = { call, matches }
  node.streams.add(stream)
  const end = () => { sub.active = false; node.streams.delete(stream) }
  call.on('cancelled', end)
  call.on('close', end)
  call.on('error', end)
  header(call)
}

// What happens to the next result call, when a test arms it (onNextResult):
// - restart: the engine goes away in the middle of the call; the result is not applied and the
//   call fails as the connection drops; the service must hold the result and deliver it later.
// - forget: the engine no longer knows the execution (a chain started anew); the call is refused
//   for good and the service must drop the result, not retry it forever.
function armedFault (node, hashBytes) {
  if (!onNextResult) return false
  const { action, down_ms: downMs } = onNextResult
  onNextResult = null
  if (action === 'forget') {
    const id = b58(hashBytes)
    executions.delete(id)
    order.splice(order.indexOf(id), 1)
    log(`node ${node.index}: forgot execution ${id}`)
    return false
  }
  log(`node ${node.index}: restarting in the middle of a result call`)
  restartAll(downMs).catch((err) => log('restart failed', err))
  return true
}

// -- G2 handlers: mesg.api.Execution and mesg.api.Event -----------------------------------------
function g2Handlers (node) {
  return {
    execution: {
      Stream (call) {
        const filter = (call.request && call.request.filter) || {}
        const statuses = (filter.statuses || []).map((s) => (typeof s === 'string' ? STATUS[s] : s))
        const sub = {
          node: node.index,
          generation: 'g2',
          statuses: statuses.map((s) => STATUS_NAME[s]),
          instanceHash: b58(filter.instanceHash),
          executorHash: b58(filter.executorHash),
          taskKey: filter.taskKey || '',
          tags: filter.tags || [],
          active: true,
          at: Date.now()
        }
        openStream(node, call, sub, (rec) => {
          if (statuses.length && !statuses.includes(rec.status)) return false
          if (sub.instanceHash && sub.instanceHash !== b58(instanceHash)) return false
          if (sub.taskKey && sub.taskKey !== '*' && sub.taskKey !== rec.taskKey) return false
          if (sub.tags.length) return false // executions here carry no tags
          if (sub.executorHash && sub.executorHash !== b58(rec.executorHash)) return false
          return true
        })
      },
      Update (call, callback) {
        if (armedFault(node, call.request.hash)) return
        const error = applyResult(node, 'Update', call.request.hash, call.request, null)
        return error ? fail(callback, error) : callback(null, {})
      }
    },
    event: {
      Create (call, callback) {
        const req = call.request
        if (b58(req.instanceHash) !== b58(instanceHash)) return fail(callback, `instance "${b58(req.instanceHash)}" not found`)
        const error = recordEvent(node, 'Event.Create', req.key, req.data, b58(req.instanceHash))
        return error ? fail(callback, error) : callback(null, { hash: randomHash() })
      }
    }
  }
}

// -- G3 handlers: mesg.grpc.orchestrator.Runner and mesg.grpc.runner.Runner ---------------------
const NO_CREDENTIAL = 'credential not found in metadata, make sure to set it using the name "mesg_credential_token"'
function authorized (node, call) {
  const values = call.metadata.get('mesg_credential_token')
  if (!values.length) return { error: NO_CREDENTIAL }
  const runner = node.tokens.get(String(values[0]))
  if (!runner) return { error: "credential token doesn't exist" }
  return { runner }
}

function g3Handlers (node) {
  return {
    orchestrator: {
      Register (call, callback) {
        const req = call.request
        const attempt = { node: node.index, at: Date.now() }
        registers.push(attempt)
        const refuse = (message) => { attempt.error = message; fail(callback, message) }
        const values = call.metadata.get('mesg_request_signature')
        if (!values.length) return refuse('signature not found in metadata, make sure to set it using the key "mesg_request_signature"')
        const text = String(values[0])
        if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return refuse('illegal base64 data at input byte 0')
        const payload = registerPayload(req.serviceHash, req.envHash)
        const signature = Buffer.from(text, 'base64')
        if (!node.authorized.some((pub) => verify(pub, payload, signature))) return refuse('verification of the signature failed')
        const inst = sha256(req.serviceHash || Buffer.alloc(0), req.envHash || Buffer.alloc(0))
        if (!inst.equals(instanceHash)) return refuse(`instance "${b58(inst)}" not found`)
        const runner = b58(node.runnerHash)
        for (const [token, owner] of node.tokens) if (owner === runner) node.tokens.delete(token) // a new Register invalidates the others
        const token = b58(randomHash())
        node.tokens.set(token, runner)
        attempt.ok = true
        attempt.runner = runner
        attempt.token = token // for the tests to check that it never shows in a log
        log(`node ${node.index}: runner ${runner} registered`)
        callback(null, { token })
      }
    },
    runner: {
      Execution (call) {
        const auth = authorized(node, call)
        if (auth.error) {
          subscriptions.push({ node: node.index, generation: 'g3', error: auth.error, active: false, at: Date.now() })
          return call.emit('error', { code: grpc.status.UNKNOWN, details: auth.error })
        }
        const sub = { node: node.index, generation: 'g3', runner: auth.runner, active: true, at: Date.now() }
        // only executions created after the subscription, whose executor is this runner
        openStream(node, call, sub, (rec, action) => action === 'created' && b58(rec.executorHash) === auth.runner)
      },
      Result (call, callback) {
        const auth = authorized(node, call)
        if (auth.error) {
          const rec = executions.get(b58(call.request.executionHash))
          const attempt = { node: node.index, via: 'Result', error: auth.error, at: Date.now() }
          if (rec) rec.attempts.push(attempt)
          else orphanAttempts.push({ ...attempt, execution: b58(call.request.executionHash) })
          return fail(callback, auth.error)
        }
        if (armedFault(node, call.request.executionHash)) return
        const error = applyResult(node, 'Result', call.request.executionHash, call.request, auth.runner)
        return error ? fail(callback, error) : callback(null, {})
      },
      Event (call, callback) {
        const auth = authorized(node, call)
        if (auth.error) return fail(callback, auth.error)
        const error = recordEvent(node, 'Event', call.request.key, call.request.data, b58(instanceHash))
        return error ? fail(callback, error) : callback(null, {})
      }
    }
  }
}

// -- servers, restart --------------------------------------------------------------------------
function startNode (node) {
  const server = new grpc.Server()
  if (args.generation === 'g2') {
    const h = g2Handlers(node)
    server.addService(pkg.mesg.api.Execution.service, h.execution)
    server.addService(pkg.mesg.api.Event.service, h.event)
  } else {
    const h = g3Handlers(node)
    server.addService(pkg.mesg.grpc.orchestrator.Runner.service, h.orchestrator)
    server.addService(pkg.mesg.grpc.runner.Runner.service, h.runner)
  }
  return new Promise((resolve, reject) => {
    server.bindAsync(`127.0.0.1:${node.port}`, grpc.ServerCredentials.createInsecure(), (err, port) => {
      if (err) return reject(err)
      server.start() // grpc-js 1.9 needs it (later versions start in bindAsync and only warn)
      node.server = server
      node.port = port
      node.down = false
      resolve()
    })
  })
}

function stopNode (node) {
  node.streams.clear() // forceShutdown below cancels their calls
  for (const sub of subscriptions) if (sub.node === node.index) sub.active = false
  if (node.server) node.server.forceShutdown()
  node.server = null
  node.down = true
  node.tokens.clear() // tokens are kept in memory only
}

async function restartAll (downMs) {
  for (const node of nodes) stopNode(node)
  log(`engine down for ${downMs} ms`)
  await new Promise((resolve) => setTimeout(resolve, downMs))
  for (let tries = 0; ; tries++) {
    try {
      for (const node of nodes) if (node.down) await startNode(node)
      break
    } catch (err) {
      if (tries > 50) throw err
      await new Promise((resolve) => setTimeout(resolve, 100)) // the port may linger a moment
    }
  }
  log('engine back')
}

// -- control channel ---------------------------------------------------------------------------
function view (rec) {
  return {
    hash: rec.id,
    task: rec.taskKey,
    executor: rec.executor,
    status: STATUS_NAME[rec.status],
    outputs: rec.outputs,
    error: rec.error,
    attempts: rec.attempts
  }
}

const commands = {
  create (cmd) { return { hash: createExecution(cmd) } },
  create_many (cmd) { return { hashes: cmd.items.map(createExecution) } },
  state () {
    return {
      executions: order.map((id) => view(executions.get(id))),
      orphan_attempts: orphanAttempts,
      registers,
      subscriptions,
      events,
      tokens: nodes.map((n) => n.tokens.size)
    }
  },
  async restart (cmd) { await restartAll(cmd.down_ms ?? 1000); return {} },
  restart_on_next_result (cmd) { onNextResult = { action: 'restart', down_ms: cmd.down_ms ?? 1000 }; return {} },
  forget_on_next_result () { onNextResult = { action: 'forget' }; return {} },
  authorize_rogue () { for (const node of nodes) node.authorized.push(rogue.publicKey); return {} },
  // Another process registers as the runner of `node` with the valid signature: any token the
  // service holds for that runner is invalidated.
  register_as (cmd) {
    const node = nodes[cmd.node]
    const runner = b58(node.runnerHash)
    for (const [token, owner] of node.tokens) if (owner === runner) node.tokens.delete(token)
    node.tokens.set(b58(randomHash()), runner)
    registers.push({ node: node.index, ok: true, runner, by: 'another process', at: Date.now() })
    return {}
  }
}

async function main () {
  for (const node of nodes) await startNode(node)
  const payload = registerPayload(serviceHash, envHash)
  const ready = {
    generation: args.generation,
    instance: b58(instanceHash),
    nodes: nodes.map((n) => ({
      index: n.index,
      endpoint: `127.0.0.1:${n.port}`,
      runner: b58(n.runnerHash),
      env: envFor(n, sign(n.key.privateKey, payload))
    })),
    // what a node whose key is not authorized would hand the service: a wrong signature
    rogue_env: nodes.map((n) => envFor(n, sign(rogue.privateKey, payload)))
  }
  process.stdout.write(JSON.stringify({ ready }) + '\n')
  const rl = readline.createInterface({ input: process.stdin })
  rl.on('line', async (line) => {
    let cmd
    try { cmd = JSON.parse(line) } catch (err) { return }
    try {
      const handler = commands[cmd.op]
      if (!handler) throw new Error(`unknown op ${cmd.op}`)
      const result = await handler(cmd)
      process.stdout.write(JSON.stringify({ id: cmd.id, ok: result }) + '\n')
    } catch (err) {
      process.stdout.write(JSON.stringify({ id: cmd.id, error: err.message }) + '\n')
    }
  })
  rl.on('close', () => process.exit(0)) // the driver went away: stop
}

main().catch((err) => { console.error(err); process.exit(1) })
