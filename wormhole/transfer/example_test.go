package transfer_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/icebreaker-net/icebreaker/wormhole"
	"github.com/icebreaker-net/icebreaker/wormhole/transfer"
)

// Send a file to a `wormhole receive` (or any peer of magic-wormhole's
// file-transfer protocol) through a transit relay. (Not run: it needs a
// mailbox server and a peer; cmd/icebreaker's tests run the same steps
// against the real client.)
func ExampleSend() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	w, err := wormhole.Allocate(ctx, wormhole.Config{URL: "ws://mailbox.example:4000/v1"})
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close(ctx)
	fmt.Println("wormhole receive", w.Code())
	f, err := os.Open("report.pdf")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	cfg := transfer.Config{Relays: []string{"transit.example:4001"}, ListenAddr: ":0"}
	res, err := transfer.Send(ctx, w, cfg, transfer.Offer{Kind: transfer.File, Name: "report.pdf", Size: fi.Size()}, f)
	if err != nil {
		log.Fatal(err) // errors.Is(err, transfer.ErrDeclined) when the receiver said no
	}
	fmt.Printf("sent via %s, sha256 %x\n", res.Via, res.SHA256)
}

// Receive what a `wormhole send` offers: a file into a file, a directory
// unpacked safely.
func ExampleReceiveOffer() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	w, err := wormhole.Join(ctx, wormhole.Config{URL: "ws://mailbox.example:4000/v1"}, "7-crossover-clockwork")
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close(ctx)
	in, err := transfer.ReceiveOffer(ctx, w, transfer.Config{ListenAddr: ":0"})
	if err != nil {
		log.Fatal(err)
	}
	offer := in.Offer()
	tmp, err := os.CreateTemp(".", ".incoming-*")
	if err != nil {
		in.Decline(ctx, "cannot write here")
		log.Fatal(err)
	}
	defer os.Remove(tmp.Name())
	check := func() error { // before the ack: a failure here fails the sender too
		if offer.Kind == transfer.File {
			return os.Rename(tmp.Name(), offer.Name)
		}
		if err := os.Mkdir(offer.Name, 0o755); err != nil {
			return err
		}
		lim := transfer.Limits{MaxBytes: offer.NumBytes, MaxFiles: offer.NumFiles, MaxDirs: 1000}
		return transfer.Extract(tmp, offer.Size, offer.Name, lim)
	}
	if _, err := in.Accept(ctx, tmp, check); err != nil {
		log.Fatal(err)
	}
}
