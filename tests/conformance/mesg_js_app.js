// A MESG application written with npm mesg-js 5.0.0 (the JavaScript SDK of engine v0.16):
// an independent check that our protos, local engine and service speak the engine's protocol.
// Usage: node tests/conformance/mesg_js_app.js ENDPOINT CHANNEL   -> prints one JSON line of results.
const application = require('mesg-js').application
const [endpoint, channel] = process.argv.slice(2)
const mesg = application({ endpoint })

async function main () {
  const instanceHash = await mesg.resolve('com.mesg.pusher')
  const run = async (taskKey, inputs) => {
    try {
      const result = await mesg.executeTaskAndWaitResult({ instanceHash, taskKey, inputs: mesg.encodeData(inputs) })
      return { status: result.status, outputs: mesg.decodeData(result.outputs) }
    } catch (err) {
      return { error: err.message }
    }
  }
  const out = {
    trigger: await run('trigger', { channel, name: 'from-mesg-js', data: { hello: 'world', n: 2 } }),
    channel: await run('channel', { channel, info: 'subscription_count' }),
    bad: await run('trigger', { channel: 'bad channel!', name: 'x', data: 'x' })
  }
  console.log(JSON.stringify(out))
}

main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1) })
