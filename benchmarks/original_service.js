// The bench's baseline (`python -m benchmarks.bench --original`): the original JavaScript service's
// approach, rebuilt for measurement with npm mesg-js 5.0.0 (its service SDK) and the official
// `pusher` SDK for Node. As the original did, `trigger` starts the SDK call and answers "sent"
// at once, without waiting for Pusher, and drops Pusher's errors. Only `trigger` is handled.
// Started by the bench with MESG_ENDPOINT, MESG_TOKEN and the PUSHER_* variables set.
const path = require('path')
process.chdir(path.resolve(__dirname, '..')) // mesg-js reads ./mesg.yml, at the repository root

const Pusher = require('pusher')
const mesg = require('mesg-js').service()

const pusher = new Pusher({
  appId: process.env.PUSHER_APP_ID,
  key: process.env.PUSHER_APP_KEY,
  secret: process.env.PUSHER_APP_SECRET,
  host: process.env.PUSHER_HOST,
  port: process.env.PUSHER_PORT,
  useTLS: process.env.PUSHER_USE_TLS === 'true'
})

console.warn = () => {} // mesg-js warns about each task of mesg.yml not handled here
const stream = mesg.listenTask({
  trigger: ({ channel, name, data }) => {
    pusher.trigger(channel, name, data).catch(() => {})
    return { message: 'sent' }
  }
})
stream.on('metadata', () => console.log('ready: subscribed (original-style JavaScript service)'))
stream.on('error', (err) => {
  console.error(`execution stream: ${err.message}`)
  process.exit(1)
})
process.on('SIGTERM', () => process.exit(0))
