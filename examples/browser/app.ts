// The page's code: connect-es over gRPC-Web, from the browser, to participants-facade
// (which allows this page's origin with --cors-allow-origin). The API's address comes
// from the page's `api` query parameter (default http://127.0.0.1:50051).
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import { BadRequestSchema } from "./gen/google/rpc/error_details_pb.js";
import { Channel, ParticipantService } from "./gen/participants/v1/participants_pb.js";

const params = new URLSearchParams(location.search);
const api = params.get("api") ?? "http://127.0.0.1:50051";
const conversationId = params.get("conversation") ?? "conv_browser_" + Date.now().toString(36);
const client = createClient(ParticipantService, createGrpcWebTransport({ baseUrl: api }));

const byId = (id: string) => document.getElementById(id) as HTMLElement;
byId("conversation").textContent = conversationId;

// Every page of the conversation, oldest first, into the table.
async function refresh() {
  const rows: HTMLTableRowElement[] = [];
  let pageToken = "";
  do {
    const page = await client.listParticipants({ conversationId, pageSize: 50, pageToken }, { timeoutMs: 5000 });
    for (const p of page.participants) {
      const row = document.createElement("tr");
      for (const text of [p.name, p.addresses[0]?.address ?? "", p.id]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      rows.push(row);
    }
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  byId("participants").replaceChildren(...rows);
}

// An error as the user should see it: the invalid fields, by name, or the message.
function describe(err: unknown): string {
  const e = ConnectError.from(err);
  const [bad] = e.findDetails(BadRequestSchema);
  if (e.code === Code.InvalidArgument && bad) {
    return bad.fieldViolations.map((v) => `${v.field}: ${v.description}`).join("; ");
  }
  return `${Code[e.code]}: ${e.rawMessage}`;
}

byId("add").addEventListener("submit", async (event) => {
  event.preventDefault();
  byId("error").textContent = "";
  try {
    await client.createParticipant(
      {
        conversationId,
        name: (byId("name") as HTMLInputElement).value,
        addresses: [{ channel: Channel.SMS, address: (byId("phone") as HTMLInputElement).value }],
      },
      { timeoutMs: 5000 },
    );
    await refresh();
  } catch (err) {
    byId("error").textContent = describe(err);
  }
  document.body.dataset.calls = String(Number(document.body.dataset.calls ?? 0) + 1);
});

refresh().then(
  () => (document.body.dataset.ready = "yes"),
  (err) => (byId("error").textContent = describe(err)),
);
