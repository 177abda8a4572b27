#!/usr/bin/env python3
"""Writes the seed corpora under tests/fuzz/corpus/ (committed; re-run only to change them).

Usage: make_seeds.py RECORDED_DIR SCHEMA_SUITE_DIR
  RECORDED_DIR: recorded Cerebras traffic (go-vcr cassettes and chunk files)
  SCHEMA_SUITE_DIR: JSON-Schema-Test-Suite draft7 tests (Debian: json-schema-test-suite)
"""
import json
import pathlib
import sys

import yaml

HERE = pathlib.Path(__file__).resolve().parent
recorded = pathlib.Path(sys.argv[1])
suite = pathlib.Path(sys.argv[2])


def write(harness, name, data):
    d = HERE / "corpus" / harness
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


cassettes = {}
for p in sorted((recorded / "fantasy-qwen-3-coder-480b").glob("*.yaml")):
    cassettes[p.stem] = yaml.safe_load(p.read_text())["interactions"]

# --- sse_stream: [k][k piece sizes][stream] ---------------------------------------------------
for name in ("simple_streaming", "tool_streaming", "multi_tool_streaming"):
    body = cassettes[name][0]["response"]["body"]
    write("sse_stream", name + "_whole", b"\x00" + body.encode())
    write("sse_stream", name + "_split", b"\x05\x07\x01\x40\x03\xff" + body.encode())
chunks = (recorded / "vercel-ai-glm-4.7" / "cererebras-structured-output-tools.1.chunks.txt")
lines = [l for l in chunks.read_text().splitlines() if l.strip()]
glm = "".join("data: " + l + "\n\n" for l in lines[:6] + lines[-3:])
write("sse_stream", "glm_reasoning_crlf", b"\x02\x11\x2d" + glm.replace("\n", "\r\n").encode())
write("sse_stream", "glm_reasoning_done", b"\x00" + (glm + "data: [DONE]\n\n").encode())
write("sse_stream", "fields_and_comments",
      b"\x03\x01\x02\x03\xef\xbb\xbf: keep-alive\nevent: message\nid: 7\nretry: 1500\n"
      b"data: {\"id\":\"a\",\"choices\":[{\"delta\":{\"content\":\"Hi\"},\"index\":0}]}\n\n"
      b"data:{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"function\":"
      b"{\"name\":\"f\",\"arguments\":\"{\\\"a\\\"\"}}]},\"index\":0}]}\n\ndata: {\"choices\":[{\"delta\":"
      b"{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]},\"finish_reason\":"
      b"\"tool_calls\",\"index\":0}]}\ndata\n\n")
write("sse_stream", "stream_error",
      b"\x00data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"code\":"
      b"\"queue_exceeded\",\"param\":null},\"status_code\":503}\n\n")

# --- chat_response: non-streaming reply bodies ----------------------------------------------------
for name in ("simple", "tool", "multi_tool"):
    write("chat_response", name, cassettes[name][0]["response"]["body"])
for n in (1, 2):
    write("chat_response", f"glm_reasoning_{n}",
          (recorded / "vercel-ai-glm-4.7" / f"cerebras-structured-output-tools.{n}.json").read_text())
write("chat_response", "odd_numbers", '{"id":"x","created":1.5,"choices":[{"index":0,"message":'
      '{"role":"assistant","content":null,"tool_calls":[]},"finish_reason":"weird"}],'
      '"usage":{"prompt_tokens":1.0,"completion_tokens":2,"total_tokens":3,'
      '"prompt_tokens_details":null},"time_info":{"created":1761231232.19}}')

# --- error_body: STATUS\nheaders\n\nBODY ---------------------------------------------------------
SECRET = "csk-fuzz0secret0key0123456789"
write("error_body", "rate_limited",
      "429\nretry-after: 2\nx-request-id: req_1\nx-ratelimit-remaining-requests-minute: 0\n"
      "x-ratelimit-reset-tokens-minute: 11.5\n\n"
      '{"message":"Requests per minute limit exceeded","type":"too_many_requests_error",'
      '"param":"quota","code":"request_quota_exceeded"}')
