package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/natlab"
	"github.com/icebreaker-net/icebreaker/internal/refpeers"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// The end-to-end tests of send and receive run the built binary (not a
// race build) against the real magic-wormhole clients, through the
// reference mailbox server on loopback.

var codeLine = regexp.MustCompile(`Wormhole code is: (\S+)`)

// wormholeTest is what each end-to-end test needs: a context, the binary,
// and a reference mailbox server.
func wormholeTest(t *testing.T) (context.Context, string, *refpeers.Mailbox) {
	t.Helper()
	mb := refpeers.StartMailbox(t)
	bin := natlab.BuildBinary(t, "github.com/icebreaker-net/icebreaker/cmd/icebreaker")
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	t.Cleanup(cancel)
	return ctx, bin, mb
}

// codeOf waits until p printed its code and returns it.
func codeOf(t *testing.T, ctx context.Context, p *testutil.Process) string {
	t.Helper()
	if err := p.WaitFor(ctx, "the code", func(out string) bool { return codeLine.MatchString(out) }); err != nil {
		t.Fatal(err)
	}
	return codeLine.FindStringSubmatch(p.Output())[1]
}

// pythonWormhole returns the argument prefix of the real Python client.
func pythonWormhole(t *testing.T, url string) (string, []string) {
	t.Helper()
	return testutil.RequireBinary(t, "wormhole"), []string{"--relay-url", url}
}

// TestSendToPythonReceive: `icebreaker send --text` to `wormhole receive`.
func TestSendToPythonReceive(t *testing.T) {
	t.Parallel()
	ctx, bin, mb := wormholeTest(t)
	py, pyArgs := pythonWormhole(t, mb.URL)
	const msg = "hello from icebreaker, ünïcode"
	send := testutil.Start(t, testutil.Command(ctx, bin, "send", "--text", msg, "--rendezvous", mb.URL, "--verify"))
	code := codeOf(t, ctx, send)
	out, err := testutil.Command(ctx, py, append(pyArgs, "receive", "--verify", code)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), msg) {
		t.Fatalf("wormhole receive: %v\n%s", err, out)
	}
	if err := send.Wait(); err != nil {
		t.Fatalf("icebreaker send: %v\n%s", err, send.Output())
	}
	if !strings.Contains(send.Output(), "text message sent") {
		t.Fatalf("icebreaker send printed:\n%s", send.Output())
	}
	// Both show the same verifier.
	ours := regexp.MustCompile(`Verifier ([0-9a-f]{64})`).FindStringSubmatch(send.Output())
	theirs := regexp.MustCompile(`Verifier ([0-9a-f]{64})\.`).FindStringSubmatch(string(out))
	if ours == nil || theirs == nil || ours[1] != theirs[1] {
		t.Fatalf("verifiers differ: ours %q, magic-wormhole's %q", ours, theirs)
	}
}

// TestPythonSendToReceive: `wormhole send --text` to `icebreaker receive`,
// the code in ICEBREAKER_CODE and the server in ICEBREAKER_RENDEZVOUS.
func TestPythonSendToReceive(t *testing.T) {
	t.Parallel()
	ctx, bin, mb := wormholeTest(t)
	py, pyArgs := pythonWormhole(t, mb.URL)
	const msg = "hello from magic-wormhole"
	send := testutil.Start(t, testutil.Command(ctx, py, append(pyArgs, "send", "--text", msg, "--code", "17-crossover-clockwork")...))
	recv := testutil.Command(ctx, bin, "receive", "--json")
	recv.Env = append(os.Environ(), "ICEBREAKER_CODE=17-crossover-clockwork", "ICEBREAKER_RENDEZVOUS="+mb.URL)
	out, err := recv.Output()
	if err != nil || !strings.Contains(string(out), `{"event":"text","text":"`+msg+`"}`) {
		t.Fatalf("icebreaker receive: %v\n%s", err, out)
	}
	if err := send.Wait(); err != nil {
		t.Fatalf("wormhole send: %v\n%s", err, send.Output())
	}
}

// TestWilliam: text both ways with wormhole-william, the Go client.
func TestWilliam(t *testing.T) {
	t.Parallel()
	ctx, bin, mb := wormholeTest(t)
	ww := testutil.RequireBinary(t, "wormhole-william")

	send := testutil.Start(t, testutil.Command(ctx, bin, "send", "--text", "to william", "--rendezvous", mb.URL))
	code := codeOf(t, ctx, send)
	out, err := testutil.Command(ctx, ww, "receive", "--relay-url", mb.URL, code).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "to william") {
		t.Fatalf("wormhole-william receive: %v\n%s", err, out)
	}
	if err := send.Wait(); err != nil {
		t.Fatalf("icebreaker send: %v\n%s", err, send.Output())
	}

	wsend := testutil.Start(t, testutil.Command(ctx, ww, "send", "--relay-url", mb.URL, "--code", "23-aardvark-adroitness", "--text", "from william"))
	out, err = testutil.Command(ctx, bin, "receive", "--rendezvous", mb.URL, "23-aardvark-adroitness").Output()
	if err != nil || strings.TrimSpace(string(out)) != "from william" {
		t.Fatalf("icebreaker receive: %v\n%s", err, out)
	}
	if err := wsend.Wait(); err != nil {
		t.Fatalf("wormhole-william send: %v\n%s", err, wsend.Output())
	}
}

