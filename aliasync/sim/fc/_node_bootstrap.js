// The process one emulated FC nodejs invocation runs in (aliasync/sim/fc/_node.py starts it).
//
// The counterpart of _worker.py for the nodejs runtimes: the runner starts
// `node --max-old-space-size=M _node_bootstrap.js` in the function's unpacked code directory,
// under an RLIMIT_DATA set by the shell that execs it, and sends a JSON spec on stdin:
//
//   {"handler", "event_path", "result_dir", "node_modules", "context": {...}}
//
// Before the handler is loaded, every outgoing HTTP(S) request of the process is sent through
// the emulator's proxy (HTTP_PROXY, whose userinfo names the function's region): Node's own
// fetch through undici's ProxyAgent installed as the global dispatcher, and the http/https
// modules (ali-oss, axios, ...) through global-agent, which replaces whatever agent a library
// passes. Plain http:// targets are proxied in absolute form, https:// ones through CONNECT.
// Without both packages nothing runs: a function must never reach the network around the
// emulator.
//
// Then it loads the handler ("file.export", a CommonJS or ES module), calls it as FC does,
// writes result.json (outcome, error details, peak memory) and result.bin (the encoded return
// value) into result_dir, and exits. console output gets FC's "time requestId [level]" prefix;
// process.stdout.write stays as it is; both end up in the invocation's log.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const util = require('node:util');
const { pathToFileURL } = require('node:url');

const EXIT_MEMORY = 86; // the handler ran out of memory (as _worker.EXIT_MEMORY)
const EXIT_BAD_SPEC = 87; // the runner sent something unusable, or the runtime cannot start
const LEVELS = ['debug', 'info', 'warn', 'error'];

function peakMemoryMB() {
  // VmHWM, not process.resourceUsage().maxRSS: Linux carries ru_maxrss over execve.
  try {
    const match = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (match) return Number(match[1]) / 1024;
  } catch (_) {
    // fall through
  }
  return process.memoryUsage().rss / 2 ** 20;
}

function installProxy(nodeModules) {
  const proxy = process.env.HTTP_PROXY || process.env.http_proxy || '';
  if (!proxy) return; // the emulator serves no proxy: nothing to route
  const undici = require(path.join(nodeModules, 'undici'));
  undici.setGlobalDispatcher(new undici.ProxyAgent({ uri: proxy, proxyTunnel: false }));
  const { createGlobalProxyAgent } = require(path.join(nodeModules, 'global-agent'));
  // A namespace nothing sets, so that only the values below count.
  const agent = createGlobalProxyAgent({
    environmentVariableNamespace: 'ALIASYNC_SIM_UNUSED_',
    forceGlobalAgent: true,
  });
  agent.HTTP_PROXY = proxy;
  agent.HTTPS_PROXY = process.env.HTTPS_PROXY || process.env.https_proxy || proxy;
  agent.NO_PROXY = null;
}

function installConsole(requestId) {
  const wanted = LEVELS.indexOf((process.env.ALIYUN_FC_LOG_LEVEL || '').toLowerCase());
  const threshold = wanted < 0 ? 0 : wanted;
  const stamp = () => new Date().toISOString().replace('T', ' ').replace('Z', '');
  const line = (level, args) => {
    if (LEVELS.indexOf(level) < threshold) return;
    const text = util.formatWithOptions({ colors: false }, ...args);
    const stream = level === 'error' || level === 'warn' ? process.stderr : process.stdout;
    stream.write(`${stamp()} ${requestId} [${level}] ${text}\n`);
  };
  const logger = {};
  for (const level of LEVELS) logger[level] = (...args) => line(level, args);
  logger.log = logger.info;
  logger.verbose = logger.debug;
  console.log = logger.info;
  console.info = logger.info;
  console.debug = logger.debug;
  console.warn = logger.warn;
  console.error = logger.error;
  return logger;
}

function buildContext(spec, logger) {
  const c = spec.context;
  const context = {
    requestId: c.requestId,
    region: c.region,
    accountId: c.accountId,
    credentials: { ...c.credentials },
    function: { ...c.function },
    service: { ...c.service },
    tracing: { openTracingSpanContext: '', jaegerEndpoint: '', openTracingSpanBaggages: {} },
    retryCount: 0,
    logger,
  };
  // Never print the key: util.inspect(context) or console.log(context) shows it redacted.
  Object.defineProperty(context.credentials, util.inspect.custom, {
    value: () => `{ accessKeyId: '${context.credentials.accessKeyId}', ... }`,
  });
  return context;
}

