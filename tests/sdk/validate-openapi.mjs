#!/usr/bin/env node
// Validates an OpenAPI document read from standard input against the official OpenAPI
// JSON schemas (@seriousme/openapi-schema-validator, pinned in package.json), and
// resolves every $ref in it, for tests/api/sdk.rs. Prints one JSON line:
// {"valid": bool, "version": "3.1", "errors": [...], "refsResolved": bool}.
import { Validator } from "@seriousme/openapi-schema-validator";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const document = JSON.parse(input);

const validator = new Validator();
const result = await validator.validate(document);
let refsResolved = false;
let refError = null;
if (result.valid) {
  try {
    validator.resolveRefs();
    refsResolved = true;
  } catch (e) {
    refError = String(e && e.message ? e.message : e);
  }
}
process.stdout.write(
  JSON.stringify({
    valid: result.valid,
    version: validator.version ?? null,
    errors: result.errors ?? null,
    refsResolved,
    refError,
  }) + "\n",
);
