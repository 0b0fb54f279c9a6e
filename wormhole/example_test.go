package wormhole_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/icebreaker-net/icebreaker/wormhole"
)

// Allocate a code, give it to the peer, and exchange one message each way.
// (Not run: it needs a mailbox server; the tests run the same steps against
// the reference server.)
func ExampleAllocate() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w, err := wormhole.Allocate(ctx, wormhole.Config{URL: "ws://mailbox.example:4000/v1"})
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close(ctx) // happy, lonely, scary or errory, as it went
	fmt.Println("code:", w.Code())
	if err := w.Send(ctx, []byte(`{"offer":{"message":"hello"}}`)); err != nil {
		log.Fatal(err)
	}
	reply, err := w.Receive(ctx)
	if err != nil {
		log.Fatal(err) // errors.Is(err, wormhole.ErrWrongCode) when the peer mistyped
	}
	v, _ := w.Verifier(ctx)
	fmt.Printf("peer said %s; verifier %x\n", reply, v)
}

// Join with a code from the peer.
func ExampleJoin() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w, err := wormhole.Join(ctx, wormhole.Config{URL: "ws://mailbox.example:4000/v1"}, "7-crossover-clockwork")
	if err != nil {
		log.Fatal(err) // errors.Is(err, wormhole.ErrCrowded): a third side
	}
	defer w.Close(ctx)
	msg, err := w.Receive(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", msg)
}
