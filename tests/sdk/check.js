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

// As `step`, for calls that answer plain values (lists, remove's boolean).
async function stepValue(name, run) {
  try {
    const value = await run();
    return { ok: true, value: JSON.parse(JSON.stringify(value === undefined ? null : value)), request: lastRequest() };
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

// Follows a list page by page with the SDK's own nextPage(), recording each page's
// `field`s and the URL the SDK asked for it.
async function walkPages(first, field) {
  const pages = [];
  let page = await first;
  while (page && pages.length < 100) {
    const r = client.httpClient && client.httpClient.lastRequest;
    pages.push({
      items: page.instances.map((p) => p[field]),
      url: r ? r.url : null,
      params: r && r.params !== "*" ? r.params : null,
    });
    page = await page.nextPage();
  }
  return pages;
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

  // The lifecycle: list (following next pages), update and remove.
  const v2List = v2.participants(plan.listConversationId);
  results.v2ListCreate = await stepValue("v2ListCreate", async () => {
    const ids = [];
    for (const phone of plan.listPhones) {
      const p = await v2List.create({ type: "CUSTOMER", addresses: [{ channel: "SMS", address: phone }] });
      ids.push(p.id);
    }
    return ids;
  });
  results.v2List = await stepValue("v2List", async () =>
    (await v2List.list({ pageSize: plan.listPageSize })).map((p) => p.id),
  );
  results.v2Pages = await stepValue("v2Pages", () => walkPages(v2List.page({ pageSize: plan.listPageSize }), "id"));
  results.v2Update = await step(
    "v2Update",
    () => v2.participants(plan.conversationId, v2Id).update({ name: plan.newName, profileId: null }),
    v2Dates,
  );
  results.v2FetchUpdated = await step(
    "v2FetchUpdated",
    () => v2.participants(plan.conversationId, v2Id).fetch(),
    v2Dates,
  );

  const v1List = v1.services(plan.chatServiceSid).conversations(plan.listConversationSid).participants;
  results.v1ListCreate = await stepValue("v1ListCreate", async () => {
    const sids = [];
    for (const identity of plan.listIdentities) {
      sids.push((await v1List.create({ identity })).sid);
    }
    return sids;
  });
  results.v1List = await stepValue("v1List", async () =>
    (await v1List.list({ pageSize: plan.listPageSize })).map((p) => p.sid),
  );
  results.v1Pages = await stepValue("v1Pages", () => walkPages(v1List.page({ pageSize: plan.listPageSize }), "sid"));
  results.v1Update = await step(
    "v1Update",
    () =>
      conv.participants(v1Sid).update({
        attributes: plan.newAttributes,
        lastReadMessageIndex: 3,
        xTwilioWebhookEnabled: "true",
      }),
    v1Dates,
  );
  const bindingSid = results.v1CreateBinding.ok ? results.v1CreateBinding.value.sid : "MB" + "1".repeat(32);
  results.v1UpdateBinding = await step(
    "v1UpdateBinding",
    () => conv.participants(bindingSid).update({ "messagingBinding.proxyAddress": plan.newProxyAddress }),
    v1Dates,
  );
  results.v1Remove = await stepValue("v1Remove", () =>
    conv.participants(bindingSid).remove({ xTwilioWebhookEnabled: "false" }),
  );
  results.v1FetchRemoved = await step("v1FetchRemoved", () => conv.participants(bindingSid).fetch(), []);
  results.v1RemoveAgain = await stepValue("v1RemoveAgain", () => conv.participants(bindingSid).remove());

  process.stdout.write(JSON.stringify(results) + "\n");
}

main().catch((e) => {
  process.stderr.write(`check.js failed outside a step: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
