// The MCP server the conformance suite's server scenarios are run against, direct and through
// `countersign mcp` (scripts/mcp-conformance). The suite does not ship one: this implements what
// each server scenario's "Server Implementation Requirements" ask for (`conformance list`,
// `conformance server --help`), on the official TypeScript SDK, in both transports:
//
//   node server.mjs http PORT            streamable HTTP on 127.0.0.1:PORT/mcp (sessions,
//                                        resumable streams, Host checked against rebinding)
//   node server.mjs stdio                the same server on standard input and output
//   node server.mjs bridge PORT -- CMD…  streamable HTTP on PORT in front of the stdio server CMD
//                                        (one CMD per session), so the suite, which speaks only
//                                        HTTP, can reach a stdio server — direct, or with
//                                        `countersign mcp --` in front of it

import { randomUUID } from "node:crypto";
import http from "node:http";

import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { InMemoryEventStore } from "@modelcontextprotocol/sdk/examples/shared/inMemoryEventStore.js";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import {
  CallToolRequestSchema,
  CompleteRequestSchema,
  CreateMessageResultSchema,
  ElicitResultSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  ReadResourceRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";

// A 1x1 red PNG, and a WAV of 8 silent samples.
const PNG =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
const WAV = (() => {
  const samples = 8;
  const wav = Buffer.alloc(44 + samples);
  wav.write("RIFF", 0);
  wav.writeUInt32LE(36 + samples, 4);
  wav.write("WAVEfmt ", 8);
  wav.writeUInt32LE(16, 16);
  wav.writeUInt16LE(1, 20); // PCM
  wav.writeUInt16LE(1, 22); // mono
  wav.writeUInt32LE(8000, 24);
  wav.writeUInt32LE(8000, 28);
  wav.writeUInt16LE(1, 32);
  wav.writeUInt16LE(8, 34);
  wav.write("data", 36);
  wav.writeUInt32LE(samples, 40);
  wav.fill(128, 44);
  return wav.toString("base64");
})();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const text = (t) => ({ content: [{ type: "text", text: t }] });
const noArguments = { type: "object", properties: {} };

const TOOLS = [
  ["test_simple_text", "Returns simple text", noArguments],
  ["test_image_content", "Returns an image", noArguments],
  ["test_audio_content", "Returns audio", noArguments],
  ["test_embedded_resource", "Returns an embedded resource", noArguments],
  ["test_multiple_content_types", "Returns text, an image and a resource", noArguments],
  ["test_tool_with_logging", "Logs three messages while it runs", noArguments],
  ["test_tool_with_progress", "Reports progress while it runs", noArguments],
  ["test_error_handling", "Always fails", noArguments],
  [
    "test_sampling",
    "Asks the client's model",
    { type: "object", properties: { prompt: { type: "string" } }, required: ["prompt"] },
  ],
  [
    "test_elicitation",
    "Asks the user",
    { type: "object", properties: { message: { type: "string" } }, required: ["message"] },
  ],
  ["test_elicitation_sep1034_defaults", "Asks the user, with defaults", noArguments],
  ["test_elicitation_sep1330_enums", "Asks the user to choose", noArguments],
  ["test_reconnection", "Closes its answer stream mid-call; the answer follows on reconnection", noArguments],
  [
    "json_schema_2020_12_tool",
    "Tool with JSON Schema 2020-12 features",
    {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      $defs: {
        address: {
          type: "object",
          properties: { street: { type: "string" }, city: { type: "string" } },
        },
      },
      properties: { name: { type: "string" }, address: { $ref: "#/$defs/address" } },
      additionalProperties: false,
    },
  ],
].map(([name, description, inputSchema]) => ({ name, description, inputSchema }));

async function callTool(request, extra) {
  const { name, arguments: args = {} } = request.params;
  const log = (data) =>
    extra.sendNotification({ method: "notifications/message", params: { level: "info", data } });
  switch (name) {
    case "test_simple_text":
      return text("This is a simple text response for testing.");
    case "test_image_content":
      return { content: [{ type: "image", data: PNG, mimeType: "image/png" }] };
    case "test_audio_content":
      return { content: [{ type: "audio", data: WAV, mimeType: "audio/wav" }] };
    case "test_embedded_resource":
      return {
        content: [
          {
            type: "resource",
            resource: {
              uri: "test://embedded-resource",
              mimeType: "text/plain",
              text: "This is an embedded resource content.",
            },
          },
        ],
      };
    case "test_multiple_content_types":
      return {
        content: [
          { type: "text", text: "Multiple content types test:" },
          { type: "image", data: PNG, mimeType: "image/png" },
          {
            type: "resource",
            resource: {
              uri: "test://mixed-content-resource",
              mimeType: "application/json",
              text: JSON.stringify({ test: "data", value: 123 }),
            },
          },
        ],
      };
    case "test_tool_with_logging":
      await log("Tool execution started");
      await sleep(50);
      await log("Tool processing data");
      await sleep(50);
      await log("Tool execution completed");
      return text("Tool with logging executed successfully");
    case "test_tool_with_progress": {
      const token = request.params._meta?.progressToken;
      for (const progress of [0, 50, 100]) {
        if (token !== undefined) {
          await extra.sendNotification({
            method: "notifications/progress",
            params: { progressToken: token, progress, total: 100 },
          });
        }
        if (progress < 100) await sleep(50);
      }
      return text("Tool with progress executed successfully");
    }
    case "test_error_handling":
      return { isError: true, ...text("This tool intentionally returns an error for testing") };
    case "test_sampling": {
      const answer = await extra.sendRequest(
        {
          method: "sampling/createMessage",
          params: {
            messages: [{ role: "user", content: { type: "text", text: args.prompt } }],
            maxTokens: 100,
          },
        },
        CreateMessageResultSchema,
      );
      return text(`LLM response: ${answer.content?.text ?? JSON.stringify(answer.content)}`);
    }
    case "test_elicitation": {
      const answer = await elicit(extra, args.message, {
        username: { type: "string", description: "User's response" },
        email: { type: "string", description: "User's email address" },
      }, ["username", "email"]);
      return text(`User response: action=${answer.action}, content=${JSON.stringify(answer.content ?? {})}`);
    }
    case "test_elicitation_sep1034_defaults": {
      const answer = await elicit(extra, "Please review and update the form fields with defaults", {
        name: { type: "string", description: "User name", default: "John Doe" },
        age: { type: "integer", description: "User age", default: 30 },
        score: { type: "number", description: "User score", default: 95.5 },
        status: {
          type: "string",
          description: "User status",
          enum: ["active", "inactive", "pending"],
          default: "active",
        },
        verified: { type: "boolean", description: "Verification status", default: true },
      });
      return text(`Elicitation completed: action=${answer.action}, content=${JSON.stringify(answer.content ?? {})}`);
    }
    case "test_elicitation_sep1330_enums": {
      const answer = await elicit(extra, "Please choose", {
        untitledSingle: { type: "string", enum: ["option1", "option2", "option3"] },
        titledSingle: {
          type: "string",
          oneOf: [
            { const: "value1", title: "First Option" },
            { const: "value2", title: "Second Option" },
            { const: "value3", title: "Third Option" },
          ],
        },
        legacyEnum: {
          type: "string",
          enum: ["opt1", "opt2", "opt3"],
          enumNames: ["Option One", "Option Two", "Option Three"],
        },
        untitledMulti: { type: "array", items: { type: "string", enum: ["option1", "option2", "option3"] } },
        titledMulti: {
          type: "array",
          items: {
            anyOf: [
              { const: "value1", title: "First Choice" },
              { const: "value2", title: "Second Choice" },
              { const: "value3", title: "Third Choice" },
            ],
          },
        },
      });
      return text(`Elicitation completed: action=${answer.action}, content=${JSON.stringify(answer.content ?? {})}`);
    }
    case "test_reconnection":
      // Over HTTP: end the answer's stream after its priming event; the answer waits in the
      // event store until the client comes back with Last-Event-ID.
      await sleep(50);
      extra.closeSSEStream?.();
      await sleep(100);
      return text("Reconnection test completed successfully");
    case "json_schema_2020_12_tool":
      return text(`Received: ${JSON.stringify(args)}`);
    default:
      return { isError: true, ...text(`Unknown tool: ${name}`) };
  }
}

function elicit(extra, message, properties, required = []) {
  return extra.sendRequest(
    {
      method: "elicitation/create",
      params: { message, requestedSchema: { type: "object", properties, required } },
    },
    ElicitResultSchema,
  );
}

const RESOURCES = [
  {
    uri: "test://static-text",
    name: "static-text",
    description: "A static text resource",
    mimeType: "text/plain",
    text: "This is the content of the static text resource.",
  },
  {
    uri: "test://static-binary",
    name: "static-binary",
    description: "A static binary resource (a PNG)",
    mimeType: "image/png",
    blob: PNG,
  },
  {
    uri: "test://watched-resource",
    name: "watched-resource",
    description: "A resource to subscribe to",
    mimeType: "text/plain",
    text: "Watched resource content.",
  },
];

const PROMPTS = [
  { name: "test_simple_prompt", description: "A prompt without arguments" },
  {
    name: "test_prompt_with_arguments",
    description: "A prompt with two arguments",
    arguments: [
      { name: "arg1", description: "First test argument", required: true },
      { name: "arg2", description: "Second test argument", required: true },
    ],
  },
  {
    name: "test_prompt_with_embedded_resource",
    description: "A prompt embedding a resource",
    arguments: [{ name: "resourceUri", description: "URI of the resource to embed", required: true }],
  },
  { name: "test_prompt_with_image", description: "A prompt with an image" },
];

function getPrompt({ name, arguments: args = {} }) {
  const user = (content) => ({ role: "user", content });
  switch (name) {
    case "test_simple_prompt":
      return { messages: [user({ type: "text", text: "This is a simple prompt for testing." })] };
    case "test_prompt_with_arguments":
      return {
        messages: [
          user({ type: "text", text: `Prompt with arguments: arg1='${args.arg1}', arg2='${args.arg2}'` }),
        ],
      };
    case "test_prompt_with_embedded_resource":
      return {
        messages: [
          user({
            type: "resource",
            resource: { uri: args.resourceUri, mimeType: "text/plain", text: "Embedded resource content for testing." },
          }),
          user({ type: "text", text: "Please process the embedded resource above." }),
        ],
      };
    case "test_prompt_with_image":
      return {
        messages: [
          user({ type: "image", data: PNG, mimeType: "image/png" }),
          user({ type: "text", text: "Please analyze the image above." }),
        ],
      };
    default:
      throw new Error(`Unknown prompt: ${name}`);
  }
}

function readResource({ uri }) {
  const template = /^test:\/\/template\/([^/]+)\/data$/.exec(uri);
  if (template) {
    const id = template[1];
    return {
      contents: [
        {
          uri,
          mimeType: "application/json",
          text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }),
        },
      ],
    };
  }
  const resource = RESOURCES.find((r) => r.uri === uri);
  if (!resource) throw new Error(`Unknown resource: ${uri}`);
  const { name: _, description: __, ...contents } = resource;
  return { contents: [contents] };
}