write("error_body", "nested", "200\nretry-after-ms: 250.5\ncerebras-request-id: abc\n\n"
      '{"status_code":400,"error":{"message":"bad","type":"invalid_request_error","code":1}}')
write("error_body", "fastapi", "422\n\n"
      '{"detail":[{"loc":["body","messages",0,"role"],"msg":"field required","type":"missing"},"x"]}')
write("error_body", "error_string", "503\nretry-after: Wed, 21 Oct 2026 07:28:00 GMT\n\n"
      '{"error":"upstream overloaded"}')
write("error_body", "html", "502\ncontent-type: text/html\n\n<html><body>Bad gateway \xe2\x80\x94 "
      + "x" * 600 + "</body></html>")
write("error_body", "echoed_key", "401\nx-request-id: " + SECRET + "\n\n"
      '{"message":"Wrong API key ' + SECRET + '","type":"invalid_request_error"}')
write("error_body", "detail_string", '400\n\n{"detail":"Not Found"}')

# --- retry_headers: STATUS|T \n x-should-retry \n retry-after-ms \n retry-after -------------------
for name, text in {
    "ms": "429\n-\n1500\n-",
    "seconds": "503\n-\n-\n2.5",
    "veto": "500\nfalse\n-\n1",
    "force": "400\ntrue\n-\n-",
    "transport": "T\n-\n-\n-",
    "imf_date": "429\n-\n-\nSun, 06 Nov 1994 08:49:37 GMT",
    "rfc850_date": "503\n-\n-\nSunday, 06-Nov-94 08:49:37 GMT",
    "asctime_date": "503\n-\n-\nSun Nov  6 08:49:37 1994",
    "future_date": "429\n-\n-\nFri, 01 Jan 2027 00:00:00 GMT",
    "huge": "429\n-\n1e30\n-1e30",
}.items():
    write("retry_headers", name, text)

# --- admission: one operation per line (see admission.cpp) ----------------------------------------
for name, text in {
    "reserve_settle_reset": "R a 0 600\nR b 0 600\nH x-ratelimit-limit-tokens-minute: 800\n"
                            "H x-ratelimit-remaining-tokens-minute: 100\n"
                            "H x-ratelimit-reset-tokens-minute: 0.5\nO\nA 1\nS 1 150\nT 600\n"
                            "L TOKENS 300\nR c 3 50 100\nT 2000\n",
    "fairness_priority_429": "R a 0 100\nR a 0 100\nR b 0 100\nR c 5 100\nL RPM 500\nT 500\n"
                             "A 1\nS 1 20\nC 2\nT 60000\n",
    "nonsense_headers": "H x-ratelimit-limit-tokens-minute: -1\n"
                        "H x-ratelimit-remaining-tokens-minute: nan\n"
                        "H x-ratelimit-reset-tokens-minute: 1e400\n"
                        "H x-ratelimit-limit-requests-day: 99999999999999999999\nO\n"
                        "R a 0 5000 10\nT 20\n",
}.items():
    write("admission", name, text)

# --- schema: SCHEMA NUL INSTANCE -----------------------------------------------------------------
for stem in ("type", "properties", "required", "ref", "pattern", "enum", "anyOf", "oneOf", "allOf",
             "items", "minLength", "maximum", "additionalProperties", "const", "not", "definitions",
             "exclusiveMinimum", "maxItems", "patternProperties", "additionalItems"):
    groups = json.loads((suite / (stem + ".json")).read_text())
    for gi, group in enumerate(groups[:2]):
        t = group["tests"][0]
        write("schema", f"{stem}_{gi}",
              json.dumps(group["schema"]) + "\0" + json.dumps(t["data"]))
tool_params = json.loads(cassettes["tool"][0]["request"]["body"])["tools"][0]["function"]["parameters"]
write("schema", "weather_tool", json.dumps(tool_params) + "\0" + '{"location": "Florence,Italy"}')

