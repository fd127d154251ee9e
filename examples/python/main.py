"""participants.v1 from Python: grpcio with stubs generated from the repository's proto.

Run it with ./run (it installs what it needs and generates the stubs). It talks to
PARTICIPANTS_ADDR (default 127.0.0.1:50051) and shows, in order:

1. a channel with the service config from docs/operations.md (round robin, retries of
   UNAVAILABLE);
2. create, fetch, list every page, update (v2), then create, list, update, delete (v1);
3. reading errors: the BadRequest of an INVALID_ARGUMENT, the ErrorInfo of an
   ALREADY_EXISTS, and a deadline.

It exits non-zero with a message at the first answer that is not what the API promises,
so CI can run it as a check.
"""

import json
import os
import secrets
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
from google.protobuf import field_mask_pb2  # noqa: E402
from google.rpc import error_details_pb2  # noqa: E402
from grpc_status import rpc_status  # noqa: E402

from participants.v1 import participants_pb2 as pb  # noqa: E402
from participants.v1 import participants_pb2_grpc as pb_grpc  # noqa: E402

SERVICE = "participants.v1.ParticipantService"

# docs/operations.md ("Balancing"): spread calls over every address the name resolves
# to, and retry UNAVAILABLE (a replica going away) with backoff.
# Only UNAVAILABLE: the server never answers it for a call that may have taken effect.
SERVICE_CONFIG = {
    "loadBalancingConfig": [{"round_robin": {}}],
    # Watch each server's health stream; a replica turning NOT_SERVING (draining) stops
    # getting calls at once.
    "healthCheckConfig": {"serviceName": SERVICE},
    "methodConfig": [
        {
            "name": [{"service": SERVICE}],
            "retryPolicy": {
                "maxAttempts": 3,
                "initialBackoff": "0.2s",
                "maxBackoff": "2s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ],
}


def check(condition, what):
    if not condition:
        raise SystemExit(f"examples/python: FAILED: {what}")


def details(err):
    """The google.rpc details of a failed call, decoded from grpc-status-details-bin."""
    status = rpc_status.from_call(err)
    found = {}
    for any_detail in status.details if status else []:
        for kind in (
            error_details_pb2.BadRequest,
            error_details_pb2.ErrorInfo,
            error_details_pb2.RetryInfo,
        ):
            if any_detail.Is(kind.DESCRIPTOR):
                detail = kind()
                any_detail.Unpack(detail)
                found[kind.__name__] = detail
    return found


def v2(stub, timeout):
    conversation = "conv_example_" + secrets.token_hex(8)
    created = []
    for n in range(5):
        created.append(
            stub.CreateParticipant(
                pb.CreateParticipantRequest(
                    conversation_id=conversation,
                    name=f"Customer {n}",
                    type=pb.PARTICIPANT_TYPE_CUSTOMER,
                    addresses=[
                        pb.Address(channel=pb.CHANNEL_SMS, address=f"+1555{secrets.randbelow(10**7):07d}{n}")
                    ],
                    # Safe to retry: the same key answers with the same participant.
                    idempotency_key=secrets.token_hex(16),
                ),
                timeout=timeout,
            )
        )
    first = created[0]
    print(f"created {len(created)} v2 participants in {conversation}, first {first.id}")

    fetched = stub.FetchParticipant(
        pb.FetchParticipantRequest(conversation_id=conversation, participant_id=first.id),
        timeout=timeout,
    )
    check(fetched == first, "fetch returns the participant as created")

    # Every page: follow next_page_token until it is empty.
    listed, token, pages = [], "", 0
    while True:
        page = stub.ListParticipants(
            pb.ListParticipantsRequest(conversation_id=conversation, page_size=2, page_token=token),
            timeout=timeout,
        )
        listed.extend(page.participants)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    check([p.id for p in listed] == [p.id for p in created], "list gives every participant, oldest first")
    print(f"listed {len(listed)} participants in {pages} pages")

    # Update: the mask names the fields that change.
    updated = stub.UpdateParticipant(
        pb.UpdateParticipantRequest(
            participant=pb.Participant(conversation_id=conversation, id=first.id, name="Renamed"),
            update_mask=field_mask_pb2.FieldMask(paths=["name"]),
        ),
        timeout=timeout,
    )
    check(updated.name == "Renamed" and updated.addresses == first.addresses, "update changes the name only")
    check(updated.created_at == first.created_at, "created_at does not move")
    print(f"updated {updated.id}: name {updated.name!r}")

    # ALREADY_EXISTS: another participant of the conversation holds this address; the
    # ErrorInfo names it.
    try:
        stub.CreateParticipant(
            pb.CreateParticipantRequest(conversation_id=conversation, addresses=first.addresses),
            timeout=timeout,
        )
        check(False, "a second participant with the same address is refused")
    except grpc.RpcError as err:
        check(err.code() == grpc.StatusCode.ALREADY_EXISTS, f"ALREADY_EXISTS, got {err.code()}")
        info = details(err).get("ErrorInfo")
        check(info is not None, "ALREADY_EXISTS carries an ErrorInfo")
        holder = info.metadata.get("conflicting_resource_id")
        check(holder == first.id, "the ErrorInfo names the participant holding the address")
        print(f"ALREADY_EXISTS: reason {info.reason}, held by {holder}")

    # INVALID_ARGUMENT: one field violation per invalid field.
    try:
        stub.CreateParticipant(
            pb.CreateParticipantRequest(
                conversation_id="",
                addresses=[pb.Address(channel=pb.CHANNEL_EMAIL, address="not-an-email")],
            ),
            timeout=timeout,
        )
        check(False, "an invalid create is refused")
    except grpc.RpcError as err:
        check(err.code() == grpc.StatusCode.INVALID_ARGUMENT, f"INVALID_ARGUMENT, got {err.code()}")
        bad = details(err).get("BadRequest")
        check(bad is not None, "INVALID_ARGUMENT carries a BadRequest")
        fields = sorted(v.field for v in bad.field_violations)
        check(fields == ["addresses[0].address", "conversation_id"], f"the violations name the fields: {fields}")
        for violation in bad.field_violations:
            print(f"INVALID_ARGUMENT: {violation.field}: {violation.description}")


def v1(stub, timeout):
    service, conversation = "IS" + secrets.token_hex(16), "CH" + secrets.token_hex(16)
    made = [
        stub.CreateServiceParticipant(
            pb.CreateServiceParticipantRequest(
                chat_service_sid=service,
                conversation_sid=conversation,
                identity=f"agent-{n}",
                attributes=json.dumps({"team": "support"}),
            ),
            timeout=timeout,
        )
        for n in range(3)
    ]
    page = stub.ListServiceParticipants(
        pb.ListServiceParticipantsRequest(chat_service_sid=service, conversation_sid=conversation, page_size=50),
        timeout=timeout,
    )
    check([p.sid for p in page.participants] == [p.sid for p in made], "v1 list, oldest first")
    renamed = stub.UpdateServiceParticipant(
        pb.UpdateServiceParticipantRequest(
            service_participant=pb.ServiceParticipant(
                chat_service_sid=service, conversation_sid=conversation, sid=made[0].sid, identity="agent-lead"
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["identity"]),
        ),
        timeout=timeout,
    )
    check(renamed.identity == "agent-lead", "v1 update")
    # Delete by identity, as Twilio allows; the identity is then free again.
    stub.DeleteServiceParticipant(
        pb.DeleteServiceParticipantRequest(chat_service_sid=service, conversation_sid=conversation, sid="agent-lead"),
        timeout=timeout,
    )
    try:
        stub.FetchServiceParticipant(
            pb.FetchServiceParticipantRequest(chat_service_sid=service, conversation_sid=conversation, sid=made[0].sid),
            timeout=timeout,
        )
        check(False, "a deleted participant is gone")
    except grpc.RpcError as err:
        check(err.code() == grpc.StatusCode.NOT_FOUND, f"NOT_FOUND, got {err.code()}")
    print(f"v1: created 3, listed {len(page.participants)}, renamed and deleted {made[0].sid}")


def deadline(stub):
    # Every call above carried a deadline (timeout=5): it travels as grpc-timeout, and the
    # server gives up on work that can no longer be answered in time. A caller whose
    # budget is already spent gets DEADLINE_EXCEEDED without waiting.
    spent_at = time.monotonic() - 0.01  # e.g. the budget of the request being served
    try:
        stub.ListParticipants(
            pb.ListParticipantsRequest(conversation_id="conv_example"),
            timeout=spent_at - time.monotonic(),
        )
        check(False, "a call past its deadline fails")
    except grpc.RpcError as err:
        check(err.code() == grpc.StatusCode.DEADLINE_EXCEEDED, f"DEADLINE_EXCEEDED, got {err.code()}")
        print("DEADLINE_EXCEEDED for a call whose deadline has passed")


def main():
    target = os.environ.get("PARTICIPANTS_ADDR", "127.0.0.1:50051")
    options = [
        ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
        ("grpc.enable_retries", 1),
    ]
    with grpc.insecure_channel(target, options=options) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        stub = pb_grpc.ParticipantServiceStub(channel)
        v2(stub, timeout=5)
        v1(stub, timeout=5)
        deadline(stub)
    print("examples/python: OK")


if __name__ == "__main__":
    main()