async function loadHandler(name, codeDir) {
  const dot = name.lastIndexOf('.');
  if (dot <= 0 || dot === name.length - 1) {
    throw new Error(`invalid handler '${name}': expected 'file.export'`);
  }
  const base = path.join(codeDir, name.slice(0, dot));
  const attr = name.slice(dot + 1);
  const file = ['.js', '.mjs', '.cjs'].map((ext) => base + ext).find((f) => fs.existsSync(f));
  if (!file) {
    throw new Error(`Cannot find module '${name.slice(0, dot)}' for handler '${name}'`);
  }
  // import() loads CommonJS (named exports found by cjs-module-lexer, all of module.exports
  // under `default`) and ES modules alike, and honours package.json "type".
  const mod = await import(pathToFileURL(file).href);
  const handler = mod[attr] ?? (mod.default && mod.default[attr]);
  if (typeof handler !== 'function') {
    throw new Error(`handler '${name}' is not a function exported by ${path.basename(file)}`);
  }
  return handler;
}

function call(handler, event, context) {
  if (handler.length < 3) return Promise.resolve(handler(event, context));
  // The callback style of the older runtimes: handler(event, context, callback).
  return new Promise((resolve, reject) => {
    const callback = (err, data) => (err ? reject(err) : resolve(data));
    Promise.resolve(handler(event, context, callback)).then((value) => {
      if (value !== undefined) resolve(value);
    }, reject);
  });
}

function encode(value) {
  if (value === undefined || value === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value);
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (typeof value === 'object') return Buffer.from(JSON.stringify(value), 'utf8');
  return Buffer.from(String(value), 'utf8');
}

function outOfMemory(err) {
  return (
    err instanceof RangeError &&
    /allocation failed|out of memory/i.test(String(err.message))
  ) || (err && err.code === 'ERR_MEMORY_ALLOCATION_FAILED');
}

function describe(err) {
  if (!(err instanceof Error)) {
    return { errorMessage: String(err), errorType: typeof err, stackTrace: [] };
  }
  const lines = String(err.stack || `${err.name}: ${err.message}`).split('\n');
  return {
    errorMessage: err.message,
    errorType: err.name || (err.constructor && err.constructor.name) || 'Error',
    stackTrace: lines.filter((l) => !l.includes(__filename)), // not the emulator's frames
  };
}

function writeResult(resultDir, outcome, body) {
  fs.writeFileSync(path.join(resultDir, 'result.bin'), body);
  outcome.maxMemoryMB = peakMemoryMB();
  fs.writeFileSync(path.join(resultDir, 'result.json'), JSON.stringify(outcome));
}

async function run(spec) {
  const requestId = spec.context.requestId;
  const logger = installConsole(requestId);
  const context = buildContext(spec, logger);
  process.stdout.write(`FC Invoke Start RequestId: ${requestId}\n`);
  let error = null;
  try {
    const handler = await loadHandler(spec.handler, process.cwd());
    const event = fs.readFileSync(spec.event_path);
    const body = encode(await call(handler, event, context));
    writeResult(spec.result_dir, { ok: true }, body);
  } catch (err) {
    if (outOfMemory(err)) {
      process.stdout.write(`FC Invoke End RequestId: ${requestId}, Error: out of memory\n`);
      process.exit(EXIT_MEMORY);
    }
    const details = describe(err);
    error = `${details.errorType}: ${details.errorMessage}`;
    process.stderr.write(details.stackTrace.join('\n') + '\n');
    writeResult(spec.result_dir, { ok: false, ...details }, Buffer.alloc(0));
  }
  const suffix = error ? `, Error: ${error}` : '';
  process.stdout.write(`FC Invoke End RequestId: ${requestId}${suffix}\n`);
  // Open sockets and timers would keep the process alive; FC freezes the instance instead.
  process.exit(0);
}

function main() {
  let spec;
  try {
    spec = JSON.parse(fs.readFileSync(0, 'utf8'));
    installProxy(spec.node_modules);
  } catch (err) {
    const reason = err && err.code === 'MODULE_NOT_FOUND' ? err.message.split('\n')[0] : err;
    process.stderr.write(`aliasync emulator: the nodejs runtime cannot start (${reason})\n`);
    process.exit(EXIT_BAD_SPEC);
  }
  run(spec);
}

main();
