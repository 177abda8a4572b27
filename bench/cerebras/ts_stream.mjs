// The official Cerebras TypeScript SDK (@cerebras/cerebras_cloud_sdk, pinned by package-lock.json)
// consuming one streamed chat completion from wafer-fake --bench-chunks N: the process's CPU
// (process.cpuUsage, user + system) around the stream only, as bench/stream_bench.cpp measures
// wafer's client.
// usage: node ts_stream.mjs <base_url>
// prints: chunks=<n> ts_sdk_cpu_us=<total> ts_sdk_cpu_us_per_chunk=<x> wall_ms=<w>
import Cerebras from '@cerebras/cerebras_cloud_sdk';

const baseURL = process.argv[2];
if (!baseURL) {
    console.error('usage: node ts_stream.mjs <base_url>');
    process.exit(2);
}
const client = new Cerebras({ apiKey: 'bench-not-a-key', baseURL, maxRetries: 0, warmTCPConnection: false });
const stream = await client.chat.completions.create({
    model: 'zai-glm-4.7',
    messages: [{ role: 'user', content: 'bench' }],
    stream: true,
});
const cpu0 = process.cpuUsage();
const t0 = performance.now();
let chunks = 0;
let bytes = 0;
for await (const chunk of stream) {
    const text = chunk.choices?.[0]?.delta?.content;
    if (text) {
        chunks += 1;
        bytes += text.length;
    }
}
const wall = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
const total = cpu.user + cpu.system;
console.log(
    `chunks=${chunks} ts_sdk_cpu_us=${total} ts_sdk_cpu_us_per_chunk=${(chunks ? total / chunks : 0).toFixed(3)} wall_ms=${wall.toFixed(0)}`
);