function newServer() {
  const server = new Server(
    { name: "countersign-conformance-server", version: "1.0.0" },
    {
      capabilities: {
        tools: {},
        resources: { subscribe: true },
        prompts: {},
        logging: {},
        completions: {},
      },
    },
  );
  const subscriptions = new Set();
  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: TOOLS }));
  server.setRequestHandler(CallToolRequestSchema, callTool);
  server.setRequestHandler(ListResourcesRequestSchema, () => ({
    resources: RESOURCES.map(({ uri, name, description, mimeType }) => ({ uri, name, description, mimeType })),
  }));
  server.setRequestHandler(ListResourceTemplatesRequestSchema, () => ({
    resourceTemplates: [
      {
        uriTemplate: "test://template/{id}/data",
        name: "template",
        description: "Data for an id",
        mimeType: "application/json",
      },
    ],
  }));
  server.setRequestHandler(ReadResourceRequestSchema, (request) => readResource(request.params));
  server.setRequestHandler(SubscribeRequestSchema, (request) => {
    subscriptions.add(request.params.uri);
    return {};
  });
  server.setRequestHandler(UnsubscribeRequestSchema, (request) => {
    subscriptions.delete(request.params.uri);
    return {};
  });
  server.setRequestHandler(ListPromptsRequestSchema, () => ({ prompts: PROMPTS }));
  server.setRequestHandler(GetPromptRequestSchema, (request) => getPrompt(request.params));
  server.setRequestHandler(CompleteRequestSchema, (request) => {
    const typed = request.params.argument?.value ?? "";
    const values = ["paris", "park", "party"].filter((v) => v.startsWith(typed));
    return { completion: { values, total: values.length, hasMore: false } };
  });
  return server;
}

