#!/usr/bin/env node
// Drives Twilio's official Node SDK (the `twilio` package pinned in package.json) against
// the facade, for tests/api/sdk.rs. Usage: node check.js '<plan JSON>'.
//
// The plan names the facade's base URL, the credentials the SDK signs with, and the ids
// to use. Every step's outcome is printed as one JSON document on stdout: the SDK's
// instance (`toJSON()`, dates as ISO strings) or its RestException (status, code,
// message, moreInfo), together with the request the SDK sent (method, url, headers
// without Authorization, body), so that a failure names the exact request. The script
// itself never decides pass or fail: the Rust test asserts on what it prints.
"use strict";

const twilio = require("twilio");

const plan = JSON.parse(process.argv[2]);
const client = twilio(plan.accountSid, plan.authToken, {
  // A slow or absent server fails the step instead of hanging the test.
  timeout: 10000,
});
// Every Twilio domain object has a `baseUrl`; Conversations' default is
// https://conversations.twilio.com. Point it at the facade.
client.conversations.baseUrl = plan.baseUrl;

function describeDate(value) {
  if (value instanceof Date && !Number.isNaN(value.getTime())) {
    return { parsed: true, iso: value.toISOString() };
  }
  // The SDK hands back the raw value when it cannot parse a date.
  return { parsed: false, raw: value === undefined ? null : value };
}

function lastRequest() {
  const r = client.httpClient && client.httpClient.lastRequest;
  if (!r) return null;
  const headers = {};
  for (const [name, value] of Object.entries(r.headers || {})) {
    headers[name] = name.toLowerCase() === "authorization" ? "[sent]" : value;
  }
  return { method: r.method, url: r.url, headers, data: r.data === "*" ? null : r.data };
}

async function step(name, run, dates) {
  try {
    const instance = await run();
    const json = instance.toJSON();
    const out = { ok: true, value: JSON.parse(JSON.stringify(json)) };
    for (const d of dates) out[d] = describeDate(instance[d]);
    out.request = lastRequest();
    return out;
  } catch (e) {
    return {
      ok: false,
      error: {
        name: e && e.constructor ? e.constructor.name : typeof e,
        status: e.status === undefined ? null : e.status,
        code: e.code === undefined ? null : e.code,
        message: e.message === undefined ? String(e) : e.message,
        moreInfo: e.moreInfo === undefined ? null : e.moreInfo,
      },
      request: lastRequest(),
    };
  }
}

async function main() {
  const v2 = client.conversations.v2;
  const v1 = client.conversations.v1;
  const conv = v1.services(plan.chatServiceSid).conversations(plan.conversationSid);
  const results = {};
  const v2Dates = ["createdAt", "updatedAt"];
  const v1Dates = ["dateCreated", "dateUpdated"];

  results.v2Create = await step(
    "v2Create",
    () =>
      v2.participants(plan.conversationId).create(
        {
          name: plan.name,
          type: "CUSTOMER",
          profileId: plan.profileId,
          addresses: [{ channel: "SMS", address: plan.phone }],
        },
        { "Idempotency-Key": plan.idempotencyKey },
      ),
    v2Dates,
  );
  // The same create with the same key: the same participant, not a second one.
  results.v2CreateAgain = await step(
    "v2CreateAgain",
    () =>
      v2.participants(plan.conversationId).create(
        {
          name: plan.name,
          type: "CUSTOMER",
          profileId: plan.profileId,
          addresses: [{ channel: "SMS", address: plan.phone }],
        },
        { "Idempotency-Key": plan.idempotencyKey },
      ),
    v2Dates,
  );
  const v2Id = results.v2Create.ok ? results.v2Create.value.id : "conv_participant_missing";
  results.v2Fetch = await step(
    "v2Fetch",
    () => v2.participants(plan.conversationId, v2Id).fetch(),
    v2Dates,
  );
  results.v2FetchMissing = await step(
    "v2FetchMissing",
    () => v2.participants(plan.conversationId, plan.missingV2Id).fetch(),
    [],
  );

  results.v1Create = await step(
    "v1Create",
    () =>
      conv.participants.create({
        identity: plan.identity,
        attributes: plan.attributes,
        roleSid: plan.roleSid,
        dateCreated: new Date(plan.dateCreated),
        xTwilioWebhookEnabled: "true",
      }),
    v1Dates,
  );
  const v1Sid = results.v1Create.ok ? results.v1Create.value.sid : "MB" + "0".repeat(32);
  results.v1Fetch = await step("v1Fetch", () => conv.participants(v1Sid).fetch(), v1Dates);
  results.v1FetchByIdentity = await step(
    "v1FetchByIdentity",
    () => conv.participants(plan.identity).fetch(),
    v1Dates,
  );
  results.v1CreateBinding = await step(
    "v1CreateBinding",
    () =>
      conv.participants.create({
        "messagingBinding.address": plan.bindingAddress,
        "messagingBinding.proxyAddress": plan.bindingProxyAddress,
      }),
    v1Dates,
  );
  results.v1CreateDuplicate = await step(
    "v1CreateDuplicate",
    () => conv.participants.create({ identity: plan.identity }),
    [],
  );

  process.stdout.write(JSON.stringify(results) + "\n");
}

main().catch((e) => {
  process.stderr.write(`check.js failed outside a step: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
