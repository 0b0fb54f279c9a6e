package natbehavior_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/icebreaker-net/icebreaker/natbehavior"
)

// Discover runs every test against one server and returns a report. The
// server needs two IP addresses for the mapping and filtering tests.
func ExampleDiscover() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := natbehavior.Discover(ctx, "stun.example.net", natbehavior.Config{Timeout: 10 * time.Second})
	if err != nil {
		log.Fatal(err) // no UDP connectivity, or the name does not resolve
	}
	fmt.Println(r.Mapping, r.Filtering, r.OldName)
	for _, n := range r.NotRun {
		fmt.Printf("%s: %s\n", n.Test, n.Reason)
	}
	fmt.Println(r.Verdict)
}
