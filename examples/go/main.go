// participants.v1 from Go: grpc-go with stubs generated from the repository's proto.
//
// Run it with ./run (it generates the stubs). It talks to PARTICIPANTS_ADDR (default
// 127.0.0.1:50051) and shows, in order: a connection with the service config from
// docs/operations.md (round robin, retries of UNAVAILABLE); create, fetch, list every
// page and update (v2), then create, list, update and delete (v1); and reading errors:
// the BadRequest of an INVALID_ARGUMENT, the ErrorInfo of an ALREADY_EXISTS, and a
// deadline. It exits non-zero at the first answer that is not what the API promises.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log"
	"os"
	"sort"
	"time"

	participantsv1 "github.com/participants-facade/participants-facade/gen/go/participants/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	// Client-side health checking (healthCheckConfig): a replica turning NOT_SERVING
	// (draining) stops getting calls at once.
	_ "google.golang.org/grpc/health"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// docs/operations.md ("Balancing"): spread calls over every address the name resolves
// to, watch each one's health, and retry UNAVAILABLE with backoff. Only UNAVAILABLE: the
// server never answers it for a call that may have taken effect.
const serviceConfig = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "healthCheckConfig": {"serviceName": "participants.v1.ParticipantService"},
  "methodConfig": [{
    "name": [{"service": "participants.v1.ParticipantService"}],
    "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.2s", "maxBackoff": "2s",
                    "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
  }]
}`

func check(ok bool, format string, args ...interface{}) {
	if !ok {
		log.Fatalf("examples/go: FAILED: "+format, args...)
	}
}

func token(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		log.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// digits gives six random decimal digits, so that each run uses its own numbers.
func digits() int {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		log.Fatal(err)
	}
	return (int(b[0])<<16 | int(b[1])<<8 | int(b[2])) % 1000000
}

// call gives each call its own deadline: it travels as grpc-timeout.
func call() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

func v2(client participantsv1.ParticipantServiceClient) {
	conversation := "conv_example_" + token(8)
	var created []*participantsv1.Participant
	for n := 0; n < 5; n++ {
		ctx, cancel := call()
		p, err := client.CreateParticipant(ctx, &participantsv1.CreateParticipantRequest{
			ConversationId: conversation,
			Name:           fmt.Sprintf("Customer %d", n),
			Type:           participantsv1.ParticipantType_PARTICIPANT_TYPE_CUSTOMER,
			Addresses: []*participantsv1.Address{{
				Channel: participantsv1.Channel_CHANNEL_SMS,
				Address: fmt.Sprintf("+1555%06d%d", digits(), n),
			}},
			// Safe to retry: the same key answers with the same participant.
			IdempotencyKey: token(16),
		})
		cancel()
		check(err == nil, "create: %v", err)
		created = append(created, p)
	}
	first := created[0]
	fmt.Printf("created %d v2 participants in %s, first %s\n", len(created), conversation, first.Id)

	ctx, cancel := call()
	fetched, err := client.FetchParticipant(ctx, &participantsv1.FetchParticipantRequest{
		ConversationId: conversation, ParticipantId: first.Id,
	})
	cancel()
	check(err == nil && proto.Equal(fetched, first), "fetch returns the participant as created: %v", err)

	// Every page: follow next_page_token until it is empty.
	var listed []*participantsv1.Participant
	pageToken, pages := "", 0
	for {
		ctx, cancel := call()
		page, err := client.ListParticipants(ctx, &participantsv1.ListParticipantsRequest{
			ConversationId: conversation, PageSize: 2, PageToken: pageToken,
		})
		cancel()
		check(err == nil, "list: %v", err)
		listed = append(listed, page.Participants...)
		pages++
		if pageToken = page.NextPageToken; pageToken == "" {
			break
		}
	}
	check(len(listed) == len(created), "list gives every participant")
	for i := range listed {
		check(listed[i].Id == created[i].Id, "list is oldest first")
	}
	fmt.Printf("listed %d participants in %d pages\n", len(listed), pages)

	// Update: the mask names the fields that change.
	ctx, cancel = call()
	updated, err := client.UpdateParticipant(ctx, &participantsv1.UpdateParticipantRequest{
		Participant: &participantsv1.Participant{ConversationId: conversation, Id: first.Id, Name: "Renamed"},
		UpdateMask:  &fieldmaskpb.FieldMask{Paths: []string{"name"}},
	})
	cancel()
	check(err == nil, "update: %v", err)
	check(updated.Name == "Renamed" && proto.Equal(updated.CreatedAt, first.CreatedAt), "update changes the name only")
	fmt.Printf("updated %s: name %q\n", updated.Id, updated.Name)

	// ALREADY_EXISTS: another participant of the conversation holds this address; the
	// ErrorInfo names it.
	ctx, cancel = call()
	_, err = client.CreateParticipant(ctx, &participantsv1.CreateParticipantRequest{
		ConversationId: conversation, Addresses: first.Addresses,
	})
	cancel()
	st := status.Convert(err)
	check(st.Code() == codes.AlreadyExists, "ALREADY_EXISTS, got %v", st.Code())
	var info *errdetails.ErrorInfo
	for _, d := range st.Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok {
			info = i
		}
	}
	check(info != nil && info.Metadata["conflicting_resource_id"] == first.Id,
		"the ErrorInfo names the participant holding the address")
	fmt.Printf("ALREADY_EXISTS: reason %s, held by %s\n", info.Reason, info.Metadata["conflicting_resource_id"])

	// INVALID_ARGUMENT: one field violation per invalid field.
	ctx, cancel = call()
	_, err = client.CreateParticipant(ctx, &participantsv1.CreateParticipantRequest{
		Addresses: []*participantsv1.Address{{Channel: participantsv1.Channel_CHANNEL_EMAIL, Address: "not-an-email"}},
	})
	cancel()
	st = status.Convert(err)
	check(st.Code() == codes.InvalidArgument, "INVALID_ARGUMENT, got %v", st.Code())
	var fields []string
	for _, d := range st.Details() {
		if bad, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range bad.FieldViolations {
				fields = append(fields, v.Field)
				fmt.Printf("INVALID_ARGUMENT: %s: %s\n", v.Field, v.Description)
			}
		}
	}
	sort.Strings(fields)
	check(fmt.Sprint(fields) == "[addresses[0].address conversation_id]", "the violations name the fields: %v", fields)
}

func v1(client participantsv1.ParticipantServiceClient) {
	service, conversation := "IS"+token(16), "CH"+token(16)
	var made []*participantsv1.ServiceParticipant
	for n := 0; n < 3; n++ {
		ctx, cancel := call()
		p, err := client.CreateServiceParticipant(ctx, &participantsv1.CreateServiceParticipantRequest{
			ChatServiceSid: service, ConversationSid: conversation,
			Identity: fmt.Sprintf("agent-%d", n), Attributes: `{"team": "support"}`,
		})
		cancel()
		check(err == nil, "v1 create: %v", err)
		made = append(made, p)
	}
	ctx, cancel := call()
	page, err := client.ListServiceParticipants(ctx, &participantsv1.ListServiceParticipantsRequest{
		ChatServiceSid: service, ConversationSid: conversation, PageSize: 50,
	})
	cancel()
	check(err == nil && len(page.Participants) == 3 && page.Participants[0].Sid == made[0].Sid, "v1 list, oldest first: %v", err)

	ctx, cancel = call()
	renamed, err := client.UpdateServiceParticipant(ctx, &participantsv1.UpdateServiceParticipantRequest{
		ServiceParticipant: &participantsv1.ServiceParticipant{
			ChatServiceSid: service, ConversationSid: conversation, Sid: made[0].Sid, Identity: "agent-lead",
		},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"identity"}},
	})
	cancel()
	check(err == nil && renamed.Identity == "agent-lead", "v1 update: %v", err)

	// Delete by identity, as Twilio allows.
	ctx, cancel = call()
	_, err = client.DeleteServiceParticipant(ctx, &participantsv1.DeleteServiceParticipantRequest{
		ChatServiceSid: service, ConversationSid: conversation, Sid: "agent-lead",
	})
	cancel()
	check(err == nil, "v1 delete: %v", err)
	ctx, cancel = call()
	_, err = client.FetchServiceParticipant(ctx, &participantsv1.FetchServiceParticipantRequest{
		ChatServiceSid: service, ConversationSid: conversation, Sid: made[0].Sid,
	})
	cancel()
	check(status.Code(err) == codes.NotFound, "a deleted participant is NOT_FOUND, got %v", status.Code(err))
	fmt.Printf("v1: created 3, listed %d, renamed and deleted %s\n", len(page.Participants), made[0].Sid)
}

func deadline(client participantsv1.ParticipantServiceClient) {
	// A caller whose budget is already spent gets DEADLINE_EXCEEDED without waiting.
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-10*time.Millisecond))
	defer cancel()
	_, err := client.ListParticipants(ctx, &participantsv1.ListParticipantsRequest{ConversationId: "conv_example"})
	check(status.Code(err) == codes.DeadlineExceeded, "DEADLINE_EXCEEDED, got %v", status.Code(err))
	fmt.Println("DEADLINE_EXCEEDED for a call whose deadline has passed")
}

func main() {
	addr := os.Getenv("PARTICIPANTS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:50051"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(ctx, addr,
		grpc.WithInsecure(),
		grpc.WithBlock(),
		grpc.WithDefaultServiceConfig(serviceConfig),
	)
	check(err == nil, "connect to %s: %v", addr, err)
	defer conn.Close()
	client := participantsv1.NewParticipantServiceClient(conn)
	v2(client)
	v1(client)
	deadline(client)
	fmt.Println("examples/go: OK")
}