// Only local names: a page on another site that resolves to 127.0.0.1 (DNS rebinding) is refused.
function localHost(host) {
  return /^(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/.test(host ?? "");
}

function localOrigin(origin) {
  if (origin === undefined) return true;
  try {
    return localHost(new URL(origin).host);
  } catch {
    return false;
  }
}

function refuse(response, status, message) {
  response.writeHead(status, { "Content-Type": "application/json" });
  response.end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message }, id: null }));
}

async function readBody(request) {
  const chunks = [];
  for await (const chunk of request) chunks.push(chunk);
  const body = Buffer.concat(chunks).toString("utf8");
  return body === "" ? undefined : JSON.parse(body);
}

// Streamable HTTP on 127.0.0.1:port/mcp, one session (and one `connect()`ed session object, made
// by `open`) per initialize.
function serveHttp(port, open) {
  const sessions = new Map();
  const httpServer = http.createServer(async (request, response) => {
    try {
      if (!localHost(request.headers.host) || !localOrigin(request.headers.origin)) {
        return refuse(response, 403, "only local hosts and origins may use this server");
      }
      if (new URL(request.url, "http://localhost").pathname !== "/mcp") {
        return refuse(response, 404, "the MCP endpoint is /mcp");
      }
      const id = request.headers["mcp-session-id"];
      const body = request.method === "POST" ? await readBody(request) : undefined;
      if (id !== undefined) {
        const transport = sessions.get(id);
        if (!transport) return refuse(response, 404, "no such session");
        return await transport.handleRequest(request, response, body);
      }
      if (request.method !== "POST" || body?.method !== "initialize") {
        return refuse(response, 400, "no session: initialize first");
      }
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        eventStore: new InMemoryEventStore(),
        retryInterval: 100,
        onsessioninitialized: (sessionId) => sessions.set(sessionId, transport),
      });
      transport.onclose = () => sessions.delete(transport.sessionId);
      await open(transport);
      await transport.handleRequest(request, response, body);
    } catch (error) {
      if (!response.headersSent) refuse(response, 500, String(error));
    }
  });
  httpServer.listen(port, "127.0.0.1");
}

