// The official TypeScript SDK's MCP client (@modelcontextprotocol/sdk, pinned by package-lock.json
// here), calling server-everything's `echo` tool over stdio: the peer of wafer_mcp_bench.
// Measures this process's own CPU (process.cpuUsage(): user + system of every thread of node,
// not the server, which is a child) and wall time per call, after a warm-up.
//
// usage: node ts_client.mjs --server PATH/server-everything/dist/index.js [--node PATH]
//                           [--calls N] [--warmup N] [--parallel K]
// prints one line per mode: name=mcp_echo client=ts_sdk mode=<sequential|parallel> key=value ...
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

function option(name, fallback) {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const server = option("server", "");
const node = option("node", process.execPath);
const calls = Number(option("calls", "2000"));
const warmup = Number(option("warmup", "500"));
const parallel = Number(option("parallel", "16"));
if (!server) {
    console.error("ts_client: --server PATH is required");
    process.exit(2);
}

// The same command as wafer's (node, the server's script, stdio); its stderr is piped and
// drained, as wafer's client captures it.
const transport = new StdioClientTransport({
    command: node,
    args: [server, "stdio"],
    stderr: "pipe",
});
transport.stderr?.on("data", () => {});
const client = new Client({ name: "wafer-bench-ts", version: "1.0.0" });
await client.connect(transport);

let failures = 0;
async function echo(i) {
    const r = await client.callTool({ name: "echo", arguments: { message: `hello ${i}` } });
    const text = r.content?.[0]?.text ?? "";
    if (r.isError || !text.includes(`hello ${i}`)) {
        failures++;
    }
}

// `n` calls, `inFlight` at a time (each worker calls one after another).
async function run(n, inFlight) {
    let next = 0;
    const worker = async () => {
        while (next < n) {
            await echo(next++);
        }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
}

async function measure(mode, inFlight) {
    await run(warmup, inFlight);
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await run(calls, inFlight);
    const wall = Number(process.hrtime.bigint() - t0) / 1e3;
    const cpu = process.cpuUsage(cpu0);
    console.log(
        `name=mcp_echo client=ts_sdk mode=${mode} calls=${calls} in_flight=${inFlight} ` +
            `cpu_us_per_call=${((cpu.user + cpu.system) / calls).toFixed(1)} ` +
            `user_us_per_call=${(cpu.user / calls).toFixed(1)} ` +
            `sys_us_per_call=${(cpu.system / calls).toFixed(1)} ` +
            `wall_us_per_call=${(wall / calls).toFixed(1)} failures=${failures}`
    );
}

await measure("sequential", 1);
if (parallel > 1) {
    await measure("parallel", parallel);
}
await client.close();
process.exit(failures === 0 ? 0 : 1);