// TestWrongCodeCLI: a receiver with the wrong words fails key confirmation
// on both sides; ours says so and exits 1.
func TestWrongCodeCLI(t *testing.T) {
	t.Parallel()
	ctx, bin, mb := wormholeTest(t)
	py, pyArgs := pythonWormhole(t, mb.URL)

	// Ours sends, Python receives with a wrong code.
	send := testutil.Start(t, testutil.Command(ctx, bin, "send", "--text", "secret", "--rendezvous", mb.URL, "--code", "31-absurd-adviser"))
	out, err := testutil.Command(ctx, py, append(pyArgs, "receive", "31-absurd-advisor")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Key confirmation failed") {
		t.Errorf("wormhole receive with a wrong code: %v\n%s", err, out)
	}
	if err := send.Wait(); err == nil || !strings.Contains(send.Output(), "key confirmation failed") {
		t.Errorf("icebreaker send: %v\n%s", err, send.Output())
	}

	// Python sends, ours receives with a wrong code.
	psend := testutil.Start(t, testutil.Command(ctx, py, append(pyArgs, "send", "--text", "secret", "--code", "32-absurd-adviser")...))
	recv := testutil.Command(ctx, bin, "receive", "--rendezvous", mb.URL, "32-absurd-advisor")
	rout, err := recv.CombinedOutput()
	if code := recv.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(rout), "key confirmation failed") {
		t.Errorf("icebreaker receive: exit %d (%v)\n%s", code, err, rout)
	}
	if err := psend.Wait(); err == nil || !strings.Contains(psend.Output(), "Key confirmation failed") {
		t.Errorf("wormhole send: %v\n%s", err, psend.Output())
	}
}

// TestReceiveCodeFromStdin: without a code argument or ICEBREAKER_CODE,
// receive asks on standard input; bad codes and flags are usage errors.
func TestReceiveCodeFromStdin(t *testing.T) {
	ctx, bin, mb := wormholeTest(t)
	send := testutil.Start(t, testutil.Command(ctx, bin, "send", "--text", "typed", "--rendezvous", mb.URL))
	code := codeOf(t, ctx, send)
	t.Setenv(codeEnv, "")
	stdin = strings.NewReader(code + "\n")
	defer func() { stdin = os.Stdin }()
	var out, errb strings.Builder
	var rc int
	checkNoLeak(t, "receive", func() { rc = run(ctx, []string{"receive", "--rendezvous", mb.URL}, &out, &errb) })
	if rc != 0 || out.String() != "typed\n" {
		t.Fatalf("receive: exit %d, stdout %q, stderr %q", rc, out.String(), errb.String())
	}
	if !strings.Contains(errb.String(), "Enter receive wormhole code") {
		t.Errorf("no prompt on stderr: %q", errb.String())
	}
	if err := send.Wait(); err != nil {
		t.Fatalf("send: %v\n%s", err, send.Output())
	}
	for _, args := range [][]string{
		{"receive", "--rendezvous", mb.URL, "notacode"},
		{"receive", "--rendezvous", "http://127.0.0.1:1/v1", "1-a-b"},
		{"send", "--rendezvous", mb.URL},
		{"send", "--text", "x", "--code", "x-y", "--rendezvous", mb.URL},
	} {
		var o, e strings.Builder
		if rc := run(ctx, args, &o, &e); rc != 2 {
			t.Errorf("%q: exit %d, want 2 (usage); stderr %q", args, rc, e.String())
		}
	}
}

// TestWormholeInterrupted: send and receive stopped by Ctrl-C say
// "interrupted" and exit 130.
func TestWormholeInterrupted(t *testing.T) {
	url := fmt.Sprintf("ws://127.0.0.1:%d/v1", testutil.FreePort(t)) // nothing listens
	for _, args := range [][]string{
		{"send", "--text", "x", "--rendezvous", url},
		{"receive", "--rendezvous", url, "3-a-b"},
	} {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		var out, errb strings.Builder
		if code := run(ctx, args, &out, &errb); code != 130 || !strings.Contains(errb.String(), "interrupted") {
			t.Errorf("%v: exit %d, stderr %q; want 130 and \"interrupted\"", args, code, errb.String())
		}
	}
}
