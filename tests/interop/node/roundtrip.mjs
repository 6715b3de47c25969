// A Node caller of the registry, built only from the protos in the repository: @grpc/grpc-js
// and @grpc/proto-loader for the calls, protobufjs for the error details of a failed call.
//
//   node tests/interop/node/roundtrip.mjs HOST:PORT [MODEL_ID]
//
// Creates a model and a version, uploads a file with its declared sha256 (header and finish),
// seals the version, points an alias at it, downloads the file through the alias and compares
// the bytes; then reads the reasons of two refused calls from their grpc-status-details-bin
// trailers (google.rpc.Status with ErrorInfo and BadRequest details). Prints one JSON object.

import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const INCLUDE_DIRS = [join(ROOT, "proto"), join(ROOT, "third_party", "proto")];
const DEADLINE_MS = 10_000;

const address = process.argv[2];
if (!address) {
  console.error("usage: node roundtrip.mjs HOST:PORT [MODEL_ID]");
  process.exit(2);
}

// -- the service stubs -------------------------------------------------------------------------
const definition = protoLoader.loadSync(
  ["modelregistry/v1/model_registry.proto", "modelregistry/v1/payload.proto"],
  { includeDirs: INCLUDE_DIRS, keepCase: true, longs: String, enums: String, defaults: true, oneofs: true },
);
const v1 = grpc.loadPackageDefinition(definition).modelregistry.v1;
const credentials = grpc.credentials.createInsecure();
const registry = new v1.ModelRegistry(address, credentials);
const payloads = new v1.PayloadService(address, credentials);

// -- error details: grpc-status-details-bin is a serialised google.rpc.Status -------------------
const rpcTypes = new protobuf.Root();
rpcTypes.resolvePath = (_origin, target) => {
  const found = INCLUDE_DIRS.map((dir) => join(dir, target)).find((path) => existsSync(path));
  return found ?? target; // google/protobuf/*.proto: protobufjs has them built in
};
rpcTypes.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"], { keepCase: true });
const Status = rpcTypes.lookupType("google.rpc.Status");

function details(error) {
  const [bytes] = error.metadata.get("grpc-status-details-bin");
  const status = Status.decode(bytes);
  const found = { code: status.code, message: status.message };
  for (const any of status.details) {
    const typeName = any.type_url.slice(any.type_url.lastIndexOf("/") + 1);
    found[typeName] = rpcTypes.lookupType(typeName).toObject(
      rpcTypes.lookupType(typeName).decode(any.value),
      { defaults: true },
    );
  }
  return found;
}

// -- small promise wrappers --------------------------------------------------------------------
const deadline = () => ({ deadline: Date.now() + DEADLINE_MS });

function unary(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, new grpc.Metadata(), deadline(), (error, reply) =>
      error ? reject(error) : resolve(reply),
    );
  });
}

function upload(messages) {
  return new Promise((resolve, reject) => {
    const call = payloads.UploadFile(new grpc.Metadata(), deadline(), (error, reply) =>
      error ? reject(error) : resolve(reply),
    );
    for (const message of messages) call.write(message);
    call.end();
  });
}

function download(request) {
  return new Promise((resolve, reject) => {
    const call = payloads.DownloadFile(request, new grpc.Metadata(), deadline());
    const parts = [];
    let file = null;
    call.on("data", (message) => {
      if (message.file) file ??= message.file;
      parts.push(message.data);
    });
    call.on("error", reject);
    call.on("end", () => resolve({ file, data: Buffer.concat(parts) }));
  });
}

async function refusal(promise) {
  try {
    await promise;
  } catch (error) {
    return { grpc_code: grpc.status[error.code], ...details(error) };
  }
  throw new Error("the call was expected to fail");
}

function uploadMessages(name, uploadId, data, sha256, finishSha256) {
  const chunk = 96 * 1024;
  const messages = [
    { header: { name, upload_id: uploadId, size_bytes: String(data.length), sha256 } },
  ];
  for (let offset = 0; offset < data.length; offset += chunk) {
    messages.push({ chunk: { offset: String(offset), data: data.subarray(offset, offset + chunk) } });
  }
  messages.push({ finish: { sha256: finishSha256 } });
  return messages;
}

// -- the round trip ----------------------------------------------------------------------------
const modelId = process.argv[3] ?? "node-interop";
const data = randomBytes(300 * 1024);
const sha256 = createHash("sha256").update(data).digest("hex");

const model = await unary(registry, "CreateModel", {
  model_id: modelId,
  model: { display_name: "Made by Node", labels: { client: "grpc-js" } },
});
const version = await unary(registry, "CreateModelVersion", { parent: model.name });
const fileName = `${version.name}/files/weights.bin`;
const stored = await upload(uploadMessages(fileName, "node-upload-1", data, sha256, sha256));
const sealed = await unary(registry, "SealModelVersion", { name: version.name });
const alias = await unary(registry, "SetAlias", {
  alias: { name: `${model.name}/aliases/production`, version: version.name },
});
const fetched = await download({ name: `${model.name}/versions/production/files/weights.bin` });

const notFound = await refusal(unary(registry, "GetModel", { name: "models/no-such-model" }));
const second = await unary(registry, "CreateModelVersion", { parent: model.name });
const wrongDigest = await refusal(
  upload(uploadMessages(`${second.name}/files/weights.bin`, "node-upload-2", data, "", "0".repeat(64))),
);

console.log(
  JSON.stringify({
    model: model.name,
    version: sealed.name,
    state: sealed.state,
    manifest_digest: sealed.manifest_digest,
    alias: alias.name,
    alias_version: alias.version,
    stored: { name: stored.name, size_bytes: stored.size_bytes, sha256: stored.sha256 },
    downloaded: {
      bytes_equal: Buffer.compare(fetched.data, data) === 0,
      size: fetched.data.length,
      sha256: fetched.file.sha256,
    },
    not_found: notFound,
    wrong_digest: wrongDigest,
  }),
);
registry.close();
payloads.close();