// One stdio server per HTTP session; each message is passed on as it is. What the server sends
// on its own (logging, progress, sampling and elicitation requests) goes on the answer stream of
// the client's request it belongs to: the one its progress token names, else the latest one.
async function bridge(transport, command) {
  const [program, ...args] = command;
  const child = new StdioClientTransport({ command: program, args, env: process.env, stderr: "inherit" });
  const pending = [];
  const byToken = new Map();
  transport.onmessage = (message) => {
    if (message.method !== undefined && message.id !== undefined) {
      pending.push(message.id);
      const token = message.params?._meta?.progressToken;
      if (token !== undefined) byToken.set(token, message.id);
    }
    child.send(message).catch(() => transport.close());
  };
  child.onmessage = (message) => {
    if (message.method === undefined) {
      const at = pending.indexOf(message.id);
      if (at >= 0) pending.splice(at, 1);
      transport.send(message);
      return;
    }
    const related = byToken.get(message.params?.progressToken) ?? pending.at(-1);
    transport.send(message, related === undefined ? {} : { relatedRequestId: related });
  };
  child.onclose = () => transport.close();
  transport.onclose = () => child.close();
  await child.start();
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === "stdio") {
  await newServer().connect(new StdioServerTransport());
} else if (mode === "http") {
  serveHttp(Number(rest[0]), (transport) => newServer().connect(transport));
} else if (mode === "bridge" && rest[1] === "--" && rest.length > 2) {
  serveHttp(Number(rest[0]), (transport) => bridge(transport, rest.slice(2)));
} else {
  console.error("usage: server.mjs http PORT | stdio | bridge PORT -- COMMAND [ARGS...]");
  process.exit(2);
}