# --- conversation: saved conversation documents ---------------------------------------------------
def conversation_doc(messages, meta=None):
    doc = {"version": 1, "messages": messages, "metadata": {"model": "zai-glm-4.7"}}
    if meta is not None:
        doc["meta"] = meta
    return json.dumps(doc)

for name in ("multi_tool", "tool_streaming"):
    msgs = json.loads(cassettes[name][-1]["request"]["body"])["messages"]
    write("conversation", name, conversation_doc(msgs))
reply = json.loads((recorded / "vercel-ai-glm-4.7" / "cerebras-structured-output-tools.1.json").read_text())
msg = reply["choices"][0]["message"]
calls = msg.get("tool_calls", [])
write("conversation", "glm_reasoning", conversation_doc(
    [{"role": "system", "content": "be brief"}, {"role": "user", "content": "weather?"}, msg]
    + [{"role": "tool", "tool_call_id": c["id"], "content": "sunny"} for c in calls],
    [{"turn": 0}, {"turn": 1}, {"turn": 1}] + [{"turn": 1, "is_error": False} for _ in calls]))
call = lambda i: {"id": i, "type": "function", "function": {"name": "read_file", "arguments": "{}"}}
write("conversation", "needs_repair", conversation_doc([
    {"role": "user", "content": [{"type": "text", "text": "go"}]},
    {"role": "assistant", "reasoning": [{"type": "text", "text": "think"}], "tool_calls": [call("a"), call("b"), call("a")]},
    {"role": "tool", "tool_call_id": "b", "content": "B"},
    {"role": "tool", "tool_call_id": "zz", "content": "orphan"},
    {"role": "tool", "tool_call_id": "b", "content": "dup"},
    {"role": "user", "content": "next", "name": "u"},
    {"role": "assistant", "content": "<think>x</think>done", "reasoning": "r"},
], [{"turn": 1}, {"turn": 1, "synthetic": True}]))

# --- tool_arguments: NAME\nARGUMENTS --------------------------------------------------------------
for name, text in {
    "read_file": 'read_file\n{"path":"src/main.cpp","offset":10,"limit":50}',
    "read_file_forbidden": 'read_file\n{"path":"/forbidden"}',
    "read_file_bad_type": 'read_file\n{"path":3,"extra":true}',
    "edit_file": 'edit_file\n{"path":"a.txt","edits":[{"old":"x","new":"y"},{"old":"\\u00e9","new":""}]}',
    "run_command": 'run_command\n{"command":"ls","args":["-l","."],"mode":null,"timeout_s":1.5}',
    "no_params_blank": "no_params\n \r\n",
    "tree": 'tree\n{"name":"a","children":[{"name":"b","children":[{"name":"c"}]}]}',
    "choice": 'choice\n{"value":[1,2],"flag":false}',
    "unknown": 'weather\n{"location": "Florence,Italy"}',
    "malformed": 'read_file\n{"path":"a.txt"',
    "no_newline": '{"path":"b"}',
}.items():
    write("tool_arguments", name, text)

# --- mcp_framing: [p][what an MCP server writes to stdout] -----------------------------------
for name, data in {
    "ping_and_tools": b'\x05{"jsonrpc":"2.0","id":0,"method":"ping"}\n'
    b'{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}}]}}\n',
    "progress_log_error": b'\x01{"jsonrpc":"2.0","method":"notifications/progress","params":'
    b'{"progressToken":"p1","progress":1,"total":2}}\r\nserver log line on stdout\n'
    b'{"jsonrpc":"2.0","id":5,"error":{"code":-32601,"message":"Method not found"}}',
    "request_batch_null": b'\x20{"jsonrpc":"2.0","id":"s-1","method":"roots/list"}\n'
    b'[{"jsonrpc":"2.0","method":"x"}]\n'
    b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}\n',
}.items():
    write("mcp_framing", name, data)
