// A test OTLP/HTTP collector on 127.0.0.1: decodes every JSON export with the official
// OpenTelemetry protobuf definitions (the generated opentelemetry-proto root), refuses unknown
// or malformed fields, and appends what it decoded to a JSON-lines file the C++ test reads.
// Usage: node collector.js PORT_FILE OUT_FILE
"use strict";
const fs = require("fs");
const http = require("http");
const path = require("path");

const root = require(path.join(__dirname,
    "node_modules/@opentelemetry/otlp-transformer/build/src/generated/root.js"));
const pb = root.opentelemetry.proto;
const types = {
    "/v1/traces": ["traces", pb.collector.trace.v1.ExportTraceServiceRequest],
    "/v1/metrics": ["metrics", pb.collector.metrics.v1.ExportMetricsServiceRequest],
};
const [portFile, outFile] = process.argv.slice(2);
const toObjectOptions = { defaults: true, arrays: true, longs: String, enums: Number, bytes: String };

// The JSON mapping writes trace and span ids as hex; protobufjs's fromObject takes bytes as
// base64. Converts them in place, refusing ids of the wrong length or with non-hex digits.
function convertIds(o, where) {
    if (Array.isArray(o)) {
        o.forEach((x, i) => convertIds(x, `${where}[${i}]`));
        return;
    }
    if (o === null || typeof o !== "object") return;
    for (const [key, len] of [["traceId", 32], ["spanId", 16], ["parentSpanId", 16]]) {
        if (!(key in o)) continue;
        const v = o[key];
        const ok = typeof v === "string" && /^[0-9a-f]*$/.test(v) &&
            (v.length === len || (key === "parentSpanId" && v.length === 0));
        if (!ok) throw new Error(`${where}.${key}: not ${len} lowercase hex digits: ${JSON.stringify(v)}`);
        o[key] = Buffer.from(v, "hex").toString("base64");
    }
    for (const [k, v] of Object.entries(o)) convertIds(v, `${where}.${k}`);
}

// Every key of the export must be a field the definitions know (toObject with defaults lists
// them all), and 64-bit integers must be decimal strings or numbers.
function checkKnown(input, decoded, where) {
    if (Array.isArray(input)) {
        if (!Array.isArray(decoded) || decoded.length !== input.length)
            throw new Error(`${where}: not a list the definitions accept`);
        input.forEach((x, i) => checkKnown(x, decoded[i], `${where}[${i}]`));
        return;
    }
    if (input === null || typeof input !== "object") {
        // A scalar must survive decoding unchanged (a 64-bit integer as "12x" would not).
        if (typeof input === "string" && String(decoded) !== input)
            throw new Error(`${where}: ${JSON.stringify(input)} is not a valid value`);
        return;
    }
    if (decoded === null || typeof decoded !== "object")
        throw new Error(`${where}: an object where the definitions have a scalar`);
    for (const key of Object.keys(input)) {
        if (!(key in decoded)) throw new Error(`${where}.${key}: unknown field`);
        checkKnown(input[key], decoded[key], `${where}.${key}`);
    }
}

function decode(url, text) {
    const [signal, Type] = types[url] || [];
    if (!Type) throw new Error(`unknown path ${url}`);
    const input = JSON.parse(text);
    convertIds(input, signal);
    const message = Type.fromObject(input);
    const problem = Type.verify(message);
    if (problem) throw new Error(`${signal}: ${problem}`);
    const decoded = Type.toObject(message, toObjectOptions);
    checkKnown(input, decoded, signal);
    // Ids back to hex for the test.
    const hexIds = (o) => {
        if (Array.isArray(o)) return o.forEach(hexIds);
        if (o === null || typeof o !== "object") return;
        for (const key of ["traceId", "spanId", "parentSpanId"])
            if (typeof o[key] === "string") o[key] = Buffer.from(o[key], "base64").toString("hex");
        Object.values(o).forEach(hexIds);
    };
    hexIds(decoded);
    return { signal, decoded };
}

const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let line;
        let status = 200;
        try {
            if (req.method !== "POST") throw new Error(`method ${req.method}`);
            const type = req.headers["content-type"] || "";
            if (!type.startsWith("application/json")) throw new Error(`content-type ${type}`);
            const { signal, decoded } = decode(req.url, text);
            line = { signal, headers: req.headers, request: decoded };
        } catch (e) {
            status = 400;
            line = { error: String(e.message || e), path: req.url };
        }
        fs.appendFileSync(outFile, JSON.stringify(line) + "\n");
        res.writeHead(status, { "content-type": "application/json" });
        res.end(status === 200 ? "{}" : JSON.stringify({ code: 3, message: line.error }));
    });
});
server.listen(0, "127.0.0.1", () => {
    fs.writeFileSync(portFile + ".tmp", String(server.address().port));
    fs.renameSync(portFile + ".tmp", portFile);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
