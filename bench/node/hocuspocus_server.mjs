// Hocuspocus with its default settings (no extensions, no persistence), for the fan-out peers bench.
//   node hocuspocus_server.mjs <port>
import { Server } from '@hocuspocus/server'

const server = new Server({ port: Number(process.argv[2]), address: '127.0.0.1', quiet: true })
await server.listen()
console.log('ready')
